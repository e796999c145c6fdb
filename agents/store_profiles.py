"""profiles → the profile store: upsert each profile, delete on null; bad ones to profiles-dlq."""

from __future__ import annotations

from collections.abc import AsyncIterator

from faust.types import EventT, StreamT

from agents.common import dead_letter, until_available
from app.core.codec import decode_json
from app.core.errors import EventRejected, ProfileRejected, internal_error
from app.profiles.validate import MAX_PROFILE_DEPTH, parse_profile
from topics import profiles, profiles_dlq
from wiring.faust_app import app, runtime


@app.agent(profiles)
async def store_profiles(stream: StreamT) -> AsyncIterator[str]:
    async for message in stream.events():
        yield await handle_profile(message)


async def handle_profile(message: EventT) -> str:
    store = runtime().profiles
    key = message.key.decode("utf-8", "replace") if message.key else None
    if message.value is None:
        if not key:
            await dead_letter(
                profiles_dlq, message, "a deletion (null value) needs the profile id as key"
            )
            return "rejected"
        await until_available(lambda: store.delete(key))
        return "deleted"
    try:
        profile = parse_profile(decode_json(message.value, "profile", MAX_PROFILE_DEPTH))
        if key and key != profile["id"]:
            raise ProfileRejected(f"key {key!r} differs from the profile id {profile['id']!r}")
    except ProfileRejected as exc:
        await dead_letter(profiles_dlq, message, exc.reason)
        return "rejected"
    except EventRejected as exc:  # not UTF-8, not JSON, too deep, an integer too long
        await dead_letter(profiles_dlq, message, exc.reason)
        return "rejected"
    except Exception as exc:  # whatever the bytes hold, the agent goes on without them
        await dead_letter(profiles_dlq, message, internal_error(exc))
        return "rejected"
    try:
        return await until_available(lambda: store.upsert(profile))
    except Exception as exc:  # e.g. the profile kept changing under us: keep it, with the reason
        await dead_letter(profiles_dlq, message, internal_error(exc))
        return "error"
