"""Audit identity: who is acting, carried in the OpenTelemetry context.

The identity lives in the OpenTelemetry ``Context`` rather than in a private contextvar so
that everything that already moves OpenTelemetry context moves it too: asyncio tasks copy it,
``opentelemetry-instrumentation-threading`` hands it to threads and thread pools, and the
W3C baggage propagator carries the keys the user allows to other processes.

Identity is personal data (a user id identifies a person), so nothing crosses a process
boundary unless the user lists the keys in ``OTEL_LLM_AUDIT_BAGGAGE_KEYS``. A downstream
service restores only the keys its own setting allows: baggage is input from the caller.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import Token
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypeVar, cast

from opentelemetry import baggage
from opentelemetry import context as otel_context

from otel_llm_audit import semconv

ActorType = Literal["human", "service", "agent"]

_IDENTITY_KEY = otel_context.create_key("otel_llm_audit.identity")
BAGGAGE_KEYS_ENV = "OTEL_LLM_AUDIT_BAGGAGE_KEYS"

#: Identity field -> span attribute (and baggage key). One place for the mapping.
FIELD_ATTRIBUTES: Mapping[str, str] = {
    "user_id": semconv.USER_ID,
    "session_id": semconv.SESSION_ID,
    "actor_type": semconv.LLM_AUDIT_ACTOR_TYPE,
    "auth_method": semconv.LLM_AUDIT_AUTH_METHOD,
    "tenant_id": semconv.LLM_AUDIT_TENANT_ID,
    "team": semconv.LLM_AUDIT_TEAM,
    "application": semconv.LLM_AUDIT_APPLICATION,
}
_ACTOR_TYPES = frozenset({"human", "service", "agent"})


@dataclass(frozen=True, slots=True)
class AuditIdentity:
    """Who is acting. Every field is optional; nested contexts fill in what the outer one left out."""

    user_id: str | None = None
    session_id: str | None = None
    actor_type: str | None = None
    auth_method: str | None = None
    tenant_id: str | None = None
    team: str | None = None
    application: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.actor_type is not None and self.actor_type not in _ACTOR_TYPES:
            raise ValueError(f"actor_type must be one of {sorted(_ACTOR_TYPES)}, not {self.actor_type!r}")
        # Precompute the span attributes once per context, not once per span.
        attrs = {
            FIELD_ATTRIBUTES[f.name]: str(getattr(self, f.name))
            for f in fields(self)
            if f.name in FIELD_ATTRIBUTES and getattr(self, f.name) is not None
        }
        object.__setattr__(self, "attributes", attrs)

    def merged_over(self, outer: AuditIdentity | None) -> AuditIdentity:
        """This identity with the outer context's values where this one has none."""
        if outer is None:
            return self
        values = {
            name: getattr(self, name) if getattr(self, name) is not None else getattr(outer, name)
            for name in FIELD_ATTRIBUTES
        }
        return replace(self, **values)


def allowed_baggage_fields(raw: str | None = None) -> frozenset[str]:
    """Identity fields allowed to travel as baggage: the ``baggage_keys`` setting in force.

    That is ``configure(baggage_keys=...)``, else ``OTEL_LLM_AUDIT_BAGGAGE_KEYS``. Accepts field
    names (``tenant_id``) or attribute keys (``llm_audit.tenant.id``), comma separated, or
    ``all``. Empty by default: user ids are personal data.
    """
    value = _baggage_keys_setting() if raw is None else raw
    by_attribute = {attr: name for name, attr in FIELD_ATTRIBUTES.items()}
    allowed: set[str] = set()
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if item == "all":
            return frozenset(FIELD_ATTRIBUTES)
        if item in FIELD_ATTRIBUTES:
            allowed.add(item)
        elif item in by_attribute:
            allowed.add(by_attribute[item])
    return frozenset(allowed)


