"""``json_bytes`` and ``compact_json`` (orjson) write what the standard encoder wrote, and hand what
orjson refuses to the standard encoder."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.codec import compact_json, json_bytes


def stdlib(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)  # no surrogates
SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | TEXT
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(DOCUMENTS)
def test_the_same_text_as_the_standard_encoder(document):
    assert json_bytes(document) == stdlib(document).encode("utf-8")
    assert compact_json(document) == stdlib(document)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_reads_back_as_itself(number):
    """orjson may spell a float differently (1e16, not 1e+16): the same number, read back."""
    assert json.loads(json_bytes({"t": number}))["t"] == number


def test_a_trace_time_is_spelt_as_before():
    for t in (1764800000.123, 1764800000.1, 1764800000.0, 0.001):
        assert json_bytes({"t": t}) == stdlib({"t": t}).encode()


@pytest.mark.parametrize(
    "document",
    [
        {"big": 2**70},  # beyond 64 bits: orjson refuses
        {1: "a key that is a number"},  # orjson refuses; the standard encoder writes "1"
        [10**30, {"nested": -(2**65)}],
    ],
)
def test_what_orjson_refuses_the_standard_encoder_writes(document):
    assert json_bytes(document) == stdlib(document).encode("utf-8")
    assert compact_json(document) == stdlib(document)


def test_a_lone_surrogate_fails_as_it_did():
    """No UTF-8 encodes half a character: the standard encoder's text fails to encode, as the
    callers' ``compact_json(...).encode()`` did before."""
    with pytest.raises(UnicodeEncodeError):
        json_bytes({"school": "深圳大学\ud800"})


def test_a_float_that_is_not_finite_is_null():
    assert json_bytes([float("nan"), float("inf")]) == b"[null,null]"
