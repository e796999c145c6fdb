"""Person and enterprise profiles: validation and normalisation.

A profile is a JSON object (see the contract). ``parse_profile`` returns the normalised
dictionary that is stored, or raises ProfileRejected with the field and the reason.
Mobile numbers become E.164; enterprise contacts keep their role.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, cast

from app.core.errors import InvalidPhoneNumber, ProfileRejected
from app.core.identifiers import normalise_uscc, uscc_problem
from app.profiles.model import Profile
from app.profiles.phones import normalise_mobile

KINDS = ("person", "enterprise")
ENTERPRISE_SIZES = ("micro", "small", "medium", "large")  # 企业划型: 微型、小型、中型、大型
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_DISTRICT = re.compile(r"\d{6}")
# RFC 5321 Mailbox with a dot-atom local part (no quoted strings, no lists: "a,b@x" is refused) and
# a domain of LDH labels (an internationalised domain is turned into its xn-- form first).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*", re.ASCII)
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)", re.ASCII)
MAX_TEXT_CHARS = 200  # a name, an industry: longer is an error, not a name
MAX_LIST_ITEMS = 50  # tags, permits, contacts
MAX_PREFERENCES_BYTES = 2048
MAX_PROFILE_DEPTH = 16  # JSON nesting a profile may have: it nests 4 deep (contacts, preferences)
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")


def parse_profile(doc: Any) -> Profile:
    """Validate and normalise one profile document."""
    if not isinstance(doc, dict):
        raise ProfileRejected(f"a profile is a JSON object, not {type(doc).__name__}")
    profile_id = doc.get("id")
    if not isinstance(profile_id, str) or not _ID.fullmatch(profile_id):
        raise ProfileRejected("id: required, 1 to 64 letters, digits or . _ : -")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise ProfileRejected(f"kind: must be one of {', '.join(KINDS)}, not {kind!r}")
    out: dict[str, Any] = {"id": profile_id, "kind": kind}
    out["name"] = _text(doc, "name", required=True)
    out["district"] = _district(doc.get("district"))
    out["language"] = _language(doc.get("language", "zh-CN"))
    out["tags"] = _strings(doc, "tags")
    if kind == "person":
        out.update(_contact_fields(doc, prefix=""))
    else:
        out.update(_enterprise_fields(doc))
    if "location" in doc and doc["location"] is not None:
        out["location"] = _location(doc["location"])
    if doc.get("dates") is not None:
        dates = parse_dates(doc["dates"])
        if isinstance(dates, str):
            raise ProfileRejected(f"dates: {dates}")
        if dates:
            out["dates"] = dates
    if isinstance(doc.get("preferences"), dict):
        if len(json.dumps(doc["preferences"], ensure_ascii=False)) > MAX_PREFERENCES_BYTES:
            raise ProfileRejected(f"preferences: larger than {MAX_PREFERENCES_BYTES} bytes")
        out["preferences"] = doc["preferences"]
    return cast(Profile, out)  # built field by field above, each checked


def _enterprise_fields(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "industry": _text(doc, "industry", required=False),
        "permits": _strings(doc, "permits"),
    }
    if doc.get("size") not in (None, ""):
        if doc["size"] not in ENTERPRISE_SIZES:
            raise ProfileRejected(
                f"size: one of {', '.join(ENTERPRISE_SIZES)}, not {str(doc['size'])[:20]!r}"
            )
        out["size"] = doc["size"]
    if doc.get("registered_capital") not in (None, ""):
        out["registered_capital"] = _capital(doc["registered_capital"])
    if doc.get("qualifications"):
        out["qualifications"] = _strings(doc, "qualifications")
    if doc.get("credit_code"):
        code = normalise_uscc(str(doc["credit_code"]))
        problem = uscc_problem(code)
        if problem:
            raise ProfileRejected(f"credit_code: {problem}")
        out["credit_code"] = code
    contacts = doc.get("contacts", [])
    if not isinstance(contacts, list):
        raise ProfileRejected("contacts: must be a list")
    if len(contacts) > MAX_LIST_ITEMS:
        raise ProfileRejected(f"contacts: {len(contacts)}; at most {MAX_LIST_ITEMS}")
    out["contacts"] = [_contact(c, i) for i, c in enumerate(contacts)]
    return {k: v for k, v in out.items() if v is not None}


def _capital(value: Any) -> float | int:
    """Registered capital in 万元 (10,000 yuan): a number from 0, a CSV cell's text too."""
    try:
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError(value)
    except ValueError as exc:
        raise ProfileRejected("registered_capital: a number of 万元, such as 500") from exc
    if not 0 <= number <= 1e12:
        raise ProfileRejected("registered_capital: from 0 to 10^12 万元")
    return int(number) if float(number).is_integer() else float(number)


def _contact(doc: Any, index: int) -> dict[str, Any]:
    where = f"contacts[{index}]"
    if not isinstance(doc, dict):
        raise ProfileRejected(f"{where}: must be an object")
    role = doc.get("role")
    if not isinstance(role, str) or not role.strip() or len(role) > 64:
        raise ProfileRejected(f"{where}.role: required, at most 64 characters")
    out: dict[str, Any] = {
        "role": role.strip(),
        "name": _text(doc, "name", required=False, where=where),
    }
    out.update(_contact_fields(doc, prefix=f"{where}."))
    return {k: v for k, v in out.items() if v is not None}


