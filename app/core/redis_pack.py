"""Patch: redis-py packs a command of plain arguments in C, not one argument at a time in Python.

redis-py's ``HiredisRespSerializer.pack`` hands the command to hiredis's C packer, but first runs
each argument through a Python generator and its ``Encoder.encode`` (isinstance checks, then
``str.encode``). A delivery batch's script calls carry their keys as arguments, some 2,500 for a
chunk of 500 warnings: 1,275 µs to pack one such call that way, 190 µs by hiredis alone
(measured), and 5–6 % of a worker's samples in a fan-out (py-spy). hiredis encodes ``str`` as
UTF-8 and ``int`` as its digits, as redis-py's encoder does with its default ``utf-8``/``strict``.

So a command whose arguments are all ``str``, ``bytes`` or ``int`` (not ``bool``, ``float`` or
``memoryview``, whose spelling or handling differ), whose name has no space (redis-py splits
"SCRIPT EXISTS" into two words) and whose connection encodes as UTF-8, strictly, goes to hiredis
directly; any other goes to redis-py's own ``pack``, unchanged. The same bytes either way:
``tests/unit/state/test_redis_pack.py`` compares them.

A wrapper, not a copy: it holds for any redis-py whose serializer keeps its encoder as
``_encode`` (a bound ``Encoder.encode``); with another, everything goes to redis-py's own.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis import connection as redis_connection

ORIGINAL = redis_connection.HiredisRespSerializer.pack
_PLAIN = frozenset((str, bytes, int))


def _utf8_strict(encode: Any) -> bool:
    encoder = getattr(encode, "__self__", None)
    return (getattr(encoder, "encoding", None) == "utf-8"
            and getattr(encoder, "encoding_errors", None) == "strict")  # fmt: skip


def install() -> None:
    if getattr(redis_connection.HiredisRespSerializer.pack, "in_c", False):
        return
    pack_command = hiredis.pack_command

    def pack(self: Any, *args: Any) -> list[bytes]:
        if (args and type(args[0]) is str and " " not in args[0]
                and _PLAIN.issuperset(map(type, args)) and _utf8_strict(self._encode)):  # fmt: skip
            return [pack_command(args)]
        return ORIGINAL(self, *args)

    pack.in_c = True  # type: ignore[attr-defined]
    pack.__doc__ = ORIGINAL.__doc__
    redis_connection.HiredisRespSerializer.pack = pack  # type: ignore[method-assign]
