"""Templates written by staff run bounded in time and memory: each bomb found by the attack on
the running stack is refused by `lifecycle rules check` within a second or two, naming file,
rule and field, with no traceback; and at run time a render that blows its budget fails that
one notification, not the worker."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.core.errors import RenderError
from app.core.settings import PROJECT_ROOT
from app.rendering.renderer import Renderer

RULE = """\
id: bomb
on: graduate.reception.approved
category: reminder
recipients:
  subject: true
channels:
  sms: bomb
"""

BOMBS = {
    "string multiplication": "{{ 'x' * 10**8 }}",
    "list multiplication": "{{ ([1] * 10**8) | length }}",
    "a huge power": "{{ 9**(9**9) }}",
    "a long range": "{% for i in range(10**7) %}{% endfor %}",
    "loops nested three deep": "{% for a in range(9) %}{% for b in range(9) %}{% for c in range(9) %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "a %-format width": "{{ '%0999999999d' % 1 }}",
    "a format filter width": "{{ '%999999999s' | format('x') }}",
    "str.ljust": "{{ 'x'.ljust(10**9) }}",
    "str.format": "{{ '{:>999999999}'.format('x') }}",
    "the center filter": "{{ 'x' | center(999999999) }}",
    "changing shared data": "{{ data.update({'school': 'forged'}) }}",
    "output of many megabytes": "{% for a in range(1000) %}{{ 'x' * 19000 }}{% endfor %}",
    "a silent loop of a million steps": "{% for a in range(1000) %}{% for b in range(1000) %}"
    "{% set c = a * b %}{% endfor %}{% endfor %}",
    "an SMS longer than gateways take": "{{ '长' * 600 }}",
}


def bomb_folder(tmp_path: Path, text: str) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bomb.yaml").write_text(RULE, encoding="utf-8")
    folder = tmp_path / "templates" / "bomb" / "zh-CN"
    folder.mkdir(parents=True)
    (folder / "sms.txt").write_text(text, encoding="utf-8")
    return rules, tmp_path / "templates"


@pytest.mark.parametrize("name", list(BOMBS))
def test_rules_check_refuses_each_template_bomb_quickly_and_clearly(tmp_path, name):
    rules, templates = bomb_folder(tmp_path, BOMBS[name])
    env = {**os.environ, "LIFECYCLE_TEMPLATES_DIR": str(templates)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lifecycle", "rules", "check", str(rules)],
                          env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert "bomb.yaml: rule bomb: channels.sms:" in done.stderr
    assert "bomb/zh-CN/sms.txt" in done.stderr
    assert "Traceback" not in done.stderr
    print(f"{name}: refused in {took:.2f} s (interpreter start included)")


def renderer(templates: Path) -> Renderer:
    return Renderer(templates, signature="【测试】", tz=ZoneInfo("Asia/Shanghai"))


def test_a_template_cannot_change_what_another_template_sees(tmp_path):
    _, templates = bomb_folder(tmp_path, "{{ data.update({'school': 'forged'}) }}")
    good = templates / "good" / "zh-CN"
    good.mkdir(parents=True)
    (good / "sms.txt").write_text("{{ data.school }}", encoding="utf-8")
    r = renderer(templates)
    context = {"data": {"school": "深圳大学"}}
    with pytest.raises(RenderError):
        r.render("bomb", "sms", "zh-CN", context)
    assert r.render("good", "sms", "zh-CN", context).text == "【测试】深圳大学"


def test_a_loop_in_an_untaken_branch_is_stopped_by_the_budget_when_taken(tmp_path):
    text = ("{% if data.school == 'x' %}{% for a in range(1000) %}{% for b in range(1000) %}"
            "{% set c = a * b %}{% endfor %}{% endfor %}{% endif %}ok")  # fmt: skip
    _, templates = bomb_folder(tmp_path, text)
    r = renderer(templates)
    assert r.render("bomb", "sms", "zh-CN", {"data": {"school": "y"}}).text == "【测试】ok"
    started = time.monotonic()
    with pytest.raises(RenderError, match="longer than"):
        r.render("bomb", "sms", "zh-CN", {"data": {"school": "x"}})
    assert time.monotonic() - started < 5  # the budget is 0.25 s; generous for a loaded machine


def test_ordinary_templates_still_render(tmp_path):
    text = textwrap.dedent("""\
        {% for i in range(3) %}{{ i }}{% endfor %} {{ '%05.1f' % 3.14159 }} {{ 'ab' * 3 }}
        {{ '%s-%s' | format('a', 'b') }} {{ 2 ** 10 }} {{ data.school | upper }}""")
    _, templates = bomb_folder(tmp_path, text)
    rendered = renderer(templates).render("bomb", "sms", "zh-CN", {"data": {"school": "szu"}})
    assert rendered.text == "【测试】012 003.1 ababab\na-b 1024 SZU"


def test_a_budget_inside_another_gives_the_outer_one_back_what_it_had_left():
    import signal

    from app.rendering.bounded import RenderBudgetExceeded, time_budget

    started = time.monotonic()
    with pytest.raises(RenderBudgetExceeded, match="longer than 0.3 s"):
        with time_budget(0.3):
            with time_budget(5):
                pass
            while True:  # the outer budget must still stop this
                time.sleep(0.01)
    assert 0.25 < time.monotonic() - started < 2
    time.sleep(0.4)  # a tick (every half budget) with no budget under way stops the timer
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_an_alarm_after_the_budget_ended_is_ignored():
    import signal

    from app.rendering.bounded import time_budget

    with time_budget(5):
        pass
    assert signal.getitimer(signal.ITIMER_REAL)[1] == 2.5  # ticking, every half budget
    signal.raise_signal(signal.SIGALRM)  # an alarm with no budget under way: it does nothing
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # but stop the timer


def test_a_budget_that_ran_out_leaves_nothing_behind_to_interrupt_other_code():
    """The budget is raised once, and gone: the code after the render (and an outer budget that
    has time left) is not interrupted by it again, however the render was left."""
    import signal

    from app.rendering.bounded import RenderBudgetExceeded, _Budget, time_budget

    with time_budget(5):
        with pytest.raises(RenderBudgetExceeded, match="longer than 0.1 s"):
            with time_budget(0.1):
                while True:
                    time.sleep(0.01)
        assert len(_Budget.running) == 1  # the outer one, still under way
        time.sleep(0.3)  # ticks come every 0.05 s: none of them raises now
    assert _Budget.running == []
    time.sleep(0.1)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_renders_do_not_arm_the_timer_each_but_share_one_that_runs(tmp_path):
    """Each render notes its deadline; the timer is armed by the first and runs meanwhile (a
    tick that falls between two renders stops it, and the next render arms it again: two
    calls a tick, every 0.125 s at most). Arming and disarming it for each was 400 calls."""
    import signal
    from unittest import mock

    _, templates = bomb_folder(tmp_path, "{{ data.school }}")
    r = renderer(templates)
    time.sleep(0.2)  # a tick with no render under way stops a timer left by another test
    with mock.patch("app.rendering.bounded.signal.setitimer", wraps=signal.setitimer) as armed:
        texts = {r.render("bomb", "sms", "zh-CN", {"data": {"school": "szu"}}).text
                 for _ in range(200)}  # fmt: skip
    assert texts == {"【测试】szu"}
    assert 1 <= armed.call_count <= 10


def test_a_dict_field_reads_as_jinja_reads_it() -> None:
    """The shortcut for ``data.level`` on a plain dict answers as Jinja's own lookup does: the
    item, a dict's own attribute before an item of that name, undefined for a missing key."""
    from jinja2 import StrictUndefined, UndefinedError
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from app.rendering.bounded import BoundedEnvironment

    ours = BoundedEnvironment(undefined=StrictUndefined)
    jinja = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    data = {"level": "red", "items": "shadowed", "名": "王", "n": 3, "nested": {"a": {"b": 1}}}
    for source in ("{{ d.level }}", "{{ d.名 }}", "{{ d.n + 1 }}", "{{ d.nested.a.b }}",
                   "{{ d.items() | list | length }}", "{{ d['items'] }}", "{{ d.get('level') }}"):  # fmt: skip
        assert ours.from_string(source).render(d=data) == jinja.from_string(source).render(d=data)
    for source in ("{{ d.missing }}", "{{ d.nested.missing }}"):
        with pytest.raises(UndefinedError):
            ours.from_string(source).render(d=data)
    with pytest.raises(SecurityError):  # a dict's method that changes it stays refused
        ours.from_string("{{ d.update({'level': 'x'}) }}").render(d=data)


def test_a_process_that_ends_with_the_timer_ticking_ends_normally():
    """At its end the interpreter puts SIGALRM back to its default action, which ends a process
    with that signal: the timer, still ticking after the last render, is stopped first."""
    code = ("import signal, sys\n"
            "from app.rendering.bounded import time_budget\n"
            "with time_budget(0.002):\n"
            "    pass\n"
            "assert signal.getitimer(signal.ITIMER_REAL)[1] > 0  # ticking every millisecond\n"
            "sys.exit(0)\n")  # fmt: skip
    for _ in range(5):
        done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, (done.returncode, done.stderr)
