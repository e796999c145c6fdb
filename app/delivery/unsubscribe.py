"""Unsubscribe links: a signed, expiring token naming an address's key, a category and a channel.

The token is ``base64url(v2|address key|masked address|category|channel|expires).base64url(MAC)``
with HMAC-SHA256 under ``LIFECYCLE_SECRET``. It carries no readable address: only the keyed hash
that opt-outs are stored under (``address_key``) and the masked form the confirmation page shows.
Nothing can be unsubscribed without a link the service itself issued, and a link lapses after
``TTL_DAYS`` (a later message carries a fresh one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from app.core.masking import mask_address

TTL_DAYS = 180
MAX_TOKEN_CHARS = 600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def address_key(secret: str, address: str) -> str:
    """The keyed hash that an address's opt-outs are stored under: the same address always gives
    the same key, and the key does not give the address back (not even by trying every mobile
    number, without the secret)."""
    return _finished(_keyed(secret), address)


def _keyed(secret: str) -> hmac.HMAC:
    """The HMAC of address keys under ``secret``, before its address."""
    return hmac.new(secret.encode("utf-8"), b"optout|", hashlib.sha256)


def _finished(mac: hmac.HMAC, address: str) -> str:
    mac.update(address.encode("utf-8"))
    return mac.hexdigest()[:32]


class AddressKeys:
    """``address_key`` under one secret, for the deliverer's hot path: the HMAC's key set up once
    (a copy of it per address, 1.2 µs against 1.9 for ``hmac.new``), and the last
    ``CACHED`` answers kept: a notification's opt-outs and its message-search index are both under
    its address's key, looked up in the same round trip."""

    CACHED = 4096

    def __init__(self, secret: str) -> None:
        self._keyed = _keyed(secret)
        self.of = lru_cache(maxsize=self.CACHED)(self._compute)

    def _compute(self, address: str) -> str:
        return _finished(self._keyed.copy(), address)


@dataclass(frozen=True)
class Unsubscribe:
    """What a valid token asks for."""

    address_key: str
    masked: str
    category: str
    channel: str


@dataclass(frozen=True)
class UnsubscribeLinks:
    base_url: str
    secret: str
    ttl_seconds: float = TTL_DAYS * 86400

    def token(self, address: str, category: str, channel: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl_seconds)
        fields = ("v2", address_key(self.secret, address), mask_address(channel, address),
                  category, channel, str(expires))  # fmt: skip
        payload = "|".join(fields).encode("utf-8")
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def url(self, address: str, category: str, channel: str) -> str:
        return f"{self.base_url}/unsubscribe/?t={quote(self.token(address, category, channel))}"

    def verify(self, token: str, now: float | None = None) -> Unsubscribe | None:
        """What a valid, unexpired token asks for; None for anything else."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            return None
        try:
            payload_text, mac_text = token.split(".", 1)
            payload = _unb64(payload_text)
            if not hmac.compare_digest(_unb64(mac_text), self._mac(payload)):
                return None
            version, key, masked, category, channel, expires = payload.decode("utf-8").split("|")
            if version != "v2" or int(expires) < (time.time() if now is None else now):
                return None
        except (ValueError, UnicodeDecodeError):
            return None
        return Unsubscribe(key, masked, category, channel)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self.secret.encode("utf-8"), payload, hashlib.sha256).digest()
