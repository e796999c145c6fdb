"""SMS length: encoding and segment count of the rendered text, signature included.

GSM-7: 160 characters in one message, 153 per part when split; the extension characters
``^ | { } [ ] ~ \\ €`` take two. A single character outside GSM-7 makes the whole message UCS-2:
70 UTF-16 code units in one message, 67 per part (so a non-BMP character such as 𠮷 counts two).
All Chinese text is UCS-2.
"""

from __future__ import annotations

from dataclasses import dataclass

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # "GSM7" or "UCS2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def sms_length(text: str) -> SmsLength:
    """Encoding, length in units and number of segments of ``text`` as sent."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENDED for ch in text):
        units = sum(2 if ch in _GSM7_EXTENDED else 1 for ch in text)
        return SmsLength("GSM7", units, _segments(units, single=160, part=153))
    units = len(text.encode("utf-16-le")) // 2
    return SmsLength("UCS2", units, _segments(units, single=70, part=67))


def _segments(units: int, *, single: int, part: int) -> int:
    if units == 0:
        return 0
    if units <= single:
        return 1
    return -(-units // part)


def with_signature(text: str, signature: str) -> str:
    """Put the sender's signature (e.g. 【盐田区政务服务】) in front, once."""
    text = text.strip()
    if not signature or text.startswith(signature):
        return text
    return signature + text
