"""Large fan-outs in chunks: a chunk command names the event, the rule and up to ``size`` profile
ids. Chunk commands are keyed so that they spread over the partitions of `fanout`, and any worker
plans any chunk. A chunk planned twice (a crash, a redelivery) yields the same notification ids,
so delivery recognises the repeat: nothing is lost, nothing is sent twice."""

from __future__ import annotations

import json
from typing import Any, NotRequired, TypedDict, cast

from app.core.codec import json_bytes
from app.intake.events import Event


class ChunkCommand(TypedDict):
    event: dict[str, Any]  # the event document
    rule_id: str
    chunk: NotRequired[int]  # its number, from 0, in the event's trace
    ids: list[str]  # profile ids
    published_at: NotRequired[float]  # the event's record time on life-events (latency)


def chunk_commands(
    event: Event, rule_id: str, ids: list[str], size: int
) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs for the `fanout` topic."""
    commands = []
    for number, start in enumerate(range(0, len(ids), size)):
        value: ChunkCommand = {
            "event": event.as_dict(),
            "rule_id": rule_id,
            "chunk": number,
            "ids": ids[start : start + size],
        }
        if event.published_at is not None:
            value["published_at"] = event.published_at
        key = f"{event.id}/{rule_id}/{number}".encode()
        commands.append((key, json_bytes(value)))
    return commands


def read_command(raw: bytes) -> ChunkCommand:
    command = json.loads(raw)
    if not isinstance(command, dict) or not {"event", "rule_id", "ids"} <= set(command):
        raise ValueError("a chunk command has event, rule_id and ids")
    return cast(ChunkCommand, command)
