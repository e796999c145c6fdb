"""A rule names only fields there are: in conditions, in every template branch, in loops; and
every template renders with the variations of the example event its type allows."""

import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.core.settings import PROJECT_ROOT
from app.intake.events import catalogue
from app.planning.fields import LEAF, OPEN, fields_for, schema_tree, template_problems
from app.planning.rules import load_rules
from app.planning.samples import variations
from app.rendering.renderer import Renderer
from tests.unit.planning.test_rules import GOOD, errors_for
from tests.unit.planning.test_rules import renderer as renderer  # noqa: F401 - a fixture
from tests.unit.planning.test_rules import rules_dir as rules_dir  # noqa: F401 - a fixture

GRADUATE = "graduate.reception.approved"
WARNING = "weather.warning.issued"


def roots(*types):
    return fields_for(catalogue()[t] for t in types or (GRADUATE,))


def test_the_schema_gives_the_tree_lists_by_their_items_and_free_objects_open():
    tree = schema_tree(catalogue()[WARNING].schema["properties"]["data"])
    assert tree["level"] == LEAF and tree["translations"] is OPEN
    assert tree["circles"] == {"lat": LEAF, "lon": LEAF, "radius_km": LEAF}


@pytest.mark.parametrize(("condition", "said"), [
    ('profile.langauge == "zh-CN"', "no field profile.langauge; did you mean profile.language?"),
    ('data.shcool == "深圳大学"', "no field data.shcool; did you mean data.school?"),
    ('data["approvl_no"] != null', "did you mean data.approval_no, data.approved_on?"),
    ('event.subject.kidn == "person"', "did you mean event.subject.kind"),
    ("data.school.name", "data.school has no fields"),
])  # fmt: skip
def test_a_condition_on_a_field_that_does_not_exist_is_refused(
    rules_dir, renderer, condition, said
):  # noqa: F811
    errors = errors_for(rules_dir, renderer, GOOD.format(id="c1") + f"    when: '{condition}'\n")
    assert [e[2] for e in errors] == ["when"] and said in errors[0][3]


def test_known_fields_pass_anywhere_they_are_named(rules_dir, renderer):  # noqa: F811
    condition = ('profile.language == "zh-CN" and "x" in profile.tags and len(profile.contacts) == 0'
                 ' and event.subject.kind == "person" and profile.preferences.anything == 1')  # fmt: skip
    assert (
        errors_for(rules_dir, renderer, GOOD.format(id="c2") + f"    when: '{condition}'\n") == []
    )


def test_a_misspelt_field_in_a_branch_the_example_never_takes_is_caught():
    source = ('{% if data.school == "none" %}{{ data.recieving_unit }}{% endif %}'
              "{% for c in profile.contacts %}{{ c.nme }}{% endfor %}"
              "{% set x = data.school %}{{ x.anything }}{{ data.school.strip() }}{{ loop }}")  # fmt: skip
    assert template_problems(source, roots()) == [
        "line 1: no field data.recieving_unit; did you mean data.receiving_unit?",
        "line 1: no field c.nme; did you mean c.name?",
    ]


def test_a_warning_template_may_name_translations_freely_but_not_a_made_up_field():
    source = "{{ data.translations.en.headline }}{{ data.circles[0].lat }}{{ data.levle }}"
    assert template_problems(source, roots(WARNING)) == [
        "line 1: no field data.levle; did you mean data.level?"
    ]


def test_variations_take_each_enumerated_value_and_leave_out_each_optional_field():
    example = catalogue()[WARNING].examples[0]
    labels = [label for label, _ in variations(example)]
    assert labels[0] == "the example"
    levels = {"blue", "yellow", "orange", "red"} - {example["data"]["level"]}
    assert {f"data.level = {v!r}" for v in levels} <= set(labels)
    optional = set(example["data"]) - set(
        catalogue()[WARNING].schema["properties"]["data"]["required"]
    )
    assert {f"without data.{k}" for k in optional} <= set(labels)


def test_a_template_that_fails_only_in_a_branch_another_level_takes_is_refused(rules_dir, tmp_path):  # noqa: F811
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    sms = templates / "weather_outdoor_ads" / "zh-CN" / "sms.txt"
    sms.write_text(
        '{% if data.level == "red" %}{{ data.headline | date }}{% endif %}预警', encoding="utf-8"
    )
    own = Renderer(templates, signature="", tz=ZoneInfo("Asia/Shanghai"))
    shutil.copy(PROJECT_ROOT / "rules" / "weather_outdoor_ads.yaml", rules_dir / "w.yaml")
    [error] = load_rules(rules_dir, own).errors
    assert error.field == "channels.sms" and "with data.level = 'red'" in error.message


def test_the_shipped_rules_and_templates_pass(renderer):  # noqa: F811
    assert load_rules(Path(PROJECT_ROOT / "rules"), renderer).errors == []