def current_identity(ctx: otel_context.Context | None = None) -> AuditIdentity | None:
    """The identity in force in ``ctx`` (default: the current context).

    A local ``audit_context`` wins; otherwise identity restored from incoming baggage for the
    allowed keys (a downstream service of an audited caller).
    """
    identity = otel_context.get_value(_IDENTITY_KEY, ctx)
    if identity is not None:
        return cast(AuditIdentity, identity)
    return _identity_from_baggage(ctx)


def _identity_from_baggage(ctx: otel_context.Context | None) -> AuditIdentity | None:
    entries = baggage.get_all(ctx)
    if not entries:
        return None
    allowed = _allowed_cache()
    if not allowed:
        return None
    values = {name: str(entries[FIELD_ATTRIBUTES[name]]) for name in allowed if FIELD_ATTRIBUTES[name] in entries}
    if not values:
        return None
    if values.get("actor_type") not in (None, *_ACTOR_TYPES):
        values.pop("actor_type")
    return AuditIdentity(**values)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=4)
def _allowed_for(raw: str) -> frozenset[str]:
    return allowed_baggage_fields(raw)


def _allowed_cache() -> frozenset[str]:
    return _allowed_for(_baggage_keys_setting())


def _baggage_keys_setting() -> str:
    from otel_llm_audit.config import get_settings  # config is the one place settings are read

    return get_settings().baggage_keys


F = TypeVar("F", bound=Callable[..., Any])


class audit_context:
    """Declare who is acting for everything that runs inside.

    Use it as a context manager (``with`` or ``async with``) or as a decorator on sync and
    async functions::

        with audit_context(user_id="u-17", session_id="s-9", actor_type="human",
                           auth_method="oauth2", tenant_id="clinic-3", team="triage",
                           application="discharge-assistant"):
            client.chat.completions.create(...)

    Every span started inside (ours, HTTP, database) carries ``user.id``, ``session.id``,
    ``llm_audit.actor.type``, ``llm_audit.auth.method``, ``llm_audit.tenant.id``,
    ``llm_audit.team`` and ``llm_audit.application``. Nested contexts inherit what they do not set.
    """

    def __init__(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        actor_type: ActorType | None = None,
        auth_method: str | None = None,
        tenant_id: str | None = None,
        team: str | None = None,
        application: str | None = None,
    ) -> None:
        self._identity = AuditIdentity(
            user_id=user_id,
            session_id=session_id,
            actor_type=actor_type,
            auth_method=auth_method,
            tenant_id=tenant_id,
            team=team,
            application=application,
        )
        self._tokens: list[Token[otel_context.Context]] = []

    @contextlib.contextmanager
    def _scope(self) -> Iterator[AuditIdentity]:
        token = _attach(self._identity)
        try:
            yield cast(AuditIdentity, otel_context.get_value(_IDENTITY_KEY))
        finally:
            otel_context.detach(token)

    def __enter__(self) -> AuditIdentity:
        self._tokens.append(_attach(self._identity))
        return cast(AuditIdentity, otel_context.get_value(_IDENTITY_KEY))

    def __exit__(self, *exc: object) -> None:
        otel_context.detach(self._tokens.pop())

    async def __aenter__(self) -> AuditIdentity:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, func: F) -> F:
        """Decorate a function so each call runs inside this audit context."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._scope():
                    return await cast(Callable[..., Awaitable[Any]], func)(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._scope():
                return func(*args, **kwargs)

        return cast(F, wrapper)


def _attach(identity: AuditIdentity) -> Token[otel_context.Context]:
    outer = otel_context.get_value(_IDENTITY_KEY)
    merged = identity.merged_over(cast("AuditIdentity | None", outer))
    ctx = otel_context.set_value(_IDENTITY_KEY, merged)
    allowed = _allowed_cache()
    for name in allowed:
        value = getattr(merged, name)
        if value is not None:
            ctx = baggage.set_baggage(FIELD_ATTRIBUTES[name], str(value), ctx)
    return otel_context.attach(ctx)
