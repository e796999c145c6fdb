"""The patched packer (app/core/redis_pack.py) writes the bytes redis-py's own wrote, and hands
what it does not take to redis-py's own."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis._parsers.encoders import Encoder
from redis.connection import HiredisRespSerializer
from redis.exceptions import DataError

from app.core import redis_client as client_module
from app.core import redis_pack


def serializer(encoding: str = "utf-8", errors: str = "strict") -> HiredisRespSerializer:
    encoder = Encoder(encoding, errors, False)
    return HiredisRespSerializer(fallback=None, encode=encoder.encode)


def both(packer: HiredisRespSerializer, *args):
    return packer.pack(*args), redis_pack.ORIGINAL(packer, *args)


ARGS = st.lists(st.text() | st.binary() | st.integers(-(2**70), 2**70), max_size=30)


def test_the_patch_is_installed_with_the_client():
    assert client_module.redis_pack is redis_pack  # importing the client module installs it
    assert getattr(HiredisRespSerializer.pack, "in_c", False)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(name=st.sampled_from(["EVALSHA", "HSET", "get", "SET"]), args=ARGS)
def test_plain_arguments_pack_to_the_same_bytes(name, args):
    try:
        expected = redis_pack.ORIGINAL(serializer(), name, *args)
    except UnicodeEncodeError:  # half a character (a lone surrogate): both refuse it
        with pytest.raises(UnicodeEncodeError):
            serializer().pack(name, *args)
        return
    assert serializer().pack(name, *args) == expected


@pytest.mark.parametrize("args", [
    ("SCRIPT EXISTS", "abc"),  # a name of two words: redis-py splits it
    ("SET", "k", 1.5),  # a float: redis-py spells it
    ("SET", "k", memoryview(b"v")),
    (b"SET", "k", "v"),  # a name as bytes
])  # fmt: skip
def test_what_the_patch_does_not_take_redis_py_packs(args):
    got, expected = both(serializer(), *args)
    assert got == expected


def test_a_bool_is_refused_as_redis_py_refuses_it():
    with pytest.raises(DataError):
        serializer().pack("SET", "k", True)


def test_another_encoding_is_redis_py_s_own():
    packer = serializer("latin-1")
    assert packer.pack("SET", "k", "é") == redis_pack.ORIGINAL(packer, "SET", "k", "é")
    assert b"\xe9" in b"".join(packer.pack("SET", "k", "é"))


async def test_a_round_trip_through_redis(redis_client, prefix):
    key = f"{prefix}pack"
    await redis_client.hset(key, mapping={"名前": "王强", "n": 12, "raw": b"\x00\xff"})
    assert await redis_client.hgetall(key) == {"名前".encode(): "王强".encode(), b"n": b"12",
                                               b"raw": b"\x00\xff"}  # fmt: skip
