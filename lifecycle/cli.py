"""The ``lifecycle`` command. Each sub-command is a small function; see ``lifecycle --help``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from pathlib import Path
from typing import Any

from app.access.tokens import SCOPES, TokenStore
from app.core.errors import ConfigError, EventRejected
from app.core.settings import Settings, load_settings, require_real_secret
from app.intake.events import parse_event
from app.intake.files import read_events
from app.planning.rules import load_rules
from app.profiles.importer import import_profiles
from lifecycle.policies import add_commands as add_policy_commands
from wiring.kafka import publish
from wiring.runtime import Runtime, make_redis, make_renderer


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for chatty in ("kafka", "aiokafka", "mail.log"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        settings = load_settings()
        return int(args.run(args, settings) or 0)
    except ConfigError as exc:
        print(f"lifecycle: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifecycle", description="Lifecycle Notify")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the local stack and replay the demo scenarios")
    dev.add_argument("--once", action="store_true", help="exit after the demo has been delivered")
    dev.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for delivery")
    dev.set_defaults(run=_dev)

    sub.add_parser("worker", help="run the production worker").set_defaults(run=_worker)

    events = sub.add_parser("events", help="publish events").add_subparsers(
        dest="action", required=True
    )
    pub = events.add_parser("publish", help="validate and publish events (JSON Lines or array)")
    pub.add_argument("file", help="a file, or - for standard input")
    pub.set_defaults(run=_events_publish)

    profiles = sub.add_parser("profiles", help="profiles").add_subparsers(
        dest="action", required=True
    )
    imp = profiles.add_parser("import", help="upsert profiles from JSON Lines or CSV")
    imp.add_argument("file", type=Path)
    imp.set_defaults(run=_profiles_import)

    dates = sub.add_parser("dates", help="date reminders").add_subparsers(
        dest="action", required=True
    )
    schedule = dates.add_parser("schedule", help="schedule every stored profile's date reminders "
                                "(once, after adding a date rule)")  # fmt: skip
    schedule.set_defaults(run=_dates_schedule)

    rules = sub.add_parser("rules", help="rules").add_subparsers(dest="action", required=True)
    check = rules.add_parser("check", help="validate rules and their templates")
    check.add_argument("dir", nargs="?", type=Path)
    check.set_defaults(run=_rules_check)
    preview = rules.add_parser("preview", help="dry run: who would receive what; sends nothing")
    preview.add_argument("rule_id")
    preview.add_argument("--event", required=True, help="an event file (JSON), or - for stdin")
    preview.add_argument("--sample", type=int, default=5, help="how many recipients to show")
    preview.set_defaults(run=_rules_preview)
    export = rules.add_parser("export", help="write the live rules and templates (the console's "
                              "approved versions included) as files")  # fmt: skip
    export.add_argument("dir", type=Path, help="a folder that does not exist yet")
    export.set_defaults(run=_rules_export)

    cap = sub.add_parser("cap", help="CAP 1.2 alerts").add_subparsers(dest="action", required=True)
    ingest = cap.add_parser("ingest", help="read a CAP 1.2 alert and publish its weather events")
    ingest.add_argument("source", help="a file, an http(s) URL, or - for standard input")
    ingest.set_defaults(run=_cap_ingest)

    held = sub.add_parser("held", help="sends held by the blast-radius guard").add_subparsers(
        dest="action", required=True
    )
    held.add_parser("list", help="what is held, and why").set_defaults(run=_held_list)
    release = held.add_parser("release", help="release a held send to its (current) audience")
    release.add_argument("hold_id")
    release.set_defaults(run=_held_release)

    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay").add_subparsers(
        dest="action", required=True
    )
    for action, text in (("list", "dead letters with their reasons"),
                         ("show", "dead letters in full, masked"),
                         ("replay", "send again (a failed notification) or re-plan (an event); never twice")):  # fmt: skip
        cmd = dlq.add_parser(action, help=text)
        cmd.add_argument("names", nargs="*", metavar="TOPIC:PARTITION:OFFSET")
        cmd.add_argument("--topic", choices=("life-events-dlq", "notifications-dlq"))
        cmd.add_argument("--reason", help="only those whose reason contains this text")
        cmd.add_argument("--json", action="store_true", help="one JSON object a line (list)")
        cmd.set_defaults(run=_dlq)

    tokens = sub.add_parser("tokens", help="bearer tokens for machine callers").add_subparsers(
        dest="action", required=True
    )
    add = tokens.add_parser("add", help="make a token (shown once); replaces one of that name")
    add.add_argument("name")
    add.add_argument("--scope", action="append", required=True, metavar="SCOPE",
                     help="what it may do: " + ", ".join(SCOPES))  # fmt: skip
    add.add_argument("--cap-sender", action="append", default=[], metavar="SENDER",
                     help="with cap:publish: a CAP <sender> it may speak for (repeatable)")  # fmt: skip
    add.add_argument("--district", action="append", default=[], metavar="CODE",
                     help="districts it acts for (a city code covers its districts; * for all)")  # fmt: skip
    add.set_defaults(run=_tokens_add)
    tokens.add_parser("list", help="tokens, their scopes and senders").set_defaults(
        run=_tokens_list
    )
    revoke = tokens.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")
    revoke.set_defaults(run=_tokens_revoke)

    add_policy_commands(sub)

    trace = sub.add_parser("trace", help="what happened to an event or a notification")
    trace.add_argument("id")
    trace.set_defaults(run=_trace)
    _console_commands(sub)
    return parser


def _console_commands(sub: Any) -> None:
    sub.add_parser("console", help="the staff and operator console and its JSON API").set_defaults(
        run=_console
    )
    users = sub.add_parser("users", help="console accounts").add_subparsers(
        dest="action", required=True
    )
    add = users.add_parser("add", help="create or update an account; the password is read from "
                           "standard input (its first line)")  # fmt: skip
    add.add_argument("login")
    add.add_argument("--role", action="append", required=True, metavar="ROLE",
                     help="author, approver, operator or admin (repeatable)")  # fmt: skip
    add.add_argument("--district", action="append", default=[], metavar="CODE",
                     help="districts it acts in (a city code covers its districts; * for all)")  # fmt: skip
    add.add_argument("--mobile", help="its own mobile: where its test-sends go")
    add.add_argument("--email", help="its own e-mail: where its test-sends go")
    add.set_defaults(run=_users_add)


def _console(args: argparse.Namespace, settings: Settings) -> int:
    from console.app import run_console

    return asyncio.run(run_console(settings))


def _users_add(args: argparse.Namespace, settings: Settings) -> int:
    from app.access.accounts import AccountStore
    from app.core.errors import InvalidPhoneNumber
    from app.profiles.phones import normalise_mobile
    from app.profiles.validate import normalise_email

    password = sys.stdin.readline().rstrip("\r\n")
    try:
        mobile = normalise_mobile(args.mobile) if args.mobile else None
        email = normalise_email(args.email) if args.email else None
    except (InvalidPhoneNumber, ValueError) as exc:
        raise ConfigError(f"--mobile/--email: {exc}") from exc

    async def run() -> str:
        redis = make_redis(settings)
        try:
            return await AccountStore(redis, settings.control_prefix).put(
                args.login, password, args.role, args.district, mobile=mobile, email=email
            )
        finally:
            await redis.aclose()

    outcome = asyncio.run(run())
    print(f"{outcome} {args.login}: {', '.join(sorted(set(args.role)))}; districts "
          f"{', '.join(sorted(set(args.district)))}")  # fmt: skip
    return 0


def _read(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from devstack.dev import run_dev
    except ModuleNotFoundError as exc:  # the production image leaves the local stack out
        if exc.name != "devstack":
            raise
        print("lifecycle dev runs the local development stack (devstack/), which this "
              "installation does not include; run it from a checkout: make dev", file=sys.stderr)  # fmt: skip
        return 2
    return asyncio.run(run_dev(settings, once=args.once, timeout=args.timeout))


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from lifecycle.worker import run_worker

    settings.kafka_servers  # noqa: B018 - refuses to start without a broker, with a clear message
    require_real_secret(settings)
    return run_worker(settings)


def _events_publish(args: argparse.Namespace, settings: Settings) -> int:
    result = read_events(
        sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    )
    for where, reason in result.invalid:
        print(f"{args.file}: {where}: {reason}", file=sys.stderr)
    if result.events:
        count = publish(settings.kafka_servers, result.events)
        print(f"published {count} event(s) to life-events")
    if result.invalid:
        print(f"{len(result.invalid)} invalid event(s) not published", file=sys.stderr)
        return 1
    return 0


def _dates_schedule(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        rt = Runtime.build(settings, deliver=False)
        count = 0
        try:
            kinds = sorted({r.on_date.kind for r in rt.rules.rules if r.on_date})
            for kind in kinds:
                async for ids in rt.profiles.select(all_of=[f"kind:{kind}"]):
                    found = await rt.profiles.get_many(ids)
                    await rt.planner.dated.schedule([(p["id"], p) for p in found])
                    count += len(found)
            scheduled = await rt.planner.dated.queue.scheduled()
        finally:
            await rt.close()
        print(f"{count} profile(s) read; {scheduled} date reminder(s) scheduled")
        return 0

    return asyncio.run(run())


def _profiles_import(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        rt = Runtime.build(settings, deliver=False)
        try:
            report = await import_profiles(rt.profiles, args.file)
        finally:
            await rt.close()
        for line, reason in report.rejected:
            print(f"{args.file}:{line}: rejected: {reason}", file=sys.stderr)
        print(report.summary())
        return 1 if report.rejected else 0

    return asyncio.run(run())


def _rules_check(args: argparse.Namespace, settings: Settings) -> int:
    rules_dir = args.dir or settings.rules_dir
    result = load_rules(rules_dir, make_renderer(settings))
    for error in result.errors:
        print(error, file=sys.stderr)
    print(f"{len(result.rules)} rule(s) valid, {len(result.errors)} error(s) in {rules_dir}")
    return 1 if result.errors else 0


def _rules_preview(args: argparse.Namespace, settings: Settings) -> int:
    from lifecycle.preview import print_preview

    try:
        event = parse_event(_read(args.event))
    except EventRejected as exc:
        print(f"{args.event}: {exc.reason}", file=sys.stderr)
        return 1
    return asyncio.run(print_preview(settings, args.rule_id, event, sample=args.sample))


def _rules_export(args: argparse.Namespace, settings: Settings) -> int:
    import shutil

    from app.planning.rulebook import materialise, read_snapshot
    from wiring.runtime import make_sync_redis

    if args.dir.exists():
        raise ConfigError(f"{args.dir} exists; export writes a new folder")
    redis = make_sync_redis(settings)
    try:
        generation, live = read_snapshot(redis, settings.control_prefix)
    finally:
        redis.close()
    live_set = materialise(settings.rules_dir, settings.templates_dir, live, generation)
    try:
        args.dir.mkdir(parents=True)
        shutil.copytree(live_set.rules_dir, args.dir / "rules")
        shutil.copytree(live_set.templates_dir, args.dir / "templates")
    finally:
        shutil.rmtree(live_set.root, ignore_errors=True)
    result = load_rules(args.dir / "rules", make_renderer(settings, args.dir / "templates"))
    print(f"exported {len(result.rules)} rule(s) (rule book generation {generation}, "
          f"{len(live)} from the console) to {args.dir}/rules and {args.dir}/templates")  # fmt: skip
    return 0


def _cap_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from lifecycle.cap_ingest import ingest

    return ingest(settings, args.source)


def _held_list(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        rt = Runtime.build(settings, deliver=False)
        try:
            held = await rt.guard.held()
        finally:
            await rt.close()
        if not held:
            print("nothing is held")
        for record in held:
            print(f"{record['id']}\n  rule {record['rule_id']}, {record['audience']} messages, held at "
                  f"{record['held_at']}\n  why: {record['reason']}")  # fmt: skip
        return 0

    return asyncio.run(run())


def _held_release(args: argparse.Namespace, settings: Settings) -> int:
    from wiring.kafka import publish_raw

    async def run() -> int:
        rt = Runtime.build(settings, deliver=False)
        try:
            released = await rt.planner.release(args.hold_id, by=f"cli:{getpass.getuser()}")
            if released is None:
                print(f"nothing is held as {args.hold_id}", file=sys.stderr)
                return 1
            try:
                publish_raw(settings.kafka_servers, "fanout", released.commands)
            except Exception as exc:  # the hold must not be lost: give it back
                await rt.guard.restore(released.held)
                print(f"not published ({type(exc).__name__}: {str(exc)[:200]}); "
                      f"{args.hold_id} is held again", file=sys.stderr)  # fmt: skip
                return 1
        finally:
            await rt.close()
        held = released.held
        print(
            f"released {held['id']}: rule {held['rule_id']}, {len(released.commands)} chunk(s) published"
        )
        return 0

    return asyncio.run(run())


def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    from lifecycle.dlq import run

    return asyncio.run(run(settings, args.action, args.names, topic=args.topic, reason=args.reason,
                           as_json=args.json))  # fmt: skip


def _with_tokens(settings: Settings, action: Any) -> Any:
    async def run() -> Any:
        redis = make_redis(settings)
        try:
            return await action(TokenStore(redis, settings.control_prefix))
        finally:
            await redis.aclose()

    return asyncio.run(run())


def _tokens_add(args: argparse.Namespace, settings: Settings) -> int:
    token = _with_tokens(
        settings, lambda s: s.add(args.name, args.scope, args.cap_sender, args.district)
    )
    print(f"token {args.name} ({', '.join(sorted(set(args.scope)))}); shown only this once:")
    print(token)
    return 0


def _tokens_list(args: argparse.Namespace, settings: Settings) -> int:
    callers = _with_tokens(settings, lambda s: s.list())
    if not callers:
        print("no tokens")
    for c in callers:
        senders = f"; CAP senders {', '.join(sorted(c.cap_senders))}" if c.cap_senders else ""
        print(f"{c.name}: {', '.join(sorted(c.scopes))}; districts {', '.join(sorted(c.districts))}"
              f"{senders} (made {c.created_at})")  # fmt: skip
    return 0


def _tokens_revoke(args: argparse.Namespace, settings: Settings) -> int:
    if _with_tokens(settings, lambda s: s.revoke(args.name)):
        print(f"revoked {args.name}")
        return 0
    print(f"no token named {args.name}", file=sys.stderr)
    return 1


def _trace(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        rt = Runtime.build(settings, deliver=False)
        try:
            state = rt.state
            steps = await state.steps(args.id)
            children = await state.notifications_of(args.id)
            if not steps and not children:
                print(f"nothing recorded for {args.id}", file=sys.stderr)
                return 1
            _print_steps(args.id, steps, await state.record(args.id))
            for nid in children:
                _print_steps(nid, await state.steps(nid), await state.record(nid), indent="  ")
            return 0
        finally:
            await rt.close()

    return asyncio.run(run())


def _print_steps(
    ident: str, steps: list[dict[str, Any]], record: dict[str, str], indent: str = ""
) -> None:
    if record:
        print(f"{indent}notification {ident}: {record.get('status')} — rule {record.get('rule_id')}, "
              f"{record.get('channel')} to {record.get('recipient')}, attempts {record.get('attempts')}")  # fmt: skip
    else:
        print(f"{indent}event {ident}")
    for step in steps:
        details = {k: v for k, v in step.items() if k not in ("at", "t", "step")}
        extra = " ".join(f"{k}={v}" for k, v in details.items() if v not in (None, [], ""))
        print(f"{indent}  {step['at']}  {step['step']:<9} {extra}")
