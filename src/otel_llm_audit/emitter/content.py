"""Content values as the conventions want them: compact JSON strings, or their hashes.

Runs off the caller's thread when the audit pipeline is installed. Defensive by design:
SDK objects, bytes, non-UTF-8 text and huge prompts must all come out as valid UTF-8 JSON
with a note, never as an exception.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from otel_llm_audit.records import Message


class ContentEncoder:
    """Turns message lists and other content into JSON, cutting overlong text parts.

    One instance per emitted span: it remembers whether anything was cut or repaired so the
    emitter can say so on the span.
    """

    __slots__ = ("max_chars", "repaired", "truncated")

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.truncated = False
        self.repaired = False

    def messages(self, messages: Sequence[Message], *, with_elements: bool = False) -> str:
        """``gen_ai.input.messages`` / ``gen_ai.output.messages`` JSON.

        ``with_elements`` (a masking stage follows): the same text as a :class:`JsonArrayText`
        that also carries each message's JSON, so the stage masks message by message without
        parsing the array again. When a text part has to be cut or repaired, a plain string.
        """
        pieces = _pieces(messages)
        text = "[" + ",".join(pieces) + "]"
        if len(text) > self.max_chars or not _is_utf8(text):  # a part to cut, or text to repair
            return self.dumps([m.to_json_obj() for m in messages])
        return JsonArrayText.of(text, pieces) if with_elements else text

    def dumps(self, value: Any) -> str:
        """Compact JSON of ``value`` with text parts bounded and guaranteed UTF-8."""
        text = _ENCODE(value)
        if len(text) > self.max_chars:  # only then can a single text part be too long
            text = _ENCODE(self._bounded(value))
        return self._utf8(text)

    def bound_text(self, text: str) -> str:
        """A plain-text value (a query, a reason) cut like a text part, and made valid UTF-8."""
        return self._utf8(str(self._bounded(text)))

    def hashes(self, messages: Sequence[Message]) -> list[str]:
        """SHA-256 of each message's canonical JSON (sorted keys, compact, UTF-8, not cut)."""
        return [canonical_hash(m.to_json_obj()) for m in messages]

    def _bounded(self, value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > self.max_chars:
                self.truncated = True
                return value[: self.max_chars] + f"...[truncated {len(value) - self.max_chars} chars]"
            return value
        if isinstance(value, dict):
            return {k: self._bounded(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._bounded(v) for v in value]
        return value

    def _utf8(self, text: str) -> str:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (from decoding binary data as text) cannot go on the wire.
            self.repaired = True
            return text.encode("utf-8", "replace").decode("utf-8")
        return text


class JsonArrayText(str):
    """The text of a JSON array that also carries the text of each element.

    A string in every respect (exporters and processors see the JSON text); ``elements`` is
    for the masking stage, which would otherwise parse a whole chat history on every call
    only to find where each message starts. The stage hands a plain ``str`` on.
    """

    elements: tuple[str, ...]

    @classmethod
    def of(cls, text: str, elements: Sequence[str]) -> JsonArrayText:
        out = cls(text)
        out.elements = tuple(elements)
        return out


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def canonical_hash(obj: Any) -> str:
    """SHA-256 hex of the canonical JSON of ``obj``: the value a verifier recomputes."""
    data = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_default)
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def _default(value: Any) -> Any:
    """JSON fallback for SDK objects and binary data."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            pass
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return to_dict()
        except Exception:
            pass
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))
    return repr(value)


#: One encoder for every span (``json.dumps`` with options builds a new one per call).
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default).encode


def _pieces(messages: Sequence[Message]) -> list[str]:
    """Each message's compact JSON, as ``_ENCODE(m.to_json_obj())`` would give it."""
    encode: Callable[[Any], str] | None = None
    out = []
    for message in messages:
        piece = _plain_text_piece(message)
        if piece is None:
            if encode is None:
                encode = _piece_encoder()
            piece = encode(message.to_json_obj())
        out.append(piece)
    return out


_TEXT_PART_KEYS = ("type", "content")
_role_prefixes: dict[str, str] = {}


def _plain_text_piece(message: Message) -> str | None:
    """The JSON of a message that is one plain text part (most of a chat history), else ``None``.

    Built from the JSON string literal of its text, remembered (:func:`_text_literal`): a chat
    application resends the same history, text objects and all, on every call.
    """
    parts = message.parts
    if message.name is not None or message.finish_reason is not None or len(parts) != 1:
        return None
    part = parts[0]
    if type(part) is not dict or tuple(part) != _TEXT_PART_KEYS or part["type"] != "text":
        return None
    content, role = part["content"], message.role
    if type(content) is not str or type(role) is not str:
        return None
    prefix = _role_prefixes.get(role)
    if prefix is None:
        prefix = '{"role":' + _ENCODE(role) + ',"parts":[{"type":"text","content":'
        if len(_role_prefixes) < 64:
            _role_prefixes[role] = prefix
    return prefix + _text_literal(content) + "}]}"


#: JSON string literals of message texts, by the identity of the text object (held, so the
#: identity stays unique): escaping a history's texts again on every call was a fifth of the
#: completion's work. Bounded by characters held; texts too short or too long are not kept.
_literals: dict[int, tuple[str, str]] = {}
_literal_chars = 0
_LITERALS_MAX_CHARS = 4_000_000
_LITERAL_MIN_CHARS = 64
_LITERAL_MAX_CHARS = 65_536


def _text_literal(text: str) -> str:
    global _literal_chars
    found = _literals.get(id(text))
    if found is not None and found[0] is text:
        return found[1]
    literal = _ENCODE(text)
    if _LITERAL_MIN_CHARS <= len(text) <= _LITERAL_MAX_CHARS:
        if _literal_chars + len(text) > _LITERALS_MAX_CHARS:
            _literals.clear()
            _literal_chars = 0
        _literals[id(text)] = (text, literal)
        _literal_chars += len(text)
    return literal


def _piece_encoder() -> Callable[[Any], str]:
    """An encoder for the messages of one list: ``_ENCODE``'s output, its C encoder built once.

    ``JSONEncoder.encode`` builds the C encoder anew on every call, which costs as much as
    encoding a short message; a list is encoded message by message only when a masking stage
    follows (:meth:`ContentEncoder.messages`). Its own cycle check (``markers``) per list.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return _ENCODE
    encoder = make({}, _default, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    return lambda value: "".join(encoder(value, 0))
