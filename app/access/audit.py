"""The audit log's record: who did what, when, from where, and with what outcome.

Entries travel on the Kafka topic ``audit`` (key: the login), append-only, so that the record
survives a lost Redis and nobody with access to Redis can edit it. ``wiring.audit`` writes and
reads them. An entry names what was acted on (a rule id, a hold id, a login) but never a message
body, a phone number or an e-mail address: ``details`` is scrubbed before it is written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.core.masking import scrub

AUDIT_TOPIC = "audit"
MAX_DETAIL_CHARS = 500


@dataclass(frozen=True)
class AuditEntry:
    who: str  # a login, "token:NAME", or "-" before anyone is known (a failed login)
    action: str  # login, login-failed, logout, release, reject, rules-reload, …
    outcome: str = "ok"  # ok | refused | failed
    client: str = "-"  # the caller's address
    districts: tuple[str, ...] = ()  # the districts the action concerns (empty: the deployment)
    details: dict[str, str] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))

    def to_record(self) -> tuple[bytes, bytes]:
        doc = asdict(self)
        doc["details"] = {str(k)[:50]: scrub(str(v))[:MAX_DETAIL_CHARS]
                          for k, v in self.details.items()}  # fmt: skip
        return self.who.encode("utf-8"), json.dumps(doc, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> AuditEntry:
        doc: dict[str, Any] = json.loads(raw)
        doc["districts"] = tuple(doc.get("districts") or ())
        return cls(**doc)
