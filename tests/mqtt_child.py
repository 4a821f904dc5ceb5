"""A publisher in its own process, for the tests that SIGKILL it (will message, outbox after restart).

Usage: ``python tests/mqtt_child.py URL PROTOCOL CLIENT_ID WEARER OUTBOX_PATH ALERTS``. Puts ``ALERTS`` slouch
alerts (``seq`` 0…ALERTS-1) into the outbox, prints ``queued``, runs the publisher and prints
``connected`` once the broker has accepted it; then runs until killed.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from sensorhub.config import MqttConfig, MqttProtocol
from sensorhub.mqtt.outbox import Outbox
from sensorhub.mqtt.publisher import MqttPublisher


async def _report_connected(publisher: MqttPublisher) -> None:
    while True:
        if publisher.stats.connected:
            print("connected", flush=True)
            return
        await asyncio.sleep(0.01)


async def main(url: str, protocol: str, client_id: str, wearer: str, outbox_path: str, alerts: int) -> None:
    config = MqttConfig(url=url, client_id=client_id, discovery=False, protocol=MqttProtocol(protocol))
    with Outbox(Path(outbox_path)) as outbox:
        publisher = MqttPublisher(config, wearer, outbox=outbox, placements=["upper_thoracic"], sw_version="0.0.0-test")
        for seq in range(alerts):
            publisher.publish_alert(1_700_000_000.0 + seq, "slouch", "start", 30.0, seq=seq)
        print("queued", flush=True)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(publisher.run(), name="mqtt")
            tasks.create_task(_report_connected(publisher), name="report-connected")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    url, protocol, client_id, wearer, outbox_path, alerts = sys.argv[1:]
    asyncio.run(main(url, protocol, client_id, wearer, outbox_path, int(alerts)))
