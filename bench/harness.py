"""A worker-process harness shared by the crash-recovery test and benchmark: start and kill
`lifecycle worker` processes, generate a burst, count what reached the SMTP server and the outbox.
"""

from __future__ import annotations

import asyncio
import cProfile
import inspect
import json
import os
import pstats
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import redis.asyncio as aioredis

from app.core.redis_client import cluster_nodes
from app.core.settings import PROJECT_ROOT, Settings, load_settings, to_environ
from app.core.timestamps import local_iso
from app.intake.events import Event, validate_event
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from devstack.stack import SmtpSink, free_port, spawn, stop_process
from wiring.runtime import Runtime


def burst_profiles(count: int) -> list[dict[str, Any]]:
    """Residents with a mobile and an e-mail: each graduate event gives one SMS and one e-mail."""
    return [{"id": f"P-B{i:06d}", "kind": "person", "name": f"居民{i}", "district": "440308",
             "mobile": f"+86138{i:08d}", "email": f"r{i:06d}@example.cn"} for i in range(count)]  # fmt: skip


def burst_events(count: int, run: str) -> list[Event]:
    return [validate_event({
        "id": f"BURST-{run}-{i:06d}", "type": "graduate.reception.approved",
        "occurred_at": local_iso(-3600), "source": "bench",
        "subject": {"kind": "person", "id": f"P-B{i:06d}"}, "district": "440308",
        "data": {"approval_no": f"B{i:06d}", "school": "深圳大学", "receiving_unit": "盐田港集团",
                 "approved_on": "2026-07-01"}}) for i in range(count)]  # fmt: skip


async def load_profiles(settings: Settings, profiles: list[dict[str, Any]]) -> None:
    runtime = Runtime.build(settings, deliver=False)
    store: ProfileStore = runtime.profiles
    try:
        for start in range(0, len(profiles), 50):
            await asyncio.gather(
                *(store.upsert(parse_profile(p)) for p in profiles[start : start + 50])
            )
    finally:
        await runtime.close()


async def expected_ids(settings: Settings, events: list[Event]) -> dict[str, set[str]]:
    """What the worker must deliver: notification ids by channel, from the same planner."""
    runtime = Runtime.build(settings, deliver=False)
    out: dict[str, set[str]] = {"sms": set(), "email": set()}
    try:
        for event in events:
            for n in (await runtime.planner.plan(event)).notifications:
                out[n.channel].add(n.id)
    finally:
        await runtime.close()
    return out


class Burst(NamedTuple):
    events: list[Event]
    expected: dict[str, set[str]]  # notification ids by channel
    total: int  # notifications in all


async def prepare_burst(settings: Settings, count: int, run: str) -> Burst:
    """Profiles stored for ``count`` graduate events of ``run``; the events, and what they must
    deliver."""
    await load_profiles(settings, burst_profiles(count))
    events = burst_events(count, run)
    expected = await expected_ids(settings, events)
    return Burst(events, expected, sum(len(ids) for ids in expected.values()))


@dataclass
class Workers:
    settings: Settings
    log_dir: Path
    processes: list[Any] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # more environment (LIFECYCLE_METRICS=off)
    code: Path = PROJECT_ROOT  # the checkout the workers run (another revision's, to compare)

    def start(self) -> Any:
        # each worker its own web port: two on one machine cannot share one
        env = {
            **os.environ,
            **to_environ(self.settings),
            "LIFECYCLE_WEB_PORT": str(free_port()),
            **self.env,
        }
        proc = spawn([sys.executable, "-m", "lifecycle", "worker"],
                     self.log_dir / f"worker-{len(self.processes)}.log", env=env, cwd=self.code)  # fmt: skip
        self.processes.append(proc)
        return proc

    def log(self, proc: Any) -> Path:
        return self.log_dir / f"worker-{self.processes.index(proc)}.log"

    async def ready(self, proc: Any, timeout: float = 60) -> bool:
        """Wait until the worker has joined its group and is consuming."""
        log = self.log(proc)

        def joined() -> bool:
            return log.exists() and "[^Worker]: Ready" in log.read_text(errors="replace")

        return await wait_until(joined, timeout, every=0.2)

    def kill(self, proc: Any) -> None:
        proc.kill()  # SIGKILL: no clean-up of any kind
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.processes:
            stop_process(proc)


@dataclass
class OutboxTail:
    """The SMS outbox's complete lines not read yet (a worker may be mid-write), each read once."""

    path: Path
    offset: int = 0

    def new_lines(self) -> list[bytes]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [line for line in complete.splitlines() if line.strip()]


