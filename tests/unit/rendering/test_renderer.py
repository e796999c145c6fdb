from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.core.errors import RenderError
from app.rendering.content import EmailContent, SmsContent
from app.rendering.renderer import Renderer

SIGNATURE = "【盐田区政务服务】"


@pytest.fixture
def renderer(tmp_path: Path) -> Renderer:
    def put(name: str, lang: str, file: str, text: str) -> None:
        folder = tmp_path / name / lang
        folder.mkdir(parents=True, exist_ok=True)
        (folder / file).write_text(text, encoding="utf-8")

    put("t", "zh-CN", "sms.txt", "{{ recipient.name }}您好，{{ data.when | datetime }}")
    put("t", "en", "sms.txt", "Hello {{ recipient.name }}")
    put("t", "zh-CN", "email_subject.txt", "通知：\n{{ data.title }}\n")
    put("t", "zh-CN", "email.txt", "{{ recipient.name }}")
    put("t", "zh-CN", "email.html", "<p>{{ recipient.name }}</p>")
    put("evil", "zh-CN", "sms.txt", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    put("gap", "zh-CN", "sms.txt", "{{ data.missing }}")
    return Renderer(tmp_path, signature=SIGNATURE, tz=ZoneInfo("Asia/Shanghai"))


CONTEXT = {
    "data": {"when": "2026-08-12T06:00:00+00:00", "title": "标题"},
    "recipient": {"name": "李明"},
}


def test_sms_starts_with_the_signature_and_records_its_segments(renderer):
    content = renderer.render("t", "sms", "zh-CN", CONTEXT)
    assert isinstance(content, SmsContent)
    assert content.text == f"{SIGNATURE}李明您好，2026年8月12日 14:00"  # local time
    assert (content.length.encoding, content.length.segments) == ("UCS2", 1)


def test_recipient_language_is_used_when_the_template_has_it(renderer):
    assert (
        renderer.render("t", "sms", "en", CONTEXT).text == f"{SIGNATURE}Hello 李明"
    )  # one signature


def test_unknown_language_falls_back_to_the_default(renderer):
    assert "您好" in renderer.render("t", "sms", "fr", CONTEXT).text


def test_email_subject_is_one_line_and_html_is_escaped(renderer):
    content = renderer.render(
        "t", "email", "zh-CN", {**CONTEXT, "recipient": {"name": "<script>x</script>"}}
    )
    assert isinstance(content, EmailContent)
    assert content.subject == "通知： 标题"
    assert content.html == "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    assert content.text == "<script>x</script>"  # plain text is not HTML


def test_missing_variable_is_an_error_not_a_gap(renderer):
    with pytest.raises(RenderError, match="missing"):
        renderer.render("gap", "sms", "zh-CN", CONTEXT)


def test_sandbox_refuses_python_internals(renderer):
    with pytest.raises(RenderError, match="unsafe|not safely|access"):
        renderer.render("evil", "sms", "zh-CN", CONTEXT)


def test_an_english_text_carries_the_english_signature_and_stays_gsm7(tmp_path):
    folder = tmp_path / "t" / "en-GB"
    folder.mkdir(parents=True)
    (folder / "sms.txt").write_text("Dear {{ recipient.name }}, your card expires soon.", "utf-8")
    (tmp_path / "t" / "zh-CN").mkdir()
    (tmp_path / "t" / "zh-CN" / "sms.txt").write_text("您的证件即将到期。", encoding="utf-8")
    signed = Renderer(tmp_path, signature=SIGNATURE, tz=ZoneInfo("Asia/Shanghai"),
                      signatures={"en": "Yantian Gov Services: "})  # fmt: skip
    english = signed.render("t", "sms", "en-GB", {"recipient": {"name": "Li Ming"}})
    assert english.text == "Yantian Gov Services: Dear Li Ming, your card expires soon."
    assert (english.length.encoding, english.length.segments) == ("GSM7", 1)
    chinese = signed.render("t", "sms", "zh-CN", {"recipient": {"name": "李明"}})
    assert chinese.text.startswith(SIGNATURE) and chinese.length.encoding == "UCS2"
