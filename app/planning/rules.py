"""Trigger rules: what event, which condition, who receives it, through which channels.

Rules are YAML files in ``rules/`` (one rule per file, or several under ``rules:``)::

    id: weather-outdoor-ads            # unique, lower-case letters, digits and -
    version: 1                         # raise it when the meaning changes
    name: 大风/暴雨预警 → 户外广告企业
    on: weather.warning.issued         # an event type from the catalogue
    category: warning                  # warning | reminder | notice
    when: data.level in ["yellow", "orange", "red"]   # optional condition (see expressions.py)
    recipients:
      audience:                        # or `subject: true` for the event's person or enterprise
        kind: enterprise
        permit: outdoor_advertising    # optional: permit, industry, tag
        areas: data.areas              # division codes; a city code covers its districts
      contacts: [safety_officer]       # enterprise contacts to reach (default: all)
      fallback_contacts: [legal_representative]   # when none of `contacts` exists
    channels:
      sms: weather_outdoor_ads         # channel: template name
      email: weather_outdoor_ads
    follow_up:                         # subject rules only: reminders until the step is done
      stop_on: hukou.migration.completed
      steps:
        - {after: 3d, at: "09:00", repeat: 2, channels: {sms: reminder_template}}

``load_rules`` collects every problem as a RuleError naming file, rule id and field.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from app.core.errors import RenderError, RuleError
from app.core.yaml12 import load_yaml
from app.intake.events import catalogue
from app.notifications import Category, Channel
from app.planning.calendar import CALENDAR_EVENT, parse_calendar
from app.planning.dates import parse_trigger
from app.planning.expressions import Expression, ExpressionError, compile_expression
from app.planning.fields import condition_problems, fields_for
from app.planning.fields import template_problems as field_problems
from app.planning.journeys import (
    DEFAULT_WINDOW_SECONDS,
    FOLLOW_UP_KEYS,
    MAX_HOLDOUT,
    MAX_REPEAT,
    MAX_STEPS,
    MAX_WINDOW_SECONDS,
    STEP_KEYS,
    FollowUp,
    Step,
    parse_duration,
    parse_share,
    time_of_day_field,
    unknown_fields,
)
from app.planning.model import Audience, Rule, RuleSet
from app.planning.samples import labelled_contexts
from app.rendering.renderer import CHANNEL_FILES, Renderer

CATEGORIES = tuple(Category)
CONDITION_NAMES = frozenset({"event", "data", "profile"})
_RULE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_RULE_KEYS = {"id", "version", "name", "description", "on", "category", "when", "recipients",
              "channels", "enabled", "districts", "follow_up", "on_date", "on_calendar"}  # fmt: skip
SCHEDULED_TYPES = ("person.date.due", "enterprise.date.due", CALENDAR_EVENT)  # made by the timer
_DISTRICT = re.compile(r"\d{6}|\*")
_AUDIENCE_KEYS = {"kind", "permit", "industry", "tag", "areas", "shapes"}
_RECIPIENT_MODES = ("subject", "audience", "previously_warned")


def load_rules(rules_dir: Path, renderer: Renderer) -> RuleSet:
    """Every rule under ``rules_dir``, and every problem found (nothing stops at the first)."""
    result = RuleSet()
    if not rules_dir.is_dir():
        result.errors.append(RuleError(str(rules_dir), None, "-", "rules folder not found"))
        return result
    files = sorted([*rules_dir.rglob("*.yaml"), *rules_dir.rglob("*.yml")])
    seen: dict[str, str] = {}
    for path in files:
        name = str(path.relative_to(rules_dir.parent)) if rules_dir.parent != path else str(path)
        for doc in _documents(path, name, result):
            rule = _build(doc, name, result.errors)
            if rule is None:
                continue
            if rule.id in seen:
                result.errors.append(
                    RuleError(name, rule.id, "id", f"also defined in {seen[rule.id]}")
                )
                continue
            seen[rule.id] = name
            before = len(result.errors)
            _check_templates(rule, renderer, result.errors)
            if len(result.errors) == before:
                result.rules.append(rule)
    return result


def _documents(path: Path, name: str, result: RuleSet) -> list[dict[str, Any]]:
    try:
        loaded = load_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        result.errors.append(RuleError(name, None, where, f"not valid YAML: {exc}"))
        return []
    if isinstance(loaded, dict) and "rules" in loaded and len(loaded) == 1:
        loaded = loaded["rules"]
    docs = loaded if isinstance(loaded, list) else [loaded]
    good = [d for d in docs if isinstance(d, dict)]
    if len(good) != len(docs):
        result.errors.append(RuleError(name, None, "-", "a rule is a mapping of field: value"))
    return good


def _build(doc: dict[str, Any], file: str, errors: list[RuleError]) -> Rule | None:
    rule_id = doc.get("id")
    rid = rule_id if isinstance(rule_id, str) else None
    problems: list[RuleError] = []

    def bad(fld: str, message: str) -> None:
        problems.append(RuleError(file, rid, fld, message))

    if not isinstance(rule_id, str) or not _RULE_ID.fullmatch(rule_id):
        bad("id", "required: lower-case letters, digits and -, at most 64")
    for key in sorted(set(doc) - _RULE_KEYS):
        bad(key, f"unknown field (known: {', '.join(sorted(_RULE_KEYS))})")
    version = doc.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        bad("version", "must be a whole number from 1")
    on = doc.get("on")
    on_date = parse_trigger(doc["on_date"], bad) if "on_date" in doc else None
    on_calendar = parse_calendar(doc["on_calendar"], bad) if "on_calendar" in doc else None
    triggers = [k for k in ("on", "on_date", "on_calendar") if doc.get(k) is not None]
    if len(triggers) > 1:  # said of `on` when it is one of them, as it always was
        bad(triggers[0] if triggers[0] == "on" else triggers[1],
            "give one of `on` (an event), `on_date` (a profile's date) and "
            "`on_calendar` (dates of the year)")  # fmt: skip
    if on_date is not None:
        on = on_date.event_type
    elif on_calendar is not None:
        on = CALENDAR_EVENT
    elif "on_date" in doc:
        on = "person.date.due"  # the trigger's own problems are said; check the rest as if
    elif "on_calendar" in doc:
        on = CALENDAR_EVENT
    event_types = tuple(on) if isinstance(on, list) else (on,)
    for event_type in event_types:
        if event_type not in catalogue():
            bad("on", f"unknown event type {event_type!r} (known: {', '.join(catalogue())})")
        elif event_type in SCHEDULED_TYPES and "on_date" not in doc and "on_calendar" not in doc:
            bad("on", f"{event_type} is made by the scheduler for one rule: give `on_date` or "
                      "`on_calendar` instead")  # fmt: skip
    category = doc.get("category")
    if category not in CATEGORIES:
        bad("category", f"must be one of {', '.join(CATEGORIES)}, not {category!r}")
    condition = _condition(doc.get("when"), "when", bad)
    channels = _channels(doc.get("channels"), bad)
    recipients = _recipients(doc.get("recipients"), event_types, bad)
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        bad("enabled", "must be true or false")
    districts = parse_districts(doc.get("districts", ["*"]), bad)
    follow_up = _follow_up(doc.get("follow_up"), recipients, bad)
    if follow_up is not None and follow_up.holdout and category == Category.WARNING:
        bad("follow_up.holdout", "a safety warning is never held back from anyone")
    if "on_date" in doc and recipients is not None and not recipients.get("subject"):
        bad("recipients", "a date rule reaches the profile whose date it is: `subject: true`")
    errors.extend(problems)
    if problems or recipients is None:
        return None
    return Rule(id=str(rule_id), version=int(version), file=file, event_types=tuple(map(str, event_types)),
                category=Category(str(category)), channels=channels, name=str(doc.get("name", "")),
                condition=condition, enabled=enabled, districts=tuple(districts),
                follow_up=follow_up, on_date=on_date, on_calendar=on_calendar, **recipients)  # fmt: skip


def parse_districts(value: Any, bad: Any) -> list[str]:
    """Whose a rule or a policy is: six-digit division codes (a city's covers its districts), or
    ``*`` for the deployment; ``["*"]`` and the problem said to ``bad`` when it is neither."""
    districts = [value] if isinstance(value, str) else value
    if (
        not isinstance(districts, list)
        or not districts
        or not all(isinstance(d, str) and _DISTRICT.fullmatch(d) for d in districts)
    ):
        bad("districts", "a list of six-digit division codes (440308), or * for all")
        return ["*"]
    return [str(d) for d in districts]


def _follow_up(doc: Any, recipients: dict[str, Any] | None, bad: Any) -> FollowUp | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        bad("follow_up", "must be a mapping with `steps` (and `stop_on`)")
        return None
    unknown_fields(doc, FOLLOW_UP_KEYS, "follow_up", bad)
    if recipients is not None and not recipients.get("subject"):
        bad("follow_up", "only a rule on the event's subject (`subject: true`) has follow-ups: "
                         "a journey is one person's or one enterprise's")  # fmt: skip
    stop_on = doc.get("stop_on", [])
    stop_on = [stop_on] if isinstance(stop_on, str) else stop_on
    if not isinstance(stop_on, list):
        bad("follow_up.stop_on", "an event type, or a list of them")
        stop_on = []
    for i, event_type in enumerate(stop_on):
        found = catalogue().get(event_type) if isinstance(event_type, str) else None
        if found is None:
            bad(f"follow_up.stop_on[{i}]", f"unknown event type {event_type!r} "
                                           f"(known: {', '.join(catalogue())})")  # fmt: skip
        elif found.subject is None:
            bad(f"follow_up.stop_on[{i}]",
                f"{event_type} is area-wide: a completion event names its subject")  # fmt: skip
    steps_doc = doc.get("steps", [])
    if not isinstance(steps_doc, list) or len(steps_doc) > MAX_STEPS:
        bad("follow_up.steps", f"a list of at most {MAX_STEPS} steps, each with `after`")
        return None
    if not steps_doc and not stop_on:
        bad("follow_up", "give `steps` to remind, or `stop_on` to measure the outcome, or both")
        return None
    window = parse_duration(doc.get("window", DEFAULT_WINDOW_SECONDS))
    if window is None or window > MAX_WINDOW_SECONDS:
        bad("follow_up.window", "how long a completion counts: 30d, 12h…, at most 365d")
    holdout = parse_share(doc.get("holdout", 0))
    if holdout is None or holdout > MAX_HOLDOUT:
        bad("follow_up.holdout", f"the share not reminded: 0 to {MAX_HOLDOUT:.0%}, e.g. 5% or 0.05")
    elif holdout and not stop_on:
        bad("follow_up.holdout", "a holdout needs `stop_on`: it is compared by its completions")
    steps = [_step(s, f"follow_up.steps[{i}]", bad) for i, s in enumerate(steps_doc)]
    if any(s is None for s in steps) or window is None or holdout is None:
        return None
    return FollowUp(steps=tuple(s for s in steps if s), stop_on=tuple(map(str, stop_on)),
                    window_seconds=window, holdout=holdout)  # fmt: skip


def _step(doc: Any, where: str, bad: Any) -> Step | None:
    if not isinstance(doc, dict):
        bad(where, "a step is a mapping: after, and optionally at, repeat, channels, contacts")
        return None
    ok = not unknown_fields(doc, STEP_KEYS, where, bad)
    after = parse_duration(doc.get("after"))
    if after is None:
        bad(f"{where}.after", "required: a delay such as 3d, 12h, 30m or 45s")
        ok = False
    at = time_of_day_field(doc, where, bad, default=None)
    if doc.get("at") is not None and at is None:
        ok = False
    repeat = doc.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= MAX_REPEAT:
        bad(f"{where}.repeat", f"how many times the step is sent: 1 to {MAX_REPEAT}")
        ok = False
    channels = (
        _channels(doc["channels"], lambda f, m: bad(f"{where}.{f}", m))
        if "channels" in doc
        else None
    )
    if "channels" in doc and not channels:
        ok = False
    contacts = _roles(doc.get("contacts"), f"{where}.contacts", bad)
    if not ok or after is None:
        return None
    return Step(
        after_seconds=after, at=at, repeat=int(repeat), channels=channels, contacts=contacts
    )


def _condition(text: Any, fld: str, bad: Any) -> Expression | None:
    if text is None:
        return None
    try:
        return compile_expression(str(text), CONDITION_NAMES)
    except ExpressionError as exc:
        bad(fld, str(exc))
        return None


def _channels(value: Any, bad: Any) -> dict[Channel, str]:
    if not isinstance(value, dict) or not value:
        bad("channels", "required: a mapping such as {sms: template_name}")
        return {}
    out: dict[Channel, str] = {}
    for channel, template in value.items():
        if channel not in CHANNEL_FILES:
            bad(f"channels.{channel}", f"unknown channel (known: {', '.join(CHANNEL_FILES)})")
        elif not isinstance(template, str) or not template.strip():
            bad(f"channels.{channel}", "needs a template name")
        else:
            out[Channel(channel)] = template.strip()
    return out


def _recipients(value: Any, event_types: tuple[Any, ...], bad: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        bad("recipients", "required: `subject: true`, an `audience` or `previously_warned: true`")
        return None
    subject, audience_doc = value.get("subject", False), value.get("audience")
    warned = value.get("previously_warned", False)
    if sum((bool(subject), audience_doc is not None, bool(warned))) != 1:
        bad(
            "recipients",
            "give exactly one of `subject: true`, `audience` and `previously_warned: true`",
        )
        return None
    for event_type in event_types:
        event = catalogue().get(event_type) if isinstance(event_type, str) else None
        if subject and event is not None and event.subject is None:
            bad(
                "recipients.subject",
                f"{event_type} is area-wide and has no subject; use an audience",
            )
        if warned and not str(event_type).startswith("weather.warning."):
            bad(
                "recipients.previously_warned",
                f"only weather warnings have earlier recipients, not {event_type}",
            )
    audience = _audience(audience_doc, bad) if audience_doc is not None else None
    contacts = _roles(value.get("contacts"), "recipients.contacts", bad)
    fallback = _roles(value.get("fallback_contacts"), "recipients.fallback_contacts", bad) or ()
    unknown = set(value) - {*_RECIPIENT_MODES, "contacts", "fallback_contacts"}
    for key in sorted(unknown):
        bad(f"recipients.{key}", "unknown field")
    return {"subject": bool(subject), "audience": audience, "contacts": contacts,
            "fallback_contacts": fallback, "previously_warned": bool(warned)}  # fmt: skip


def _audience(doc: Any, bad: Any) -> Audience | None:
    if not isinstance(doc, dict):
        bad("recipients.audience", "must be a mapping (kind, permit, industry, tag, areas)")
        return None
    for key in sorted(set(doc) - _AUDIENCE_KEYS):
        bad(
            f"recipients.audience.{key}",
            f"unknown field (known: {', '.join(sorted(_AUDIENCE_KEYS))})",
        )
    kind = doc.get("kind")
    if kind not in (None, "person", "enterprise"):
        bad("recipients.audience.kind", "must be person or enterprise")
    areas = _condition(doc.get("areas"), "recipients.audience.areas", bad)
    shapes = _condition(doc.get("shapes"), "recipients.audience.shapes", bad)
    audience = Audience(kind=kind, permit=doc.get("permit"), industry=doc.get("industry"),
                        tag=doc.get("tag"), areas=areas, shapes=shapes)  # fmt: skip
    if not audience.index_terms() and areas is None and shapes is None:
        bad(
            "recipients.audience",
            "select by at least one of kind, permit, industry, tag, areas, shapes",
        )
    return audience


def _roles(value: Any, fld: str, bad: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        bad(fld, "must be a list of contact roles")
        return None
    return tuple(value)


def _check_fields(rule: Rule, renderer: Renderer, errors: list[RuleError]) -> set[Channel]:
    """Every field a rule's conditions and templates name is one its events or profiles have
    (``app.planning.fields``), in every branch of a template; the channels whose templates
    name one that is not."""
    roots = fields_for(catalogue()[t] for t in rule.event_types)
    conditions = [("when", rule.condition)]
    if rule.audience is not None:
        conditions += [("recipients.audience.areas", rule.audience.areas),
                       ("recipients.audience.shapes", rule.audience.shapes)]  # fmt: skip
    for where, expression in conditions:
        for why in condition_problems(expression.tree, roots) if expression else ():
            errors.append(RuleError(rule.file, rule.id, where, why))
    faulty = set()
    for channel, template in rule.channels.items():
        for language in renderer.languages(template):
            for file in CHANNEL_FILES[channel.value]:
                path = renderer.templates_dir / template / language / file
                source = (
                    path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
                )
                for why in field_problems(source, roots):
                    faulty.add(channel)
                    errors.append(RuleError(rule.file, rule.id, f"channels.{channel.value}",
                                            f"{template}/{language}/{file} {why}"))  # fmt: skip
    return faulty


def _check_templates(rule: Rule, renderer: Renderer, errors: list[RuleError]) -> None:
    """Every template a rule names exists, names only fields there are, and renders with the
    catalogue's example events and their variations (``samples.variations``: each branch an
    optional field, an enumerated value or a flag decides is taken); so do its follow-ups'."""
    _check_channels(rule, renderer, errors)
    for i, step in enumerate(rule.follow_up.steps if rule.follow_up else ()):
        if step.channels:
            found: list[RuleError] = []
            _check_channels(replace(rule, channels=step.channels, follow_up=None), renderer, found)
            errors.extend(RuleError(e.file, e.rule_id, f"follow_up.steps[{i}].{e.field}", e.message)
                          for e in found)  # fmt: skip


def _check_channels(rule: Rule, renderer: Renderer, errors: list[RuleError]) -> None:
    before = len(errors)
    for channel, template in rule.channels.items():
        missing = renderer.missing_files(template, channel)
        if missing:
            errors.append(RuleError(rule.file, rule.id, f"channels.{channel}",
                                    f"template files missing: {', '.join(missing)}"))  # fmt: skip
    if len(errors) > before:
        return
    faulty = _check_fields(rule, renderer, errors)
    for channel, template in rule.channels.items():
        if channel in faulty:  # rendering would only say it again
            continue
        for language in renderer.languages(template):
            for label, context in labelled_contexts(rule):
                try:
                    renderer.render(template, channel, language, context)
                except RenderError as exc:
                    errors.append(RuleError(rule.file, rule.id, f"channels.{channel}",
                                            f"{exc} (with {label})"))  # fmt: skip
                    break
