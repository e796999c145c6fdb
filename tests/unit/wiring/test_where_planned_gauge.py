"""``lifecycle_delivered_where_planned{channel}``: what an operator sees of the shortcut past the
lanes, parsed back from the Prometheus text."""

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from app.delivery.shortcut import Shortcut
from wiring.metrics import exposition, update_where_planned


def shown() -> dict[str, float]:
    families = text_string_to_metric_families(exposition().decode())
    [family] = [f for f in families if f.name == "lifecycle_delivered_where_planned"]
    return {s.labels["channel"]: s.value for s in family.samples}


def test_a_channel_shows_0_while_its_sends_go_by_the_lane():
    now = [0.0]
    shortcut = Shortcut(slow_seconds=1.0, rest_seconds=30.0, clock=lambda: now[0])
    runtime = SimpleNamespace(deliverer=object(), shortcut=shortcut,
                              settings=SimpleNamespace(deliver_where_planned=True))  # fmt: skip
    update_where_planned(runtime)
    assert shown() == {"sms": 1.0, "email": 1.0}
    shortcut.took("email", 4.0)
    update_where_planned(runtime)
    assert shown() == {"sms": 1.0, "email": 0.0}
    now[0] = 31.0
    update_where_planned(runtime)
    assert shown() == {"sms": 1.0, "email": 1.0}


def test_every_channel_shows_0_when_the_worker_is_set_to_the_lanes_or_does_not_deliver():
    runtime = SimpleNamespace(deliverer=object(), shortcut=Shortcut(),
                              settings=SimpleNamespace(deliver_where_planned=False))  # fmt: skip
    update_where_planned(runtime)
    assert shown() == {"sms": 0.0, "email": 0.0}
    runtime.settings.deliver_where_planned, runtime.deliverer = True, None
    update_where_planned(runtime)
    assert shown() == {"sms": 0.0, "email": 0.0}
