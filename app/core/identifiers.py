"""Chinese identifiers: the unified social credit code (GB 32100-2015) of an enterprise."""

from __future__ import annotations

import unicodedata

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def normalise_uscc(raw: str) -> str:
    """Full-width characters folded, spaces removed, upper case."""
    return unicodedata.normalize("NFKC", raw).replace(" ", "").upper()


def uscc_problem(code: str) -> str | None:
    """Why ``code`` is not a valid unified social credit code, or None if it is."""
    if len(code) != 18:
        return f"a unified social credit code has 18 characters, not {len(code)}"
    bad = [ch for ch in code if ch not in _USCC_ALPHABET]
    if bad:
        return f"character {bad[0]!r} is not allowed in a unified social credit code"
    total = sum(_USCC_ALPHABET.index(ch) * w for ch, w in zip(code, _USCC_WEIGHTS, strict=False))
    expected = _USCC_ALPHABET[(31 - total % 31) % 31]
    if code[17] != expected:
        return f"check character is {code[17]!r}, expected {expected!r}"
    return None
