"""``lifecycle policies``: the support policies, checked, listed, and one enterprise's matches
explained criterion by criterion (``app.planning.policies``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from app.core.settings import Settings
from app.planning.policies import load_policy_files
from wiring.runtime import Runtime


def add_commands(sub: Any) -> None:
    policies = sub.add_parser("policies", help="support policies for enterprises").add_subparsers(
        dest="action", required=True
    )
    check = policies.add_parser("check", help="validate the policy files")
    check.add_argument("dir", nargs="?", help="default: LIFECYCLE_POLICIES_DIR (policies/)")
    check.set_defaults(run=_check)
    policies.add_parser("list", help="the live policies").set_defaults(run=_list)
    explain = policies.add_parser("match", help="which policies an enterprise meets, and why")
    explain.add_argument("enterprise_id")
    explain.set_defaults(run=_match)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    folder = Path(args.dir) if args.dir else settings.policies_dir
    found, errors = load_policy_files(folder)
    for error in errors:
        print(f"{folder}/{error}", file=sys.stderr)
    print(f"{len(found)} policy(ies) valid, {len(errors)} error(s) in {folder}")
    return 1 if errors else 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        rt = Runtime.build(settings, deliver=False)
        try:
            for p in rt.planner.matcher.policies:
                span = f"{p.valid_from or '…'} – {p.valid_until or '…'}"
                today = datetime.now(settings.tz).date()
                state = "valid" if p.enabled and p.valid_on(today) else "not valid today"
                print(f"{p.id} v{p.version}: {p.name} ({span}, {state}; districts "
                      f"{', '.join(p.districts)})")  # fmt: skip
        finally:
            await rt.close()
        return 0

    return asyncio.run(run())


def _match(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        rt = Runtime.build(settings, deliver=False)
        try:
            profile = await rt.profiles.get(args.enterprise_id)
            if profile is None:
                print(f"no profile {args.enterprise_id}", file=sys.stderr)
                return 1
            matches = rt.planner.matcher.explain(profile)
            told = await rt.planner.matcher.matches.told(
                [(m.policy.id, args.enterprise_id) for m in matches]
            )
        finally:
            await rt.close()
        print(f"{args.enterprise_id} ({profile.get('name')}): {sum(m.met for m in matches)} of "
              f"{len(matches)} policies met")  # fmt: skip
        for found, day in zip(matches, told, strict=True):
            verdict = "MEETS" if found.met else "does not meet"
            said = f"; told on {day}" if day else ("; not told yet" if found.met else "")
            print(
                f"\n{verdict} {found.policy.id} v{found.policy.version}: {found.policy.name}{said}"
            )
            for c in found.criteria:
                print(f"  {'✓' if c.met else '✗'} {c.label}: {c.says}")
        return 0

    return asyncio.run(run())
