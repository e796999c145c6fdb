"""The window in which a SIGKILL sends an e-mail twice: from the SMTP gateway's write of a message's
last byte (the hook is called right after it) to the moment the "sent" record's command starts on
its way to Redis. A worker killed in between leaves a message the server has and a
record that does not say so; the replay sends it again.

Measured for the hook as the client's own call (``SentMark`` called without ``ready()``, as the
hook was before) and prepared (``ready()`` before the write: the connection taken and the command
packed), on one Redis and on a local three-master cluster, alternately, in rounds.

    python -m bench.sent_mark [--marks 3000] [--rounds 3]

Redis: ``LIFECYCLE_REDIS_URL`` (the shared one by default) under a prefix of its own, deleted
afterwards; the cluster is started here from plain redis-server processes.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from redis.connection import Connection

from app.core.redis_client import sync_redis
from app.core.settings import load_settings
from app.state.records import SentMark
from devstack.stack import RedisClusterServers


def windows(url: str, prepared: bool, count: int) -> list[float]:
    """µs from the hook's call to the start of its command's send, ``count`` times (a SIGKILL
    does not stop a system call half way: once the send has begun, the command reaches Redis)."""
    client = sync_redis(url)
    prefix = f"bench-sm-{secrets.token_hex(4)}:"
    sent_at: list[float] = []
    original = Connection.send_packed_command

    def timed(self: Connection, command: object, check_health: bool = True) -> None:
        sent_at.append(time.perf_counter())
        original(self, command, check_health)  # type: ignore[arg-type]

    Connection.send_packed_command = timed  # type: ignore[method-assign]
    out = []
    try:
        client.ping()
        for i in range(count):
            mark = SentMark(client, f"{prefix}n:{{{i:032x}}}", 1)
            if prepared:
                mark.ready()
            sent_at.clear()
            called = time.perf_counter()
            mark()
            out.append((sent_at[0] - called) * 1e6)
            mark.close()
    finally:
        Connection.send_packed_command = original  # type: ignore[method-assign]
        for start in range(0, count, 500):
            for i in range(start, min(start + 500, count)):
                client.delete(f"{prefix}n:{{{i:032x}}}")
        client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--marks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cluster = RedisClusterServers.start(Path(tempfile.mkdtemp(prefix="bench-sm-")))
    try:
        targets = {"one Redis": load_settings().redis_url, "cluster": cluster.url}
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for target, url in targets.items():
                for how, prepared in (("the client's call", False), ("prepared", True)):
                    results.setdefault((target, how), []).extend(windows(url, prepared, args.marks))
        for (target, how), values in results.items():
            values.sort()
            print(f"{target:9} {how:18} median {statistics.median(values):6.1f} µs, "
                  f"p99 {values[int(len(values) * 0.99)]:6.1f} µs")  # fmt: skip
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
