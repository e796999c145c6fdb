"""Planned notifications: the records on the ``notifications`` topic.

A notification is self-contained: who, through which channel, and the rendered text, so the
delivery side needs no rule or template to send it. Its id is deterministic — the same rule
version, event, recipient and channel always give the same id — which is what makes delivery
idempotent: a notification planned twice (the same event published twice, a redelivery after a
crash) is recognised and sent once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


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
    category: str
    event_id: str
    event_type: str
    channel: str
    profile_id: str
    recipient: str  # the recipient key: a profile id, or profile id/role/n for a contact
    recipient_name: str | None
    role: str | None
    address: str
    language: str
    planned_at: str
    content: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when the text could not be rendered: a permanent failure

    def to_json(self) -> bytes:
        # vars(), not asdict(): no field holds a dataclass, and asdict deep-copies ``content``.
        return json.dumps(vars(self), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes | str | dict[str, Any]) -> Notification:
        doc = raw if isinstance(raw, dict) else json.loads(raw)
        return cls(**doc)
