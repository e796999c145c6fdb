"""Decoding what comes from outside (Kafka values, files) and from Redis, in one place.

``decode_json`` turns untrusted bytes into JSON or a reason (never RecursionError, never a
traceback); ``text`` and ``texts`` turn Redis replies (bytes, or str when a client decodes) into
str.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, overload

import orjson

from app.core.errors import EventRejected


@overload
def text(value: bytes | str) -> str: ...
@overload
def text(value: None) -> None: ...
def text(value: bytes | str | None) -> str | None:
    """A Redis reply as str (UTF-8), None kept."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def texts(values: Iterable[Any]) -> list[str]:
    """Redis replies (members, keys) as str; anything else as ``str()`` gives it."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def decode_json(raw: bytes, what: str, max_depth: int) -> Any:
    """JSON from bytes, or EventRejected with the reason: not UTF-8, not JSON, nested deeper than
    ``max_depth`` (checked before parsing: Python's parser would raise RecursionError), an
    integer of more digits than Python converts (ValueError), or a string holding a lone
    surrogate escape (``"\\ud800"``: valid JSON, but no UTF-8 encodes it, so Redis, Kafka and
    every gateway would fail on it later)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventRejected(f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    # counting is C-fast; the scan runs only when there are brackets enough to be too deep
    if text.count("[") + text.count("{") > max_depth and (depth := nesting_depth(text)) > max_depth:
        raise EventRejected(f"invalid {what}: nested {depth} deep; the limit is {max_depth}")
    try:
        doc = _strict.decode(text)
    except json.JSONDecodeError as exc:
        raise EventRejected(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except (ValueError, RecursionError) as exc:  # an integer of 5,000 digits, NaN, 1e400
        raise EventRejected(f"invalid {what}: {str(exc)[:120]}") from exc
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):  # rare: checked only then
        try:
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:  # a pair makes one character; half a pair is no text
            raise EventRejected(
                f"invalid {what}: a string holds half a character (a lone surrogate, "
                f"\\u{ord(exc.object[exc.start]):04x}), which no message, store or topic can carry"
            ) from exc
    return doc


# The standard encoder, built once: ``json.dumps`` with any argument but the object builds a
# JSONEncoder for every call, 1.3 µs of a small document's 4 (measured).
_compact_stdlib = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_bytes(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes: ``json.dumps(value, ensure_ascii=False, separators=(",",
    ":")).encode()``, by orjson (a tenth of the standard encoder's cost on a trace step, a
    fourteenth on a batch's writes, measured; the hot paths encode several documents a
    notification). What orjson refuses (an integer beyond 64 bits, a key that is not a string, a
    string no UTF-8 encodes) goes to the standard encoder, which encodes or raises as before. A
    float that is not finite is ``null`` (the standard encoder wrote ``NaN``, which is no JSON);
    none comes from outside (``decode_json`` refuses them)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is one
        return _compact_stdlib(value).encode("utf-8")


def compact_json(value: Any) -> str:
    """JSON text, no spaces, non-ASCII kept (``json_bytes`` as text)."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:
        return _compact_stdlib(value)


text_json = json.JSONEncoder(ensure_ascii=False).encode
"""JSON text, non-ASCII kept: ``json.dumps(value, ensure_ascii=False)``."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {literal[:40]} is too large to be one")
    return value


# Python's parser takes NaN, Infinity and -Infinity (no JSON has them) and reads 1e400 as
# infinity: every store, topic and gateway downstream would carry a value no JSON reader takes.
_strict = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def nesting_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in JSON text, strings skipped; linear, no recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
