"""E-mail through SMTP with aiosmtplib.

Messages are ``email.message.EmailMessage`` with the SMTP policy (CRLF, RFC 2047 encoded
non-ASCII headers), a plain-text part and an HTML alternative. Reply codes decide the failure
class: 4xx temporary, 5xx permanent; a refused or dropped connection or a timeout is temporary.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import logging
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import cast

import aiosmtplib

from app.core.errors import PermanentDeliveryError, TemporaryDeliveryError
from app.core.settings import SmtpConfig
from app.delivery.unsubscribe import UnsubscribeLinks
from app.notifications import Notification

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30
IDLE_CHECK_SECONDS = 10


class _MailPolicy(email.policy.EmailPolicy):
    """The SMTP policy, except that ``List-Unsubscribe`` (an ASCII ``<URL>`` longer than a line)
    is written as it is: the standard folding turns a long unbreakable value into RFC 2047
    encoded words, and mail clients then find no ``<URL>`` to offer one-click unsubscribe
    (RFC 2369 and 8058 want the angle-bracketed URL itself, up to RFC 5322's 998 octets)."""

    VERBATIM = frozenset({"list-unsubscribe"})

    def fold(self, name: str, value: str) -> str:
        if name.lower() in self.VERBATIM and str(value).isascii() and len(str(value)) < 990:
            return f"{name}: {value}{self.linesep}"
        return str(super().fold(name, value))

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in self.VERBATIM and str(value).isascii() and len(str(value)) < 990:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return bytes(super().fold_binary(name, value))


POLICY = _MailPolicy(linesep="\r\n")


def build_message(
    notification: Notification, *, mail_from: str, unsubscribe: UnsubscribeLinks | None = None
) -> EmailMessage:
    content = notification.content
    msg = EmailMessage(policy=POLICY)
    sender_name, sender_address = email.utils.parseaddr(mail_from)
    msg["From"] = email.utils.formataddr((sender_name, sender_address), charset="utf-8")
    msg["To"] = email.utils.formataddr(
        (notification.recipient_name or "", notification.address), charset="utf-8"
    )
    msg["Subject"] = content["subject"]
    msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{notification.id}@{sender_address.rpartition('@')[2] or 'localhost'}>"
    msg["X-Lifecycle-Notification"] = notification.id
    msg["X-Lifecycle-Rule"] = notification.rule_id
    msg["X-Lifecycle-Event"] = notification.event_id
    if unsubscribe is not None:  # RFC 2369 and RFC 8058 one-click
        link = unsubscribe.url(notification.address, notification.category, "email")
        msg["List-Unsubscribe"] = f"<{link}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # base64 always: 7-bit clean on the wire, whatever a relay's 8BITMIME support
    msg.set_content(content["text"] + "\n", cte="base64")
    msg.add_alternative(content["html"] + "\n", subtype="html", cte="base64")
    # after the parts: making the message multipart moves Content-* headers into its first part
    msg["Content-Language"] = notification.language
    return msg


CHECK_TIMEOUT_SECONDS = 3.0
# A message's buffered end is looked for in the kernel after half a millisecond, then twice as
# long each time up to 10 ms: a server that stops reading costs a hundred wake-ups a second
# until the reply's timeout ends the send, not two thousand.
HANDOVER_POLL_SECONDS = 0.0005
HANDOVER_POLL_MAX_SECONDS = 0.01


def unsent_bytes(transport: asyncio.BaseTransport | None) -> int | None:
    """Bytes written to ``transport`` that the kernel does not have yet; None when that cannot
    be told (no transport, closing, or a TLS transport whose TCP transport is out of reach).
    Over TLS, the TLS transport's buffer holds only what is not yet encrypted: the encrypted
    bytes wait in the buffer of the TCP transport below it, which counts too. asyncio's TLS
    transport reaches it; uvloop's does not (its attributes are C fields), and is None."""
    if transport is None or transport.is_closing():
        return None
    size = cast(asyncio.WriteTransport, transport).get_write_buffer_size()
    if transport.get_extra_info("ssl_object") is None:
        return size
    below = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    if below is None or below.is_closing():
        return None
    return size + int(below.get_write_buffer_size())


def _guarded(call: Callable[[], None]) -> None:
    """A commit hook's step, whose failure must not fail the send: the message is on its way
    (or about to be), and a send reported failed would be retried, so sent twice. The record
    follows the server's reply as usual."""
    try:
        call()
    except Exception:
        logger.exception("a commit hook failed; the send goes on, recorded after the reply")


class SmtpGateway:
    """Sends over a small pool of persistent SMTP connections.

    A connection is reused for the next message (no QUIT round trip per message); one idle for a
    while is checked with NOOP before reuse; one that failed is dropped.

    ``send(..., on_commit=hook)``: the hook is called the moment the message's terminating ``.``
    is the kernel's, before the server's reply is awaited, so the caller can record the send
    then: a crash can hardly fall between the server accepting a message and the record of it.
    That is synchronously after the last write, when the write handed it all over; when the
    socket's buffer was full (a large message, a slow server) and the event loop keeps the rest,
    soon after the loop has written it; over TLS on uvloop, whose transport cannot tell, at the
    server's reply. Never before: a worker killed in the hook leaves the kernel the whole message
    to deliver (killed with the end still in the loop's buffer, the message would not arrive,
    and a record saying "sent" would lose it). A hook with ``ready()`` has it called just before
    that write (what it can prepare, it prepares there, not between the two), and one with
    ``close()`` has it called once the send is over, whatever happened
    (``app.state.records.SentMark``).
    """

    def __init__(
        self,
        config: SmtpConfig,
        *,
        mail_from: str,
        unsubscribe: UnsubscribeLinks | None = None,
        pool_size: int = 8,
    ) -> None:
        self.config = config
        self.mail_from = mail_from
        self.unsubscribe = unsubscribe
        self.pool_size = pool_size
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._hooks: dict[int, Callable[[], None] | None] = {}
        self._unmarked: dict[int, Callable[[], None]] = {}  # terminator written, hook not called
        self._slots: asyncio.Semaphore | None = None

    async def send(
        self, notification: Notification, on_commit: Callable[[], None] | None = None
    ) -> str:
        if notification.channel != "email" or "subject" not in notification.content:
            raise PermanentDeliveryError("not an e-mail notification")
        message = build_message(
            notification, mail_from=self.mail_from, unsubscribe=self.unsubscribe
        )
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.pool_size)
        async with self._slots:
            client = await self._client()
            self._hooks[id(client)] = on_commit
            try:
                await client.send_message(message)
                self._mark(id(client), on_commit)  # accepted: at the latest, now
            except aiosmtplib.SMTPRecipientsRefused as exc:
                client.close()
                raise _by_code(min(r.code for r in exc.recipients), "recipient refused") from exc
            except aiosmtplib.SMTPResponseException as exc:
                client.close()
                raise _by_code(exc.code, exc.message) from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                client.close()
                raise TemporaryDeliveryError(
                    f"SMTP connection failed: {type(exc).__name__}"
                ) from exc
            finally:
                self._hooks.pop(id(client), None)
                self._unmarked.pop(id(client), None)
                close = getattr(on_commit, "close", None)
                if close is not None:
                    close()
            self._idle.append((client, time.monotonic()))
        return str(message["Message-ID"])

    async def check(self) -> str | None:
        """The SMTP server answers: a connection of its own, EHLO (by connect) and NOOP, closed."""
        config = self.config
        client = aiosmtplib.SMTP(hostname=config.host, port=config.port, use_tls=config.use_tls,
                                 start_tls=config.start_tls, timeout=CHECK_TIMEOUT_SECONDS)  # fmt: skip
        try:
            await client.connect()
            await client.noop()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return f"SMTP unreachable: {type(exc).__name__}"
        finally:
            client.close()
        return None

    async def _client(self) -> aiosmtplib.SMTP:
        while self._idle:
            client, since = self._idle.pop()
            if not client.is_connected:
                continue
            if time.monotonic() - since < IDLE_CHECK_SECONDS:
                return client
            try:
                await client.noop()
                return client
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
        config = self.config
        client = aiosmtplib.SMTP(hostname=config.host, port=config.port, use_tls=config.use_tls,
                                 start_tls=config.start_tls, username=config.username,
                                 password=config.password, timeout=TIMEOUT_SECONDS)  # fmt: skip
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TemporaryDeliveryError(f"SMTP connection failed: {type(exc).__name__}") from exc
        self._watch_commits(client)
        return client

    def _watch_commits(self, client: aiosmtplib.SMTP) -> None:
        """Call the current send's hook the moment the data terminator is the kernel's: right
        after its write if that wrote it all, else as soon as the event loop has written the
        rest (looked for after HANDOVER_POLL_SECONDS, then less often), else at the server's
        reply (``send``)."""
        protocol = client.protocol
        assert protocol is not None
        write = protocol.write
        key = id(client)

        def write_and_notice(data: bytes) -> None:
            hook = self._hooks.get(key)
            last = hook is not None and data.endswith(b"\r\n.\r\n")
            ready = getattr(hook, "ready", None) if last else None
            if ready is not None:
                _guarded(ready)
            write(data)
            if hook is None or not last:
                return
            self._unmarked[key] = hook
            transport = cast(asyncio.WriteTransport | None, protocol.transport)
            if unsent_bytes(transport) == 0:
                self._mark(key, hook)
            elif transport is not None:
                self._mark_when_handed_over(key, hook, transport)

        protocol.write = write_and_notice  # type: ignore[method-assign]

    def _mark(self, key: int, hook: Callable[[], None] | None) -> None:
        """Call ``hook`` if it is the connection's current, not yet called one."""
        if hook is not None and self._unmarked.get(key) is hook:
            del self._unmarked[key]
            _guarded(hook)

    def _mark_when_handed_over(self, key: int, hook: Callable[[], None],
                               transport: asyncio.WriteTransport) -> None:  # fmt: skip
        """Call the hook once the transport's buffers are empty (the socket took the rest);
        stop looking once the send is over (its reply marks it) or the connection is lost."""
        loop = asyncio.get_running_loop()

        def check(wait: float) -> None:
            if self._unmarked.get(key) is not hook:
                return
            unsent = unsent_bytes(transport)
            if unsent == 0:
                self._mark(key, hook)
            elif unsent is not None:  # a server that stopped reading: looked at less often
                later = min(wait * 2, HANDOVER_POLL_MAX_SECONDS)
                loop.call_later(later, check, later)

        loop.call_later(HANDOVER_POLL_SECONDS, check, HANDOVER_POLL_SECONDS)

    async def close(self) -> None:
        while self._idle:
            client, _ = self._idle.pop()
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


def _by_code(code: int, text: str) -> TemporaryDeliveryError | PermanentDeliveryError:
    reason = f"SMTP {code} {text}".strip()
    if 400 <= code < 500:
        return TemporaryDeliveryError(reason)
    return PermanentDeliveryError(reason)
