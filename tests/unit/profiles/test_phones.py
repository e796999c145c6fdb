import pytest

from app.core.errors import InvalidPhoneNumber
from app.profiles.phones import normalise_mobile


@pytest.mark.parametrize(
    "raw",
    ["13800138000", "+8613800138000", "008613800138000", "8613800138000", "138 0013 8000",
     "138-0013-8000", "１３８００１３８０００", "+86 (0)138 0013 8000"],
)  # fmt: skip
def test_chinese_mobile_variants_normalise_to_e164(raw):
    assert normalise_mobile(raw) == "+8613800138000"


def test_newer_number_ranges_are_accepted():
    assert normalise_mobile("19245057809") == "+8619245057809"


def test_foreign_numbers_keep_their_country_code():
    assert normalise_mobile("+85291234567") == "+85291234567"


@pytest.mark.parametrize(
    ("raw", "why"),
    [("1380013800", "11 digits"), ("23800138000", "starts with 13 to 19"), ("12345678901", "13 to 19"),
     ("1440892359525", "IoT"), ("13800abc000", "digits only"), ("", "empty"), ("+12", "E.164")],
)  # fmt: skip
def test_invalid_numbers_are_refused_with_a_reason(raw, why):
    with pytest.raises(InvalidPhoneNumber, match=why):
        normalise_mobile(raw)


@pytest.mark.parametrize(
    "raw",
    ["١٣٨٠٠١٣٨٠٠٠", "+86١٣٨٠٠١٣٨٠٠٠", "+٤٤٢٠٧٩٤٦٠٩٥٨", "۱۳۸۰۰۱۳۸۰۰۰", "१३८००१३८०००"],
)
def test_digits_of_other_scripts_are_refused_not_stored(raw):
    # Python's isdigit() and \\d accept Arabic-Indic, Persian and Devanagari digits; a gateway
    # does not, so such a number was "sent" to nobody.
    with pytest.raises(InvalidPhoneNumber):
        normalise_mobile(raw)
