"""The keyed hash of an address, as the deliverer computes it (``AddressKeys``): the same key as
``address_key`` for every address, under each secret, cached or not."""

import hashlib
import hmac

import pytest

from app.delivery.unsubscribe import AddressKeys, address_key

ADDRESSES = ["13812345678", "+8613812345678", "li.wei@example.cn", "", "张伟@例子.中国",
             "profile:P-000001", "a\u2028b\x00c", "x" * 10_000]  # fmt: skip


@pytest.mark.parametrize("secret", ["s" * 32, "秘密-secret", ""])
def test_the_same_key_as_address_key(secret: str) -> None:
    keys = AddressKeys(secret)
    for _ in range(2):  # computed, then from the cache
        for address in ADDRESSES:
            assert keys.of(address) == address_key(secret, address)


def test_the_key_is_the_documented_hmac() -> None:
    secret, address = "k" * 32, "13812345678"
    expected = hmac.new(secret.encode(), b"optout|" + address.encode(), hashlib.sha256)
    assert AddressKeys(secret).of(address) == expected.hexdigest()[:32]


def test_secrets_do_not_share_a_cache() -> None:
    one, two = AddressKeys("a" * 32), AddressKeys("b" * 32)
    assert one.of("13812345678") != two.of("13812345678")


def test_the_cache_is_bounded() -> None:
    keys = AddressKeys("s" * 32)
    for i in range(AddressKeys.CACHED * 2):
        keys.of(f"1380000{i:04d}")
    assert keys.of.cache_info().currsize == AddressKeys.CACHED
