"""The policy catalogue as versioned data: staff draft a policy in the console, another approver
of its districts approves it, and every worker matches with it within a poll (an approval bumps
the rule book's generation, which the workers watch).

The shipped ``policies/*.yaml`` are the seed; a policy with a version in the book is the book's.
Saving a draft that passes every check submits it; one with problems stays a draft with them.

Keys (under the configured prefix, as the rule book's):

    policybook:ids              set of the policy ids with versions in the book
    policybook:{id}:versions    list of versions (JSON): version, policy, author, approved_by,
                                created_at
    policybook:{id}:draft       the draft (JSON): policy, author, status, errors, saved_at, …
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from redis import Redis as SyncRedis

from app.core.book import ReviewedBook
from app.core.codec import text
from app.core.errors import BookError
from app.planning.policies import Policy, load_policy_files, parse_policy

logger = logging.getLogger(__name__)


def read_live_policies(redis: SyncRedis | None, prefix: str, seed: Path) -> list[Policy]:
    """The live policies: the seed files, each replaced by its latest version in the book
    (sync: read as a process starts and at each change). A stored version that no longer passes
    is left out, and said."""
    shipped, errors = load_policy_files(seed)
    for error in errors:
        logger.error("policy file refused: %s", error)
    live = {p.id: p for p in shipped}
    if redis is None:
        return list(live.values())
    for raw_id in sorted(redis.smembers(f"{prefix}policybook:ids")):
        policy_id = text(raw_id) or ""
        raw = redis.lindex(f"{prefix}policybook:{policy_id}:versions", -1)
        if raw is None:
            continue
        policy, problems = parse_policy(json.loads(raw)["policy"])
        if policy is None:
            logger.error("policy %s not used: %s", policy_id, problems[:3])
            continue
        live[policy_id] = policy
    return sorted(live.values(), key=lambda p: p.id)


class PolicyBook(ReviewedBook):
    family = "policybook"
    field = "policy"
    noun = "policy"
    index = "ids"

    async def approve(self, policy_id: str, by: str, base_version: int) -> dict[str, Any]:
        """The waiting draft becomes the policy's next version, live in every worker."""
        draft = await self.waiting(policy_id, by)
        number = max(base_version, len(await self.versions(policy_id))) + 1
        doc = {**draft["policy"], "id": policy_id, "version": number}
        policy, problems = parse_policy(doc)
        if policy is None:  # checked again: the limits may have moved
            raise BookError(422, f"the draft no longer passes: {problems[0]['field']}: {problems[0]['message']}")  # fmt: skip
        return await self.publish(policy_id, doc, draft, by, number)
