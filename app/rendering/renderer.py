"""Message texts from Jinja2 templates written by staff, rendered in a sandbox.

Layout, one folder per template and one sub-folder per language::

    templates/<name>/<language>/sms.txt           SMS body (the signature is added in front)
    templates/<name>/<language>/email_subject.txt e-mail subject (one line)
    templates/<name>/<language>/email.txt         e-mail plain-text body
    templates/<name>/<language>/email.html        e-mail HTML body (autoescaped)
    templates/<name>/<language>/provider.yaml     optional: the SMS provider's approved template
                                                  code and its parameters (each a template too)

A recipient gets their profile's language when the template has it, the default otherwise.
Templates see ``event``, ``data`` (the event's data), ``profile`` and ``recipient`` (name, role).
A variable that does not exist is an error (StrictUndefined), never an empty gap in a message.
Filters: ``date`` (``2026年7月1日``), ``datetime`` (``2026年7月1日 14:00``), both in local time.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateError, TemplateNotFound

from app.core.errors import RenderError
from app.core.yaml12 import load_yaml
from app.rendering.bounded import BoundedEnvironment, render_bounded
from app.rendering.content import EmailContent, Rendered, SmsContent
from app.rendering.sms import sms_length, with_signature

MAX_SMS_CHARS = 500  # what Chinese SMS gateways accept in one (long, concatenated) message

CHANNEL_FILES = {
    "sms": ("sms.txt",),
    "email": ("email_subject.txt", "email.txt", "email.html"),
}


class Renderer:
    def __init__(self, templates_dir: Path, *, signature: str, tz: ZoneInfo,
                 default_language: str = "zh-CN",
                 signatures: dict[str, str] | None = None) -> None:  # fmt: skip
        """``signature`` signs every SMS but those in a language ``signatures`` names (``en``
        covers ``en-GB``): an English text signed in Chinese would be UCS-2."""
        self.templates_dir = templates_dir
        self.signature = signature
        self.signatures = signatures or {}
        self.default_language = default_language
        loader = FileSystemLoader(str(templates_dir))
        self._text = _environment(loader, tz, autoescape=False)
        self._html = _environment(loader, tz, autoescape=True)
        # Like the templates themselves (auto_reload off), read once per process:
        self._has_language: dict[tuple[str, str], bool] = {}
        self._providers: dict[
            tuple[str, str], list[tuple[str, str, dict[str, Template]]] | RenderError | None
        ] = {}

    def languages(self, name: str) -> list[str]:
        folder = self.templates_dir / name
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def missing_files(self, name: str, channel: str) -> list[str]:
        """Files the default language lacks for ``channel``: what `rules check` reports."""
        folder = self.templates_dir / name / self.default_language
        return [f"{name}/{self.default_language}/{f}" for f in CHANNEL_FILES[channel]
                if not (folder / f).is_file()]  # fmt: skip

    def pick_language(self, name: str, wanted: str | None) -> str:
        if not wanted:
            return self.default_language
        has = self._has_language.get((name, wanted))
        if has is None:
            has = self._has_language[name, wanted] = (self.templates_dir / name / wanted).is_dir()
        return wanted if has else self.default_language

    def render(
        self, name: str, channel: str, language: str | None, context: dict[str, Any]
    ) -> Rendered:
        lang = self.pick_language(name, language)
        if channel == "sms":
            text = with_signature(
                self._render(self._text, name, lang, "sms.txt", context), self.signature_for(lang)
            )
            if len(text) > MAX_SMS_CHARS:
                raise RenderError(f"{name}/{lang}/sms.txt: the SMS is {len(text)} characters with "
                                  f"its signature; gateways take at most {MAX_SMS_CHARS}")  # fmt: skip
            provider = self._provider(name, lang, context)
            return SmsContent(text=text, length=sms_length(text), provider=provider)
        if channel == "email":
            subject = self._render(self._text, name, lang, "email_subject.txt", context)
            return EmailContent(
                subject=" ".join(subject.split()),
                text=self._render(self._text, name, lang, "email.txt", context),
                html=self._render(self._html, name, lang, "email.html", context),
            )
        raise RenderError(f"unknown channel {channel!r}")

    def signature_for(self, language: str | None) -> str:
        """The SMS signature of a language: its own, its primary language's, or the default."""
        if language:
            for tag in (language, language.split("-")[0]):
                if tag in self.signatures:
                    return self.signatures[tag]
        return self.signature

    def render_sms_text(self, source: str, context: dict[str, Any],
                        language: str | None = None) -> str:  # fmt: skip
        """An SMS template given as text (the editor's, as one types) rendered with its signature,
        bounded as every template is; RenderError with the line when it does not render."""
        try:
            return with_signature(render_bounded(self._text.from_string(source), context).strip(),
                                  self.signature_for(language))  # fmt: skip
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            raise RenderError(
                f"line {line}: {exc.message or exc}" if line else str(exc.message or exc)
            ) from exc
        except (TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as exc:
            raise RenderError(f"{type(exc).__name__}: {exc}") from exc

    def _provider(self, name: str, lang: str, context: dict[str, Any]) -> dict[str, Any] | None:
        """``provider.yaml`` rendered: ``{provider: {"template_code": …, "params": {k: text}}}``."""
        if (name, lang) not in self._providers:
            try:
                self._providers[name, lang] = self._load_provider(name, lang)
            except RenderError as exc:
                self._providers[name, lang] = exc
        spec = self._providers[name, lang]
        if isinstance(spec, RenderError):
            raise spec
        if spec is None:
            return None
        out: dict[str, Any] = {}
        for provider, code, params in spec:
            try:
                rendered = {k: render_bounded(t, context).strip() for k, t in params.items()}
            except TemplateError as exc:
                where = f"{name}/{lang}/provider.yaml"
                raise RenderError(f"{where}: {provider}.params: {exc.message or exc}") from exc
            out[provider] = {"template_code": code, "params": rendered}
        return out

    def _load_provider(
        self, name: str, lang: str
    ) -> list[tuple[str, str, dict[str, Template]]] | None:
        path = self.templates_dir / name / lang / "provider.yaml"
        if not path.is_file():
            return None
        where = f"{name}/{lang}/provider.yaml"
        try:
            spec = load_yaml(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise RenderError(f"{where}: not valid YAML: {exc}") from exc
        if not isinstance(spec, dict):
            raise RenderError(f"{where}: a mapping of provider: {{template_code, params}}")
        out = []
        for provider, entry in spec.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("template_code"), str):
                raise RenderError(f"{where}: {provider}.template_code is required")
            try:
                params = {
                    str(k): self._text.from_string(str(v))
                    for k, v in (entry.get("params") or {}).items()
                }
            except TemplateError as exc:
                raise RenderError(f"{where}: {provider}.params: {exc.message or exc}") from exc
            out.append((str(provider), entry["template_code"], params))
        return out

    def _render(
        self, env: BoundedEnvironment, name: str, lang: str, file: str, context: dict[str, Any]
    ) -> str:
        path = f"{name}/{lang}/{file}"
        try:
            return render_bounded(env.get_template(path), context).strip()
        except TemplateNotFound as exc:
            raise RenderError(f"{path}: template file not found") from exc
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f"{path}:{line}" if line else path
            raise RenderError(f"{where}: {exc.message or exc}") from exc
        except (TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as exc:
            raise RenderError(f"{path}: {type(exc).__name__}: {exc}") from exc


def _environment(loader: FileSystemLoader, tz: ZoneInfo, *, autoescape: bool) -> BoundedEnvironment:
    env = BoundedEnvironment(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters["date"] = lambda v: _formatted(v, tz, "%Y年%-m月%-d日")
    env.filters["datetime"] = lambda v: _formatted(v, tz, "%Y年%-m月%-d日 %H:%M")
    return env


def _formatted(value: Any, tz: ZoneInfo, pattern: str) -> str:
    """A date or time in local time; a text one (as events carry them) formatted once for all
    the recipients of an event (a warning's expiry, for each of 100,000 recipients)."""
    if isinstance(value, str):
        return _formatted_text(value, tz, pattern)
    return _local(value, tz).strftime(pattern)


@lru_cache(maxsize=256)
def _formatted_text(value: str, tz: ZoneInfo, pattern: str) -> str:
    return _local(value, tz).strftime(pattern)


def _local(value: Any, tz: ZoneInfo) -> datetime | date:
    if isinstance(value, str):
        value = (
            datetime.fromisoformat(value)
            if "T" in value or " " in value
            else date.fromisoformat(value)
        )
    if isinstance(value, datetime):
        return value.astimezone(tz) if value.tzinfo else value
    if isinstance(value, date):
        return value
    raise TypeError(f"cannot format {type(value).__name__} as a date")
