"""``SentMark``: the record of a send written the moment the message's last byte is handed over,
prepared before that write, sent in one system call after it; and what reaches Redis when the
worker is killed right after."""

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
from redis import Redis

from app.core.redis_client import sync_redis
from app.delivery.gateways.email import SmtpGateway
from app.state import DeliveryState
from app.state.records import SentMark
from tests.helpers import ON_BOTH_REDIS
from tests.unit.delivery.test_deliverer import notification
from tests.unit.delivery.test_email import FROM


def in_use(client: Redis) -> int:
    """Connections taken from the client's pools (a cluster's: every node's) and not given back."""
    pools = ([n.redis_connection.connection_pool for n in client.get_nodes() if n.redis_connection]
             if hasattr(client, "get_nodes") else [client.connection_pool])  # fmt: skip
    return sum(len(p._in_use_connections) for p in pools)


@ON_BOTH_REDIS
async def test_ready_then_called_records_sent_and_gives_the_connection_back(
    redis_url, redis_client, prefix
):
    client = sync_redis(redis_url)
    state = DeliveryState(redis_client, prefix, client)
    try:
        mark = state.sent_mark("n-1", 2)
        assert isinstance(mark, SentMark)
        mark.ready()
        assert in_use(client) == 1  # taken before the message's last write, not after
        assert await state.record("n-1") == {}  # nothing written yet
        mark()
        record = await state.record("n-1")
        assert (record["status"], record["attempts"]) == ("sent", "2")
        assert record["updated_at"].endswith("+00:00")
        mark.close()
        assert in_use(client) == 0
        unready = state.sent_mark("n-2", 1)  # without ready(): the client's own call
        assert unready is not None
        unready()
        unready.close()
        assert (await state.record("n-2"))["status"] == "sent"
    finally:
        client.close()


async def test_redis_not_answering_loses_nothing_but_the_early_mark(caplog, prefix):
    from devstack.stack import free_port

    client = Redis(port=free_port(), socket_connect_timeout=0.5)  # nobody listens there
    mark = SentMark(client, f"{prefix}n:{{n-3}}", 1)
    mark.ready()  # connecting fails: logged, no raise; the send goes on
    mark()  # the client's own call fails too: logged, no raise
    mark.close()
    assert [r.levelname for r in caplog.records].count("WARNING") == 2


@ON_BOTH_REDIS
async def test_the_smtp_gateway_gets_the_mark_ready_before_the_last_write_and_closes_it(
    smtp_server, redis_url, redis_client, prefix
):
    config, server = smtp_server()
    client = sync_redis(redis_url)
    state = DeliveryState(redis_client, prefix, client)
    gateway = SmtpGateway(config, mail_from=FROM)
    seen: list[tuple[str, int, int]] = []

    class Watched(SentMark):
        def ready(self) -> None:
            super().ready()
            seen.append(("ready", len(server.accepted), in_use(client)))

        def __call__(self) -> None:
            super().__call__()
            seen.append(("called", -1, in_use(client)))  # the server (a thread) may have it now

    try:
        n = notification("email", "a@example.cn")
        await gateway.send(n, on_commit=Watched(client, state.key("n", n.id), 1))
        assert seen == [("ready", 0, 1), ("called", -1, 1)]  # ready before the last write
        assert len(server.accepted) == 1 and in_use(client) == 0
        assert await state.status(n.id) == "sent"
        refused, _ = smtp_server("550 5.1.1 no such user")  # the mark is closed on a refusal too
        other = SmtpGateway(refused, mail_from=FROM)
        m = notification("email", "b@example.cn", event_id="E2")
        with pytest.raises(Exception, match="550"):
            await other.send(m, on_commit=Watched(client, state.key("n", m.id), 1))
        assert in_use(client) == 0
        await other.close()
    finally:
        await gateway.close()
        client.close()


DIE_AFTER_THE_MARK = textwrap.dedent("""
    import asyncio, os, signal, sys
    from app.core.redis_client import sync_redis
    from app.core.settings import SmtpConfig
    from app.delivery.gateways.email import SmtpGateway
    from app.state.records import SentMark
    from tests.unit.delivery.test_deliverer import notification

    redis_url, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

    class DieAfterSending(SentMark):
        def __call__(self):  # the record's command handed to the kernel, then the worker killed
            self.conn.send_packed_command(self.packed, check_health=False)
            os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        gateway = SmtpGateway(SmtpConfig("127.0.0.1", port), mail_from="noreply@example.cn")
        mark = DieAfterSending(sync_redis(redis_url), key, 1)
        await gateway.send(notification("email", "a@example.cn"), on_commit=mark)

    asyncio.run(main())
""")


@ON_BOTH_REDIS
async def test_a_worker_killed_right_after_the_mark_is_sent_leaves_the_message_and_its_record(
    smtp_server, redis_url, redis_client, prefix
):
    """Neither half lost: the message reaches the SMTP server (the kernel sends what it holds of
    a dead process's socket) and the record reaches Redis, so a replay finds it sent."""
    config, server = smtp_server()
    state = DeliveryState(redis_client, prefix)
    n = notification("email", "a@example.cn")
    key = state.key("n", n.id)
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", DIE_AFTER_THE_MARK, redis_url, key, str(config.port)],
        cwd=os.getcwd(), capture_output=True, timeout=60)  # fmt: skip
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    for _ in range(100):
        if server.accepted:
            break
        await asyncio.sleep(0.05)
    assert len(server.accepted) == 1
    assert await state.status(n.id) == "sent"
