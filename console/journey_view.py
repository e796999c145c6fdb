"""What the rule editor shows of a rule's trigger (an event, a profile's date, dates of the year)
and its follow-ups, as form fields a civil servant fills in: no YAML, no JSON. The page's script
(static/journeys.js) puts them back into the rule it saves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.planning.journeys import DEFAULT_WINDOW_SECONDS, parse_duration, parse_share

UNITS = (("d", 86400, "天 days"), ("h", 3600, "小时 hours"), ("m", 60, "分钟 minutes"),
         ("s", 1, "秒 seconds"))  # fmt: skip
FORM_KEYS = ("follow_up", "on_date", "on_calendar")  # edited by these fields, not as JSON


def split_duration(value: Any, default: int) -> tuple[int, str]:
    """A delay as (amount, unit) in the largest unit that divides it: 7d, 12h, 30m, 45s."""
    seconds = parse_duration(value) or default
    for unit, size, _ in UNITS:
        if seconds % size == 0:
            return seconds // size, unit
    return seconds, "s"


def editor_values(rule: dict[str, Any], base: str,
                  text_of: Callable[[str], str]) -> dict[str, Any]:  # fmt: skip
    """The trigger and follow-up fields of ``rule``; ``text_of(template)`` reads a step's SMS
    text (the draft's, else the file's). A new step's template is ``{base}_step{n}``."""
    found = rule.get("follow_up")
    follow_up: dict[str, Any] = found if isinstance(found, dict) else {}
    steps = []
    for i, step in enumerate(follow_up.get("steps") or []):
        if not isinstance(step, dict):
            continue
        amount, unit = split_duration(step.get("after"), 86400)
        template = (
            ((step.get("channels") or {}).get("sms") or "")
            if isinstance(step.get("channels"), dict)
            else ""
        )
        contacts = step.get("contacts") or []
        steps.append({"amount": amount, "unit": unit, "at": step.get("at") or "",
                      "repeat": step.get("repeat", 1), "template": template or f"{base}_step{i + 1}",
                      "own_text": bool(template), "text": text_of(template) if template else "",
                      "contacts": " ".join(contacts) if isinstance(contacts, list) else str(contacts)})  # fmt: skip
    stop_on = follow_up.get("stop_on") or ""
    window = split_duration(follow_up.get("window"), DEFAULT_WINDOW_SECONDS)
    holdout = parse_share(follow_up.get("holdout", 0)) or 0.0
    on_date = rule.get("on_date") if isinstance(rule.get("on_date"), dict) else None
    on_calendar = rule.get("on_calendar") if isinstance(rule.get("on_calendar"), dict) else None
    dates = (on_calendar or {}).get("dates") or []
    return {
        "trigger": "date" if on_date else "calendar" if on_calendar else "event",
        "on_date": on_date or {"kind": "person", "fact": "", "days": 0, "years": 0, "at": "09:00"},
        "calendar_dates": " ".join(dates) if isinstance(dates, list) else str(dates),
        "calendar_at": (on_calendar or {}).get("at", "09:00"),
        "stop_on": stop_on[0] if isinstance(stop_on, list) and stop_on else stop_on,
        "window_days": window[0] * {"d": 1, "h": 1 / 24, "m": 1 / 1440, "s": 1 / 86400}[window[1]],
        "holdout_percent": round(holdout * 100, 2),
        "steps": steps,
        "step_base": base,
        "units": UNITS,
    }
