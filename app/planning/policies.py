"""Support policies for enterprises (免申即享: match first, ask only for confirmation).

A policy is data, written by staff: what it offers, what the enterprise confirms and where, when
it is valid, and criteria over the enterprise's profile::

    id: yt-startup-rent-subsidy
    version: 1
    name: 盐田区初创企业租金补贴
    summary: 注册未满3年的小微企业，可申请最高50%的办公用房租金补贴   # what it offers
    confirm: 租赁合同和社保缴纳人数                                  # what to confirm
    where: “i深圳”App搜索“初创企业租金补贴”                          # where
    valid_from: 2026-01-01
    valid_until: 2027-12-31
    districts: ["440308"]          # the enterprise's district (a city code covers its districts)
    criteria:
      industries: [software, information_technology]   # any of them (none: any industry)
      sizes: [micro, small]                             # any of: micro, small, medium, large
      registered_capital: {min: 10, max: 5000}          # 万元, either bound may be left out
      age_months: {max: 36}                             # since dates.registered_on
      qualifications: [high_tech]                       # all of them
      permits: [food_business]                          # all of them

``match`` says, criterion by criterion, whether an enterprise meets a policy and why: what
``lifecycle policies match`` prints and the console shows. An enterprise is told of a policy
once, when it first meets it (``app.state.policies``), through the event
``enterprise.policy.matched`` and the rule that listens to it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from app.core.yaml12 import load_yaml
from app.planning.rules import parse_districts
from app.profiles.model import Profile
from app.profiles.validate import area_codes

POLICY_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
SIZES = ("micro", "small", "medium", "large")
SIZE_NAMES = {"micro": "微型", "small": "小型", "medium": "中型", "large": "大型"}
_KEYS = {"id", "version", "name", "summary", "confirm", "where", "valid_from", "valid_until",
         "districts", "criteria", "enabled"}  # fmt: skip
_CRITERIA = {"industries", "sizes", "registered_capital", "age_months", "qualifications", "permits"}
MAX_TEXT = 300
MAX_ITEMS = 50
MAX_NAME = 100
TRIGGER_TYPES = ("business.registered",)  # besides every profile write
POLICY_EVENT = "enterprise.policy.matched"


@dataclass(frozen=True)
class Bounds:
    min: float | None = None
    max: float | None = None

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def __str__(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g}–{self.max:g}"
        return f"at least {self.min:g}" if self.min is not None else f"at most {self.max:g}"


@dataclass(frozen=True)
class Policy:
    id: str
    name: str
    summary: str
    confirm: str
    where: str
    version: int = 1
    valid_from: date | None = None
    valid_until: date | None = None
    districts: tuple[str, ...] = ("*",)
    industries: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    registered_capital: Bounds | None = None  # 万元
    age_months: Bounds | None = None
    qualifications: tuple[str, ...] = ()
    permits: tuple[str, ...] = ()
    enabled: bool = True

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or day >= self.valid_from) and (
            self.valid_until is None or day <= self.valid_until
        )


CRITERION_LABELS = {"valid": "有效期", "kind": "主体", "district": "适用区域", "industry": "行业",
                    "size": "企业规模", "registered_capital": "注册资本", "age_months": "成立时间",
                    "qualifications": "资质", "permits": "许可"}  # fmt: skip


@dataclass(frozen=True)
class Criterion:
    name: str
    met: bool
    says: str

    @property
    def label(self) -> str:
        """The criterion's name for the console's staff (Chinese, then the field)."""
        return f"{CRITERION_LABELS.get(self.name, self.name)} {self.name}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "met": self.met, "says": self.says}


@dataclass(frozen=True)
class Match:
    policy: Policy
    criteria: list[Criterion] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return all(c.met for c in self.criteria)


def match(policy: Policy, profile: Profile, today: date) -> Match:
    """Each criterion of ``policy`` for an enterprise's profile, met or not, with why."""
    found = Match(policy)
    add = found.criteria.append
    valid = policy.valid_on(today)
    add(Criterion("valid", valid and policy.enabled, _validity(policy, today)))
    if profile.get("kind") != "enterprise":
        add(Criterion("kind", False, f"policies are for enterprises; this profile is a {profile.get('kind')}"))  # fmt: skip
        return found
    district = profile.get("district", "")
    inside = "*" in policy.districts or bool(set(area_codes(district)) & set(policy.districts))
    add(Criterion("district", inside, f"district {district} {'is' if inside else 'is not'} in "
                                      f"{', '.join(policy.districts)}"))  # fmt: skip
    if policy.industries:
        industry = profile.get("industry")
        ok = industry in policy.industries
        add(Criterion("industry", ok, f"industry {industry or '(none on file)'} "
                                      f"{'is' if ok else 'is not'} one of {', '.join(policy.industries)}"))  # fmt: skip
    if policy.sizes:
        size = profile.get("size")
        ok = size in policy.sizes
        add(Criterion("size", ok, f"size {size or '(none on file)'} {'is' if ok else 'is not'} "
                                  f"one of {', '.join(policy.sizes)}"))  # fmt: skip
    if policy.registered_capital is not None:
        capital = profile.get("registered_capital")
        ok = isinstance(capital, int | float) and policy.registered_capital.holds(float(capital))
        shown = f"{capital:g} 万元" if isinstance(capital, int | float) else "(none on file)"
        add(Criterion("registered_capital", ok, f"registered capital {shown}; the policy asks "
                                                f"{policy.registered_capital} 万元"))  # fmt: skip
    if policy.age_months is not None:
        add(_age(policy.age_months, (profile.get("dates") or {}).get("registered_on"), today))
    for name, wanted, have in (
        ("qualifications", policy.qualifications, profile.get("qualifications") or []),
        ("permits", policy.permits, profile.get("permits") or []),
    ):
        if wanted:
            missing = [w for w in wanted if w not in have]
            add(Criterion(name, not missing, f"lacks {', '.join(missing)}" if missing
                          else f"has {', '.join(wanted)}"))  # fmt: skip
    return found


