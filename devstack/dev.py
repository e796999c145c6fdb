"""`lifecycle dev`: the whole system on one machine.

Starts what is not configured — the embedded broker, Redis (only if the configured one does not
answer), an SMTP sink writing .eml files to var/outbox/mail/ — loads the demo profiles, starts a
worker, replays the three seed scenarios and prints what was sent to whom (contacts masked).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
import unicodedata
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from app.core.masking import mask_address, mask_name
from app.core.settings import MIN_SECRET_CHARS, PROJECT_ROOT, Settings, to_environ
from app.intake.events import validate_event
from app.notifications import Notification
from app.planning.dates import date_event, due_at
from app.planning.journeys import journey_id
from app.state import FINAL
from devstack import demo
from devstack.stack import (
    Broker,
    RedisServer,
    SmtpSink,
    free_port,
    spawn,
    stop_process,
)
from topics import ALL as ALL_TOPICS
from wiring.kafka import ensure_topics, publish
from wiring.runtime import Runtime


async def run_dev(
    settings: Settings, *, once: bool, timeout: float, var: Path | None = None
) -> int:
    var = var or PROJECT_ROOT / "var"
    logs = var / "log"
    with ExitStack() as stack:
        settings = _start_services(settings, var, logs, stack)
        ensure_topics(
            settings.kafka_servers, [t.get_topic_name() for t in ALL_TOPICS], settings.partitions
        )
        runtime = Runtime.build(settings, deliver=False)
        try:
            await _load_profiles(runtime)
            worker = spawn([sys.executable, "-m", "lifecycle", "worker"], logs / "worker.log",
                           env={**os.environ, **to_environ(settings)}, cwd=PROJECT_ROOT)  # fmt: skip
            stack.callback(stop_process, worker)
            print(f"worker started (pid {worker.pid}, log {logs / 'worker.log'})")
            password = await _demo_accounts(runtime, var)
            console = spawn([sys.executable, "-m", "lifecycle", "console"], logs / "console.log",
                            env={**os.environ, **to_environ(settings)}, cwd=PROJECT_ROOT)  # fmt: skip
            stack.callback(stop_process, console)
            print(f"console started (pid {console.pid}, log {logs / 'console.log'})")
            plans, docs = await _replay(runtime, settings)
            delivered = await _wait_for(runtime, plans, timeout, worker)
            await _print_table(runtime, plans)
            await _print_journeys(runtime, docs)
            await _print_outcomes_and_policies(runtime)
        finally:
            await runtime.close()
        _print_console(settings, password, var)
        print(f"\nSMS outbox: {settings.sms_url}\nmail: {var / 'outbox' / 'mail'}"
              f"\nworker: http://127.0.0.1:{settings.web_port}/health/ (its /stats/ needs a token: "
              "lifecycle tokens add NAME --scope stats:read)")  # fmt: skip
        if once:
            return 0 if delivered else 1
        print("serving — Ctrl-C to stop")
        await _until_interrupted()
        print("stopping…")
    return 0


def _start_services(settings: Settings, var: Path, logs: Path, stack: ExitStack) -> Settings:
    if not settings.secret:
        settings = settings.with_(secret=dev_secret(var))
    if not settings.kafka_url:
        broker = Broker.start(logs)
        stack.callback(broker.stop)
        settings = settings.with_(kafka_url=broker.url)
        print(f"embedded broker (Tansu) on {broker.url}")
    redis_server = RedisServer.ensure(settings.redis_url, logs)
    stack.callback(redis_server.stop)
    if redis_server.process is not None:
        print(f"started Redis on {redis_server.url}")
    settings = settings.with_(redis_url=redis_server.url)
    if not settings.smtp_url:
        sink = SmtpSink.start(mail_dir=var / "outbox" / "mail")
        stack.callback(sink.stop)
        settings = settings.with_(smtp_url=sink.url)
        print(f"SMTP sink on {sink.url}, mail written to {var / 'outbox' / 'mail'}")
    if not settings.sms_url:
        settings = settings.with_(sms_url=f"file://{var / 'outbox' / 'sms.jsonl'}")
    if settings.web_port == Settings().web_port and not _port_free(settings.web_port):
        settings = settings.with_(web_port=free_port())
    if settings.console_port == Settings().console_port and not _port_free(settings.console_port):
        settings = settings.with_(console_port=free_port())
    if "LIFECYCLE_QUIET_HOURS" not in settings.explicit:
        settings = settings.with_(quiet_hours="off")
        print(
            "quiet hours are off for the demo (set LIFECYCLE_QUIET_HOURS to see reminders deferred)"
        )
    return settings


def dev_secret(var: Path) -> str:
    """A random signing secret for this checkout's development stack, kept in var/secret (mode
    0600) so that unsubscribe links stay valid across runs; never a published value."""
    path = var / "secret"
    if path.is_file() and len(known := path.read_text().strip()) >= MIN_SECRET_CHARS:
        return known
    var.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


# login, roles, districts, own mobile and e-mail (where its test-sends go: the outbox and the sink)
DEMO_ACCOUNTS = (
    ("yt-author", ["author"], ["440308"], "+8613800000101", "yt-author@example.cn"),
    ("yt-approver", ["approver"], ["440308"], "+8613800000102", "yt-approver@example.cn"),
    ("sz-operator", ["operator"], ["440300"], "+8613800000103", "sz-operator@example.cn"),
    ("admin", ["admin"], ["*"], None, "admin@example.cn"),
)


async def _demo_accounts(runtime: Runtime, var: Path) -> str:
    """The demo accounts, all with one password made for this checkout (var/console-password,
    mode 0600), printed by dev; never a published value."""
    from app.access.accounts import AccountStore

    path = var / "console-password"
    password = path.read_text().strip() if path.is_file() else ""
    if len(password) < 16:
        password = secrets.token_urlsafe(12)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
    accounts = AccountStore(runtime.redis, runtime.settings.control_prefix)
    for login, roles, districts, mobile, email in DEMO_ACCOUNTS:
        await accounts.put(login, password, roles, districts, mobile=mobile, email=email)
    return password


def _print_console(settings: Settings, password: str, var: Path) -> None:
    print(f"\nconsole: http://{settings.console_bind}:{settings.console_port}/api/ "
          f"(POST /api/login {{\"login\", \"password\"}})")  # fmt: skip
    for login, roles, districts, _, _ in DEMO_ACCOUNTS:
        print(f"  {login:<12} {', '.join(roles):<9} districts {', '.join(districts)}")
    print(f"  password (each): {password}   (kept in {var / 'console-password'})")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


async def _load_profiles(runtime: Runtime) -> None:
    from collections import Counter

    from app.profiles.validate import parse_profile

    counts: Counter[str] = Counter()
    for doc in [*demo.residents(), *demo.enterprises()]:
        counts[await runtime.profiles.upsert(parse_profile(doc))] += 1
    print("demo profiles: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


async def _replay(
    runtime: Runtime, settings: Settings
) -> tuple[list[tuple[str, list[Notification]]], list[tuple[str, dict[str, object]]]]:
    plans = []
    events = []
    docs = demo.scenario_events()
    for title, doc in docs:
        event = validate_event(doc)
        plan = await runtime.planner.plan(event)  # what the worker is expected to send
        plans.append((title, plan.notifications))
        events.append(event)
    graduate = await runtime.profiles.get(demo.GRADUATE_ID)
    for rule in runtime.rules.date_rules("person"):  # what the date reminders will send
        assert rule.on_date is not None
        found = due_at(rule.on_date, graduate.get("dates") if graduate else None, time.time(),
                       settings.tz)  # fmt: skip
        if graduate and found and found[0] <= time.time() + 1:
            doc = date_event(
                rule.on_date, rule.id, dict(graduate), found[1], time.time(), settings.tz
            )
            plan = await runtime.planner.plan(validate_event(doc))
            plans.append((f"{rule.name}（日期提醒 date）", plan.notifications))
    publish(settings.kafka_servers, events)
    print(f"published {len(events)} scenario event(s); waiting for "
          f"{sum(len(p) for _, p in plans)} notification(s)…")  # fmt: skip
    return plans, docs


async def _wait_for(runtime: Runtime, plans: list[tuple[str, list[Notification]]], timeout: float,
                    worker: object) -> bool:  # fmt: skip
    ids = [n.id for _, ns in plans for n in ns]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [await runtime.state.status(i) for i in ids]
        if all(s in FINAL for s in statuses):
            return all(s == "sent" for s in statuses)
        if worker.poll() is not None:  # type: ignore[attr-defined]
            print("the worker stopped; see var/log/worker.log", file=sys.stderr)
            return False
        await asyncio.sleep(0.3)
    print(f"not all notifications were delivered within {timeout:.0f} s", file=sys.stderr)
    return False


async def _print_table(runtime: Runtime, plans: list[tuple[str, list[Notification]]]) -> None:
    header = ("scenario", "rule", "channel", "recipient", "role", "contact", "segments", "status")
    rows = [header]
    for title, notifications in plans:
        for n in notifications:
            record = await runtime.state.record(n.id)
            rows.append((title, n.rule_id, n.channel, mask_name(n.recipient_name), n.role or "-",
                         mask_address(n.channel, n.address),
                         str(n.content.get("segments", "-")), record.get("status", "?")))  # fmt: skip
    widths = [max(_width(r[i]) for r in rows) for i in range(len(header))]
    print()
    for number, row in enumerate(rows):
        print(
            "  ".join(cell + " " * (w - _width(cell)) for cell, w in zip(row, widths, strict=True))
        )
        if number == 0:
            print("  ".join("-" * w for w in widths))
    sent = sum(1 for r in rows[1:] if r[-1] == "sent")
    print(f"\n{sent} of {len(rows) - 1} notification(s) sent")


async def _print_journeys(runtime: Runtime, docs: list[tuple[str, dict[str, object]]]) -> None:
    """The graduate's journey: started by the reception, ended by the completion event before
    its first reminder was due."""
    for title, doc in docs:
        rule = next((r for r in runtime.rules.for_event(str(doc["type"])) if r.follow_up), None)
        subject = doc.get("subject")
        if rule is None or not isinstance(subject, dict):
            continue
        journey = journey_id(rule.id, str(doc["id"]), str(subject["id"]))
        record = await runtime.planner.journeys.journey(journey)
        print(
            f"journey {journey} ({title}, rule {rule.id}): {record.get('status', '?')}, "
            f"{record.get('sent', '0')} follow-up(s) sent"
            + (f", ended by {record['completed_by']}" if record.get("completed_by") else "")
        )


async def _print_outcomes_and_policies(runtime: Runtime) -> None:
    """The demo's outcome figures, and the policies the new business was told of (the leader
    tells it within a second or two of its profile being stored)."""
    for cohort in await runtime.planner.outcomes.figures(None, time.time()):
        if cohort.started:
            rate = f"{cohort.rate:.0%}" if cohort.rate is not None else "—"
            median = (
                f", median {cohort.median_seconds / 60:.0f} min" if cohort.median_seconds else ""
            )
            print(f"outcome {cohort.rule} v{cohort.version} ({cohort.group}): {cohort.started} "
                  f"started, {cohort.completed} completed within {cohort.window_seconds // 86400} "
                  f"days, {cohort.open} open; rate {rate}{median}")  # fmt: skip
    new = demo.with_check_character(demo.NEW_ENTERPRISE_ID[:17])
    met = [m.policy.id for m in await _explained(runtime, new) if m.met]
    told: list[str | None] = []
    for _ in range(50):
        told = await runtime.planner.matcher.matches.told([(p, new) for p in met])
        if all(told):
            break
        await asyncio.sleep(0.2)
    for policy_id, day in zip(met, told, strict=True):
        print(
            f"policy {policy_id}: {new} qualifies; "
            + (f"told on {day} (policy-matched)" if day else "not told yet")
        )


async def _explained(runtime: Runtime, enterprise_id: str) -> list[Any]:
    profile = await runtime.profiles.get(enterprise_id)
    return runtime.planner.matcher.explain(profile) if profile else []


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
