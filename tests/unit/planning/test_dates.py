"""Date reminders: when a rule on a dated fact is due, and the checks on a profile's dates."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from app.core.errors import ProfileRejected
from app.planning.dates import DateTrigger, date_event_id, due_at, parse_trigger
from app.profiles.validate import parse_profile
from tests.helpers import person

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


CARD = DateTrigger("person", "id_card_expiry", days=-30, at=(10, 0))


def test_due_thirty_days_before_at_ten():
    now = at("2027-01-01T08:00:00")
    assert due_at(CARD, {"id_card_expiry": "2027-03-01"}, now, SHANGHAI) == (
        at("2027-01-30T10:00:00"), "2027-03-01")  # fmt: skip


def test_a_window_already_open_fires_now_and_a_date_gone_never():
    now = at("2027-02-20T08:00:00")
    assert due_at(CARD, {"id_card_expiry": "2027-03-01"}, now, SHANGHAI) == (now, "2027-03-01")
    assert due_at(CARD, {"id_card_expiry": "2027-02-19"}, now, SHANGHAI) is None
    assert due_at(CARD, {"id_card_expiry": "2027-02-20"}, now, SHANGHAI) == (now, "2027-02-20")
    assert due_at(CARD, {}, now, SHANGHAI) is None
    assert due_at(CARD, None, now, SHANGHAI) is None


def test_an_anniversary_years_on_including_the_29th_of_february():
    eighty = DateTrigger("person", "birth_date", years=80, at=(10, 0))
    now = at("2026-01-01T00:00:00")
    assert due_at(eighty, {"birth_date": "1946-05-02"}, now, SHANGHAI) == (
        at("2026-05-02T10:00:00"), "2026-05-02")  # fmt: skip
    assert due_at(eighty, {"birth_date": "1944-02-29"}, at("2024-01-01T00:00:00"), SHANGHAI) == (
        at("2024-02-29T10:00:00"), "2024-02-29")  # fmt: skip
    eighty_one = DateTrigger("person", "birth_date", years=81)
    assert due_at(eighty_one, {"birth_date": "1944-02-29"}, at("2025-01-01T00:00:00"), SHANGHAI)[
        1] == "2025-02-28"  # fmt: skip


def test_triggers_are_checked_field_by_field():
    problems = []
    assert parse_trigger({"kind": "dog", "fact": "X", "days": 1.5, "years": -1, "at": "25:00",
                          "every": 1}, lambda f, m: problems.append(f)) is None  # fmt: skip
    assert sorted(problems) == ["on_date.at", "on_date.days", "on_date.every", "on_date.fact",
                                "on_date.kind", "on_date.years"]  # fmt: skip
    assert parse_trigger({"kind": "person", "fact": "birth_date", "years": 80}, None) == DateTrigger(
        "person", "birth_date", years=80)  # fmt: skip


def test_a_profile_keeps_its_dates_and_bad_ones_are_refused():
    profile = parse_profile(
        person("P-1") | {"dates": {"id_card_expiry": "2027-03-01", "old": None}}
    )
    assert profile["dates"] == {"id_card_expiry": "2027-03-01"}
    for dates, says in [({"id_card_expiry": "2027-3-1"}, "not a date"),
                        ({"id_card_expiry": "2027-02-30"}, "not a date"),
                        ({"Bad Name": "2027-03-01"}, "lower-case"),
                        ({f"d{i}": "2027-03-01" for i in range(21)}, "at most 20"),
                        ("2027-03-01", "object")]:  # fmt: skip
        with pytest.raises(ProfileRejected, match=says):
            parse_profile(person("P-1") | {"dates": dates})


def test_date_event_ids_are_valid_event_ids_however_long_the_names():
    import re

    assert (
        date_event_id("id-card-renewal", "P-1", "2027-03-01")
        == "date:id-card-renewal:P-1:2027-03-01"
    )
    long = date_event_id("r" * 64, "p" * 64, "2027-03-01")
    assert len(long) <= 128 and re.fullmatch(r"[A-Za-z0-9._:-]+", long)
