"""Tests that keep declarations honest (after GOV.UK Notify's test_all_queues_used): every topic is
produced or consumed, every agent module is registered, every template is used and renders."""

import ast
import re
from pathlib import Path

from app.core.settings import PROJECT_ROOT, Settings
from app.planning.rules import load_rules
from app.planning.samples import sample_contexts
from app.rendering.renderer import CHANNEL_FILES
from wiring.runtime import make_renderer


def source_of(folder: str) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / folder).rglob("*.py"))


def test_every_declared_topic_is_produced_or_consumed():
    import topics

    code = source_of("agents") + source_of("lifecycle")
    for topic in topics.ALL:
        name = topic.get_topic_name()
        variable = next(var for var, value in vars(topics).items() if value is topic)
        used = re.search(  # sent, consumed, dead-lettered, or a (topic, key, value) record
            rf"\b{variable}\.send\(|@app\.agent\({variable}\b|(dead_letter|send_record)\({variable}\b"
            rf"|\(\({variable}, ",  # gathered for send_records: records.append((deliveries, …))
            code,
        )
        assert used or f'"{name}"' in code, (
            f"topic {name} is declared but nothing sends to or reads it"
        )


def test_every_agent_module_is_registered():
    import agents

    modules = {
        p.stem
        for p in (PROJECT_ROOT / "agents").glob("*.py")
        if p.stem not in ("__init__", "common")
    }
    registered = {agent.fun.__module__.rsplit(".", 1)[1] for agent in agents.ALL}
    registered |= {timer.__module__.rsplit(".", 1)[1] for timer in agents.TIMERS}
    assert registered == modules
    for path in (PROJECT_ROOT / "agents").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        decorated = [f.name for f in ast.walk(tree) if isinstance(f, ast.AsyncFunctionDef)
                     and any("agent" in ast.unparse(d) for d in f.decorator_list)]  # fmt: skip
        assert len(decorated) <= 1, f"{path.name}: one agent per module"


def test_the_domain_never_imports_agents_or_topics():
    for path in (PROJECT_ROOT / "app").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])  # fmt: skip
            assert not any(n.split(".")[0] in ("agents", "topics", "lifecycle") for n in names), (
                path
            )


def test_every_template_folder_is_used_by_a_rule_and_renders_in_every_language():
    settings = Settings()
    renderer = make_renderer(settings)
    rules = load_rules(settings.rules_dir, renderer)
    assert rules.errors == []
    used = {(template, channel) for rule in rules.rules for channel, template in rule.templates()}
    folders = {p.name for p in Path(settings.templates_dir).iterdir() if p.is_dir()}
    assert folders == {template for template, _ in used}, "a template folder no rule uses"
    for rule in rules.rules:
        for channel, template in rule.templates():
            for language in renderer.languages(template):
                for context in sample_contexts(rule):
                    assert renderer.render(template, channel, language, context)
    for template, channel in used:
        for language in renderer.languages(template):
            for file in CHANNEL_FILES[channel]:
                assert (Path(settings.templates_dir) / template / language / file).is_file()
