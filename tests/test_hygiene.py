"""Input hygiene: addresses SMTP can deliver to, reasons that quote no personal data, events that
are too old, dated in the future or past their expiry not acted on, and command-line readers
that report a bad line and go on."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.core.errors import ProfileRejected
from app.core.masking import scrub
from app.intake.events import validate_event, why_not_act
from app.intake.files import read_events
from app.profiles.validate import normalise_email, parse_profile
from tests.helpers import graduate_event, person, weather_event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("a,b@evil.example", "SMTP refuses"),  # was sent to b@evil.example
        ("a b@example.cn", "SMTP refuses"),
        ('"x"@example.cn', "SMTP refuses"),
        ("李明@example.cn", "SMTP refuses"),  # needs SMTPUTF8 end to end
        ("liming@example", "domain"),
        ("liming@-example.cn", "domain"),
        ("liming@exa_mple.cn", "domain"),
        ("x" * 65 + "@example.cn", "longer than SMTP allows"),
        ("liming@example.cn>", "domain"),
        ("<liming@example.cn>", "SMTP refuses"),
        ("liming@@example.cn", "SMTP refuses"),
    ],
)
def test_addresses_smtp_cannot_deliver_to_are_refused_at_import(raw, why):
    with pytest.raises(ValueError, match=why):
        normalise_email(raw)
    with pytest.raises(ProfileRejected, match="email"):
        parse_profile(person("P-1", email=raw))


def test_an_internationalised_domain_is_stored_in_its_idna_form():
    assert normalise_email(" Li.Ming+x@Example.CN ") == "Li.Ming+x@example.cn"
    assert normalise_email("liming@例子.中国") == "liming@xn--fsqu00a.xn--fiqs8s"


def test_profile_texts_and_lists_are_bounded():
    with pytest.raises(ProfileRejected, match="name: 1000000 characters"):
        parse_profile(person("P-1", name="名" * 1_000_000))
    with pytest.raises(ProfileRejected, match="tags: at most 50"):
        parse_profile(person("P-1") | {"tags": [f"t{i}" for i in range(51)]})


def test_reasons_are_scrubbed_of_phones_ids_and_addresses():
    text = ("mobile '13800138000' and +8613900139000, id 44030819900101123X, mail liming@example.cn; "
            "kept: district 440308, 2026-11-22, CAP-44030841600000_20261122090000")  # fmt: skip
    clean = scrub(text)
    for secret in ("13800138000", "13900139000", "44030819900101123X", "liming@"):
        assert secret not in clean
    assert "138****8000" in clean and "l*****@example.cn" in clean
    assert "440308," in clean and "2026-11-22" in clean and "20261122090000" in clean
    assert len(scrub("x" * 10_000)) == 500


def _at(doc, occurred):
    return validate_event(doc | {"occurred_at": occurred.isoformat()})


def test_old_future_and_expired_events_are_not_acted_on():
    fresh = _at(graduate_event("E-1", "P-1"), NOW - timedelta(hours=1))
    assert why_not_act(fresh, NOW, 30) is None
    old = _at(graduate_event("E-2", "P-1"), NOW - timedelta(days=45))
    assert "older than 30 days" in why_not_act(old, NOW, 30)
    assert why_not_act(old, NOW, 0) is None  # 0: no age limit
    future = _at(graduate_event("E-3", "P-1"), datetime(9999, 1, 1, tzinfo=UTC))
    assert "in the future" in why_not_act(future, NOW, 30)
    warning = weather_event("W-1", ["440308"])
    warning["data"]["expires_at"] = (NOW - timedelta(minutes=1)).isoformat()
    assert "expired" in why_not_act(_at(warning, NOW - timedelta(hours=2)), NOW, 30)


def test_events_publish_reports_each_bad_line_and_reads_the_rest():
    good = json.dumps(graduate_event("E-OK", "P-1")).encode()
    lines = [
        good,
        b"[" * 10_000,
        b"\xff\xfe not utf-8",
        b'{"n": ' + b"9" * 5000 + b"}",
        good.replace(b"E-OK", b"E-OK2"),
    ]
    result = read_events(b"\n".join(lines))
    assert [e.id for e in result.events] == ["E-OK", "E-OK2"]
    assert [where for where, _ in result.invalid] == ["line 2", "line 3", "line 4"]
    assert "nested 10000 deep" in result.invalid[0][1] and "not UTF-8" in result.invalid[1][1]
    [(where, reason)] = read_events(b"[" * 50_000).invalid
    assert where == "the array" and "nested" in reason


async def test_profiles_import_reports_each_bad_line_and_imports_the_rest(
    redis_client, prefix, tmp_path
):
    from app.profiles.importer import import_profiles
    from app.profiles.store import ProfileStore

    path = tmp_path / "people.jsonl"
    good = json.dumps(person("P-IMP1", mobile="13800138000")).encode()
    path.write_bytes(
        b"\n".join([good, b"{" * 5000, b"\xff\xfe", good.replace(b"P-IMP1", b"P-IMP2")])
    )
    report = await import_profiles(ProfileStore(redis_client, prefix), path)
    assert report.counts["inserted"] == 2
    assert [line for line, _ in report.rejected] == [2, 3]
