import json

import pytest

from app.core.errors import EventRejected
from app.intake.events import catalogue, parse_event
from tests.helpers import graduate_event, weather_event


def reason_for(raw: bytes | str) -> str:
    with pytest.raises(EventRejected) as info:
        parse_event(raw)
    return info.value.reason


def test_every_catalogue_example_is_a_valid_event():
    for event_type in catalogue().values():
        assert event_type.examples, f"{event_type.name} documents no example"
        for example in event_type.examples:
            assert parse_event(json.dumps(example)).type == event_type.name


def test_the_catalogue_has_the_contract_types():
    assert set(catalogue()) >= {
        "graduate.reception.approved", "hukou.migration.completed", "business.registered",
        "weather.warning.issued", "weather.warning.updated", "weather.warning.cancelled",
    }  # fmt: skip


def test_valid_event_is_parsed_with_subject_and_key():
    event = parse_event(json.dumps(graduate_event("E1", "P-1")))
    assert (event.subject_kind, event.subject_id, event.key) == ("person", "P-1", "P-1")
    assert event.occurred_at.utcoffset().total_seconds() == 8 * 3600


def test_area_wide_event_is_keyed_by_its_id():
    assert parse_event(json.dumps(weather_event("W1", ["440308"]))).key == "W1"


def test_invalid_json_is_rejected_with_position():
    assert reason_for(b'{"id": "x",').startswith("invalid JSON")


def test_non_utf8_bytes_are_rejected():
    assert "not UTF-8" in reason_for(b'{"id": "\xff"}')


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1E999"])
def test_numbers_no_json_has_are_rejected_at_intake(literal):
    """Found while moving the encoders to orjson: Python's parser reads NaN and Infinity (no JSON
    has them) and 1e400 as infinity, and the event went on to Kafka and Redis holding a value
    that no JSON reader downstream takes (the standard encoder wrote it back as NaN)."""
    doc = graduate_event("E1", "P-1")
    doc["data"]["extra"] = "NUMBER"
    raw = json.dumps(doc).replace('"NUMBER"', literal).encode()
    reason = reason_for(raw)
    assert reason.startswith("invalid event:")
    assert "not a JSON number" in reason or "is too large to be one" in reason
    assert parse_event(raw.replace(literal.encode(), b"1.5e3")).data["extra"] == 1500.0


def test_half_a_character_is_rejected_at_intake_and_a_whole_one_kept():
    """Found by attacking the planner: "\ud800" is valid JSON and valid UTF-8 on the wire, but
    decodes to a lone surrogate that no UTF-8 encoder takes, so the event failed later, in
    rendering or Redis, as an internal error. Now it is refused with the reason at the door."""
    doc = graduate_event("E1", "P-1")
    doc["data"]["school"] = "深圳大学\ud800"
    raw = json.dumps(doc).encode()  # ensure_ascii: the lone surrogate travels as its escape
    assert b"\\ud800" in raw
    reason = reason_for(raw)
    assert "half a character" in reason and "\\ud800" in reason
    paired = json.dumps(graduate_event("E2", "P-1") | {"data": {**doc["data"], "school": "💥"}})
    assert "\\ud83d\\udca5" in paired  # an astral character travels as a pair: kept
    assert parse_event(paired).data["school"] == "💥"
    text = "a\\ud800"  # a backslash, then letters and digits: text, not an escape
    quoted = json.dumps(graduate_event("E3", "P-1") | {"data": {**doc["data"], "school": text}})
    assert parse_event(quoted).data["school"] == text


def test_unknown_type_is_rejected():
    doc = graduate_event("E1", "P-1") | {"type": "pet.licence.issued"}
    assert reason_for(json.dumps(doc)) == "unknown event type 'pet.licence.issued'"


def test_missing_data_field_is_named():
    doc = graduate_event("E1", "P-1")
    del doc["data"]["approval_no"]
    assert (
        reason_for(json.dumps(doc))
        == "graduate.reception.approved: data: 'approval_no' is a required property"
    )


def test_wrong_level_names_the_field():
    doc = weather_event("W1", ["440308"], level="purple")
    assert reason_for(json.dumps(doc)).startswith("weather.warning.issued: data.level:")


@pytest.mark.parametrize("kind", ["issued", "updated", "cancelled"])
def test_a_warning_naming_too_many_or_too_long_references_is_refused(kind):
    """Each reference is a Redis read as the warning is planned (its chain), and a warning id a
    key: a 256 KB event of 50,000 tiny references was 50,000 reads in a row; 100 are allowed."""
    doc = weather_event("W1", ["440308"]) | {"type": f"weather.warning.{kind}"}
    doc["data"] = dict(doc["data"], references=[f"W-{i}" for i in range(100)])
    assert parse_event(json.dumps(doc)).data["references"][-1] == "W-99"
    doc["data"]["references"].append("W-100")
    reason = reason_for(json.dumps(doc))
    assert reason.startswith(f"weather.warning.{kind}: data.references:") and "too long" in reason
    doc["data"] = dict(doc["data"], references=["W-" + "x" * 300])
    assert reason_for(json.dumps(doc)).startswith(f"weather.warning.{kind}: data.references.0:")
    doc["data"] = dict(doc["data"], references=[], warning_id="W" * 257)
    assert reason_for(json.dumps(doc)).startswith(f"weather.warning.{kind}: data.warning_id:")


def test_missing_envelope_field_is_named():
    doc = graduate_event("E1", "P-1")
    del doc["occurred_at"]
    assert reason_for(json.dumps(doc)) == "event: 'occurred_at' is a required property"


def test_time_without_offset_is_rejected():
    doc = graduate_event("E1", "P-1") | {"occurred_at": "2026-07-01T09:30:00"}
    assert "has no UTC offset" in reason_for(json.dumps(doc))


def test_person_event_about_an_enterprise_is_rejected():
    doc = graduate_event("E1", "P-1")
    doc["subject"]["kind"] = "enterprise"
    assert "subject.kind must be 'person'" in reason_for(json.dumps(doc))


def test_area_wide_event_with_a_subject_is_rejected():
    doc = weather_event("W1", ["440308"]) | {"subject": {"kind": "person", "id": "P-1"}}
    assert "has no subject" in reason_for(json.dumps(doc))


def test_event_that_is_not_an_object_is_rejected():
    assert reason_for(b"[1, 2]") == "an event is a JSON object, not list"
