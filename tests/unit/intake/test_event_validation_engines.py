"""Events are checked by a compiled validator (jsonschema-rs); only when it finds a fault does
the reference one (jsonschema) run, for the reason it has always given. The compiled one must
never pass what the reference one refuses: these cases look for such a doc."""

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from app.core.errors import EventRejected
from app.intake.events import _envelope, _fast_envelope, catalogue, parse_event

ODD_VALUES: list[Any] = [
    None, True, 0, -1, 1.5, 10**20, "", " ", "x" * 300, "440308\n", "４４０３０８", "44030",
    "4403080", "2026-13-45", "2026-07-01\n", "漢字", [], [0], ["a"], [[0, 0]], [[1.0, 2.0, 3.0]],
    {}, {"kind": "person"}, {"id": 1, "kind": "robot"},
]  # fmt: skip


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in ``doc`` that holds a value."""
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    )
    for key, value in items:
        yield (*prefix, key)
        yield from paths(value, (*prefix, key))


def mutations(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path in list(paths(doc)):
        for value in [*ODD_VALUES, "__drop__"]:
            changed = copy.deepcopy(doc)
            parent = changed
            for key in path[:-1]:
                parent = parent[key]
            if value == "__drop__":
                if isinstance(parent, dict):
                    del parent[path[-1]]
                else:
                    parent.pop(path[-1])
            else:
                parent[path[-1]] = value
            yield changed


def examples() -> list[tuple[str, dict[str, Any]]]:
    return [(t.name, ex) for t in catalogue().values() for ex in t.examples]


@pytest.mark.parametrize(
    ("name", "example"), examples(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_the_compiled_validators_pass_nothing_the_reference_ones_refuse(name, example):
    event_type = catalogue()[name]
    checked = 0
    for doc in mutations(example):
        for fast, reference in (
            (_fast_envelope(), _envelope()),
            (event_type.fast, event_type.validator),
        ):
            if fast.is_valid(doc):
                assert reference.is_valid(doc), json.dumps(doc, ensure_ascii=False)
            checked += 1
    assert checked > 100


def test_the_reason_is_the_reference_validators():
    doc = examples()[0][1] | {"id": "has spaces"}
    with pytest.raises(EventRejected) as info:
        parse_event(json.dumps(doc))
    assert info.value.reason == "id: 'has spaces' does not match '^[A-Za-z0-9._:-]+$'"


def test_where_only_the_compiled_validator_finds_a_fault_its_reason_is_given():
    """JSON Schema patterns are ECMA-262 regular expressions, in which ``$`` is the end of the
    text. In Python's, used by jsonschema, it also matches before a final newline, so the
    reference validator alone would take "440308\n" for a district code."""
    name, example = next((n, e) for n, e in examples() if "district" in e)
    doc = example | {"district": example["district"] + "\n"}
    assert _envelope().is_valid(doc) and not _fast_envelope().is_valid(doc)
    with pytest.raises(EventRejected) as info:
        parse_event(json.dumps(doc))
    assert info.value.reason == 'district: "440308\\n" does not match "^[0-9]{6}$"'
