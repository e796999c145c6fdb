import pytest

from app.rendering.sms import sms_length, with_signature

SIGNATURE = "【盐田区政务服务】"  # 9 characters


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM7", 1),
        ("a" * 161, "GSM7", 2),
        ("a" * 306, "GSM7", 2),
        ("a" * 307, "GSM7", 3),
        ("{" * 80, "GSM7", 1),  # extension characters count two
        ("{" * 81, "GSM7", 2),
        ("汉" * 70, "UCS2", 1),
        ("汉" * 71, "UCS2", 2),
        ("汉" * 134, "UCS2", 2),
        ("汉" * 135, "UCS2", 3),
        ("a" * 159 + "汉", "UCS2", 3),  # one non-GSM character switches the whole message
        ("𠮷" * 35, "UCS2", 1),  # outside the BMP: two UTF-16 units each
        ("𠮷" * 36, "UCS2", 2),
        ("", "GSM7", 0),
    ],
)
def test_segments(text, encoding, segments):
    length = sms_length(text)
    assert (length.encoding, length.segments) == (encoding, segments)


def test_signature_counts_toward_length():
    body = "汉" * 61
    assert sms_length(body).segments == 1
    assert sms_length(with_signature(body, SIGNATURE)).segments == 1  # 70
    assert sms_length(with_signature(body + "汉", SIGNATURE)).segments == 2  # 71


def test_signature_is_added_once():
    assert with_signature(f"{SIGNATURE}您好", SIGNATURE) == f"{SIGNATURE}您好"
    assert with_signature("  您好\n", SIGNATURE) == f"{SIGNATURE}您好"
