import shutil
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.core.settings import PROJECT_ROOT
from app.planning.rules import load_rules
from app.rendering.renderer import Renderer
from lifecycle.cli import main


@pytest.fixture
def renderer() -> Renderer:
    return Renderer(PROJECT_ROOT / "templates", signature="【测试】", tz=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    return folder


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")


GOOD = """\
    id: {id}
    on: graduate.reception.approved
    category: reminder
    recipients:
      subject: true
    channels:
      sms: graduate_hukou_transfer
"""


def test_the_seed_rules_are_valid(renderer):
    result = load_rules(PROJECT_ROOT / "rules", renderer)
    assert result.errors == []
    assert {r.id for r in result.rules} == {
        # residents
        "graduate-hukou-transfer", "hukou-migration-completed", "id-card-renewal",
        "old-age-allowance", "birth-registration-next-steps", "newborn-hukou-registered",
        "pension-next-steps", "residence-permit-renewal", "marriage-next-steps",
        "school-enrolment", "driving-licence-renewal", "travel-permit-renewal",
        "unemployment-benefit", "resident-medical-insurance-renewal",
        # enterprises
        "business-registered-next-steps", "weather-outdoor-ads-warning",
        "weather-outdoor-ads-all-clear", "weather-construction-sites-warning",
        "weather-hazardous-goods-warning", "enterprise-annual-report", "tax-filing-period",
        "outdoor-ad-permit-renewal", "food-licence-renewal", "policy-matched",
    }  # fmt: skip


def test_weather_seed_rule_targets_permit_holders_in_the_warned_areas(renderer):
    rule = load_rules(PROJECT_ROOT / "rules", renderer).get("weather-outdoor-ads-warning")
    assert rule.category == "warning"
    assert rule.audience.index_terms() == ["kind:enterprise", "permit:outdoor_advertising"]
    assert (rule.contacts, rule.fallback_contacts) == (
        ("safety_officer",),
        ("legal_representative",),
    )


def test_on_is_read_as_a_field_not_as_yaml_true(rules_dir, renderer):
    write(rules_dir, "a.yaml", GOOD.format(id="a"))
    assert load_rules(rules_dir, renderer).rules[0].event_type == "graduate.reception.approved"


def errors_for(rules_dir, renderer, text):
    write(rules_dir, "bad.yaml", text)
    return [(e.file, e.rule_id, e.field, e.message) for e in load_rules(rules_dir, renderer).errors]


def test_unknown_event_type_names_file_rule_and_field(rules_dir, renderer):
    errors = errors_for(
        rules_dir,
        renderer,
        GOOD.format(id="r1").replace("graduate.reception.approved", "graduate.approved"),
    )
    assert len(errors) == 1
    file, rule_id, field, message = errors[0]
    assert (file.endswith("bad.yaml"), rule_id, field) == (True, "r1", "on")
    assert "unknown event type 'graduate.approved'" in message


def test_unsafe_condition_is_refused(rules_dir, renderer):
    errors = errors_for(rules_dir, renderer, GOOD.format(id="r2") + "    when: data.__class__\n")
    assert [(e[1], e[2]) for e in errors] == [("r2", "when")]


def test_missing_template_is_reported(rules_dir, renderer):
    errors = errors_for(
        rules_dir, renderer, GOOD.format(id="r3").replace("graduate_hukou_transfer", "no_such")
    )
    assert errors[0][1:3] == ("r3", "channels.sms")
    assert "no_such/zh-CN/sms.txt" in errors[0][3]


def test_template_using_a_field_the_event_lacks_is_reported(rules_dir, renderer, tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    (templates / "graduate_hukou_transfer" / "zh-CN" / "sms.txt").write_text(
        "{{ data.no_such_field }}", encoding="utf-8"
    )
    own = Renderer(templates, signature="", tz=ZoneInfo("Asia/Shanghai"))
    errors = errors_for(rules_dir, own, GOOD.format(id="r4"))
    assert errors[0][1:3] == ("r4", "channels.sms")
    assert "no_such_field" in errors[0][3]


def test_several_problems_are_all_reported(rules_dir, renderer):
    errors = errors_for(
        rules_dir,
        renderer,
        """\
        id: Bad Id
        on: nope
        category: gossip
        colour: red
        recipients: {}
        channels: {fax: x}
    """,
    )
    assert {e[2] for e in errors} >= {
        "id",
        "on",
        "category",
        "colour",
        "recipients",
        "channels.fax",
    }


def test_subject_on_an_area_wide_event_is_refused(rules_dir, renderer):
    text = GOOD.format(id="r5").replace("graduate.reception.approved", "weather.warning.issued")
    assert ("r5", "recipients.subject") in [
        (e[1], e[2]) for e in errors_for(rules_dir, renderer, text)
    ]


def test_duplicate_rule_ids_are_refused(rules_dir, renderer):
    write(rules_dir, "one.yaml", GOOD.format(id="same"))
    write(rules_dir, "two.yaml", GOOD.format(id="same"))
    errors = load_rules(rules_dir, renderer).errors
    assert [(e.rule_id, e.field) for e in errors] == [("same", "id")]


def test_invalid_yaml_is_reported_with_its_line(rules_dir, renderer):
    errors = errors_for(rules_dir, renderer, "id: x\non: [unclosed\n")
    assert errors[0][2].startswith("line ")


def test_rules_check_command_exits_1_and_prints_file_rule_and_field(rules_dir, capsys):
    write(
        rules_dir,
        "bad.yaml",
        GOOD.format(id="r6").replace("category: reminder", "category: gossip"),
    )
    assert main(["rules", "check", str(rules_dir)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml: rule r6: category: must be one of warning, reminder, notice" in err


def test_rules_check_command_passes_on_the_seed_rules(capsys):
    shipped = len(list((PROJECT_ROOT / "rules").glob("*.yaml")))  # one rule a file
    assert main(["rules", "check"]) == 0
    assert f"{shipped} rule(s) valid, 0 error(s)" in capsys.readouterr().out


FOLLOW_UP = (
    GOOD
    + """\
    follow_up:
      stop_on: hukou.migration.completed
      steps:
"""
)


def test_a_follow_up_is_read_with_its_steps(rules_dir, renderer):
    write(
        rules_dir,
        "a.yaml",
        FOLLOW_UP.format(id="a")
        + """\
        - {after: 3d, at: "09:30", repeat: 2, channels: {sms: graduate_hukou_reminder}}
        - {after: 12h}
    """,
    )
    result = load_rules(rules_dir, renderer)
    assert result.errors == []
    follow_up = result.rules[0].follow_up
    assert follow_up.stop_on == ("hukou.migration.completed",)
    first, second = follow_up.steps
    assert (first.after_seconds, first.at, first.repeat) == (3 * 86400, (9, 30), 2)
    assert first.channels == {"sms": "graduate_hukou_reminder"}
    assert (second.after_seconds, second.at, second.repeat, second.channels) == (
        43200,
        None,
        1,
        None,
    )
    assert result.stop_types == {"hukou.migration.completed"}


@pytest.mark.parametrize("steps, field, says", [
    ("        - {after: soon}\n", "follow_up.steps[0].after", "3d, 12h"),
    ("        - {after: 1d, at: '9am'}\n", "follow_up.steps[0].at", "HH:MM"),
    ("        - {after: 1d, repeat: 0}\n", "follow_up.steps[0].repeat", "1 to 10"),
    ("        - {after: 1d, wait: 2}\n", "follow_up.steps[0].wait", "unknown field"),
    ("        - {after: 1d}\n        - {after: 1d, channels: {sms: no_such_template}}\n",
     "follow_up.steps[1].channels.sms", "template files missing"),
    ("        - {after: 1d, channels: {fax: x}}\n", "follow_up.steps[0].channels.fax", "unknown channel"),
])  # fmt: skip
def test_a_bad_follow_up_step_is_refused_with_its_field(rules_dir, renderer, steps, field, says):
    write(rules_dir, "a.yaml", FOLLOW_UP.format(id="a") + steps)
    errors = load_rules(rules_dir, renderer).errors
    assert [(e.file, e.rule_id, e.field) for e in errors] == [("rules/a.yaml", "a", field)], errors
    assert says in errors[0].message


def test_a_follow_up_needs_a_subject_and_completions_with_one(rules_dir, renderer):
    write(
        rules_dir,
        "a.yaml",
        """\
    id: a
    on: weather.warning.issued
    category: warning
    recipients:
      audience: {kind: enterprise}
    channels:
      sms: weather_outdoor_ads
    follow_up:
      stop_on: [weather.warning.cancelled, no.such.event]
      steps: [{after: 1h}]
    """,
    )
    fields = {e.field: e.message for e in load_rules(rules_dir, renderer).errors}
    assert "subject: true" in fields["follow_up"]
    assert "area-wide" in fields["follow_up.stop_on[0]"]
    assert "unknown event type" in fields["follow_up.stop_on[1]"]


def test_a_date_rule_fires_on_its_kind_s_date_event_and_is_checked(rules_dir, renderer):
    write(
        rules_dir,
        "a.yaml",
        """\
    id: card
    on_date: {kind: person, fact: id_card_expiry, days: -30}
    category: reminder
    recipients: {subject: true}
    channels: {sms: id_card_renewal}
    """,
    )
    result = load_rules(rules_dir, renderer)
    assert result.errors == []
    [rule] = result.rules
    assert rule.event_types == ("person.date.due",) and rule.on_date.days == -30
    assert result.date_rules("person") == [rule] and result.date_rules("enterprise") == []
    write(
        rules_dir,
        "a.yaml",
        """\
    id: card
    on: graduate.reception.approved
    on_date: {kind: person, fact: id_card_expiry, at: "7am"}
    category: reminder
    recipients: {audience: {kind: person}}
    channels: {sms: id_card_renewal}
    """,
    )
    fields = {e.field for e in load_rules(rules_dir, renderer).errors}
    assert {"on", "on_date.at", "recipients"} <= fields
