"""Input hygiene of profiles: addresses SMTP can deliver to, bounded texts and lists, an import
that reports a bad line and goes on."""

import json
from datetime import UTC, datetime

import pytest

from app.core.errors import ProfileRejected
from app.profiles.validate import normalise_email, parse_profile
from tests.helpers import person

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