def _contact_fields(doc: dict[str, Any], *, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mobile = doc.get("mobile")
    if mobile not in (None, ""):
        try:
            out["mobile"] = normalise_mobile(str(mobile))
        except InvalidPhoneNumber as exc:
            raise ProfileRejected(f"{prefix}mobile: {exc}") from exc
    email = doc.get("email")
    if email not in (None, ""):
        try:
            out["email"] = normalise_email(email)
        except ValueError as exc:
            raise ProfileRejected(f"{prefix}email: {exc}") from exc
    return out


def normalise_email(raw: Any) -> str:
    """An address SMTP can deliver to (RFC 5321: local part at most 64 octets, path at most 254),
    its domain lower-cased and, if internationalised, in IDNA (xn--) form; ValueError otherwise.
    A local part in other than ASCII is refused: delivering it needs SMTPUTF8 end to end."""
    if not isinstance(raw, str):
        raise ValueError("not an e-mail address")
    address = raw.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("not an e-mail address (local@domain)")
    if not _LOCAL.fullmatch(local):
        raise ValueError("not an e-mail address: the part before @ has characters SMTP refuses")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError("not an e-mail address: the domain is not a valid domain name") from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError("not an e-mail address: the domain is not a valid domain name")
    if len(local) > 64 or len(local) + 1 + len(ascii_domain) > 254:
        raise ValueError("not an e-mail address: longer than SMTP allows")
    return f"{local}@{ascii_domain}"


def _text(doc: dict[str, Any], field: str, *, required: bool, where: str = "") -> str | None:
    value = doc.get(field)
    label = f"{where}.{field}" if where else field
    if value in (None, ""):
        if required:
            raise ProfileRejected(f"{label}: required")
        return None
    if not isinstance(value, str):
        raise ProfileRejected(f"{label}: must be text")
    if len(value) > MAX_TEXT_CHARS:
        raise ProfileRejected(f"{label}: {len(value)} characters; at most {MAX_TEXT_CHARS}")
    return value.strip()


def _district(value: Any) -> str:
    if not isinstance(value, str) or not _DISTRICT.fullmatch(value):
        raise ProfileRejected(f"district: a six-digit GB/T 2260 code is required, not {value!r}")
    return value


def _language(value: Any) -> str:
    if not isinstance(value, str) or not _LANGUAGE.fullmatch(value):
        raise ProfileRejected(f"language: a language tag such as zh-CN is required, not {value!r}")
    return value


def _strings(doc: dict[str, Any], field: str) -> list[str]:
    value = doc.get(field) or []
    if isinstance(value, str):  # CSV cells: "a;b"
        value = [v for v in value.split(";") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileRejected(f"{field}: must be a list of text")
    if len(value) > MAX_LIST_ITEMS or any(len(v) > MAX_TEXT_CHARS for v in value):
        raise ProfileRejected(
            f"{field}: at most {MAX_LIST_ITEMS} entries of at most {MAX_TEXT_CHARS} characters"
        )
    return sorted({v.strip() for v in value if v.strip()})


def _location(value: Any) -> dict[str, float]:
    try:
        lat, lon = float(value["lat"]), float(value["lon"])
    except (TypeError, KeyError, ValueError) as exc:
        raise ProfileRejected('location: must be {"lat": …, "lon": …}') from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ProfileRejected("location: lat or lon out of range")
    return {"lat": lat, "lon": lon}


def area_codes(district: str) -> list[str]:
    """The division codes a district belongs to: itself, its city and its province.

    ``440308`` (Yantian) → ``["440308", "440300", "440000"]``, so a warning for Shenzhen (440300)
    reaches every district of the city.
    """
    codes = [district, district[:4] + "00", district[:2] + "0000"]
    return list(dict.fromkeys(codes))


def index_terms(profile: Profile) -> set[str]:
    """The secondary-index entries of a profile: ``field:value`` strings."""
    terms = {f"kind:{profile['kind']}"}
    terms.update(f"area:{code}" for code in area_codes(profile["district"]))
    terms.update(f"permit:{p}" for p in profile.get("permits", ()))
    terms.update(f"tag:{t}" for t in profile.get("tags", ()))
    if profile.get("industry"):
        terms.add(f"industry:{profile['industry']}")
    return terms


FACT_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_FACTS = 20


def parse_dates(value: Any) -> dict[str, str] | str:
    """A profile's dated facts normalised (name → YYYY-MM-DD), or the problem as a message."""
    if not isinstance(value, dict):
        return "must be an object of name: YYYY-MM-DD"
    if len(value) > MAX_FACTS:
        return f"{len(value)} dates; at most {MAX_FACTS}"
    out: dict[str, str] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or not FACT_NAME.fullmatch(name):
            return f"{str(name)[:40]!r}: a name of lower-case letters, digits and _"
        if raw is None:
            continue
        try:
            if not isinstance(raw, str) or len(raw) != 10:
                raise ValueError(raw)
            out[name] = date.fromisoformat(raw).isoformat()
        except ValueError:
            return f"{name}: {str(raw)[:20]!r} is not a date (YYYY-MM-DD)"
    return out
