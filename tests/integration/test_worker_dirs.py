"""The worker writes nothing in its working directory: in the container that directory is root's
(/srv/lifecycle) and the worker runs as another user, so Faust's default data directory
(``lifecycle-notify-data`` in the working directory) stopped it at start-up."""

import asyncio
import os
import tempfile
import uuid
from pathlib import Path

import pytest

from app.core.settings import Settings
from bench.harness import Workers
from devstack.stack import SmtpSink, free_port
from tests.conftest import LOGS, delete_prefix
from tests.helpers import TEST_SECRET

pytestmark = pytest.mark.integration


def test_a_worker_started_in_a_directory_leaves_it_empty(broker, redis_url, tmp_path):
    prefix = f"test-dirs-{uuid.uuid4().hex[:6]}:"
    sink = SmtpSink.start()
    settings = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis_url,
                        redis_prefix=prefix, smtp_url=sink.url, sms_url=f"file://{tmp_path / 'sms.jsonl'}",
                        web_port=free_port(), partitions=2)  # fmt: skip
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    workers = Workers(settings, LOGS / prefix.rstrip(":"), code=cwd)
    worker = workers.start()
    try:
        assert asyncio.run(workers.ready(worker, 120)), (
            f"worker not ready; see {workers.log(worker)}"
        )
        assert list(cwd.iterdir()) == []
        data = Path(tempfile.gettempdir()) / f"lifecycle-notify-data-{os.getuid()}"
        assert (data / "v1" / "tables").is_dir()  # Faust's, made where it may be written
    finally:
        workers.stop_all()
        sink.stop()
        asyncio.run(delete_prefix(redis_url, prefix))


def test_faust_s_own_app_datadir_is_honoured(tmp_path, monkeypatch):
    from wiring.faust_app import faust_config  # noqa: PLC0415 - the environment first

    monkeypatch.setenv("APP_DATADIR", str(tmp_path / "faust"))
    assert faust_config(Settings(secret=TEST_SECRET))["datadir"] == str(tmp_path / "faust")
    monkeypatch.delenv("APP_DATADIR")
    assert not Path(faust_config(Settings(secret=TEST_SECRET))["datadir"]).is_relative_to(
        Path.cwd()
    )
