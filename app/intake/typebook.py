"""Event types added in the console: a JSON Schema for ``data`` and an example, versioned.

An author or an admin drafts a type; an admin other than the one who drafted it approves it, and
it becomes the type's next version. The shipped types (``app/intake/schemas/events/``) are never
replaced: a console type has a name of its own. Every process installs the live versions with
``events.install_types`` when the rule book's generation changes (an approval bumps it), so a rule
on a new type loads in the same poll that brings the type.

A console type's schema is written by staff, so it is held to limits: at most 32 KB and 16 levels
deep, no ``$ref`` outside itself (nothing is fetched), patterns of at most 300 characters; and its
events are checked by jsonschema-rs alone, whose regular expressions do not backtrack without
bound (Python's would, on a pattern like ``(a+)+$``).

Keys (under the configured prefix):

    eventtypes:names            set of the names with versions
    eventtypes:{name}:versions  list of versions (JSON): version, type, author, approved_by, created_at
    eventtypes:{name}:draft     the draft (JSON): type, author, status, errors, saved_at, …
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from redis import Redis as SyncRedis

from app.core.book import ReviewedBook
from app.core.codec import nesting_depth, text
from app.core.errors import BookError, EventRejected
from app.intake.events import EventType, shipped_types, validate_event

logger = logging.getLogger(__name__)

NAME = re.compile(r"[a-z][a-z0-9_]{0,30}(\.[a-z][a-z0-9_]{0,30}){1,4}")
SUBJECTS = ("person", "enterprise", None)
MAX_SCHEMA_BYTES = 32 * 1024
MAX_SCHEMA_DEPTH = 16
MAX_PATTERN_CHARS = 300
_REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")


def full_schema(name: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The schema file a console type amounts to, in the shape of the shipped ones."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": name,
        "description": doc.get("description") or "",
        "x-subject": doc.get("subject"),
        "properties": {"data": doc["data"]},
        "examples": [doc["example"]],
    }


def compile_type(name: str, doc: dict[str, Any]) -> EventType:
    """The EventType of a console type's document (checked first: ``type_problems``)."""
    schema = full_schema(name, doc)
    return EventType(name=name, subject=doc.get("subject"), description=doc.get("description") or "",
                     validator=None, fast=jsonschema_rs.Draft202012Validator(schema),
                     examples=(doc["example"],), schema=schema, shipped=False)  # fmt: skip


def type_problems(name: str, doc: Any) -> list[dict[str, str]]:
    """Each problem with a console type's document, by field; [] when it can be installed."""
    if not NAME.fullmatch(name):
        return [{"field": "name", "message": "lower-case words joined by dots, as "
                 "retirement.pension.approved: 2 to 5 words of letters, digits and _"}]  # fmt: skip
    if name in shipped_types():
        return [{"field": "name", "message": f"{name} is a shipped type; a console type needs a name of its own"}]  # fmt: skip
    if not isinstance(doc, dict):
        return [{"field": "type", "message": '{"subject", "description", "data", "example"}'}]
    problems = []
    if doc.get("subject") not in SUBJECTS:
        problems.append(
            {"field": "subject", "message": "person, enterprise or null (about an area)"}
        )
    if not isinstance(doc.get("description", ""), str) or len(doc.get("description") or "") > 500:
        problems.append({"field": "description", "message": "text of at most 500 characters"})
    problems += _schema_problems(doc.get("data"))
    if problems:
        return problems
    try:
        event_type = compile_type(name, doc)
    except (ValueError, jsonschema_rs.ValidationError) as exc:
        return [{"field": "data", "message": f"the schema does not compile: {str(exc)[:300]}"}]
    example = doc.get("example")
    if not isinstance(example, dict) or example.get("type") != name:
        return [{"field": "example", "message": f'an event of this type: {{"type": "{name}", …}}'}]
    try:
        validate_event(example, types={name: event_type})
    except EventRejected as exc:
        return [{"field": "example", "message": exc.reason}]
    return []


def _schema_problems(data: Any) -> list[dict[str, str]]:
    if not isinstance(data, dict) or data.get("type") != "object":
        return [
            {
                "field": "data",
                "message": 'a JSON Schema of the event\'s data: {"type": "object", …}',
            }
        ]
    raw = json.dumps(data, ensure_ascii=False)
    if len(raw.encode("utf-8")) > MAX_SCHEMA_BYTES:
        return [{"field": "data", "message": f"at most {MAX_SCHEMA_BYTES // 1024} KB"}]
    if nesting_depth(raw) > MAX_SCHEMA_DEPTH:
        return [{"field": "data", "message": f"nested at most {MAX_SCHEMA_DEPTH} deep"}]
    problems = []
    stack: list[tuple[str, Any]] = [("data", data)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _REF_KEYS and not (isinstance(value, str) and value.startswith("#")):
                    problems.append({"field": f"{where}.{key}", "message": "only references inside the schema (#/…)"})  # fmt: skip
                elif key == "pattern" and isinstance(value, str) and len(value) > MAX_PATTERN_CHARS:
                    problems.append({"field": f"{where}.pattern", "message": f"at most {MAX_PATTERN_CHARS} characters"})  # fmt: skip
                else:
                    stack.append((f"{where}.{key}", value))
        elif isinstance(node, list):
            stack.extend((f"{where}.{i}", v) for i, v in enumerate(node))
    if not problems:
        try:
            Draft202012Validator.check_schema({"type": "object", "properties": {"data": data}})
        except SchemaError as exc:
            path = ".".join(str(p) for p in list(exc.path)[2:])
            problems.append({"field": f"data.{path}" if path else "data", "message": exc.message[:300]})  # fmt: skip
    return problems


def read_types(redis: SyncRedis, prefix: str) -> dict[str, EventType]:
    """The live version of every console type, compiled (sync: a worker reads it as it starts).
    A stored version that no longer compiles is left out, and said: its rules then do not load,
    and the worker keeps the rule set it has."""
    types: dict[str, EventType] = {}
    for raw_name in sorted(redis.smembers(f"{prefix}eventtypes:names")):
        name = text(raw_name)
        raw = redis.lindex(f"{prefix}eventtypes:{name}:versions", -1)
        if raw is None:
            continue
        doc = json.loads(raw)["type"]
        problems = type_problems(name, doc)
        if problems:
            logger.error("event type %s not installed: %s", name, problems[:3])
            continue
        types[name] = compile_type(name, doc)
    return types


class TypeBook(ReviewedBook):
    """Console event types: drafts, an admin's approval, versions."""

    family = "eventtypes"
    field = "type"
    noun = "event type"
    index = "names"

    async def approve(self, name: str, by: str) -> dict[str, Any]:
        """The waiting draft becomes the type's next version; every process installs it."""
        draft = await self.waiting(name, by)
        problems = type_problems(name, draft["type"])  # checked again: the limits may have moved
        if problems:
            raise BookError(422, f"the draft no longer passes: {problems[0]['field']}: {problems[0]['message']}")  # fmt: skip
        number = len(await self.versions(name)) + 1
        return await self.publish(name, draft["type"], draft, by, number)
