"""The outbox gateway writes a batch in one locked append, and never a notification id twice:
not within a batch, not across batches, not across two processes sharing the file."""

from app.core.errors import PermanentDeliveryError, TemporaryDeliveryError
from app.delivery.gateways.outbox import OutboxSmsGateway
from tests.helpers import outbox_lines
from tests.unit.delivery.test_deliverer import notification


async def test_a_batch_is_appended_once_each_and_a_bad_one_fails_alone(tmp_path):
    path = tmp_path / "sms.jsonl"
    first, second = OutboxSmsGateway(path), OutboxSmsGateway(path)  # two workers, one outbox
    batch = [notification("sms", f"+86138000000{i:02d}", event_id=f"E{i}") for i in range(50)]
    mail = notification("email", "a@example.cn")
    results = await first.send_batch([*batch, batch[3], mail])
    assert results[:50] == [f"outbox:{n.id}" for n in batch]
    assert results[50] == f"outbox:{batch[3].id}" and isinstance(
        results[51], PermanentDeliveryError
    )
    assert await second.send_batch(batch[40:]) == [f"outbox:{n.id}" for n in batch[40:]]
    await second.send(batch[0])
    lines = outbox_lines(path)
    assert [line["id"] for line in lines] == [n.id for n in batch]
    assert lines[7]["to"] == "+8613800000007" and lines[7]["event_id"] == "E7"


async def test_an_outbox_that_cannot_be_written_fails_the_batch_temporarily(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    gateway = OutboxSmsGateway(blocked / "sms.jsonl")
    batch = [notification("sms", "+8613800000001"), notification("email", "a@example.cn")]
    sms_result, mail_result = await gateway.send_batch(batch)
    assert isinstance(sms_result, TemporaryDeliveryError) and "cannot open" in str(sms_result)
    assert isinstance(mail_result, PermanentDeliveryError)
