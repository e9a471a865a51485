"""The two exceptions of the masking engine.

They are separate because the pipeline reacts to them differently: a :class:`MaskingConfigError`
is a startup error the operator must fix (the process should not start exporting with a policy
it could not honour), while a :class:`MaskingError` happens per value at run time and the
pipeline answers it by withholding the content (fail closed).
"""

from __future__ import annotations

__all__ = ["MaskingConfigError", "MaskingError"]


class MaskingConfigError(ValueError):
    """The masking policy cannot be loaded or honoured as written.

    Raised at load time, never later: a typo in a privacy policy, a missing NER model or a
    pseudonym key that is not set must stop the start-up, not silently mask less.
    """


class MaskingError(RuntimeError):
    """Detection failed for a value, so no masked text can be returned for it.

    The message never contains the value being masked, and the original exception is not
    chained (its message may quote the value); only its type name is kept in
    :attr:`cause_type` for diagnosis.
    """

    def __init__(self, message: str, *, cause_type: str | None = None) -> None:
        super().__init__(message)
        #: Class name of the exception the analyzer raised, if any.
        self.cause_type = cause_type
