"""Mobile numbers: normalisation to E.164 and validation.

Chinese mobile numbers are eleven digits starting 13–19 (the permissive plan rule: number ranges
are allocated over time, 192 and 190/196/197 among the newest, so no dated allow-list).
Thirteen-digit IoT numbers (14x…) cannot receive SMS and are refused. Numbers of other countries are
accepted when written with their ``+`` country code and 8–15 digits in all.
"""

from __future__ import annotations

import re
import unicodedata

from app.core.errors import InvalidPhoneNumber

_SEPARATORS = re.compile(r"[\s\-().]")
_CN_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def normalise_mobile(raw: str) -> str:
    """Return ``raw`` as an E.164 number (``+8613800138000``) or raise InvalidPhoneNumber."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhoneNumber("mobile number is empty")
    text = unicodedata.normalize("NFKC", raw.strip())  # full-width digits from form input
    number = _SEPARATORS.sub("", text.replace("(0)", ""))
    if number.startswith("00"):
        number = "+" + number[2:]
    if number.startswith("+86"):
        return "+86" + _china_national(number[3:])
    if number.startswith("+"):
        if _E164.fullmatch(number):
            return number
        raise InvalidPhoneNumber("not an E.164 number (a + and 8 to 15 digits)")
    if number.startswith("86") and len(number) == 13:
        number = number[2:]
    return "+86" + _china_national(number)


def _china_national(digits: str) -> str:
    if not (digits.isascii() and digits.isdigit()):  # "١٣٨…" (Arabic-Indic) is a digit to Python
        raise InvalidPhoneNumber("a mobile number has digits only (0-9)")
    if len(digits) == 13 and digits.startswith("14"):
        raise InvalidPhoneNumber("13-digit IoT numbers cannot receive SMS")
    if len(digits) != 11:
        raise InvalidPhoneNumber(f"a Chinese mobile number has 11 digits, not {len(digits)}")
    if not _CN_MOBILE.fullmatch(digits):
        raise InvalidPhoneNumber("a Chinese mobile number starts with 13 to 19")
    return digits
