"""Reasons, logs and dead letters quote no personal data: ``masking.scrub``."""

from app.core.masking import scrub


def test_reasons_are_scrubbed_of_phones_ids_and_addresses():
    text = ("mobile '13800138000' and +8613900139000, id 44030819900101123X, mail liming@example.cn; "
            "kept: district 440308, 2026-11-22, CAP-44030841600000_20261122090000")  # fmt: skip
    clean = scrub(text)
    for secret in ("13800138000", "13900139000", "44030819900101123X", "liming@"):
        assert secret not in clean
    assert "138****8000" in clean and "l*****@example.cn" in clean
    assert "440308," in clean and "2026-11-22" in clean and "20261122090000" in clean
    assert len(scrub("x" * 10_000)) == 500
