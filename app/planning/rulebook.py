"""Rules and their templates as versioned data: drafts, four-eyes approval, history, rollback.

The shipped ``rules/`` and ``templates/`` are the seed. A change is a draft, saved by an author,
submitted, and approved by another person with the approver role for every district the rule
names (``districts:``; none means the whole deployment, ``*``). An approved draft becomes the
rule's next version and goes live; a rollback makes an earlier version's content live again as a
new version, so history only grows.

The live set is what ``materialise`` writes: the seed files, minus each rule that has a live
version in the book, plus that version's rule and templates. ``load_rules`` then checks the whole
set as it checks the files, so a version is held to the same checks, and a worker that cannot load
a new set keeps the one it has.

Keys (under the configured prefix):

    rulebook:ids              set of the rule ids with versions in the book
    rulebook:{id}:versions    list of versions (JSON): version, rule, templates, author,
                              submitted_by, approved_by, created_at, note
    rulebook:{id}:live        the live version's number
    rulebook:{id}:draft       the draft (JSON): rule, templates, author, status, errors, …
    rulebook:generation       bumped at every change of what is live; workers poll it
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from redis import Redis as SyncRedis

from app.core.book import Book, now_iso
from app.core.codec import text
from app.core.errors import BookError
from app.core.yaml12 import load_yaml

TEMPLATE_FILES = ("sms.txt", "email_subject.txt", "email.txt", "email.html", "provider.yaml")
_TEMPLATE_PATH = re.compile(r"([a-z0-9][a-z0-9_-]{0,63})/([a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)/(" +
                            "|".join(re.escape(f) for f in TEMPLATE_FILES) + ")")  # fmt: skip
MAX_TEMPLATE_CHARS = 16_000
MAX_TEMPLATES = 40


def template_problems(templates: Any) -> list[dict[str, str]]:
    """Each problem with a draft's ``templates`` map: paths, sizes, types."""
    if not isinstance(templates, dict):
        return [{"field": "templates", "message": 'a mapping of "NAME/LANG/FILE": text'}]
    problems = []
    if len(templates) > MAX_TEMPLATES:
        problems.append({"field": "templates", "message": f"at most {MAX_TEMPLATES} files"})
    for path, body in templates.items():
        if not isinstance(path, str) or not _TEMPLATE_PATH.fullmatch(path):
            problems.append({"field": f"templates.{str(path)[:80]}",
                             "message": "a path NAME/LANG/FILE, FILE one of " + ", ".join(TEMPLATE_FILES)})  # fmt: skip
        elif not isinstance(body, str) or len(body) > MAX_TEMPLATE_CHARS:
            problems.append({"field": f"templates.{path}",
                             "message": f"text of at most {MAX_TEMPLATE_CHARS} characters"})  # fmt: skip
    return problems


@dataclass(frozen=True)
class LiveSet:
    """Where ``materialise`` wrote a live set, and the generation it reflects."""

    root: Path
    rules_dir: Path
    templates_dir: Path
    generation: int


