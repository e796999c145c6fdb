"""What planning an event makes: the ``Plan`` (its notifications, what it skipped and why) and what
it does to journeys (started, one step planned, ended by a completion). The planner builds plans;
the agents route them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.intake.events import Event
from app.notifications import Notification
from app.planning.model import Rule
from app.profiles.model import Profile


@dataclass
class Plan:
    event: Event
    matched: list[str] = field(default_factory=list)  # rule ids
    notifications: list[Notification] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (rule id, reason)
    warning_root: str | None = None  # weather warnings: the first warning of the chain
    profiles: dict[str, Profile] = field(default_factory=dict, repr=False)  # a chunk's, as read
    journeys: list[JourneyStart] = field(default_factory=list)  # started by this event
    completes: bool = False  # a completion event: it ends the subject's waiting journeys
    completions: list[JourneyCompletion] = field(default_factory=list)  # found when recorded
    follow_up: FollowUpStep | None = None  # set when the plan is a journey's later step


@dataclass(frozen=True)
class JourneyStart:
    journey: str
    rule: Rule
    subject: str
    due: float | None  # when its first follow-up is due; None: it has none (holdout, measure only)
    group: str = "reminded"  # or "holdout": nothing of the rule is sent to the subject


@dataclass(frozen=True)
class FollowUpStep:
    """A journey's step as planned now, and where the journey goes after it."""

    journey: str
    origin: str  # the event that started the journey: its trace is the journey's
    step: int
    round: int
    after: tuple[int, int] | None  # the next (step, round); None: the last one
    next_due: float


@dataclass(frozen=True)
class JourneyCompletion:
    """A journey a completion event ends, and what its outcome is counted under."""

    journey: str
    rule: str
    version: str
    group: str
    started: float  # its event's time (epoch seconds)
    status: str  # as it was found

    @classmethod
    def of(cls, journey: str, record: Mapping[str, str]) -> JourneyCompletion:
        started = record.get("origin_at") or record.get("started_at") or "0"
        return cls(journey, record.get("rule", ""), record.get("version", ""),
                   record.get("group") or "reminded", float(started), record.get("status", ""))  # fmt: skip

    @property
    def counts(self) -> bool:
        """Whether its outcome is still to be counted (a journey completed before is not)."""
        return bool(self.rule and self.version) and self.status not in ("completed", "")
