"""Planned notifications: the records on the ``notifications`` topics, shared by both pipelines.

A notification is self-contained: who, through which channel, and the rendered text, so the
delivery side needs no rule or template to send it. Its id is deterministic — the same rule
version, event, recipient and channel always give the same id — which is what makes delivery
idempotent: a notification planned twice (the same event published twice, a redelivery after a
crash) is recognised and sent once.

``Channel`` and ``Category`` are ``StrEnum``s: they compare equal to, and serialise as, the plain
strings that travel in JSON and name Redis fields, so a record written before them reads the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any, TypedDict

from app.core.codec import json_bytes
from app.core.timestamps import aware


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class Category(StrEnum):
    """What a rule's messages are; opt-outs, quiet hours and caps are per category."""

    WARNING = "warning"  # safety: ignores quiet hours and caps, its own topic lane
    REMINDER = "reminder"
    NOTICE = "notice"


class Content(TypedDict, total=False):
    """A rendered message as it travels. SMS: text, segments, encoding, units and, for a
    provider's approved template, provider (``{"aliyun": {"template_code": …, "params": {…}}}``).
    E-mail: subject, text and html. Empty when rendering failed (the notification's ``error``)."""

    text: str
    segments: int
    encoding: str
    units: int
    provider: dict[str, Any]
    subject: str
    html: str


def notification_id(
    *, rule_id: str, rule_version: int, event_id: str, recipient: str, channel: str
) -> str:
    material = "\x1f".join((rule_id, str(rule_version), event_id, recipient, channel))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Notification:
    id: str
    rule_id: str
    rule_version: int
    category: str  # a Category value (a str: a record from a newer rule set still reads)
    event_id: str
    event_type: str
    channel: str  # a Channel value
    profile_id: str
    recipient: str  # the recipient key: a profile id, or profile id/role/n for a contact
    recipient_name: str | None
    role: str | None
    address: str
    language: str
    planned_at: str
    content: Content = field(default_factory=lambda: Content())
    error: str | None = None  # set when the text could not be rendered: a permanent failure
    event_published_at: float | None = None  # the event's record time on life-events (latency)
    district: str | None = None  # the recipient profile's, for who may see it (message search)
    # A weather warning's ``expires_at`` (ISO 8601): not sent after it, however it was delayed
    expires_at: str | None = None
    # A weather warning's chain (its first warning's id): not sent once that chain is cancelled
    warning_root: str | None = None

    def to_json(self) -> bytes:
        # vars(), not asdict(): no field holds a dataclass, and asdict deep-copies ``content``.
        return json_bytes(vars(self))

    @classmethod
    def from_json(cls, raw: bytes | str | dict[str, Any]) -> Notification:
        """A notification from its JSON. A field this version does not know (a record from a
        newer worker, in a rolling upgrade) is left out, not refused: the record is still
        sent, by this version's rules. A field missing, or not an object: TypeError."""
        doc = raw if isinstance(raw, dict) else json.loads(raw)
        try:
            return cls(**doc)
        except TypeError:
            if not isinstance(doc, dict) or doc.keys() <= _FIELDS:
                raise
            return cls(**{k: v for k, v in doc.items() if k in _FIELDS})


_FIELDS = frozenset(Notification.__dataclass_fields__)


def expiry_of(n: Notification) -> float | None:
    """When ``n`` may no longer be sent, in epoch seconds: its warning's ``expires_at``. None
    for one that does not expire, or whose time does not read (then it is sent: a safety
    warning fails open)."""
    return _epoch(n.expires_at) if n.expires_at else None


@lru_cache(maxsize=256)  # a warning's thousands of notifications share one expires_at
def _epoch(value: str) -> float | None:
    try:
        return aware(value).timestamp()
    except ValueError:
        return None