def _validity(policy: Policy, today: date) -> str:
    if not policy.enabled:
        return "the policy is switched off"
    span = f"{policy.valid_from or '…'} to {policy.valid_until or '…'}"
    return (
        f"valid {span}; today is {today}"
        if policy.valid_on(today)
        else f"not valid today ({today}): {span}"
    )


def _age(bounds: Bounds, registered: str | None, today: date) -> Criterion:
    try:
        since = date.fromisoformat(registered) if registered else None
    except ValueError:
        since = None
    if since is None:
        return Criterion("age_months", False, "no registration date on file (dates.registered_on)")
    months = (today.year - since.year) * 12 + today.month - since.month - (today.day < since.day)
    ok = bounds.holds(months)
    return Criterion("age_months", ok, f"registered {since}: {months} months old; the policy asks "
                                       f"{bounds} months")  # fmt: skip


# -- reading and checking ----------------------------------------------------------------------


def parse_policy(doc: Any) -> tuple[Policy | None, list[dict[str, str]]]:
    """A policy document checked field by field: (the policy, []) or (None, the problems)."""
    problems: list[dict[str, str]] = []

    def bad(where: str, message: str) -> None:
        problems.append({"field": where, "message": message})

    if not isinstance(doc, dict):
        return None, [{"field": "policy", "message": "a mapping of field: value"}]
    for key in sorted(set(doc) - _KEYS, key=str):
        bad(str(key)[:40], f"unknown field (known: {', '.join(sorted(_KEYS))})")
    policy_id = doc.get("id")
    if not isinstance(policy_id, str) or not POLICY_ID.fullmatch(policy_id):
        bad("id", "required: lower-case letters, digits and -, at most 64")
    version = doc.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        bad("version", "a whole number from 1")
    texts = {name: _text(doc.get(name), name, MAX_NAME if name == "name" else MAX_TEXT, bad)
             for name in ("name", "summary", "confirm", "where")}  # fmt: skip
    valid_from = _date(doc.get("valid_from"), "valid_from", bad)
    valid_until = _date(doc.get("valid_until"), "valid_until", bad)
    if valid_from and valid_until and valid_until < valid_from:
        bad("valid_until", "before valid_from")
    districts = parse_districts(doc.get("districts", ["*"]), bad)
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        bad("enabled", "true or false")
    criteria = _criteria(doc.get("criteria", {}), bad)
    if problems:
        return None, problems
    return Policy(id=str(policy_id), version=int(version), valid_from=valid_from,
                  valid_until=valid_until, districts=tuple(districts), enabled=bool(enabled),
                  name=str(texts["name"]), summary=str(texts["summary"]),
                  confirm=str(texts["confirm"]), where=str(texts["where"]), **criteria), []  # fmt: skip


