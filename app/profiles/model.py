"""What a stored profile holds, as ``validate.parse_profile`` leaves it (the contract's fields,
normalised: mobiles in E.164, e-mail domains in their ASCII form, credit codes upper-case)."""

from __future__ import annotations

from typing import Any, Literal, Required, TypedDict

Kind = Literal["person", "enterprise"]


class Contact(TypedDict, total=False):
    """An enterprise contact: a role (``safety_officer``, ``legal_representative``, …)."""

    role: Required[str]
    name: str
    mobile: str
    email: str


class Location(TypedDict):
    lat: float
    lon: float


class Profile(TypedDict, total=False):
    id: Required[str]
    kind: Required[Kind]
    name: str | None
    district: Required[str]  # six-digit division code
    language: str
    tags: list[str]
    mobile: str  # a person's
    email: str  # a person's
    industry: str  # an enterprise's
    permits: list[str]
    credit_code: str
    size: str  # an enterprise's: micro, small, medium, large
    registered_capital: float  # an enterprise's, in 万元
    qualifications: list[str]  # an enterprise's: high_tech, specialised_sme…
    contacts: list[Contact]
    location: Location
    preferences: dict[str, Any]  # quiet_hours and the like, free-form, at most 2 KB
    dates: dict[str, str]  # dated facts: id_card_expiry, birth_date… → YYYY-MM-DD
