"""`lifecycle dlq list|show|replay`: the dead letters of life-events-dlq and notifications-dlq.

A dead letter is named ``TOPIC:PARTITION:OFFSET`` (``notifications-dlq:0:17``). Listing and
showing mask what they quote (addresses, and no message body is printed). Replay:

- a failed notification (notifications-dlq) re-enters delivery for a new round of attempts: its
  record goes from ``failed`` back to ``planned`` (attempts from 0, ``replays`` counted, every
  earlier step kept in its trace) and it is published again on its lane;
- an event (life-events-dlq) is published again on ``life-events`` as received, once its cause is
  fixed (a rule, a profile, the catalogue).

Each dead letter is replayed at most once (a marker per dead letter in Redis, set atomically with
the status change), and a notification whose status is not ``failed`` (sent meanwhile, or already
replayed) is not replayed: replaying twice never sends twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from app.core.masking import mask_address, scrub
from app.core.settings import Settings
from wiring.kafka import publish_raw
from wiring.kafka_async import read_from_start
from wiring.runtime import Runtime

TOPICS = ("life-events-dlq", "notifications-dlq")


@dataclass
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)
    timestamp_ms: int = 0

    @property
    def name(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        if self.topic == "notifications-dlq":
            doc = self.document()
            if isinstance(doc, dict) and doc.get("reason"):
                return scrub(str(doc["reason"]))
        raw = self.headers.get("x-lifecycle-reason", b"")
        return scrub(raw.decode("utf-8", "replace")) or "(no reason recorded)"

    def document(self) -> Any:
        try:
            return json.loads(self.value or b"")
        except (ValueError, RecursionError):
            return None

    def summary(self) -> dict[str, Any]:
        """What may be shown: no addresses unmasked, no message body."""
        out: dict[str, Any] = {"name": self.name, "reason": self.reason,
                               "size": int(self.headers.get("x-lifecycle-size", b"0") or 0)
                               or len(self.value or b""),
                               "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.timestamp_ms / 1000))}  # fmt: skip
        if "x-lifecycle-source" in self.headers:
            out["source"] = self.headers["x-lifecycle-source"].decode("utf-8", "replace")
        if self.headers.get("x-lifecycle-truncated"):
            out["truncated"] = True
        doc = self.document()
        if self.topic == "notifications-dlq" and isinstance(doc, dict):
            n = doc.get("notification") or {}
            out.update(notification=n.get("id"), rule=n.get("rule_id"), event=n.get("event_id"),
                       channel=n.get("channel"), to=mask_address(str(n.get("channel")), n.get("address")),
                       attempts=doc.get("attempts"), retriable=doc.get("retriable"),
                       history=[{k: v for k, v in step.items() if k in ("at", "step", "outcome", "attempt")}
                                for step in doc.get("history") or [] if isinstance(step, dict)])  # fmt: skip
        elif isinstance(doc, dict):
            out.update(event=str(doc.get("id"))[:100], type=str(doc.get("type"))[:100])
        return out


async def read_dead_letters(
    servers: list[str], topics: tuple[str, ...] = TOPICS
) -> list[DeadLetter]:
    """Every record on the dead-letter topics, oldest first (no consumer group: nothing is
    committed, so listing never changes what another reader sees)."""
    letters = [DeadLetter(r.topic, r.partition, r.offset, r.key, r.value,
                          {k: bytes(v) for k, v in (r.headers or ())}, r.timestamp)
               async for r in read_from_start(servers, topics)]  # fmt: skip
    return sorted(letters, key=lambda d: (d.timestamp_ms, d.topic, d.partition, d.offset))


async def replay(rt: Runtime, letter: DeadLetter) -> str:
    """Replay one dead letter; what happened, in a word or two."""
    if letter.headers.get("x-lifecycle-truncated"):
        return "not replayed: only a bounded copy was kept (the original was too large)"
    if letter.topic == "notifications-dlq":
        doc = letter.document()
        n = doc.get("notification") if isinstance(doc, dict) else None
        if not isinstance(n, dict) or not n.get("id"):
            return "not replayed: no notification in it"
        outcome = await rt.state.reopen(n["id"], letter.name)
        if outcome != "reopened":
            return {"replayed": "not replayed: already replayed",
                    "unknown": "not replayed: no delivery record (older than the retention)"}.get(
                outcome, f"not replayed: the notification is {outcome} now")  # fmt: skip
        await rt.state.trace(n["id"], "replayed", dead_letter=letter.name)
        lane = "notifications-warning" if n.get("category") == "warning" else "notifications"
        value = json.dumps(n, ensure_ascii=False).encode("utf-8")
        await asyncio.to_thread(publish_raw, rt.settings.kafka_servers, lane,
                                [(str(n.get("recipient", "")).encode(), value)])  # fmt: skip
        return f"replayed onto {lane}"
    if not await rt.state.mark_replayed(letter.name):
        return "not replayed: already replayed"
    source = letter.headers.get("x-lifecycle-source", b"").decode()
    target = (
        source.split("/", 1)[0] if source.startswith(("life-events/", "fanout/")) else "life-events"
    )
    await asyncio.to_thread(publish_raw, rt.settings.kafka_servers, target,
                            [(letter.key or b"", letter.value or b"")])  # fmt: skip
    return f"replayed onto {target}"


def select(
    letters: list[DeadLetter], names: list[str], reason: str | None, topic: str | None
) -> list[DeadLetter]:
    chosen = [d for d in letters if (not names or d.name in names) and (not topic or d.topic == topic)
              and (not reason or reason.lower() in d.reason.lower())]  # fmt: skip
    return chosen


async def run(settings: Settings, action: str, names: list[str], *, topic: str | None,
              reason: str | None, as_json: bool) -> int:  # fmt: skip
    letters = select(await read_dead_letters(settings.kafka_servers), names, reason, topic)
    if names and len(letters) < len(set(names)):
        missing = sorted(set(names) - {d.name for d in letters})
        print(f"no such dead letter: {', '.join(missing)}")
        return 1
    if action == "list":
        if not letters:
            print("no dead letters")
        for d in letters:
            s = d.summary()
            print(json.dumps(s, ensure_ascii=False) if as_json else
                  f"{s['name']}  {s['at']}  {s.get('event') or ''}  {s['reason'][:160]}")  # fmt: skip
        return 0
    if action == "show":
        for d in letters:
            print(json.dumps(d.summary(), ensure_ascii=False, indent=2))
        return 0
    if not names and not reason:
        print("replay what? name dead letters (TOPIC:PARTITION:OFFSET) or pick them with --reason")
        return 2
    rt = Runtime.build(settings, deliver=False)
    try:
        refused = 0
        for d in letters:
            outcome = await replay(rt, d)
            refused += outcome.startswith("not")
            print(f"{d.name}: {outcome}")
        return 1 if refused and refused == len(letters) else 0
    finally:
        await rt.close()