def _text(value: Any, name: str, limit: int, bad: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        bad(name, "required: text")
        return None
    if len(value) > limit:
        bad(name, f"{len(value)} characters; at most {limit}")
        return None
    return value.strip()


def _date(value: Any, name: str, bad: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        bad(name, f"a date, YYYY-MM-DD, not {str(value)[:20]!r}")
        return None


def _criteria(doc: Any, bad: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        bad("criteria", "a mapping: industries, sizes, registered_capital, age_months, "
                        "qualifications, permits")  # fmt: skip
        return {}
    for key in sorted(set(doc) - _CRITERIA, key=str):
        bad(
            f"criteria.{str(key)[:40]}",
            f"unknown criterion (known: {', '.join(sorted(_CRITERIA))})",
        )
    out: dict[str, Any] = {}
    for name in ("industries", "qualifications", "permits", "sizes"):
        value = doc.get(name, [])
        value = [value] if isinstance(value, str) else value
        if (
            not isinstance(value, list)
            or len(value) > MAX_ITEMS
            or not all(isinstance(v, str) and 0 < len(v) <= MAX_NAME for v in value)
        ):
            bad(f"criteria.{name}", f"a list of at most {MAX_ITEMS} names")
            continue
        if name == "sizes" and set(value) - set(SIZES):
            bad("criteria.sizes", f"each one of {', '.join(SIZES)}")
            continue
        out[name] = tuple(value)
    for name in ("registered_capital", "age_months"):
        if doc.get(name) is not None:
            out[name] = _bounds(doc[name], f"criteria.{name}", bad)
    return out


def _bounds(value: Any, where: str, bad: Any) -> Bounds | None:
    if not isinstance(value, dict) or not value or set(value) - {"min", "max"}:
        bad(where, "{min: …, max: …}, either may be left out")
        return None
    numbers = {k: v for k, v in value.items() if v is not None}
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1e12
               for v in numbers.values()):  # fmt: skip
        bad(where, "min and max are numbers from 0")
        return None
    if "min" in numbers and "max" in numbers and numbers["max"] < numbers["min"]:
        bad(where, "max is below min")
        return None
    return Bounds(numbers.get("min"), numbers.get("max"))


def load_policy_files(folder: Path) -> tuple[list[Policy], list[str]]:
    """The shipped policies (``policies/*.yaml``), and each problem as ``file: field: message``."""
    policies, errors = [], []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            doc = load_yaml(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            errors.append(f"{path.name}: not valid YAML: {exc}")
            continue
        policy, problems = parse_policy(doc)
        errors += [f"{path.name}: {p['field']}: {p['message']}" for p in problems]
        if policy is not None:
            policies.append(policy)
    return policies, errors


def policy_event(policy: Policy, profile: Profile, now: float, tz: ZoneInfo) -> dict[str, Any]:
    """The event that tells an enterprise of a policy it meets: its id names both, so one
    published twice is delivered once."""
    plain = f"policy:{policy.id}:{profile['id']}"  # an event id has at most 128 characters
    event_id = (
        plain if len(plain) <= 128 else "policy:" + hashlib.sha256(plain.encode()).hexdigest()
    )
    return {"id": event_id, "type": POLICY_EVENT,
            "occurred_at": datetime.fromtimestamp(now, tz).isoformat(timespec="seconds"),
            "source": "lifecycle-policies", "subject": {"kind": "enterprise", "id": profile["id"]},
            "district": profile.get("district") or "000000", "data": as_data(policy)}  # fmt: skip


def as_data(policy: Policy) -> dict[str, Any]:
    """What the message about a policy says: ``data`` of ``enterprise.policy.matched``."""
    out: dict[str, Any] = {"policy_id": policy.id, "version": policy.version, "name": policy.name,
                           "summary": policy.summary, "confirm": policy.confirm, "where": policy.where}  # fmt: skip
    if policy.valid_until:
        out["valid_until"] = policy.valid_until.isoformat()
    return out
