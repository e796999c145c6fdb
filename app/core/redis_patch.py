"""Patch: redis-py's asyncio connection says ConnectionError, not AttributeError or TypeError, when
another task closed it while it was writing.

A Redis Cluster client closes every node's connections, in use or not, when a command meets
CLUSTERDOWN or an uncovered slot (``RedisCluster.aclose`` in ``_execute_command``). A connection
of another task that was just then connecting or writing finds its stream writer gone: redis-py
8.1 lets ``AttributeError: 'NoneType' object has no attribute 'writelines'`` out (on Python 3.12+
``TypeError`` from the transport; redis/redis-py#3546, #4287, the unmerged #4217). That is no
``RedisError``: neither the cluster client's retry nor the agents' wait for an outage knew it,
and a timer that met it stopped the worker (found by the cluster outage test on a loaded
machine). Here such an error, raised where the connection writes (redis-py's connection module
or asyncio's streams and transports), is raised as the ``ConnectionError`` it is; the original
has already dropped the connection, so the next command opens a new one. Any other
AttributeError or TypeError passes through unchanged.

redis-py 8.2 fixed it upstream (#4217 merged: ``_send_packed_command`` checks its writer and
raises ``ConnectionError("Connection closed by the server before write")``). There the wrapper
finds nothing to convert and passes everything through; it stays for the older redis-py that
``pyproject.toml`` still accepts (``UPSTREAM_FIXED`` says which one runs).

A wrapper, not a copy: it holds for any redis-py whose ``send_packed_command`` has this
signature, which ``tests/unit/state/test_redis_patch.py`` checks.
"""

from __future__ import annotations

import asyncio.selector_events
import asyncio.streams
import asyncio.transports
import re
from importlib.metadata import version
from types import TracebackType
from typing import Any

from redis.asyncio import connection as aioconnection
from redis.exceptions import ConnectionError as RedisConnectionError

ORIGINAL = aioconnection.AbstractConnection.send_packed_command
# redis-py 8.2 raises ConnectionError itself when the writer is gone (redis/redis-py#4217)
_RELEASE = re.match(r"(\d+)\.(\d+)", version("redis"))  # "8.2.0", "8.3.0b1", "9.0"
UPSTREAM_FIXED = _RELEASE is not None and (int(_RELEASE[1]), int(_RELEASE[2])) >= (8, 2)
WRITER_FILES = frozenset(module.__file__ for module in (aioconnection, asyncio.streams,
                                                         asyncio.selector_events, asyncio.transports))  # fmt: skip


def closed_while_writing(exc: BaseException) -> bool:
    """Whether ``exc`` is a write finding its stream or transport torn down: an attribute of None
    (the writer, or the transport's loop) or None called (the transport's ``_write_ready``),
    raised in redis-py's connection module or asyncio's streams and transports. A caller's bad
    command is a TypeError there too, of another kind, and passes."""
    if isinstance(exc, AttributeError):
        if exc.obj is not None:
            return False
    elif not (isinstance(exc, TypeError) and str(exc) == "'NoneType' object is not callable"):
        return False
    tb: TracebackType | None = exc.__traceback__
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is not None and last.tb_frame.f_code.co_filename in WRITER_FILES


def install() -> None:
    if getattr(aioconnection.AbstractConnection.send_packed_command, "says_closed", False):
        return

    async def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        try:
            await ORIGINAL(self, command, check_health)
        except (AttributeError, TypeError) as exc:
            if not closed_while_writing(exc):
                raise
            where = getattr(self, "host", None) or getattr(self, "path", "")
            port = getattr(self, "port", None)
            raise RedisConnectionError(
                f"connection to {where}{f':{port}' if port else ''} was closed while writing "
                f"({type(exc).__name__})"
            ) from exc

    send_packed_command.says_closed = True  # type: ignore[attr-defined]
    send_packed_command.__doc__ = ORIGINAL.__doc__
    aioconnection.AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
