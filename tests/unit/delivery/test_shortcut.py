from app.delivery.shortcut import Shortcut


def test_a_slow_batch_closes_its_channels_for_the_rest_and_only_them():
    now = [100.0]
    shortcut = Shortcut(slow_seconds=1.0, rest_seconds=30.0, clock=lambda: now[0])
    assert shortcut.open("sms") and shortcut.open("email")
    shortcut.took("sms", 0.9)  # quick enough
    assert shortcut.open("sms")
    shortcut.took("sms", 1.2)
    assert not shortcut.open("sms") and shortcut.open("email")
    now[0] += 29.9
    assert not shortcut.open("sms")
    now[0] += 0.1
    assert shortcut.open("sms")


def test_another_slow_batch_while_closed_extends_the_rest():
    now = [0.0]
    shortcut = Shortcut(slow_seconds=1.0, rest_seconds=30.0, clock=lambda: now[0])
    shortcut.took("email", 5.0)
    now[0] = 20.0
    shortcut.took("email", 5.0)  # a batch that was under way when it closed
    now[0] = 31.0
    assert not shortcut.open("email")
    now[0] = 50.0
    assert shortcut.open("email")
