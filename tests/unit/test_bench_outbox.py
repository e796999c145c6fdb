"""The benchmarks' outbox tail: complete lines read once each as they come, a line mid-write not
yet; what `bench.pipeline.delivered` and `bench.harness.Delivered` both read."""

from __future__ import annotations

import json
from pathlib import Path

from bench.harness import OutboxTail
from bench.pipeline import outbox_times


def line(event_id: str) -> bytes:
    return json.dumps({"id": f"n-{event_id}", "event_id": event_id,
                       "sent_at": "2026-12-05T05:00:00+00:00"}).encode()  # fmt: skip


def test_complete_lines_are_read_once_each_and_a_line_mid_write_not_yet(tmp_path: Path) -> None:
    outbox = tmp_path / "sms.jsonl"
    tail = OutboxTail(outbox)
    assert tail.new_lines() == []  # no file yet
    outbox.write_bytes(line("E1") + b"\n" + line("E2")[:10])  # the second mid-write
    assert tail.new_lines() == [line("E1")]
    with outbox.open("ab") as f:
        f.write(line("E2")[10:] + b"\n" + line("E2") + b"\n")  # E2 handed over twice
    assert tail.new_lines() == [line("E2"), line("E2")]
    assert tail.new_lines() == []  # nothing new
    assert len(outbox_times(outbox)) == 2  # what `delivered` waits for as well: events, not lines
