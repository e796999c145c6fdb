"""Unsubscribe links: a signed token naming an address, a category and a channel.

The token is ``base64url(address|category|channel).base64url(HMAC-SHA256)`` with
``LIFECYCLE_SECRET``; nothing can be unsubscribed without a link the service itself issued.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class UnsubscribeLinks:
    base_url: str
    secret: str

    def token(self, address: str, category: str, channel: str) -> str:
        payload = "|".join((address, category, channel)).encode("utf-8")
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def url(self, address: str, category: str, channel: str) -> str:
        return f"{self.base_url}/unsubscribe/?t={quote(self.token(address, category, channel))}"

    def verify(self, token: str) -> tuple[str, str, str] | None:
        """(address, category, channel) of a valid token, None for anything else."""
        try:
            payload_text, mac_text = token.split(".", 1)
            payload = _unb64(payload_text)
            if not hmac.compare_digest(_unb64(mac_text), self._mac(payload)):
                return None
            address, category, channel = payload.decode("utf-8").split("|")
        except (ValueError, UnicodeDecodeError):
            return None
        return address, category, channel

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self.secret.encode("utf-8"), payload, hashlib.sha256).digest()
