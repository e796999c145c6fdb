"""`lifecycle dlq list|show|replay`: the dead letters of life-events-dlq and notifications-dlq
(``wiring.dlq`` reads, shows and replays them, for this command and the console alike).

A dead letter is named ``TOPIC:PARTITION:OFFSET`` (``notifications-dlq:0:17``). Listing and
showing mask what they quote (addresses, and no message body is printed). Replay:

- a failed notification (notifications-dlq) re-enters delivery for a new round of attempts: its
  record goes from ``failed`` back to ``planned`` (attempts from 0, ``replays`` counted, every
  earlier step kept in its trace) and it is published again on its lane;
- an event (life-events-dlq) is published again on ``life-events`` as received, once its cause is
  fixed (a rule, a profile, the catalogue).

Each dead letter is replayed at most once (a marker per dead letter in Redis, set atomically with
the status change), and a notification whose status is not ``failed`` (sent meanwhile, or already
replayed) is not replayed: replaying twice never sends twice.
"""

from __future__ import annotations

import json

from app.core.settings import Settings
from wiring.dlq import read_dead_letters, replay, select
from wiring.runtime import Runtime


async def run(settings: Settings, action: str, names: list[str], *, topic: str | None,
              reason: str | None, as_json: bool) -> int:  # fmt: skip
    letters = select(await read_dead_letters(settings.kafka_servers), names, reason, topic)
    if names and len(letters) < len(set(names)):
        missing = sorted(set(names) - {d.name for d in letters})
        print(f"no such dead letter: {', '.join(missing)}")
        return 1
    if action == "list":
        if not letters:
            print("no dead letters")
        for d in letters:
            s = d.summary()
            print(json.dumps(s, ensure_ascii=False) if as_json else
                  f"{s['name']}  {s['at']}  {s.get('event') or ''}  {s['reason'][:160]}")  # fmt: skip
        return 0
    if action == "show":
        for d in letters:
            print(json.dumps(d.summary(), ensure_ascii=False, indent=2))
        return 0
    if not names and not reason:
        print("replay what? name dead letters (TOPIC:PARTITION:OFFSET) or pick them with --reason")
        return 2
    rt = Runtime.build(settings, deliver=False)
    try:
        refused = 0
        for d in letters:
            outcome = await replay(rt, d)
            refused += outcome.startswith("not")
            print(f"{d.name}: {outcome}")
        return 1 if refused and refused == len(letters) else 0
    finally:
        await rt.close()
