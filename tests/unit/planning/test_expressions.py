import pytest

from app.planning.expressions import ExpressionError, compile_expression

NAMES = {"event", "data", "profile"}
CONTEXT = {"data": {"level": "red", "areas": ["440308"]},
           "profile": {"permits": ["outdoor_advertising"], "language": "zh-CN", "tags": []}}  # fmt: skip


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('data.level in ["orange", "red"]', True),
        ('"outdoor_advertising" in profile.permits and profile.language == "zh-CN"', True),
        ("not profile.tags", True),
        ("profile.missing.deeper == null", True),
        ("len(data.areas) == 1", True),
        ('lower("ABC") == "abc"', True),
        ("profile.nothing < 3", False),  # ordering against a missing value is false
        ('"x" in profile.nothing', False),
        ('data["areas"][0] == "440308"', True),
        ("data.areas[5] == null", True),
        ("true and false", False),
    ],
)
def test_conditions_evaluate(source, expected):
    assert compile_expression(source, NAMES).test(CONTEXT) is expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('__import__("os").system("id")', "only the functions"),
        ("data.__class__", "starts with _"),
        ("().__class__.__bases__[0].__subclasses__()", "only the functions"),
        ("().__class__", "starts with _"),
        ("1 + 1", "arithmetic"),
        ('"a" * 10**9', "arithmetic"),
        ("lambda: 1", "lambda"),
        ("settings == 1", "unknown name 'settings'"),
        ("data[profile]", "must be a fixed"),
        ('open("/etc/passwd")', "only the functions"),
        ("[x for x in data]", "not allowed"),
        ("data.level ==", "syntax error"),
        ("", "empty"),
    ],
)
def test_unsafe_or_broken_conditions_are_refused(source, message):
    with pytest.raises(ExpressionError, match=message):
        compile_expression(source, NAMES)
