import pytest

from app.core.errors import ConfigError
from app.core.settings import load_settings, to_environ


@pytest.mark.parametrize(
    ("raw", "value"), [("on", True), ("OFF", False), (" true ", True), ("0", False), ("", True)]
)
def test_deliver_where_planned_is_on_unless_turned_off(raw, value):
    settings = load_settings({"LIFECYCLE_DELIVER_WHERE_PLANNED": raw}, env_file=None)
    assert settings.deliver_where_planned is value
    again = load_settings(to_environ(settings), env_file=None)  # as a child process reads it
    assert again.deliver_where_planned is value


def test_a_switch_that_is_neither_on_nor_off_is_refused_by_name():
    with pytest.raises(
        ConfigError, match=r"LIFECYCLE_DELIVER_WHERE_PLANNED='maybe' is not a valid on/off"
    ):
        load_settings({"LIFECYCLE_DELIVER_WHERE_PLANNED": "maybe"}, env_file=None)
