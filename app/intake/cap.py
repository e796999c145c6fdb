"""CAP 1.2 (OASIS Common Alerting Protocol; China's GB/T 35965 follows it) → weather events.

``parse_cap`` reads one alert strictly and safely and returns ``CapAlert``; anything else raises
``CapRejected`` with a reason. Refused: any DOCTYPE or entity declaration (XXE, entity expansion),
anything that is not well-formed (including bytes that do not match the declared encoding), a
root that is not ``{urn:oasis:names:tc:emergency:cap:1.2}alert`` (CAP 1.0/1.1, Atom and RSS
feeds, EDXL-DE), a missing required element, a status other than ``Actual``. Accepted: a UTF-8
BOM, the declared encoding (e.g. ISO-8859-1), foreign-namespace extensions, mixed content.

``to_events`` maps an alert to ``weather.warning.issued/updated/cancelled`` events: the zh-CN
``info`` blocks when there are any (one event per block; the others are kept as translations),
the event kind (大风 → gale, 暴雨 → rainstorm, …), the colour level (from 蓝色/黄色/橙色/红色 in
the text, else from severity), ``expires``, and areas: six-digit GB/T 2260 codes from geocodes
(the first six digits of CMA's twelve-digit codes; codes of other schemes, such as US FIPS, do not
start with a province code from 11 to 82 and are left out), polygons and circles.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from app.core.errors import EventRejected, InvalidInput
from app.core.timestamps import aware
from app.intake.events import MAX_EVENT_BYTES, Event, validate_event

NS = "urn:oasis:names:tc:emergency:cap:1.2"
MAX_BYTES = 2 * 1024 * 1024
HEADER_REQUIRED = ("identifier", "sender", "sent", "status", "msgType", "scope")
INFO_REQUIRED = ("category", "event", "urgency", "severity", "certainty")
LEVELS = ("blue", "yellow", "orange", "red")
_COLOURS = {"蓝色": "blue", "黄色": "yellow", "橙色": "orange", "红色": "red", "藍色": "blue",
            "黃色": "yellow", "紅色": "red"}  # fmt: skip
_SEVERITY_LEVEL = {"Minor": "blue", "Moderate": "yellow", "Severe": "orange", "Extreme": "red"}
_KINDS = [  # (words in the event text, kind); the first match wins
    (("台风", "颱風", "typhoon", "hurricane", "tropical cyclone", "tropical storm"), "typhoon"),
    (("暴雨", "rainstorm", "heavy rain", "flood"), "rainstorm"),
    (("雷雨大风", "雷电", "雷暴", "thunderstorm"), "thunderstorm"),
    (("大风", "gale", "wind"), "gale"),
    (("高温", "heat"), "heat"),
    (("寒潮", "cold wave"), "cold_wave"),
    (("大雾", "fog"), "fog"),
    (("冰雹", "hail"), "hail"),
    (("暴雪", "snow"), "snowstorm"),
    (("道路结冰", "icing"), "road_icing"),
    (("霾", "haze"), "haze"),
    (("干旱", "drought"), "drought"),
    (("森林火险", "fire"), "forest_fire"),
]
_GEOCODE = re.compile(r"\d{6}(\d{3}|\d{6})?")
_POINT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")


class CapRejected(InvalidInput):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class CapArea:
    description: str
    codes: list[str] = field(default_factory=list)
    polygons: list[list[list[float]]] = field(default_factory=list)  # [[lat, lon], …]
    circles: list[dict[str, float]] = field(default_factory=list)  # {"lat", "lon", "radius_km"}


@dataclass
class CapInfo:
    language: str
    event: str
    severity: str
    urgency: str
    certainty: str
    headline: str
    description: str
    instruction: str
    expires: datetime | None
    areas: list[CapArea]


@dataclass
class CapAlert:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    references: list[str]
    infos: list[CapInfo]


def parse_cap(raw: bytes) -> CapAlert:
    if len(raw) > MAX_BYTES:
        raise CapRejected(f"the document is {len(raw)} bytes; the limit is {MAX_BYTES}")
    if (
        re.search(rb"<!\s*(DOCTYPE|ENTITY)", raw[:4096] + raw[-4096:], re.IGNORECASE)
        or b"<!DOCTYPE" in raw
    ):
        raise CapRejected("a DOCTYPE or entity declaration is not accepted (XXE protection)")
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise CapRejected(f"refused unsafe XML: {type(exc).__name__}") from exc
    except SafeET.ParseError as exc:
        raise CapRejected(f"not well-formed XML (or not in its declared encoding): {exc}") from exc
    if root.tag != f"{{{NS}}}alert":
        raise CapRejected(f"not a CAP 1.2 alert: the root element is {root.tag!r}")
    header = {name: _text(root, name) for name in HEADER_REQUIRED}
    missing = [name for name, value in header.items() if not value]
    if missing:
        raise CapRejected(f"required element missing or empty: {', '.join(missing)}")
    if header["status"] != "Actual":
        raise CapRejected(f"status is {header['status']!r}; only Actual alerts are sent")
    if header["msgType"] not in ("Alert", "Update", "Cancel"):
        raise CapRejected(f"msgType {header['msgType']!r} is not Alert, Update or Cancel")
    references_element = root.find(f"{{{NS}}}references")
    if references_element is not None and not (references_element.text or "").strip():
        raise CapRejected("references is present but empty")
    return CapAlert(
        identifier=header["identifier"], sender=header["sender"], sent=_time(header["sent"], "sent"),
        status=header["status"], msg_type=header["msgType"], scope=header["scope"],
        references=_references(references_element), infos=[_info(i, n) for n, i in enumerate(root.findall(f"{{{NS}}}info"), 1)],
    )  # fmt: skip


def _text(parent: Element, name: str) -> str:
    element = parent.find(f"{{{NS}}}{name}")
    return "".join(element.itertext()).strip() if element is not None else ""


def _time(value: str, name: str) -> datetime:
    try:
        return aware(value)
    except ValueError as exc:
        raise CapRejected(f"{name}: {exc}") from exc


def _references(element: Element | None) -> list[str]:
    """``sender,identifier,sent`` triples separated by spaces → the identifiers."""
    if element is None:
        return []
    out = []
    for triple in (element.text or "").split():
        parts = triple.split(",")
        if len(parts) != 3:
            raise CapRejected(f"references: {triple!r} is not sender,identifier,sent")
        out.append(parts[1])
    return out


def _info(element: Element, number: int) -> CapInfo:
    values = {name: _text(element, name) for name in INFO_REQUIRED}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise CapRejected(f"info {number}: required element missing or empty: {', '.join(missing)}")
    expires = _text(element, "expires")
    return CapInfo(
        language=_text(element, "language") or "en-US", event=values["event"], severity=values["severity"],
        urgency=values["urgency"], certainty=values["certainty"], headline=_text(element, "headline"),
        description=_text(element, "description"), instruction=_text(element, "instruction"),
        expires=_time(expires, f"info {number}: expires") if expires else None,
        areas=[_area(a, number) for a in element.findall(f"{{{NS}}}area")],
    )  # fmt: skip


def _area(element: Element, number: int) -> CapArea:
    area = CapArea(description=_text(element, "areaDesc"))
    for geocode in element.findall(f"{{{NS}}}geocode"):
        value = _text(geocode, "value")
        if _GEOCODE.fullmatch(value) and 11 <= int(value[:2]) <= 82:  # GB/T 2260 province codes
            area.codes.append(value[:6])
    for polygon in element.findall(f"{{{NS}}}polygon"):
        text = (polygon.text or "").strip()
        if text:
            area.polygons.append(_polygon(text, number))
    for circle in element.findall(f"{{{NS}}}circle"):
        text = (circle.text or "").strip()
        if text:
            area.circles.append(_circle(text, number))
    return area


def _polygon(text: str, number: int) -> list[list[float]]:
    points = []
    for pair in text.split():
        match = _POINT.match(pair)
        if not match:
            raise CapRejected(f"info {number}: polygon point {pair!r} is not lat,lon")
        points.append([float(match[1]), float(match[2])])
    if len(points) < 4 or points[0] != points[-1]:
        raise CapRejected(
            f"info {number}: a polygon needs at least four points, the first equal to the last"
        )
    return points


def _circle(text: str, number: int) -> dict[str, float]:
    centre, _, radius = text.rpartition(" ")
    match = _POINT.match(centre)
    try:
        radius_km = float(radius)
    except ValueError:
        match = None
    if not match:
        raise CapRejected(f"info {number}: circle {text!r} is not 'lat,lon radius'")
    return {"lat": float(match[1]), "lon": float(match[2]), "radius_km": radius_km}


def kind_of(event: str) -> str:
    lowered = event.lower()
    for words, kind in _KINDS:
        if any(w in lowered for w in words):
            return kind
    return "other"


def level_of(info: CapInfo) -> str:
    text = f"{info.event} {info.headline}"
    for word, level in _COLOURS.items():
        if word in text:
            return level
    return _SEVERITY_LEVEL.get(info.severity, "yellow")


EVENT_TYPES = {"Alert": "weather.warning.issued", "Update": "weather.warning.updated",
               "Cancel": "weather.warning.cancelled"}  # fmt: skip


def to_events(
    alert: CapAlert, *, now: datetime, default_ttl: timedelta = timedelta(hours=24)
) -> list[dict[str, Any]]:
    """The weather events for an alert; raises CapRejected when there is nothing to send."""
    preferred = [i for i in alert.infos if i.language.lower().startswith("zh-cn")] or \
        [i for i in alert.infos if i.language.lower().startswith("zh")] or alert.infos[:1]  # fmt: skip
    others = [i for i in alert.infos if i not in preferred]
    if not preferred and alert.msg_type != "Cancel":
        raise CapRejected("the alert has no info block: nothing to send")
    events = []
    blocks: list[CapInfo | None] = [*preferred] or [None]  # a Cancel may carry no info at all
    for number, info in enumerate(blocks, 1):
        events.append(
            _event(alert, info, others, number if len(preferred) > 1 else 0, now, default_ttl)
        )
    live = [e for e in events if e["type"] == "weather.warning.cancelled" or
            datetime.fromisoformat(e["data"]["expires_at"]) > now]  # fmt: skip
    if not live:
        raise CapRejected(
            f"the alert expired at {events[0]['data']['expires_at']}; nothing is sent"
        )
    return live


def _event(alert: CapAlert, info: CapInfo | None, others: list[CapInfo], number: int, now: datetime,
           default_ttl: timedelta) -> dict[str, Any]:  # fmt: skip
    suffix = f".{number}" if number else ""  # "#" is no character of an event id
    codes = sorted({c for a in (info.areas if info else []) for c in a.codes})
    expires = info.expires if info and info.expires else alert.sent + default_ttl
    data: dict[str, Any] = {
        "warning_id": alert.identifier + suffix,
        "kind": kind_of(info.event) if info else "other",
        "level": level_of(info) if info else "blue",
        "areas": codes,
        "headline": (info.headline or info.event) if info else "预警解除",
        "instruction": info.instruction if info else "",
        "expires_at": expires.isoformat(),
        "event_text": info.event if info else "",
        "severity": info.severity if info else "",
        "sender": alert.sender,
        "references": [r + suffix for r in alert.references],
    }
    polygons = [p for a in (info.areas if info else []) for p in a.polygons]
    circles = [c for a in (info.areas if info else []) for c in a.circles]
    if polygons:
        data["polygons"] = polygons
    if circles:
        data["circles"] = circles
    if info and others:
        data["translations"] = {
            o.language: {"headline": o.headline, "instruction": o.instruction} for o in others
        }
    return {"id": f"CAP-{alert.identifier}{suffix}-{alert.msg_type}", "type": EVENT_TYPES[alert.msg_type],
            "occurred_at": alert.sent.isoformat(), "source": f"cap:{alert.sender}", "data": data}  # fmt: skip


def alert_events(
    raw: bytes, now: datetime | None = None, *, senders: frozenset[str] | None = None
) -> list[Event]:
    """The validated weather events of one CAP document; CapRejected with the reason otherwise.
    Every interface that takes CAP (``lifecycle cap ingest``, ``POST /cap/``) publishes these.
    ``senders``: the CAP ``<sender>`` values the caller may speak for (None: the command line,
    run by someone who already holds the service's credentials)."""
    alert = parse_cap(raw)
    if senders is not None and alert.sender not in senders:
        raise CapRejected(f"sender {alert.sender[:100]!r} is not one this token may speak for")
    events = []
    for doc in to_events(alert, now=now or datetime.now(UTC)):
        size = len(json.dumps(doc, ensure_ascii=False).encode("utf-8"))
        if size > MAX_EVENT_BYTES:  # its texts or polygons: the alert is large, the event too
            raise CapRejected(
                f"the alert makes an event of {size} bytes; an event is at most {MAX_EVENT_BYTES}"
            )
        try:
            events.append(validate_event(doc))
        except EventRejected as exc:
            raise CapRejected(f"the alert does not make a valid event: {exc.reason}") from exc
    return events
