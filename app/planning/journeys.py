"""Journeys: a rule's follow-up reminders, stopped by the step being done.

A rule on a subject (``recipients: subject: true``) may name follow-up steps::

    follow_up:
      stop_on: hukou.migration.completed   # the completion event (any agency's), same subject
      steps:
        - after: 3d          # after the first message (then after the step before)
          at: "09:00"        # optional: at this time of day (LIFECYCLE_TIMEZONE), next one due
          repeat: 2          # sent this many times, `after` apart (default 1)
          channels: {sms: graduate_hukou_reminder}   # optional: the rule's own by default
          contacts: [legal_representative]          # optional (enterprises): another role
      window: 30d            # the outcome's window: completed within it counts (default 30d)
      holdout: 5%            # optional: a share of subjects not reminded at all, to compare

A rule whose ``steps`` are empty (or absent) sends no follow-up but still measures its outcome:
its journeys wait for the completion event only.

When the rule's first message is planned, a journey starts for its subject: a record in Redis
and an entry in the timer queue. One worker at a time (the leader, by a lease in Redis) sends
what is due: it plans the step like the first message (its notifications' ids come from the
journey's event, step and round, so a step sent twice is delivered once), publishes it, and only
then moves the journey on. A completion event of the subject ends every journey waiting for it,
before or after its last step (outcomes count it either way).

Keys (under the configured prefix; the id in braces on a cluster):

    jr:{journey}              hash: rule, version, group (reminded | holdout), event (JSON),
                              subject, status (active | done | holdout | completed | ended),
                              step, round, due, sent, started_at, origin_at (the event's time),
                              completed_at, completed_by
    jt:due                    sorted set: journey → when its next step is due (epoch seconds)
    jw:{stop event}:{subject} set: the journeys waiting for that completion event
    jt:leader                 the worker sending due steps now (a lease)

The record is the truth; the queue only says when to look. A journey whose queue entry is out of
step with its record (a worker died between the two) is put right the next time it is looked at.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.core.codec import compact_json
from app.notifications import Channel

JOURNEY_TTL_SECONDS = 400 * 24 * 3600  # a journey's record outlives its window, for outcomes
_DURATION = re.compile(r"(\d{1,6})\s*(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
STEP_KEYS = {"after", "at", "repeat", "channels", "contacts"}
FOLLOW_UP_KEYS = {"stop_on", "steps", "window", "holdout"}
MAX_STEPS = 10
MAX_REPEAT = 10
DEFAULT_WINDOW_SECONDS = 30 * 86400
MAX_WINDOW_SECONDS = 365 * 86400
MAX_HOLDOUT = 0.5  # more than half not reminded is not a holdout any more


@dataclass(frozen=True)
class Step:
    after_seconds: int
    at: tuple[int, int] | None = None  # (hour, minute) in the deployment's zone
    repeat: int = 1
    channels: dict[Channel, str] | None = None
    contacts: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FollowUp:
    steps: tuple[Step, ...]
    stop_on: tuple[str, ...] = ()
    window_seconds: int = DEFAULT_WINDOW_SECONDS  # completed within it counts as an outcome
    holdout: float = 0.0  # the share of subjects not reminded, to compare with (0: none)


def parse_share(value: Any) -> float | None:
    """``5%``, ``0.05`` or ``0`` → a share from 0 to 1; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            return None
    elif isinstance(value, int | float):
        share = float(value)
    else:
        return None
    return share if 0.0 <= share <= 1.0 else None


def in_holdout(rule_id: str, subject_id: str, share: float) -> bool:
    """Whether a subject is in the rule's holdout: the same answer every time for the same rule
    and subject (a redelivered event, a new version), drawn evenly over subjects."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"holdout\x1f{rule_id}\x1f{subject_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def parse_duration(value: Any) -> int | None:
    """``3d``, ``12h``, ``30m``, ``45s`` → seconds; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    found = _DURATION.fullmatch(value.strip())
    if not found:
        return None
    seconds = int(found.group(1)) * _UNITS[found.group(2)]
    return seconds if seconds > 0 else None


def parse_time_of_day(value: Any) -> tuple[int, int] | None:
    found = _TIME_OF_DAY.fullmatch(value.strip()) if isinstance(value, str) else None
    return (int(found.group(1)), int(found.group(2))) if found else None


def unknown_fields(doc: dict[str, Any], known: set[str], where: str, bad: Any) -> bool:
    """Say each field of ``doc`` not in ``known`` (``where.field``); whether there was one."""
    extra = sorted(set(doc) - known, key=str)
    for key in extra:
        bad(f"{where}.{key}", f"unknown field (known: {', '.join(sorted(known))})")
    return bool(extra)


def time_of_day_field(doc: dict[str, Any], where: str, bad: Any, default: str | None = "09:00"
                      ) -> tuple[int, int] | None:  # fmt: skip
    """``doc["at"]`` as (hour, minute), ``default`` when absent; None, said, when it is not one."""
    value = doc.get("at", default)
    if value is None:
        return None
    found = parse_time_of_day(value)
    if found is None:
        bad(f"{where}.at", 'a time of day, "HH:MM" (quoted), such as "09:00"')
    return found


def journey_id(rule_id: str, event_id: str, subject_id: str) -> str:
    """The same rule, event and subject always give the same journey (a redelivered event
    starts nothing new)."""
    digest = hashlib.sha256(f"{rule_id}\x1f{event_id}\x1f{subject_id}".encode()).hexdigest()
    return f"j-{digest[:24]}"


def step_event_id(event_id: str, step: int, round_: int) -> str:
    """The id a step's notifications are planned under: its own, the same every time."""
    return f"{event_id}~f{step + 1}.{round_}"


def next_due(previous: float, step: Step, tz: ZoneInfo) -> float:
    """When a step is due: ``after`` past ``previous``, then on to the next ``at`` if it has one."""
    due = previous + step.after_seconds
    if step.at is None:
        return due
    local = datetime.fromtimestamp(due, tz)
    hour, minute = step.at
    candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate < local:
        candidate += timedelta(days=1)
    return candidate.timestamp()


def following(follow_up: FollowUp, step: int, round_: int) -> tuple[int, int] | None:
    """The (step, round) after this one, or None when the journey has no more."""
    if round_ < follow_up.steps[step].repeat:
        return step, round_ + 1
    if step + 1 < len(follow_up.steps):
        return step + 1, 1
    return None


def encode_event(document: dict[str, Any]) -> str:
    return compact_json(document)
