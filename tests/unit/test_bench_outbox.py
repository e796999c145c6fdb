"""The benchmarks' outbox watch: complete lines counted as they come, a line mid-write not yet."""

from __future__ import annotations

import json
from pathlib import Path

from bench.pipeline import OutboxLines, outbox_times


def line(event_id: str) -> bytes:
    return json.dumps({"event_id": event_id, "sent_at": "2026-12-05T05:00:00+00:00"}).encode()


def test_lines_are_counted_incrementally_and_only_when_complete(tmp_path: Path) -> None:
    outbox = tmp_path / "sms.jsonl"
    lines = OutboxLines(outbox)
    assert lines() == 0  # no file yet
    outbox.write_bytes(line("E1") + b"\n" + line("E2")[:10])  # the second mid-write
    assert lines() == 1
    with outbox.open("ab") as f:
        f.write(line("E2")[10:] + b"\n" + line("E2") + b"\n")  # E2 handed over twice
    assert lines() == 3
    assert lines() == 3  # nothing new
    assert len(outbox_times(outbox)) == 2  # what `delivered` waits for as well: events, not lines
