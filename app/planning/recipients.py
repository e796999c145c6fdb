"""Who in a profile a rule reaches, and what a template sees about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.intake.events import Event
from app.notifications import Channel
from app.planning.model import Rule
from app.profiles.model import Profile

ADDRESS_FIELD = {Channel.SMS: "mobile", Channel.EMAIL: "email"}


@dataclass(frozen=True)
class Recipient:
    key: str  # the profile id, or profile id/role/n for an enterprise contact
    profile: Profile
    name: str | None
    role: str | None
    mobile: str | None
    email: str | None

    def address(self, channel: str) -> str | None:
        return self.mobile if channel == Channel.SMS else self.email


def template_context(event: Event, profile: Profile, recipient: Recipient | None) -> dict[str, Any]:
    """What a template sees."""
    return {
        "event": event.as_dict(),
        "data": event.data,
        "profile": profile,
        "recipient": {
            "name": recipient.name if recipient else profile.get("name"),
            "role": recipient.role if recipient else None,
        },  # fmt: skip
    }


def recipients_of(rule: Rule, profile: Profile) -> list[Recipient]:
    """The people a rule reaches in one profile: the person, or chosen enterprise contacts."""
    if profile["kind"] == "person":
        return [Recipient(profile["id"], profile, profile.get("name"), None,
                          profile.get("mobile"), profile.get("email"))]  # fmt: skip
    contacts = profile.get("contacts", [])
    chosen = [
        (i, c)
        for i, c in enumerate(contacts)
        if rule.contacts is None or c["role"] in rule.contacts
    ]
    if not chosen and rule.fallback_contacts:
        chosen = [(i, c) for i, c in enumerate(contacts) if c["role"] in rule.fallback_contacts]
    return [Recipient(f"{profile['id']}/{c['role']}/{i}", profile, c.get("name"), c["role"],
                      c.get("mobile"), c.get("email")) for i, c in chosen]  # fmt: skip
