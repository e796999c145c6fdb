import json

import pytest

from app.core.errors import ProfileRejected
from app.profiles.importer import import_profiles
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from lifecycle.cli import main
from tests.helpers import contact, enterprise, person


def test_profile_is_normalised():
    profile = parse_profile(person("P-1", mobile="138 0013 8000", email=" a@b.cn "))
    assert (profile["mobile"], profile["email"], profile["tags"]) == (
        "+8613800138000",
        "a@b.cn",
        [],
    )


def test_enterprise_contacts_are_normalised():
    doc = enterprise(
        "E-1", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900139000")]
    )
    assert parse_profile(doc)["contacts"][0]["mobile"] == "+8613900139000"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (person("P-1", mobile="12345"), "mobile: a Chinese mobile number has 11 digits, not 5"),
        (person("P-1", email="not-an-address"), "email: not an e-mail address"),
        (person("P-1") | {"district": "4403"}, "district: a six-digit GB/T 2260 code is required"),
        (person("P-1") | {"kind": "robot"}, "kind: must be one of person, enterprise"),
        ({"kind": "person"}, "id: required"),
        (enterprise("E-1", contacts=[{"name": "x"}]), "contacts[0].role: required"),
        (enterprise("E-1") | {"credit_code": "91440300MA5F00000X"}, "credit_code: check character"),
    ],
)
def test_bad_profiles_are_rejected_with_the_field(doc, reason):
    with pytest.raises(ProfileRejected) as info:
        parse_profile(doc)
    assert info.value.reason.startswith(reason)


async def ids(store, **query):
    return sorted([i async for batch in store.select(**query) for i in batch])


async def test_index_answers_permit_and_area_queries(redis_client, prefix):
    store = ProfileStore(redis_client, prefix)
    await store.upsert(parse_profile(enterprise("E-1", permits=("outdoor_advertising",))))
    await store.upsert(parse_profile(enterprise("E-2", permits=())))
    await store.upsert(
        parse_profile(enterprise("E-3", district="440303", permits=("outdoor_advertising",)))
    )
    await store.upsert(parse_profile(person("P-1")))
    permit = ["kind:enterprise", "permit:outdoor_advertising"]
    assert await ids(store, all_of=permit, any_of=["area:440308"]) == ["E-1"]
    assert await ids(store, all_of=permit, any_of=["area:440300"]) == [
        "E-1",
        "E-3",
    ]  # the whole city
    assert await ids(store, all_of=["kind:person"]) == ["P-1"]


async def test_update_moves_the_profile_between_index_entries_and_delete_removes_it(
    redis_client, prefix
):
    store = ProfileStore(redis_client, prefix)
    assert (
        await store.upsert(parse_profile(enterprise("E-1", permits=("outdoor_advertising",))))
        == "inserted"
    )
    assert await store.upsert(parse_profile(enterprise("E-1", district="440303"))) == "updated"
    assert await ids(store, all_of=["permit:outdoor_advertising"]) == []
    assert await ids(store, all_of=["kind:enterprise"], any_of=["area:440308"]) == []
    assert await ids(store, all_of=["kind:enterprise"], any_of=["area:440303"]) == ["E-1"]
    assert await store.delete("E-1") is True
    assert await store.get("E-1") is None
    assert await ids(store, all_of=["kind:enterprise"]) == []


JSONL_ROWS = [
    json.dumps(person("P-1", mobile="13800138000"), ensure_ascii=False),
    "{not json",
    json.dumps(person("P-2", mobile="0000"), ensure_ascii=False),
    "",
    json.dumps(
        enterprise(
            "E-1",
            permits=("outdoor_advertising",),
            contacts=[contact("safety_officer", "13900139000")],
        ),
        ensure_ascii=False,
    ),
]


async def test_jsonl_import_keeps_good_rows_and_reports_bad_ones_and_is_idempotent(
    redis_client, prefix, tmp_path
):
    path = tmp_path / "profiles.jsonl"
    path.write_text("\n".join(JSONL_ROWS), encoding="utf-8")
    store = ProfileStore(redis_client, prefix)
    report = await import_profiles(store, path)
    assert (report.counts["inserted"], [line for line, _ in report.rejected]) == (2, [2, 3])
    assert "invalid JSON" in report.rejected[0][1] and "mobile" in report.rejected[1][1]
    assert (await store.get("P-1"))["mobile"] == "+8613800138000"
    again = await import_profiles(store, path)
    assert (again.counts["unchanged"], again.counts["inserted"]) == (2, 0)


CSV = """id,kind,name,district,mobile,email,permits,contact1_role,contact1_name,contact1_mobile,contact2_role,contact2_mobile
P-9,person,王五,440308,+86 139 0000 0001,w5@example.cn,,,,,,
E-9,enterprise,某广告公司,440308,,,outdoor_advertising;billboard,legal_representative,陈红,13700137000,safety_officer,13900139000
P-10,person,赵六,99,13900000002,,,,,,,
"""


async def test_csv_import_reads_lists_and_numbered_contacts(redis_client, prefix, tmp_path):
    path = tmp_path / "profiles.csv"
    path.write_text(CSV, encoding="utf-8")
    store = ProfileStore(redis_client, prefix)
    report = await import_profiles(store, path)
    assert report.counts["inserted"] == 2
    assert report.rejected == [(4, "district: a six-digit GB/T 2260 code is required, not '99'")]
    e9 = await store.get("E-9")
    assert e9["permits"] == ["billboard", "outdoor_advertising"]
    assert [(c["role"], c["mobile"]) for c in e9["contacts"]] == [
        ("legal_representative", "+8613700137000"), ("safety_officer", "+8613900139000")]  # fmt: skip


async def test_a_csv_contacts_cell_is_bounded_as_any_json_from_outside(
    redis_client, prefix, tmp_path
):
    """Found by attacking the importer: the ``contacts`` column was parsed without the depth
    bound (a RecursionError stopped the whole import) or the check for half characters."""
    good = '[{""role"": ""safety_officer"", ""mobile"": ""13900139000""}]'
    rows = [f'E-{n},enterprise,某公司,440308,"{cell}"' for n, cell in enumerate(
        [good, "[" * 50_000 + "]" * 50_000, '[{""role"": ""safety_officer"", ""name"": ""\\ud800""}]',
         "not json", good])]  # fmt: skip
    path = tmp_path / "hostile.csv"
    path.write_text("id,kind,name,district,contacts\n" + "\n".join(rows) + "\n", encoding="utf-8")
    store = ProfileStore(redis_client, prefix)
    report = await import_profiles(store, path)
    assert report.counts["inserted"] == 2  # the rows around the bad ones
    reasons = dict(report.rejected)
    assert sorted(reasons) == [3, 4, 5]
    assert "nested" in reasons[3] and "half a character" in reasons[4] and "JSON" in reasons[5]
    assert all(r.startswith("contacts: ") for r in reasons.values())


def test_profiles_import_command_prints_counts_and_reasons(
    redis_url, prefix, tmp_path, capsys, monkeypatch
):
    path = tmp_path / "profiles.jsonl"
    path.write_text("\n".join(JSONL_ROWS), encoding="utf-8")
    monkeypatch.setenv("LIFECYCLE_REDIS_URL", redis_url)
    monkeypatch.setenv("LIFECYCLE_REDIS_PREFIX", prefix)
    assert main(["profiles", "import", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "inserted 2, updated 0, unchanged 0, rejected 2" in out
    assert f"{path}:3: rejected: mobile:" in err
    assert main(["profiles", "import", str(path)]) == 1
    assert "inserted 0, updated 0, unchanged 2, rejected 2" in capsys.readouterr().out
