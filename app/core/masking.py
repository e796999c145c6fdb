"""Masking of personal data for logs, tables and previews.

Phone numbers, ID numbers, e-mail addresses and message bodies never reach a log unmasked.
"""

from __future__ import annotations

import re

# What free text (a rejection reason, an exception's message) may quote of personal data.
_EMAIL_TEXT = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")
_ID_TEXT = re.compile(
    r"(?<![0-9A-Za-z])[1-9][0-9]{5}(?:19|20)[0-9]{2}[0-9]{7}[0-9Xx](?![0-9A-Za-z])"
)
_PHONE_TEXT = re.compile(r"(?<![0-9])(?:(?:\+?86)?1[3-9][0-9]{9}|\+[1-9][0-9]{7,14})(?![0-9])")
MAX_REASON_CHARS = 500


def mask_phone(number: str | None) -> str:
    """``+8613800138000`` → ``+86138****8000``: keeps the prefix and the last four digits."""
    if not number:
        return ""
    if len(number) <= 7:
        return "*" * len(number)
    head = 6 if number.startswith("+86") else max(3, len(number) - 8)
    return number[:head] + "*" * (len(number) - head - 4) + number[-4:]


def mask_email(address: str | None) -> str:
    """``liming@example.cn`` → ``l*****@example.cn``."""
    if not address:
        return ""
    local, at, domain = address.partition("@")
    if not at:
        return "*" * len(address)
    return local[:1] + "*" * max(len(local) - 1, 1) + "@" + domain


def mask_id_number(value: str | None) -> str:
    """A resident-ID or similar number: first three and last two characters kept."""
    if not value:
        return ""
    if len(value) <= 6:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 5) + value[-2:]


def mask_address(channel: str, address: str | None) -> str:
    """Mask a delivery address according to its channel."""
    return mask_email(address) if channel == "email" else mask_phone(address)


def mask_name(name: str | None) -> str:
    """``李明`` → ``李*``; names are personal data too in tables shown to operators."""
    if not name:
        return ""
    return name[:1] + "*" * max(len(name) - 1, 1)


def scrub(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """Free text made safe to log or store as a reason: e-mail addresses, resident-ID numbers
    and phone-like digit runs masked, and cut to ``limit`` characters."""
    text = _EMAIL_TEXT.sub(lambda m: mask_email(m.group()), text)
    text = _ID_TEXT.sub(lambda m: mask_id_number(m.group()), text)
    text = _PHONE_TEXT.sub(lambda m: mask_phone(m.group()), text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
