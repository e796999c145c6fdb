"""A rendered message, and its wire form (``app.notifications.Content``) on the topics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.notifications import Content
from app.rendering.sms import SmsLength


@dataclass(frozen=True)
class SmsContent:
    text: str
    length: SmsLength
    provider: dict[str, Any] | None = None  # e.g. {"aliyun": {"template_code": …, "params": {…}}}

    def wire(self) -> Content:
        sms = Content(text=self.text, segments=self.length.segments,
                      encoding=self.length.encoding, units=self.length.units)  # fmt: skip
        if self.provider:
            sms["provider"] = self.provider
        return sms


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str

    def wire(self) -> Content:
        return Content(subject=self.subject, text=self.text, html=self.html)


Rendered = SmsContent | EmailContent
