"""Life events: the envelope, the catalogue of types and validation.

The JSON Schemas in ``app/intake/schemas/events/`` are the shipped catalogue: one file per event type
describing its ``data`` (``x-subject`` says whether the event is about a person, an enterprise or an area),
and ``envelope.json`` for the fields every event has. ``parse_event`` turns the bytes received
into an ``Event`` or raises ``EventRejected`` with a reason a sender can act on.

Each schema is compiled twice: by jsonschema-rs, which checks an event in about a microsecond,
and by jsonschema, a hundred times slower, which only runs on an event the first one refused, to
give the reason senders have always been given (tests check that the compiled validator passes
nothing the reference one refuses). Types an admin adds in the console (``app.intake.typebook``)
are installed next to the shipped ones by ``install_types``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

from app.core.codec import decode_json
from app.core.errors import EventRejected
from app.core.timestamps import aware

MAX_EVENT_BYTES = 256 * 1024
MAX_EVENT_DEPTH = 32  # nesting of objects and arrays; the catalogue's deepest is 5


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any]
    source: str | None = None
    subject_kind: str | None = None
    subject_id: str | None = None
    district: str | None = None
    published_at: float | None = None  # epoch seconds of its record on life-events (not in as_dict)

    @property
    def key(self) -> str:
        """The Kafka key on ``life-events``: the subject id, or the event id for area-wide events."""
        return self.subject_id or self.id

    def as_dict(self) -> dict[str, Any]:
        """The event as published; built once (planning asks three times an event: its rules'
        conditions, its templates, its journey). Shared: read it, never change it (the
        templates' sandbox cannot)."""
        cached: dict[str, Any] | None = self.__dict__.get("_as_dict")
        if cached is not None:
            return cached
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat(),
            "data": self.data,
        }
        if self.source:
            out["source"] = self.source
        if self.subject_id:
            out["subject"] = {"kind": self.subject_kind, "id": self.subject_id}
        if self.district:
            out["district"] = self.district
        object.__setattr__(self, "_as_dict", out)  # frozen: not a field, so not compared
        return out

    def record(self) -> tuple[bytes, bytes]:
        """(key, value) on ``life-events``, as every interface publishes it."""
        value = json.dumps(self.as_dict(), ensure_ascii=False).encode("utf-8")
        return self.key.encode("utf-8"), value


@dataclass(frozen=True)
class EventType:
    name: str
    subject: str | None  # "person", "enterprise" or None for area-wide events
    description: str
    validator: Draft202012Validator | None  # the reference one; None for a console-added type
    fast: jsonschema_rs.Validator
    examples: tuple[dict[str, Any], ...]
    schema: dict[str, Any]
    shipped: bool = True  # in the package, not added in the console


