"""The ``file://`` SMS gateway: one JSON object per SMS appended to a JSON Lines file.

For development and tests: the file is what a carrier would have been asked to send. Each line
is written with one ``write`` on a file opened for appending, under an exclusive lock, so several
workers can share one outbox without interleaving lines.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from app.notifications import Notification


class OutboxSmsGateway:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_url(cls, url: str) -> OutboxSmsGateway:
        path = unquote(urlsplit(url).path)
        if not path.startswith("/"):
            raise ConfigError(f"LIFECYCLE_SMS_URL: file:// needs an absolute path, not {url!r}")
        return cls(Path(path))

    async def send(self, notification: Notification) -> str:
        if notification.channel != "sms" or "text" not in notification.content:
            raise PermanentDeliveryError("not an SMS notification")
        record = {
            "id": notification.id,
            "to": notification.address,
            "text": notification.content["text"],
            "segments": notification.content["segments"],
            "encoding": notification.content["encoding"],
            "rule_id": notification.rule_id,
            "event_id": notification.event_id,
            "category": notification.category,
            "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        await asyncio.to_thread(self._append, line)
        return f"outbox:{notification.id}"

    def _append(self, line: bytes) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            raise TemporaryDeliveryError(f"cannot open the SMS outbox: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        except OSError as exc:
            raise TemporaryDeliveryError(f"cannot write the SMS outbox: {exc.strerror}") from exc
        finally:
            os.close(fd)

    async def close(self) -> None:
        return None
