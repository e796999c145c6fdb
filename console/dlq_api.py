"""Dead letters in the console: list and filter, inspect (masked), replay one or a filtered set,
discard with a reason; each replay and discard in the audit log (``wiring.dlq`` does the work, as
for ``lifecycle dlq``). Operators only, and only letters inside their districts."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from console.api import routes
from console.auth import Caller, audit, body_json, error, guarded, reason_in, services
from wiring.dlq import (
    TOPICS,
    DeadLetter,
    discard,
    letter_districts,
    read_dead_letters,
    replay,
    select,
    states,
)

MAX_SELECTED = 1000  # a filtered replay or discard handles at most this many at once


async def visible_letters(
    request: web.Request, caller: Caller
) -> list[tuple[DeadLetter, list[str]]]:
    rt = services(request).runtime
    topic = request.query.get("topic") or None
    if topic is not None and topic not in TOPICS:
        raise web.HTTPBadRequest(text=f'{{"error": "topic: one of {", ".join(TOPICS)}"}}',
                                 content_type="application/json")  # fmt: skip
    letters = select(await read_dead_letters(rt.settings.kafka_servers), [], None, topic)
    shown = []
    for letter in letters:
        districts = await letter_districts(rt, letter)
        if caller.account.covers(districts):
            shown.append((letter, districts))
    return shown


def _entry(letter: DeadLetter, districts: list[str], state: str) -> dict[str, Any]:
    return {**letter.summary(), "topic": letter.topic, "districts": districts, "state": state}


@routes.get("/api/dlq")
@guarded("operator")
async def dlq_list(request: web.Request, caller: Caller) -> web.StreamResponse:
    """``?topic=…&reason=…&state=waiting|replayed|discarded``: the dead letters, newest first."""
    shown = await visible_letters(request, caller)
    reason = (request.query.get("reason") or "").lower()
    wanted = request.query.get("state")
    marks = await states(services(request).runtime, [d for d, _ in shown])
    entries = [_entry(d, districts, marks[d.name]) for d, districts in shown
               if (not reason or reason in d.reason.lower()) and (not wanted or marks[d.name] == wanted)]  # fmt: skip
    entries.reverse()
    return web.json_response({"dead_letters": entries[:500], "total": len(entries)})


async def _chosen(
    request: web.Request, caller: Caller, doc: Any
) -> list[DeadLetter] | web.Response:
    """The letters a replay or discard names (``names``), or picks (``topic`` and ``reason``)."""
    names = doc.get("names") if isinstance(doc, dict) else None
    reason = doc.get("reason_contains") if isinstance(doc, dict) else None
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        return error(400, '"names": a list of TOPIC:PARTITION:OFFSET')
    if not names and not (isinstance(reason, str) and reason.strip()):
        return error(
            400, 'name the dead letters ("names") or pick them ("reason_contains", "topic")'
        )
    topic = doc.get("topic") if isinstance(doc, dict) else None
    if topic is not None and topic not in TOPICS:
        return error(400, f"topic: one of {', '.join(TOPICS)}")
    shown = {d.name: d for d, _ in await visible_letters(request, caller)}
    if names:
        missing = [n for n in names if n not in shown]
        if missing:
            return error(404, f"no such dead letter in your districts: {', '.join(missing[:10])}")
        chosen = [shown[n] for n in dict.fromkeys(names)]
    else:
        chosen = select(list(shown.values()), [], reason, topic)
    if len(chosen) > MAX_SELECTED:
        return error(413, f"{len(chosen)} dead letters picked; at most {MAX_SELECTED} at once")
    return chosen


@routes.post("/api/dlq/replay")
@guarded("operator", change=True)
async def dlq_replay(request: web.Request, caller: Caller) -> web.StreamResponse:
    """``{"names": […]}`` or ``{"reason_contains": "…", "topic": "…"}``: each replayed at most once."""
    chosen = await _chosen(request, caller, await body_json(request))
    if isinstance(chosen, web.Response):
        return chosen
    rt = services(request).runtime
    outcomes = {}
    for letter in chosen:
        outcomes[letter.name] = await replay(rt, letter)
        await audit(request, caller, "dlq-replay", outcome="ok" if not outcomes[letter.name].startswith("not") else "refused",
                    dead_letter=letter.name, result=outcomes[letter.name])  # fmt: skip
    return web.json_response({"replayed": outcomes})


@routes.post("/api/dlq/discard")
@guarded("operator", change=True)
async def dlq_discard(request: web.Request, caller: Caller) -> web.StreamResponse:
    """``{"names": […], "why": "…"}`` (or picked as for replay): set aside for good, with the reason."""
    doc = await body_json(request)
    why = reason_in(doc, "why", 500)
    if why is None:
        return error(400, 'a discard needs {"why": …}')
    chosen = await _chosen(request, caller, doc)
    if isinstance(chosen, web.Response):
        return chosen
    rt = services(request).runtime
    outcomes = {}
    for letter in chosen:
        outcomes[letter.name] = await discard(rt, letter, f"console:{caller.login}", why)
        await audit(request, caller, "dlq-discard", outcome="ok" if outcomes[letter.name] == "discarded" else "refused",
                    dead_letter=letter.name, why=why)  # fmt: skip
    return web.json_response({"discarded": outcomes})