@cache
def shipped_types() -> dict[str, EventType]:
    """The event types in the package, loaded once from the schema files."""
    types: dict[str, EventType] = {}
    folder = resources.files("app.intake") / "schemas" / "events"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json") or entry.name == "envelope.json":
            continue
        schema = json.loads(entry.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        name = entry.name.removesuffix(".json")
        types[name] = EventType(
            name=name,
            subject=schema.get("x-subject"),
            description=schema.get("description", ""),
            validator=Draft202012Validator(schema),
            fast=jsonschema_rs.Draft202012Validator(schema),
            examples=tuple(schema.get("examples", ())),
            schema=schema,
        )
    return types


_installed: dict[str, EventType] | None = None  # shipped + console-added, as last installed


def catalogue() -> dict[str, EventType]:
    """Every known event type: the shipped ones, and those an admin added in the console
    (``app.intake.typebook``) as this process last installed them."""
    return _installed if _installed is not None else shipped_types()


def install_types(added: dict[str, EventType]) -> None:
    """Make ``added`` (console-added types) known in this process, next to the shipped ones,
    which they never replace. One assignment: a reader sees the old catalogue or the new."""
    global _installed
    shipped = shipped_types()
    _installed = shipped | {name: t for name, t in added.items() if name not in shipped}


@cache
def _envelope_schema() -> dict[str, Any]:
    entry = resources.files("app.intake") / "schemas" / "events" / "envelope.json"
    return dict(json.loads(entry.read_text(encoding="utf-8")))


@cache
def _envelope() -> Draft202012Validator:
    return Draft202012Validator(_envelope_schema())


@cache
def _fast_envelope() -> jsonschema_rs.Validator:
    return jsonschema_rs.Draft202012Validator(_envelope_schema())


def parse_event(raw: bytes | str) -> Event:
    """Decode and validate one event; raise EventRejected with the reason."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if raw is None or not raw.strip():
        raise EventRejected("empty message")
    if len(raw) > MAX_EVENT_BYTES:
        raise EventRejected(f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
    doc = decode_json(raw, "event", MAX_EVENT_DEPTH)
    return validate_event(doc)


def validate_event(doc: Any, types: Mapping[str, EventType] | None = None) -> Event:
    """Validate an already decoded event document (against ``types``, else the catalogue)."""
    if not isinstance(doc, dict):
        raise EventRejected(f"an event is a JSON object, not {type(doc).__name__}")
    if not _fast_envelope().is_valid(doc):
        _raise_first_error(_envelope(), _fast_envelope(), doc, "")
    event_type = (catalogue() if types is None else types).get(doc["type"])
    if event_type is None:
        raise EventRejected(f"unknown event type {doc['type']!r}")
    if not event_type.fast.is_valid(doc):
        _raise_first_error(event_type.validator, event_type.fast, doc, f"{event_type.name}: ")
    subject = doc.get("subject")
    _check_subject(event_type, subject)
    return Event(
        id=doc["id"],
        type=doc["type"],
        occurred_at=_parse_time(doc["occurred_at"], "occurred_at"),
        data=doc["data"],
        source=doc.get("source"),
        subject_kind=subject["kind"] if subject else None,
        subject_id=subject["id"] if subject else None,
        district=doc.get("district"),
    )


def _check_subject(event_type: EventType, subject: dict[str, Any] | None) -> None:
    if event_type.subject is None:
        if subject is not None:
            raise EventRejected(f"{event_type.name}: an area-wide event has no subject")
        return
    if subject is None:
        raise EventRejected(f"{event_type.name}: subject is required (a {event_type.subject})")
    if subject["kind"] != event_type.subject:
        raise EventRejected(
            f"{event_type.name}: subject.kind must be {event_type.subject!r}, not {subject['kind']!r}"
        )


def _raise_first_error(validator: Draft202012Validator | None, fast: jsonschema_rs.Validator,
                       doc: Any, prefix: str) -> None:  # fmt: skip
    """Raise the reference validator's first error; where only the compiled one finds a fault
    (patterns: in Python's regular expressions ``$`` also matches before a final newline, in
    JSON Schema's it does not), or there is no reference validator (a console-added type, whose
    patterns must not meet Python's backtracking engine), raise the compiled one's."""
    error = None
    if validator is not None:
        error = next(iter(sorted(validator.iter_errors(doc), key=lambda e: list(e.path))), None)
    if error is None:
        fault = next(iter(fast.iter_errors(doc)))
        where = ".".join(str(p) for p in fault.instance_path) or "event"
        raise EventRejected(f"{prefix}{where}: {fault.message}")
    where = ".".join(str(p) for p in error.absolute_path) or "event"
    message = (
        error.schema.get("x-message", error.message)
        if error.validator == "anyOf"
        else error.message
    )
    raise EventRejected(f"{prefix}{where}: {message}")


def _parse_time(value: str, field: str) -> datetime:
    try:
        return aware(value)
    except ValueError as exc:
        raise EventRejected(f"{field}: {exc}") from exc


FUTURE_TOLERANCE_SECONDS = 24 * 3600  # clocks differ; an event a day ahead is a wrong date


def expires_at(event: Event) -> str | None:
    """A weather warning's ``expires_at`` as given (ISO 8601), after which nothing of it is
    sent; None for every other event."""
    expires = event.data.get("expires_at") if event.type.startswith("weather.warning.") else None
    return expires if isinstance(expires, str) else None


def why_not_act(event: Event, now: datetime, max_age_days: float) -> str | None:
    """Why an otherwise valid event is not acted on — too old, dated in the future, or a weather
    warning past its ``expires_at`` — or None. Such an event is suppressed with this reason
    (traced and counted), not sent: an all-clear a week late, or a gale warning that expired
    overnight, only confuses its readers."""
    age = (now - event.occurred_at).total_seconds()
    if max_age_days > 0 and age > max_age_days * 86400:
        return f"occurred {age / 86400:.0f} days ago; events older than {max_age_days:g} days are not acted on"
    if age < -FUTURE_TOLERANCE_SECONDS:
        return f"occurred_at {event.occurred_at.isoformat()} is in the future"
    expires = expires_at(event)
    if expires is not None:
        try:
            expiry = aware(expires)
        except ValueError:
            return None
        if expiry <= now:
            return f"the warning expired at {expiry.isoformat()}"
    return None


def districts_of(event: dict[str, Any]) -> list[str]:
    """The division codes an event document concerns: a warning's areas, else its district;
    ``["*"]`` for a shape-only warning (then only a caller for every district covers it)."""
    data = event.get("data") or {}
    areas = data.get("areas") if isinstance(data, dict) else None
    codes = [str(a) for a in areas or []] or (
        [str(event["district"])] if event.get("district") else []
    )
    return codes or ["*"]
