"""The app configured after its agents were imported still talks to the configured broker.

Importing an agent module declares its agents, which builds Faust's transport from the broker
configured then (Faust's default, localhost:9092, before ``configure``). The agent tests failed
at set-up when another test had imported an agent module first. Run in a process of its own: the
app is a module-level singleton."""

import subprocess
import sys
import textwrap
import uuid

from app.core.settings import PROJECT_ROOT
from tests.helpers import TEST_SECRET, read_topic

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    import agents.deliver_notifications  # before configure: declares the agents
    from app.core.settings import Settings
    from wiring.faust_app import app, configure
    from wiring.runtime import Runtime

    async def main(kafka_url, redis_url, secret, key):
        settings = Settings(secret=secret, kafka_url=kafka_url, redis_url=redis_url,
                            redis_prefix="test-order:", smtp_url="smtp://127.0.0.1:1",
                            sms_url="file:///dev/null")  # never used: nothing is sent
        runtime = Runtime.build(settings)
        configure(settings, runtime)
        await app.producer.start()
        try:
            await app.producer.send_and_wait("life-events-dlq", key.encode(), b"{}", None, None, None)
        finally:
            await app.producer.stop()
            await runtime.close()

    asyncio.run(main(*sys.argv[1:]))
""")


async def test_a_producer_configured_after_the_agents_were_imported_reaches_the_broker(
    broker, redis_url
):
    key = f"order-{uuid.uuid4().hex[:8]}"
    done = subprocess.run([sys.executable, "-c", SCRIPT, broker.url, redis_url, TEST_SECRET, key],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    records = await read_topic(f"127.0.0.1:{broker.port}", "life-events-dlq")
    assert [r.key for r in records if r.key == key.encode()] == [key.encode()]
