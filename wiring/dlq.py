"""Dead letters of life-events-dlq and notifications-dlq: reading, what may be shown, replay
and discard. The CLI (``lifecycle dlq``) and the console (``/api/dlq``) both act here.

A dead letter is named ``TOPIC:PARTITION:OFFSET`` (``notifications-dlq:0:17``). What is shown is
masked (addresses) and never a message body. Replay:

- a failed notification (notifications-dlq) re-enters delivery for a new round of attempts: its
  record goes from ``failed`` back to ``planned`` (attempts from 0, ``replays`` counted, every
  earlier step kept in its trace) and it is published again on its lane;
- an event (life-events-dlq) is published again on ``life-events`` as received, once its cause is
  fixed (a rule, a profile, the catalogue).

Each dead letter is replayed or discarded at most once (a marker per dead letter in Redis,
``replay:{name}``, set atomically with the status change), and a notification whose status is
not ``failed`` (sent meanwhile, or already replayed) is not replayed: replaying twice never sends
twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from app.core.codec import text
from app.core.masking import mask_address, scrub
from app.core.redis_client import mget
from app.intake.events import districts_of
from wiring.kafka import publish_raw
from wiring.kafka_async import read_from_start
from wiring.runtime import Runtime

DISCARDED = "discarded"

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


async def states(rt: Runtime, letters: list[DeadLetter]) -> dict[str, str]:
    """Each letter's state: ``waiting``, ``replayed`` or ``discarded``."""
    if not letters:
        return {}
    keys = [rt.state.key("replay", d.name) for d in letters]
    marks = await mget(rt.redis, keys)
    return {d.name: "waiting" if mark is None else DISCARDED if text(mark) == DISCARDED else "replayed"
            for d, mark in zip(letters, marks, strict=True)}  # fmt: skip


async def discard(rt: Runtime, letter: DeadLetter, by: str, reason: str) -> str:
    """Set a dead letter aside for good, with the reason in its trace; never replayed after."""
    key = rt.state.key("replay", letter.name)
    from app.state.writes import TRACE_TTL_SECONDS

    if not await rt.redis.set(key, DISCARDED, nx=True, ex=TRACE_TTL_SECONDS):
        return "not discarded: already replayed or discarded"
    doc = letter.document()
    subject = None
    if isinstance(doc, dict):
        n = doc.get("notification")
        subject = n.get("id") if isinstance(n, dict) else doc.get("id")
    if isinstance(subject, str) and subject:
        await rt.state.trace(subject[:200], "dead letter discarded", dead_letter=letter.name,
                             by=by, reason=scrub(reason)[:500])  # fmt: skip
    return "discarded"


async def letter_districts(rt: Runtime, letter: DeadLetter) -> list[str]:
    """The districts a dead letter concerns: its event's, or the recipient profile's district for
    a notification; ``["*"]`` when it says none (then only a caller for every district sees it)."""
    doc = letter.document()
    if not isinstance(doc, dict):
        return ["*"]
    if letter.topic == "notifications-dlq":
        n = doc.get("notification")
        profile_id = n.get("profile_id") if isinstance(n, dict) else None
        profile = (
            await rt.profiles.get(profile_id)
            if isinstance(profile_id, str) and profile_id
            else None
        )
        return [profile["district"]] if profile and profile.get("district") else ["*"]
    event = doc.get("event")  # a chunk command carries its event
    return districts_of(event if isinstance(event, dict) else doc)
