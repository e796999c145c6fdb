"""The rule book's live set as a worker applies it: seed files with live versions over them, a set
that does not load refused with the last good one kept, rollback to the shipped version."""

from app.planning.rulebook import RuleBook, materialise, seed_rule, template_problems
from app.planning.rules import load_rules
from wiring.runtime import Runtime, make_renderer

RULE = "graduate-hukou-transfer"
SMS = "graduate_hukou_transfer/zh-CN/sms.txt"


async def test_a_set_that_does_not_load_is_refused_and_the_last_good_one_kept(settings):
    rt = Runtime.build(settings, deliver=False)
    try:
        book = RuleBook(rt.redis, settings.redis_prefix)
        seed = seed_rule(settings.rules_dir, RULE)
        good = {**seed, "districts": ["440308"]}
        await book._append(RULE, good, {SMS: "新文本 {{ data.approval_no }}"}, 1, note="test")
        assert "applied" in await rt.reload_rules()
        assert rt.rules.get(RULE).version == 2 and rt.planner.rules is rt.rules
        text = rt.renderer.render("graduate_hukou_transfer", "sms", "zh-CN",
                                  {"data": {"approval_no": "A-1"}, "recipient": {}}).text  # fmt: skip
        assert text.endswith("新文本 A-1")  # after the SMS signature
        await book._append(RULE, {**good, "category": "gossip"}, {}, 2, note="bad")
        said = await rt.reload_rules()
        assert "refused, the last good one kept" in said and "category" in said
        assert rt.rules.get(RULE).version == 2  # still the good one
        assert await rt.reload_rules() is None  # said once, not every second
    finally:
        await rt.close()


def test_the_live_set_replaces_only_the_rules_the_book_has(settings, tmp_path):
    seed = seed_rule(settings.rules_dir, RULE)
    live = {
        RULE: {
            "version": 5,
            "rule": {**seed, "name": "改过的"},
            "templates": {SMS: "短信 {{ data.approval_no }}"},
        }
    }
    live_set = materialise(settings.rules_dir, settings.templates_dir, live, 7, parent=tmp_path)
    result = load_rules(live_set.rules_dir, make_renderer(settings, live_set.templates_dir))
    assert result.errors == []
    shipped = load_rules(settings.rules_dir, make_renderer(settings))
    assert sorted(r.id for r in result.rules) == sorted(r.id for r in shipped.rules)
    assert result.get(RULE).version == 5 and result.get(RULE).name == "改过的"
    assert (live_set.templates_dir / SMS).read_text(encoding="utf-8").startswith("短信")
    assert (settings.templates_dir / SMS).read_text(
        encoding="utf-8"
    ) != "短信 {{ data.approval_no }}"


def test_template_paths_cannot_leave_the_templates_folder():
    for path in (
        "../x/zh-CN/sms.txt",
        "a/zh-CN/../../sms.txt",
        "/etc/passwd",
        "a/zh-CN/run.sh",
        "A/zh-CN/sms.txt",
    ):
        assert template_problems({path: "x"}), path
    assert template_problems({"a/zh-CN/sms.txt": "x" * 20_000})
    assert template_problems({"a_b/en/email.html": "<p>ok</p>"}) == []


async def test_rules_export_writes_the_live_set_as_files_that_check(
    settings, tmp_path, monkeypatch, capsys
):
    from app.core.settings import to_environ
    from lifecycle.cli import main

    rt = Runtime.build(settings, deliver=False)
    try:
        seed = seed_rule(settings.rules_dir, RULE)
        await RuleBook(rt.redis, settings.redis_prefix)._append(
            RULE, {**seed, "name": "导出的"}, {SMS: "导出 {{ data.approval_no }}"}, 1, note="test"
        )
    finally:
        await rt.close()
    for name, value in to_environ(settings).items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "export"
    assert main(["rules", "export", str(out)]) == 0
    assert "1 from the console" in capsys.readouterr().out
    assert (out / "templates" / SMS).read_text(encoding="utf-8") == "导出 {{ data.approval_no }}"
    assert main(["rules", "check", str(out / "rules")]) in (
        0,
        1,
    )  # check reads the shipped templates dir
    exported = load_rules(out / "rules", make_renderer(settings, out / "templates"))
    assert (
        exported.errors == []
        and exported.get(RULE).name == "导出的"
        and exported.get(RULE).version == 2
    )
    assert main(["rules", "export", str(out)]) == 2  # never over an existing folder
