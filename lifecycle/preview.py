"""`lifecycle rules preview`: a dry run of one rule against one event. Sends nothing."""

from __future__ import annotations

import sys
from collections import Counter

from app.core.masking import mask_address, mask_name
from app.core.settings import Settings
from app.intake.events import Event
from wiring.runtime import Runtime


async def print_preview(settings: Settings, rule_id: str, event: Event, *, sample: int) -> int:
    rt = Runtime.build(settings, deliver=False)
    try:
        rule = rt.rules.get(rule_id)
        if rule is None:
            print(
                f"no rule {rule_id!r} (known: {', '.join(r.id for r in rt.rules.rules)})",
                file=sys.stderr,
            )
            return 1
        if event.type not in rule.event_types:
            print(
                f"rule {rule_id} listens to {', '.join(rule.event_types)}, the event is {event.type}",
                file=sys.stderr,
            )
            return 1
        plan = await rt.planner.plan(event, only_rule=rule_id)
    finally:
        await rt.close()
    by_channel = Counter(n.channel for n in plan.notifications)
    people = {n.recipient for n in plan.notifications}
    print(f"rule {rule.id} v{rule.version} ({rule.category}) on event {event.id}: "
          f"{len(people)} recipient(s), {len(plan.notifications)} message(s) "
          f"({', '.join(f'{c} {k}' for c, k in sorted(by_channel.items())) or 'none'})")  # fmt: skip
    failed = [n for n in plan.notifications if n.error]
    for n in failed[:sample]:
        print(f"  cannot render for {n.recipient}: {n.error}")
    print("sample:")
    for n in plan.notifications[:sample]:
        size = (
            f", {n.content['segments']} SMS segment(s)" if n.channel == "sms" and n.content else ""
        )
        print(f"  {n.channel:<5} {mask_name(n.recipient_name)} ({n.role or n.profile_id}) "
              f"{mask_address(n.channel, n.address)}{size}")  # fmt: skip
    shown: set[str] = set()
    for n in plan.notifications:
        if n.channel in shown or not n.content:
            continue
        shown.add(n.channel)
        print(f"\n--- {n.channel} as rendered for the first recipient ---")
        if n.channel == "sms":
            print(n.content["text"])
            print(
                f"[{n.content['encoding']}, {n.content['units']} characters, {n.content['segments']} segment(s)]"
            )
        else:
            print(f"Subject: {n.content['subject']}\n\n{n.content['text']}")
    for reason in {why for _, why in plan.skipped if not why.startswith("condition false")}:
        print(f"skipped: {reason}")
    print("\nnothing was sent (dry run)")
    return 0
