"""The project's errors, one tree, each saying whether it is worth retrying.

LifecycleError
 ├── ConfigError                 bad or missing configuration (permanent)
 ├── InvalidInput                input that will never become valid (permanent)
 │    ├── EventRejected          an event that fails the envelope or its type's schema
 │    │    └── ChunkRejected     a fan-out chunk command that cannot be planned
 │    ├── ProfileRejected        a profile row that fails validation
 │    └── InvalidPhoneNumber     a number that cannot be normalised to E.164
 ├── RuleError                   a rule or template that does not load (file, rule id, field)
 ├── RenderError                 a template that fails to render with the given data (permanent)
 ├── BookError                   a workflow step on a rule or event type not allowed now (an HTTP status)
 └── DeliveryError               a channel failed to hand a message over
      ├── TemporaryDeliveryError try again later (SMTP 4xx, connection refused, timeouts)
      └── PermanentDeliveryError never retry (SMTP 5xx, no address, invalid number)
"""

from __future__ import annotations

from app.core.masking import scrub


class LifecycleError(Exception):
    """Base of every error raised by Lifecycle Notify."""

    retriable = False


class ConfigError(LifecycleError):
    """The configuration is missing or malformed."""


class InvalidInput(LifecycleError):
    """Input that will never become valid by retrying."""


class EventRejected(InvalidInput):
    """An event that fails validation; ``reason`` is shown to the sender and put on the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChunkRejected(EventRejected):
    """A chunk command on `fanout` that does not decode or names no loaded rule; ``status`` is
    what the agent reports for it ("unreadable", "unknown rule")."""

    def __init__(self, reason: str, status: str) -> None:
        super().__init__(reason)
        self.status = status


class ProfileRejected(InvalidInput):
    """A profile that fails validation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidPhoneNumber(InvalidInput):
    """A mobile number that cannot be normalised to E.164."""


class RuleError(LifecycleError):
    """A rule that cannot be loaded, located by file, rule id and field."""

    def __init__(self, file: str, rule_id: str | None, field: str, message: str) -> None:
        super().__init__(f"{file}: rule {rule_id or '?'}: {field}: {message}")
        self.file = file
        self.rule_id = rule_id
        self.field = field
        self.message = message


class RenderError(LifecycleError):
    """A template that cannot be rendered with the data given."""


class BookError(LifecycleError):
    """A workflow step (draft, submit, approve, …) that is not allowed now; ``status`` is the
    HTTP status that says so."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DeliveryError(LifecycleError):
    """A channel did not hand the message over."""


class TemporaryDeliveryError(DeliveryError):
    """The failure may pass: retry later (``next_day``: not before tomorrow, as when a provider's
    daily limit for the number is reached)."""

    retriable = True

    def __init__(self, message: str, *, next_day: bool = False) -> None:
        super().__init__(message)
        self.next_day = next_day


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help."""


def internal_error(exc: BaseException) -> str:
    """What a dead letter says when a bug, not the input, stopped the work."""
    return scrub(f"internal error: {type(exc).__name__}: {exc}")
