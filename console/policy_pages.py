"""The support policies' pages: the catalogue with each policy's criteria, an editor of fields
(no YAML, no JSON), the four-eyes buttons, and why an enterprise meets a policy or not."""

from __future__ import annotations

from aiohttp import web

from app.planning.policies import SIZE_NAMES
from console.api import routes
from console.pages import page, signed_in
from console.policies_api import live_policies, policy_doc, policy_id_of, policybook


@routes.get("/policies")
async def policies_page(request: web.Request) -> web.StreamResponse:
    caller = await signed_in(request)
    book, live = policybook(request), await live_policies(request)
    listing = []
    for policy_id in sorted({*live, *await book.drafted()}):
        entry = policy_doc(live[policy_id]) if policy_id in live else {"id": policy_id, "name": ""}
        listing.append(entry | {"draft": await book.draft(policy_id)})
    return page("policies.html", caller, title="惠企政策 Policies", policies=listing,
                sizes=SIZE_NAMES, can_author=caller.account.has("author"))  # fmt: skip


@routes.get("/policies/{policy_id}")
async def policy_page(request: web.Request) -> web.StreamResponse:
    caller = await signed_in(request)
    policy_id = policy_id_of(request)
    if policy_id is None:
        raise web.HTTPNotFound(text="no such policy")
    book = policybook(request)
    live = (await live_policies(request)).get(policy_id)
    draft = await book.draft(policy_id)
    if live is None and draft is None and not caller.account.has("author"):
        raise web.HTTPNotFound(text="no such policy")
    districts = sorted(caller.account.districts)[:1] or ["*"]
    blank = {"id": policy_id, "name": "", "summary": "", "confirm": "", "where": "",
             "districts": list(districts), "criteria": {}, "enabled": True}  # fmt: skip
    shown = (draft or {}).get("policy") or (policy_doc(live) if live else blank)
    return page("policy.html", caller, title=shown.get("name") or policy_id, policy_id=policy_id,
                policy=shown, criteria=shown.get("criteria") or {}, live=policy_doc(live) if live else None,
                draft=draft, history=await book.versions(policy_id), sizes=SIZE_NAMES,
                can_author=caller.account.has("author"), can_approve=caller.account.has("approver"))  # fmt: skip
