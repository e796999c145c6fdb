"""A connection closed by another task while it writes says ConnectionError (app.core.redis_patch):
the race a Redis Cluster client's ``aclose`` starts, reproduced on a real connection."""

from __future__ import annotations

import asyncio
import inspect
from urllib.parse import urlparse

import pytest
from redis.asyncio.connection import AbstractConnection, Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from app.core import redis_client, redis_patch  # noqa: F401 - importing the client installs it


def connection(redis_url: str) -> Connection:
    where = urlparse(redis_url)
    # a socket timeout: on Python 3.11 (the project's) asyncio.wait_for runs the write in a task
    # of its own, and the close comes before that task runs
    return Connection(host=where.hostname, port=where.port, socket_timeout=5)


async def closed_while_sending(conn: Connection, send) -> BaseException | None:
    await conn.connect()
    sending = asyncio.create_task(send(conn, conn.pack_command("PING")))
    await asyncio.sleep(0)  # the send has handed its write to a task that has not run yet
    conn._close()  # another task's disconnect: the stream writer is gone
    try:
        await sending
    except BaseException as exc:  # noqa: BLE001 - what it raised is what is asserted
        return exc
    return None


async def test_the_race_is_real_without_the_patch(redis_url) -> None:
    """redis-py before 8.2 lets AttributeError out; 8.2 says ConnectionError itself (#4217)."""
    conn = connection(redis_url)
    raised = await closed_while_sending(conn, redis_patch.ORIGINAL)
    if redis_patch.UPSTREAM_FIXED:
        assert isinstance(raised, RedisConnectionError)
        assert "Connection closed by the server" in str(raised)
    else:
        assert isinstance(raised, AttributeError)
        assert redis_patch.closed_while_writing(raised)


async def test_a_connection_closed_while_writing_says_connection_error_and_reconnects(redis_url):
    conn = connection(redis_url)
    raised = await closed_while_sending(conn, AbstractConnection.send_packed_command)
    assert isinstance(raised, RedisConnectionError)
    if not redis_patch.UPSTREAM_FIXED:  # the patch's own error, from what redis-py let out
        assert "closed while writing" in str(raised)
        assert isinstance(raised.__cause__, AttributeError)
    # the connection is usable again: the next command connects anew
    await conn.send_command("PING")
    assert await conn.read_response() in (b"PONG", "PONG")
    await conn.disconnect()


async def test_a_callers_bad_command_passes_through_as_it_was(redis_url) -> None:
    conn = connection(redis_url)
    await conn.connect()
    with pytest.raises(TypeError, match="iterable"):
        await conn.send_packed_command(object())  # raised in asyncio's transport, but no race
    await conn.disconnect()
    assert not redis_patch.closed_while_writing(ValueError("x"))
    assert not redis_patch.closed_while_writing(AttributeError("x", name="y", obj=object()))


def test_the_wrapped_method_keeps_its_signature() -> None:
    assert list(inspect.signature(redis_patch.ORIGINAL).parameters) == [
        "self", "command", "check_health"]  # fmt: skip
    assert AbstractConnection.send_packed_command.says_closed
