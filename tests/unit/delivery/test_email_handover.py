"""The SMTP gateway's commit hook (the early "sent" mark) runs once the message's end is in the
kernel, not before and not much after: a large message's end waits in the event loop's buffer
(the socket's is full), and over TLS the encrypted bytes wait in the buffer of the TCP transport
below the TLS one. A worker killed in the hook must leave the whole message at the server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from app.delivery.gateways.email import SmtpGateway
from tests.conftest import Replies
from tests.unit.delivery.test_deliverer import notification
from tests.unit.delivery.test_email import FROM

LARGE = 6_000_000  # characters of HTML: more than the sockets' buffers take at once (base64: 8 MB)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (openssl, as the machine has it)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)  # fmt: skip
    return cert, key


@pytest.fixture
def smtp_sink(certificate, smtp_server):
    """``start(tls, handler)`` → port of an aiosmtpd server (SMTPS with ``tls``) on a free port,
    taking messages larger than the test's."""
    import ssl

    def start(tls: bool, handler: Replies) -> int:
        context = None
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*certificate)
        config, _ = smtp_server(handler=handler, ssl_context=context,
                                data_size_limit=64 * 1024 * 1024)  # fmt: skip
        return config.port

    return start


DIE_IN_THE_HOOK = textwrap.dedent("""
    import asyncio, dataclasses, os, signal, sys
    from app.core.settings import SmtpConfig
    from app.delivery.gateways.email import SmtpGateway
    from tests.unit.delivery.test_deliverer import notification

    port, tls, loop, size = int(sys.argv[1]), sys.argv[2] == "tls", sys.argv[3], int(sys.argv[4])

    def die():  # the moment the gateway says the message is handed over
        os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        config = SmtpConfig("127.0.0.1", port, use_tls=tls)
        gateway = SmtpGateway(config, mail_from="noreply@example.cn")
        n = notification("email", "a@example.cn")
        n = dataclasses.replace(n, content=dict(n.content, html="<p>" + "正文" * (size // 2) + "</p>"))
        await gateway.send(n, on_commit=die)
        print("sent, and the hook was never called", flush=True)

    if loop == "uvloop":
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())
""")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_a_worker_killed_in_the_hook_of_a_large_message_leaves_it_whole_at_the_server(
    smtp_sink, certificate, tls, loop
):
    """The hook is called, and only once every byte of the message is the kernel's: killed
    there, the process leaves the message to the kernel, which delivers it whole."""
    handler = Replies()
    port = smtp_sink(tls, handler)
    env = dict(os.environ, SSL_CERT_FILE=str(certificate[0]))  # the client trusts the test's CA
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", DIE_IN_THE_HOOK, str(port), "tls" if tls else "plain",
                         loop, str(LARGE)], cwd=os.getcwd(), env=env, capture_output=True, timeout=120)  # fmt: skip
    assert done.returncode == -9, (done.stdout + done.stderr).decode()[-2000:]
    for _ in range(200):
        if handler.accepted:
            break
        await asyncio.sleep(0.05)
    assert len(handler.accepted) == 1
    assert len(handler.accepted[0]) > LARGE  # all of it


class WaitsForTheHook(Replies):
    """Receives the whole message, then waits (up to 10 s) for the client's hook before it
    replies, and notes whether the hook came first."""

    def __init__(self) -> None:
        super().__init__()
        self.hooked = threading.Event()
        self.hooked_before_reply: list[bool] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        came = await asyncio.get_running_loop().run_in_executor(None, self.hooked.wait, 10)
        self.hooked_before_reply.append(came)
        return await super().handle_DATA(server, session, envelope)


async def test_a_large_message_is_marked_as_its_end_reaches_the_kernel_not_at_the_reply(
    smtp_sink,
):
    """Its end written while the socket's buffer is full, the message is handed over later, by
    the event loop; the hook follows within a millisecond, before the server's reply (a mark
    at the reply would leave the server's whole processing time to a crash)."""
    handler = WaitsForTheHook()
    port = smtp_sink(False, handler)
    from app.core.settings import SmtpConfig

    gateway = SmtpGateway(SmtpConfig("127.0.0.1", port), mail_from=FROM)
    calls: list[int] = []

    def hook() -> None:
        calls.append(len(handler.accepted))
        handler.hooked.set()

    n = notification("email", "a@example.cn")
    n = replace(n, content=dict(n.content, html="<p>" + "正文" * (LARGE // 2) + "</p>"))
    try:
        await gateway.send(n, on_commit=hook)
        small = notification("email", "b@example.cn", event_id="E2")  # the same connection
        handler.hooked.clear()
        await gateway.send(small, on_commit=hook)
    finally:
        await gateway.close()
    assert handler.hooked_before_reply == [True, True]
    assert calls == [0, 1]  # once each, before the server had accepted it


async def test_a_server_that_stops_reading_is_looked_at_less_and_less_often(monkeypatch):
    """A server that takes the DATA command and then reads nothing more keeps the message's
    end in the loop's buffer until the reply's timeout ends the send: the hook is never called
    (nothing was handed over), the send fails as temporary, and the buffer was looked at some
    hundred times a second, not every half millisecond."""
    from app.core.errors import TemporaryDeliveryError
    from app.core.settings import SmtpConfig
    from app.delivery.gateways import email as gateway_module

    stalled = asyncio.Event()

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 stalls\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            writer.write(b"354 go on\r\n" if verb == b"DATA" else b"250 ok\r\n")
            await writer.drain()
            if verb == b"DATA":
                await stalled.wait()  # and never read again, until the test ends
                break
        writer.close()

    server = await asyncio.start_server(stalls, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    looked: list[int | None] = []
    unsent = gateway_module.unsent_bytes

    def counted(transport):
        looked.append(result := unsent(transport))
        return result

    monkeypatch.setattr(gateway_module, "unsent_bytes", counted)
    monkeypatch.setattr(gateway_module, "TIMEOUT_SECONDS", 1.0)
    gateway = SmtpGateway(SmtpConfig("127.0.0.1", port), mail_from=FROM)
    calls: list[str] = []
    n = notification("email", "a@example.cn")
    n = replace(n, content=dict(n.content, html="<p>" + "正文" * (LARGE // 2) + "</p>"))
    try:
        with pytest.raises(TemporaryDeliveryError):
            await gateway.send(n, on_commit=lambda: calls.append("called"))
    finally:
        stalled.set()
        server.close()
        await server.wait_closed()
    assert calls == []
    assert looked and all(size for size in looked)  # never all handed over
    assert len(looked) < 250  # in 1 s: about 110 with the back-off, 928 without (measured)
