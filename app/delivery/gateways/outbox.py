"""The ``file://`` SMS gateway: one JSON object per SMS appended to a JSON Lines file.

For development and tests: the file is what a carrier would have been asked to send. A batch is
appended at once (``send_batch``: one lock, one write). It is
idempotent: under an exclusive lock it reads what other writers appended since it last looked and
never writes a notification id twice, so a notification re-sent after a crash (its first write
landed, its "sent" status did not) appears once. Several workers can share one outbox.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.core.codec import json_bytes
from app.core.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from app.core.timestamps import utc_now_ms
from app.notifications import Notification


class OutboxSmsGateway:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: set[str] = set()
        self._offset = 0  # how far this process has read the file

    @classmethod
    def from_url(cls, url: str) -> OutboxSmsGateway:
        path = unquote(urlsplit(url).path)
        if not path.startswith("/"):
            raise ConfigError(f"LIFECYCLE_SMS_URL: file:// needs an absolute path, not {url!r}")
        return cls(Path(path))

    async def send(
        self, notification: Notification, on_commit: Callable[[], None] | None = None
    ) -> str:
        line = self._line(notification)
        # Synchronous on purpose: a short locked append, with no hand-off between the write and
        # the caller recording it as sent.
        self._append([(notification.id, line)])
        return f"outbox:{notification.id}"

    async def send_batch(
        self, batch: Sequence[Notification]
    ) -> list[str | TemporaryDeliveryError | PermanentDeliveryError]:
        """A whole batch in one locked append (one open, one lock, one write): each
        notification's reference, or why it was not written."""
        results: list[str | TemporaryDeliveryError | PermanentDeliveryError] = []
        lines = []
        for n in batch:
            try:
                lines.append((n.id, self._line(n)))
                results.append(f"outbox:{n.id}")
            except PermanentDeliveryError as exc:
                results.append(exc)
        try:
            self._append(lines)
        except TemporaryDeliveryError as exc:
            return [exc if isinstance(r, str) else r for r in results]
        return results

    @staticmethod
    def _line(notification: Notification) -> bytes:
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
            "sent_at": utc_now_ms(),
        }
        return json_bytes(record) + b"\n"  # orjson: 0.4 µs a line, the standard encoder 3

    def _append(self, lines: list[tuple[str, bytes]]) -> None:
        """Append the lines of the ids not written yet (by anyone), in one write."""
        if not lines:
            return
        try:
            fd = self._open()
        except OSError as exc:
            raise TemporaryDeliveryError(f"cannot open the SMS outbox: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._catch_up(fd)
            fresh: dict[str, bytes] = {}
            for notification_id, line in lines:
                if notification_id not in self._written:
                    fresh.setdefault(notification_id, line)
            if not fresh:
                return
            data = b"".join(fresh.values())
            written = os.write(fd, data)
            while written < len(data):  # a short write (a full disk, a signal): the rest
                written += os.write(fd, data[written:])
            self._offset += len(data)
            self._written.update(fresh)
        except OSError as exc:
            raise TemporaryDeliveryError(f"cannot write the SMS outbox: {exc.strerror}") from exc
        finally:
            os.close(fd)

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
        try:
            return os.open(self.path, flags, 0o640)
        except FileNotFoundError:  # the folder does not exist (yet, or any more)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, flags, 0o640)

    def _catch_up(self, fd: int) -> None:
        """Learn the ids appended since this process last read the file."""
        size = os.fstat(fd).st_size
        if size < self._offset:  # the file was truncated or replaced
            self._offset, self._written = 0, set()
        if size == self._offset:
            return
        chunk = os.pread(fd, size - self._offset, self._offset)
        complete = chunk[: chunk.rfind(b"\n") + 1]
        for raw in complete.splitlines():
            try:
                self._written.add(json.loads(raw)["id"])
            except (ValueError, KeyError):
                continue
        self._offset += len(complete)

    async def check(self) -> str | None:
        """The outbox can be appended to: its folder exists and is writable."""
        folder = self.path.parent
        if not folder.is_dir():
            return "the outbox's folder does not exist"
        if not os.access(folder, os.W_OK) or (
            self.path.exists() and not os.access(self.path, os.W_OK)
        ):
            return "the outbox is not writable"
        return None

    async def close(self) -> None:
        return None
