"""The fields a rule may name, and the check that it names only those.

A condition on ``profile.langauge`` is null for everyone and reaches nobody; a template naming
``data.shcool`` inside an ``{% if %}`` branch the example does not take renders fine until the day
it is taken. Both are caught here, statically: every field path in a condition or a template
(``data.school``, ``profile.contacts``, ``recipient.name``…) is looked up in what the rule's event
types declare (their JSON Schemas) and what a profile holds (``app.profiles.model``), and one that
is not there is an error with the closest names that are.

A tree maps each field to its children: ``LEAF`` (nothing below), ``OPEN`` (anything below: an
object whose keys the schema leaves free), or a dict of the children. A list's tree is that of its
items, so ``data.circles[0].lat`` is checked.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable
from typing import Any

from jinja2 import Environment, nodes

from app.intake.events import EventType

Tree = dict[str, Any] | None  # None: anything below is allowed
OPEN: Tree = None
LEAF: Tree = {}

_CONTACT = {"role": LEAF, "name": LEAF, "mobile": LEAF, "email": LEAF}
PROFILE: dict[str, Tree] = {
    "id": LEAF, "kind": LEAF, "name": LEAF, "district": LEAF, "language": LEAF, "tags": LEAF,
    "mobile": LEAF, "email": LEAF, "industry": LEAF, "permits": LEAF, "credit_code": LEAF,
    "contacts": _CONTACT, "location": {"lat": LEAF, "lon": LEAF}, "preferences": OPEN,
    "dates": OPEN, "size": LEAF, "registered_capital": LEAF, "qualifications": LEAF,
}  # fmt: skip
RECIPIENT: dict[str, Tree] = {"name": LEAF, "role": LEAF}
_MAX_DEPTH = 8


def schema_tree(schema: Any, depth: int = 0) -> Tree:
    """The field tree a JSON Schema declares; OPEN where it does not say."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return OPEN
    if "items" in schema and isinstance(schema["items"], dict):
        return schema_tree(schema["items"], depth + 1)
    branches = [schema, *(b for k in ("anyOf", "oneOf", "allOf") for b in schema.get(k) or ()
                          if isinstance(b, dict))]  # fmt: skip
    properties: dict[str, Any] = {}
    for branch in branches:
        if isinstance(branch.get("properties"), dict):
            for key, sub in branch["properties"].items():
                properties.setdefault(key, []).append(sub)
    if not properties:
        kind = schema.get("type")
        scalar = kind in ("string", "number", "integer", "boolean", "null") or "enum" in schema
        return LEAF if scalar else OPEN
    tree: dict[str, Tree] = {}
    for key, subs in properties.items():
        trees = [schema_tree(s, depth + 1) for s in subs if s.get("type") or s.get("properties")
                 or s.get("items") or s.get("enum")] or [schema_tree(subs[0], depth + 1)]  # fmt: skip
        tree[key] = merge(trees)
    return tree


def merge(trees: Iterable[Tree]) -> Tree:
    merged: dict[str, Tree] = {}
    for tree in trees:
        if tree is None:
            return OPEN
        for key, sub in tree.items():
            merged[key] = sub if key not in merged else merge([merged[key], sub])
    return merged


def fields_for(event_types: Iterable[EventType]) -> dict[str, Tree]:
    """What a rule on these event types may name: data, event, profile, recipient."""
    data = merge(schema_tree((t.schema.get("properties") or {}).get("data")) for t in event_types)
    event: dict[str, Tree] = {"id": LEAF, "type": LEAF, "occurred_at": LEAF, "source": LEAF,
                              "subject": {"kind": LEAF, "id": LEAF}, "district": LEAF, "data": data}  # fmt: skip
    return {"data": data, "event": event, "profile": PROFILE, "recipient": RECIPIENT}


