"""Many desks, one central broker: the mosquitto bridge configuration of docs/mqtt.md, run for real.

A desk's mosquitto loads ``docs/examples/mosquitto-bridge.conf`` (placeholders filled in) and
bridges to the ``mosquitto`` fixture's TLS listener with a password, as a production desk would.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiomqtt
from brokers import HOST, BrokerHandle, Subscriber, _MosquittoRunner, find_mosquitto, free_port

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "mosquitto-bridge.conf"


def _desk_broker(tmp_path: Path, central: BrokerHandle, *, desk: str, wearer: str) -> tuple[_MosquittoRunner, int]:
    assert central.tls_port is not None
    assert central.ca_file is not None
    directory = tmp_path / f"desk-{desk}"
    directory.mkdir()
    bridge = EXAMPLE.read_text().format(
        desk=desk,
        wearer=wearer,
        central_host="localhost",  # the name in the central broker's certificate: host name checks stay on
        central_port=central.tls_port,
        username=central.username,
        password=central.password,
        ca_file=central.ca_file,
    )
    port = free_port()
    runner = _MosquittoRunner(find_mosquitto(), directory, {"plain": port})
    runner.config.write_text(
        "persistence false\nlog_dest stderr\nlog_type all\n"
        # As root (CI containers) mosquitto would switch to the 'mosquitto' user, who cannot read tmp_path.
        + ("user root\n" if os.geteuid() == 0 else "")
        + f"listener {port} {HOST}\nallow_anonymous true\n\n"
        + bridge
    )
    return runner, port


async def _wait_bridge_up(central: BrokerHandle, desk: str) -> None:
    async with Subscriber(central, f"sensorhub/_bridges/{desk}/state") as sub:
        for _ in range(100):
            if any(m.payload == b"1" for m in sub.messages):
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"the bridge of desk {desk} did not come up")


async def test_two_desks_bridge_to_a_central_broker(mosquitto: BrokerHandle, tmp_path: Path) -> None:
    """Alerts of two desks arrive centrally exactly once, in order; a central command reaches only its desk."""
    desks = {"desk1": "alex", "desk2": "sam"}
    runners = {}
    try:
        ports = {}
        for desk, wearer in desks.items():
            runner, port = _desk_broker(tmp_path, mosquitto, desk=desk, wearer=wearer)
            await runner.start()
            runners[desk], ports[desk] = runner, port
        for desk in desks:
            await _wait_bridge_up(mosquitto, desk)
        async with (
            Subscriber(mosquitto, "sensorhub/+/alerts") as central,
            Subscriber(f"mqtt://{HOST}:{ports['desk1']}", "sensorhub/alex/cmd/#") as desk1_cmds,
            Subscriber(f"mqtt://{HOST}:{ports['desk2']}", "sensorhub/#") as desk2_all,
        ):
            for desk, wearer in desks.items():
                async with aiomqtt.Client(HOST, ports[desk], timeout=5) as client:
                    for i in range(5):
                        payload = json.dumps({"t": float(i), "type": "slouch", "state": "start", "episode": i})
                        await client.publish(f"sensorhub/{wearer}/alerts", payload, qos=1)
            got = await central.wait_for(10, timeout=10)
            for wearer in desks.values():
                episodes = [m.json()["episode"] for m in got if m.topic == f"sensorhub/{wearer}/alerts"]
                assert episodes == [0, 1, 2, 3, 4], wearer
            async with aiomqtt.Client(HOST, mosquitto.port, timeout=5) as client:
                await client.publish("sensorhub/alex/cmd/snooze", b'{"minutes": 15}', qos=1)
            [cmd] = await desk1_cmds.wait_for(1, timeout=10)
            assert cmd.json() == {"minutes": 15}
            await asyncio.sleep(0.5)
            assert len(desk1_cmds.messages) == 1  # no echo back through the bridge
            assert not [m for m in desk2_all.messages if "/cmd/" in m.topic]  # desk2 never sees alex's commands
            assert len(central.messages) == 10
    finally:
        for runner in runners.values():
            await runner.stop()
