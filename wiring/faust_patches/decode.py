"""Patch: a raw topic's message becomes an event without Faust's serializer registry.

Every topic of this project is declared with ``key_serializer="raw", value_serializer="raw"``
and no key or value type: the agents read bytes and decode them themselves. Faust still runs
each key and value through its registry (``loads_key``/``loads_value``, the codec lookup, the
``raw`` codec's ``want_bytes``, a check for a model's namespace), which hands the same bytes
back. In a bare counting agent (py-spy) that took about a tenth of the samples. Here the
decoder Faust compiles for such a schema is wrapped: a key and a value that are bytes (or None)
go straight into the event, as the registry would have returned them; anything else goes
through Faust's decoder as before. Schemas with types or other serializers are left alone.
"""

from __future__ import annotations

from typing import Any

from faust.serializers.schemas import Schema

ORIGINAL = Schema.compile  # as Faust ships it, kept before patching
# SHA-256 of ``inspect.getsource(ORIGINAL)`` in faust-streaming 0.15.3, the version this wraps
ORIGINAL_SHA256 = "d46eec5ce3195b2c6752cb860a10946cee66ddf6a955f2ea44ac1568c0ecb9ad"


def is_raw(schema: Any) -> bool:
    return (schema.key_type is None and schema.value_type is None
            and schema.key_serializer == "raw" and schema.value_serializer == "raw")  # fmt: skip


def decode_raw_directly() -> None:
    if getattr(Schema.compile, "raw_directly", False):
        return

    def compile(self: Any, app: Any, **kwargs: Any) -> Any:  # noqa: A001 - Faust's name
        faust_s = ORIGINAL(self, app, **kwargs)
        if not is_raw(self):
            return faust_s
        create_event = app.create_event
        default_propagate = kwargs.get("default_propagate", False)

        async def decode(message: Any, *, propagate: bool = default_propagate) -> Any:
            key, value = message.key, message.value
            if (key is None or type(key) is bytes) and (value is None or type(value) is bytes):
                return create_event(key, value, message.headers, message)
            return await faust_s(message, propagate=propagate)

        return decode

    compile.raw_directly = True  # type: ignore[attr-defined]
    Schema.compile = compile  # type: ignore[method-assign]