@dataclass
class Delivered:
    """What reached the SMTP server and the SMS outbox, by notification id; read incrementally."""

    outbox: Path
    sink: SmtpSink
    sms: Counter[str] = field(default_factory=Counter)
    email: Counter[str] = field(default_factory=Counter)
    _tail: OutboxTail | None = None
    _mails: int = 0

    def refresh(self) -> Delivered:
        if self._tail is None:
            self._tail = OutboxTail(self.outbox)
        for line in self._tail.new_lines():
            self.sms[json.loads(line)["id"]] += 1
        mails = self.sink.received()
        for message in mails[self._mails :]:
            self.email[str(message["X-Lifecycle-Notification"])] += 1
        self._mails = len(mails)
        return self

    @property
    def total(self) -> int:
        return sum(self.sms.values()) + sum(self.email.values())


def tally(expected: dict[str, set[str]], got: Delivered) -> dict[str, int]:
    """expected / delivered / duplicated / lost, counted per notification id."""
    delivered = {i for i in got.sms} | {i for i in got.email}
    wanted = expected["sms"] | expected["email"]
    twice_sms = sum(c - 1 for c in got.sms.values() if c > 1)
    twice_email = sum(c - 1 for c in got.email.values() if c > 1)
    return {"expected": len(wanted), "delivered": len(wanted & delivered),
            "duplicated": twice_sms + twice_email, "duplicated_sms": twice_sms,
            "duplicated_email": twice_email, "lost": len(wanted - delivered),
            "unexpected": len(delivered - wanted)}  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used (Linux, /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_until(predicate: Any, timeout: float, every: float = 0.05) -> bool:
    """Whether ``predicate()`` (a plain or an async function) became true within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return True
        await asyncio.sleep(every)
    return False


@dataclass(frozen=True)
class Variant:
    """What ``--compare`` runs (``bench.pipeline``, ``bench.fanout``): a checkout's workers, with
    environment of their own: ``DIR`` or ``DIR+KEY=VALUE[+KEY=VALUE…]``."""

    spec: str
    code: Path
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> Variant:
        tree, *pairs = spec.split("+")
        env = []
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise SystemExit(f"--compare: {pair!r} is not KEY=VALUE")
            env.append((key, value))
        code = Path(tree or ".").resolve()
        if not (code / "lifecycle").is_dir():  # (SystemExit: a command line's mistake)
            raise SystemExit(f"--compare: {code} is not a checkout of this project")
        return cls(spec, code, tuple(env))


async def redis_usage(url: str) -> tuple[float, float]:
    """Redis's memory in use (bytes) and the CPU it has used (seconds), summed over a cluster's
    nodes."""
    found = cluster_nodes(url)
    urls = [f"redis://{h}:{p}/0" for h, p in found[0]] if found else [url]
    memory_total = cpu_total = 0.0
    for one in urls:
        client = aioredis.Redis.from_url(one)
        try:
            memory, cpu = await client.info("memory"), await client.info("cpu")
            memory_total += float(memory["used_memory"])
            cpu_total += float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
        finally:
            await client.aclose()
    return memory_total, cpu_total


def in_process_settings(prefix: str, **more: Any) -> Settings:
    """For a bench that runs the planning agent's work in this process (``bench.plan_deliver``,
    ``bench.plan_chunk``): Redis from the environment under ``prefix``, SMS to an outbox of its
    own, no quiet hours, cap or pacing, and e-mail to nowhere."""
    outbox = Path(tempfile.mkdtemp()) / "sms.jsonl"
    return load_settings().with_(secret=secrets.token_urlsafe(32), redis_prefix=prefix,
                                 sms_url=f"file://{outbox}", quiet_hours="off", daily_cap=0,
                                 smtp_url="smtp://127.0.0.1:1", sms_rate=0, **more)  # fmt: skip


@dataclass
class Timed:
    """CPU and wall seconds of a ``with`` block (``cpu``, ``wall`` once it ends); with
    ``profile``, cProfile runs over it and ``print_profile`` prints its top functions (the
    figures then include its overhead)."""

    profile: bool = False
    cpu: float = 0.0
    wall: float = 0.0
    _profiler: cProfile.Profile | None = None

    def __enter__(self) -> Timed:
        self._profiler = cProfile.Profile() if self.profile else None
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        if self._profiler:
            self._profiler.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._profiler:
            self._profiler.disable()
        self.cpu, self.wall = time.process_time() - self.cpu, time.perf_counter() - self.wall

    def print_profile(self, sort: str = "tottime", top: int = 40) -> None:
        if self._profiler:
            pstats.Stats(self._profiler).sort_stats(sort).print_stats(top)
