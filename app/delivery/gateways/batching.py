"""Cutting a batch into provider calls: at most ``size`` numbers a call, and each number at most
once in a call (a provider answers per number, so a number twice in one call could not be told
apart, and would be sent twice at once)."""

from __future__ import annotations

from collections.abc import Sequence


def distinct_chunks(indexes: Sequence[int], addresses: Sequence[str], size: int) -> list[list[int]]:
    """``indexes`` (with their ``addresses``, in the same order) in calls of at most ``size``,
    no address twice in a call; in order, each index in the first call that can take it."""
    calls: list[tuple[list[int], set[str]]] = []
    for index, address in zip(indexes, addresses, strict=True):
        home = next((c for c in calls if len(c[0]) < size and address not in c[1]), None)
        if home is None:
            home = ([], set())
            calls.append(home)
        home[0].append(index)
        home[1].add(address)
    return [chunk for chunk, _ in calls]