def unknown_field(path: list[str], roots: dict[str, Tree]) -> str | None:
    """Why ``path`` (``["data", "shcool"]``) names nothing, with a did-you-mean; None if it does."""
    tree: Tree = roots
    for depth, part in enumerate(path):
        if tree is None:
            return None
        if part == "[]":  # an index into a list: the same tree
            continue
        if part not in tree:
            where = ".".join(path[: depth + 1])
            if not tree:
                return f"{'.'.join(path[:depth])} has no fields, so {where} is always missing"
            close = difflib.get_close_matches(part, list(tree), n=3, cutoff=0.6)
            hint = ("did you mean " + ", ".join(".".join([*path[:depth], c]) for c in close) + "?"
                    if close else "known: " + ", ".join(sorted(tree)[:20]))  # fmt: skip
            return f"no field {where}; {hint}"
        tree = tree[part]
    return None


def _chain(node: ast.AST) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
        elif isinstance(node.slice, ast.Constant):
            parts.append(node.slice.value if isinstance(node.slice.value, str) else "[]")
        else:
            return None
        node = node.value
    if not parts or not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _outermost(tree: ast.AST) -> set[int]:
    """Nodes that are part of a longer chain (their parent is an Attribute or Subscript)."""
    inner = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Subscript):
            inner.add(id(node.value))
    return inner


def condition_problems(tree: ast.AST, roots: dict[str, Tree]) -> list[str]:
    inner = _outermost(tree)
    problems = []
    for node in ast.walk(tree):
        if id(node) in inner:
            continue
        path = _chain(node)
        if path is not None and (why := unknown_field(path, roots)):
            problems.append(why)
    return problems


_parser = Environment(autoescape=True)  # only parses


def template_problems(source: str, roots: dict[str, Tree]) -> list[str]:
    """Each field a template names that its rule's events and profiles do not have, whichever
    branch it is in. Names the template sets itself (``{% set %}``, loop variables) are its own."""
    try:
        parsed = _parser.parse(source)
    except Exception:  # noqa: BLE001 - a syntax error is the renderer's to report, with its line
        return []
    roots = dict(roots)
    for loop in parsed.find_all(nodes.For):  # {% for c in profile.contacts %}: c is a contact
        path = (
            _jinja_chain(loop.iter)
            if isinstance(loop.iter, nodes.Getattr | nodes.Getitem)
            else None
        )
        if isinstance(loop.target, nodes.Name) and path and path[0] in roots:
            tree = _subtree(path, roots)
            if tree is not _MISSING:
                roots[loop.target.name] = tree
    own = {n.name for n in parsed.find_all(nodes.Name)
           if n.ctx in ("store", "param") and n.name not in roots}  # fmt: skip
    inner = {id(n.node) for n in parsed.find_all((nodes.Getattr, nodes.Getitem))
             if isinstance(n, nodes.Getattr | nodes.Getitem)}  # fmt: skip
    called = {id(n.node) for n in parsed.find_all(nodes.Call)}  # data.text.strip(): a method
    problems = []
    for node in parsed.find_all((nodes.Getattr, nodes.Getitem)):
        if id(node) in inner:
            continue
        path = _jinja_chain(node)
        if path is None or path[0] in own or path[0] not in roots:
            continue
        if id(node) in called:
            path = path[:-1]
        why = unknown_field(path, roots)
        if why and why not in problems:
            problems.append(f"line {node.lineno}: {why}")
    return problems


_MISSING: Any = object()


def _subtree(path: list[str], roots: dict[str, Tree]) -> Tree:
    tree: Tree = roots
    for part in path:
        if tree is None:
            return OPEN
        if part != "[]":
            if part not in tree:
                return _MISSING
            tree = tree[part]
    return tree


def _jinja_chain(node: nodes.Node) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
        elif isinstance(node.arg, nodes.Const):
            parts.append(node.arg.value if isinstance(node.arg.value, str) else "[]")
        else:
            return None
        node = node.node
    if not isinstance(node, nodes.Name):
        return None
    return [node.name, *reversed(parts)]