def read_snapshot(redis: SyncRedis, prefix: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """The generation and each rule's live version (sync: a worker reads it before it starts)."""
    generation = int(redis.get(f"{prefix}rulebook:generation") or 0)
    live: dict[str, dict[str, Any]] = {}
    for raw_id in sorted(redis.smembers(f"{prefix}rulebook:ids")):
        rule_id = text(raw_id)
        number = redis.get(f"{prefix}rulebook:{rule_id}:live")
        if number is None:
            continue
        raw = redis.lindex(f"{prefix}rulebook:{rule_id}:versions", int(number) - 1)
        if raw:
            live[rule_id] = json.loads(raw)
    return generation, live


def materialise(seed_rules: Path, seed_templates: Path, live: Mapping[str, Mapping[str, Any]],
                generation: int, parent: Path | None = None) -> LiveSet:  # fmt: skip
    """Write the live set (seed files with the book's live versions over them) to a new folder."""
    root = Path(tempfile.mkdtemp(prefix=f"live-{generation}-", dir=parent))
    rules_dir, templates_dir = root / "rules", root / "templates"
    if seed_templates.is_dir():
        shutil.copytree(seed_templates, templates_dir)
    else:
        templates_dir.mkdir()
    rules_dir.mkdir()
    if seed_rules.is_dir():
        for path in sorted([*seed_rules.rglob("*.yaml"), *seed_rules.rglob("*.yml")]):
            target = rules_dir / path.relative_to(seed_rules)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not live:
                shutil.copyfile(path, target)
                continue
            _copy_without(path, target, set(live))
    for rule_id, version in sorted(live.items()):
        doc = dict(version["rule"])
        doc["id"] = rule_id
        doc["version"] = version["version"]
        (rules_dir / "console").mkdir(exist_ok=True)
        (rules_dir / "console" / f"{rule_id}.yaml").write_text(
            yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        for rel, body in (version.get("templates") or {}).items():
            if _TEMPLATE_PATH.fullmatch(rel):  # checked when saved; checked again here
                target = templates_dir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(body, encoding="utf-8")
    return LiveSet(root, rules_dir, templates_dir, generation)


def _copy_without(path: Path, target: Path, overridden: set[str]) -> None:
    """Copy a seed rule file, leaving out the rules whose live version is the book's."""
    try:
        loaded = load_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        shutil.copyfile(path, target)  # its error is reported by load_rules, as for any file
        return
    if isinstance(loaded, dict) and isinstance(loaded.get("rules"), list):
        kept = [
            r for r in loaded["rules"] if not (isinstance(r, dict) and r.get("id") in overridden)
        ]
        if kept:
            target.write_text(yaml.safe_dump({"rules": kept}, allow_unicode=True, sort_keys=False),
                              encoding="utf-8")  # fmt: skip
    elif not (isinstance(loaded, dict) and loaded.get("id") in overridden):
        shutil.copyfile(path, target)


def version_text(version: Mapping[str, Any] | None) -> list[str]:
    """A version as lines to compare: its rule as YAML, then each template file."""
    if not version:
        return []
    rule = {k: v for k, v in (version.get("rule") or {}).items() if k != "version"}
    lines = yaml.safe_dump(rule, allow_unicode=True, sort_keys=True).splitlines()
    for path, body in sorted((version.get("templates") or {}).items()):
        lines += [f"--- {path}", *str(body).splitlines()]
    return lines


def with_diffs(
    versions: list[dict[str, Any]], first: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """The history: each version's stamps and what it changed from the one before (a unified
    diff; the first against the shipped rule, when there is one)."""
    out, previous = [], first
    for version in versions:
        if version.get("placeholder"):
            continue
        diff = difflib.unified_diff(version_text(previous), version_text(version),
                                    f"v{previous['version']}" if previous else "(none)",
                                    f"v{version['version']}", lineterm="", n=1)  # fmt: skip
        out.append({**{k: v for k, v in version.items() if k not in ("rule", "templates")},
                    "diff": "\n".join(list(diff)[:400])})  # fmt: skip
        previous = version
    return out


def seed_rule(seed_rules: Path, rule_id: str) -> dict[str, Any] | None:
    """The shipped rule ``rule_id`` as a document (the console's first version of it)."""
    for path in sorted([*seed_rules.rglob("*.yaml"), *seed_rules.rglob("*.yml")]):
        try:
            loaded = load_yaml(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        docs = (
            loaded["rules"]
            if isinstance(loaded, dict) and isinstance(loaded.get("rules"), list)
            else [loaded]
        )
        for doc in docs:
            if isinstance(doc, dict) and doc.get("id") == rule_id:
                return doc
    return None


class RuleBook(Book):
    family = "rulebook"

    async def generation(self) -> int:
        return int(await self.redis.get(f"{self.prefix}rulebook:generation") or 0)

    async def live_number(self, rule_id: str) -> int | None:
        raw = await self.redis.get(self._key(rule_id, "live"))
        return int(raw) if raw else None

    async def save_draft(self, rule_id: str, rule: dict[str, Any], templates: dict[str, str],
                         author: str, errors: list[dict[str, str]]) -> dict[str, Any]:  # fmt: skip
        current = await self.draft(rule_id)
        if current and current["status"] == "submitted" and current["author"] != author:
            raise BookError(409, f"a draft by {current['author']} is waiting for approval")
        draft = {"rule": rule, "templates": templates, "author": author, "status": "draft",
                 "errors": errors, "saved_at": now_iso()}  # fmt: skip
        await self.redis.set(self._key(rule_id, "draft"), json.dumps(draft, ensure_ascii=False))
        return draft

    async def submit(self, rule_id: str, by: str) -> dict[str, Any]:
        draft = await self.draft(rule_id)
        if draft is None:
            raise BookError(404, f"rule {rule_id} has no draft")
        if draft["errors"]:
            raise BookError(422, "the draft has errors; fix them before submitting")
        if draft["status"] == "submitted":
            raise BookError(409, "the draft is already submitted")
        draft |= {"status": "submitted", "submitted_by": by, "submitted_at": now_iso()}
        await self.redis.set(self._key(rule_id, "draft"), json.dumps(draft, ensure_ascii=False))
        return draft

    async def reject(self, rule_id: str, by: str, reason: str) -> dict[str, Any]:
        draft = await self._submitted(rule_id, by)
        draft |= {
            "status": "rejected",
            "rejected_by": by,
            "rejected_at": now_iso(),
            "reason": reason,
        }
        await self.redis.set(self._key(rule_id, "draft"), json.dumps(draft, ensure_ascii=False))
        return draft

    async def approve(self, rule_id: str, by: str, base_version: int) -> dict[str, Any]:
        """The submitted draft becomes the next version and goes live."""
        draft = await self._submitted(rule_id, by)
        version = await self._append(rule_id, draft["rule"], draft["templates"], base_version,
                                     author=draft["author"], submitted_by=draft.get("submitted_by"),
                                     approved_by=by, note="approved")  # fmt: skip
        await self.redis.delete(self._key(rule_id, "draft"))
        return version

    async def version(
        self, rule_id: str, number: int, first: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Version ``number`` of a rule: the book's, or ``first`` (the shipped one) by its number."""
        found = next((v for v in await self.versions(rule_id)
                      if v["version"] == number and not v.get("placeholder")), None)  # fmt: skip
        if found is None and first is not None and number == first["version"]:
            return first
        return found

    async def rollback(self, rule_id: str, to: int, by: str, base_version: int,
                       first: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
        """Make version ``to`` live again, as a new version (its content, approved by ``by``).
        ``first`` is the seed's rule (with its templates) for versions before the book's."""
        versions = await self.versions(rule_id)
        old = next((v for v in versions if v["version"] == to and not v.get("placeholder")), None)
        if old is None and first is not None and to == first["version"]:
            old = first
        if old is None:
            raise BookError(404, f"rule {rule_id} has no version {to}")
        return await self._append(rule_id, old["rule"], old.get("templates") or {}, base_version,
                                  author=by, submitted_by=by, approved_by=by,
                                  note=f"rollback to version {to}")  # fmt: skip

    async def _submitted(self, rule_id: str, by: str) -> dict[str, Any]:
        draft = await self.draft(rule_id)
        if draft is None or draft["status"] != "submitted":
            raise BookError(409, f"rule {rule_id} has no draft waiting for approval")
        if by in (draft["author"], draft.get("submitted_by")):
            raise BookError(403, "you cannot approve or reject a change you made or submitted")
        return draft

    async def _append(self, rule_id: str, rule: dict[str, Any], templates: dict[str, str],
                      base_version: int, **stamp: Any) -> dict[str, Any]:  # fmt: skip
        versions = await self.versions(rule_id)
        number = max([base_version, *(v["version"] for v in versions)]) + 1
        # list index = version - 1: pad the versions before the book's with placeholders
        version = {"version": number, "rule": rule, "templates": templates,
                   "created_at": now_iso(), **stamp}  # fmt: skip
        async with self.redis.pipeline(transaction=True) as pipe:
            length = len(versions)
            for missing in range(length + 1, number):
                pipe.rpush(
                    self._key(rule_id, "versions"),
                    json.dumps(
                        {"version": missing, "placeholder": True, "rule": {}, "templates": {}}
                    ),
                )
            pipe.rpush(self._key(rule_id, "versions"), json.dumps(version, ensure_ascii=False))
            pipe.set(self._key(rule_id, "live"), number)
            pipe.sadd(f"{self.prefix}rulebook:ids", rule_id)
            pipe.incr(f"{self.prefix}rulebook:generation")
            await pipe.execute()
        return version
