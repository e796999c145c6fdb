"""Timestamps stamped on records: ``utc_now_ms`` made once a millisecond, as datetime makes it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from app.core.timestamps import utc_now_ms


def test_utc_now_ms_reads_as_datetime_writes_it_and_moves_with_the_clock() -> None:
    seen = []
    for _ in range(2000):
        before = datetime.now(UTC).isoformat(timespec="milliseconds")
        stamp = utc_now_ms()
        after = datetime.now(UTC).isoformat(timespec="milliseconds")
        assert before <= stamp <= after  # same format, so ISO strings compare as times
        assert datetime.fromisoformat(stamp).tzinfo == UTC
        seen.append(stamp)
        if len(set(seen)) > 3:
            break
        time.sleep(0.0003)
    assert seen == sorted(seen) and len(set(seen)) > 3
