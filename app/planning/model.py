"""What a loaded rule is (``rules.load_rules`` builds them from YAML, checked)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.errors import RuleError
from app.notifications import Category, Channel
from app.planning.calendar import CalendarTrigger
from app.planning.dates import DateTrigger
from app.planning.expressions import Expression
from app.planning.journeys import FollowUp


@dataclass(frozen=True)
class Audience:
    kind: str | None = None
    permit: str | None = None
    industry: str | None = None
    tag: str | None = None
    areas: Expression | None = None
    shapes: Expression | None = None  # gives {"polygons": […], "circles": […]}, e.g. `data`

    def index_terms(self) -> list[str]:
        pairs = (("kind", self.kind), ("permit", self.permit), ("industry", self.industry),
                 ("tag", self.tag))  # fmt: skip
        return [f"{name}:{value}" for name, value in pairs if value]


@dataclass(frozen=True)
class Rule:
    id: str
    version: int
    file: str
    event_types: tuple[str, ...]
    category: Category
    channels: dict[Channel, str]  # channel → template name
    name: str = ""
    condition: Expression | None = None
    subject: bool = False
    audience: Audience | None = None
    contacts: tuple[str, ...] | None = None
    fallback_contacts: tuple[str, ...] = ()
    previously_warned: bool = False  # the recipients warned earlier for the referenced warning
    enabled: bool = True
    districts: tuple[str, ...] = ("*",)  # whose approvers approve it; * the deployment's
    follow_up: FollowUp | None = None  # the journey's later steps (``app.planning.journeys``)
    on_date: DateTrigger | None = None  # fires on a profile's dated fact (``app.planning.dates``)
    on_calendar: CalendarTrigger | None = None  # dates of the year (``app.planning.calendar``)

    @property
    def scheduled(self) -> bool:
        """Whether the scheduler makes its events, one rule at a time (``data.rule_id``)."""
        return self.on_date is not None or self.on_calendar is not None

    @property
    def event_type(self) -> str:
        return self.event_types[0]

    def templates(self) -> list[tuple[Channel, str]]:
        """Every (channel, template) the rule sends with: its own and its follow-ups'."""
        found = dict.fromkeys(self.channels.items())
        for step in self.follow_up.steps if self.follow_up else ():
            found.update(dict.fromkeys((step.channels or {}).items()))
        return list(found)


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)
    # Planning asks for an event type's rules three times an event (and for the stop types once),
    # each a walk over every rule: the answers are kept, for the list of rules they were read
    # from (a rule is frozen; the list is only ever added to while the rules are loaded).
    _seen: dict[str, list[Rule]] = field(default_factory=dict, repr=False, compare=False)
    # the list they were read from (held, not its id: a freed list's id is reused) and its length
    _seen_for: tuple[list[Rule] | None, int] = field(default=(None, 0), repr=False, compare=False)
    _stop_types: frozenset[str] | None = field(default=None, repr=False, compare=False)

    def _fresh(self) -> dict[str, list[Rule]]:
        if self._seen_for[0] is not self.rules or self._seen_for[1] != len(self.rules):
            self._seen, self._stop_types = {}, None
            self._seen_for = (self.rules, len(self.rules))
        return self._seen

    def for_event(self, event_type: str) -> list[Rule]:
        """The enabled rules of ``event_type`` (a list kept for the next ask: do not change it)."""
        seen = self._fresh()
        found = seen.get(event_type)
        if found is None:
            found = seen[event_type] = [r for r in self.rules
                                        if r.enabled and event_type in r.event_types]  # fmt: skip
        return found

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def date_rules(self, kind: str) -> list[Rule]:
        """The enabled rules that fire on dates of ``kind`` profiles."""
        return [r for r in self.rules if r.enabled and r.on_date and r.on_date.kind == kind]

    def calendar_rules(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled and r.on_calendar]

    @property
    def stop_types(self) -> frozenset[str]:
        """The event types that complete some rule's journey (disabled rules' too: a journey
        already started still ends when its step is done)."""
        self._fresh()
        if self._stop_types is None:
            self._stop_types = frozenset(t for r in self.rules if r.follow_up
                                         for t in r.follow_up.stop_on)  # fmt: skip
        return self._stop_types
