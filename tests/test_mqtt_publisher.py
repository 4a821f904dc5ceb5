"""The MQTT publisher against real brokers on loopback (mosquitto and the embedded amqtt).

Outages here last a few seconds; the issue's 30-second outage is the same code path with more
failed attempts at the capped 1.5 s backoff, and belongs in a soak run, not the unit suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import trustme
from brokers import BrokerHandle, Subscriber, free_port, subscribe_collect

from sensorhub.config import MqttConfig, MqttProtocol
from sensorhub.mqtt.commands import Command, SnoozeCommand
from sensorhub.mqtt.outbox import Outbox
from sensorhub.mqtt.publisher import ANGLES_QUEUE_MAX, RECONNECT_BACKOFF, MqttPublisher

WEARER = "alex"
BASE = f"sensorhub/{WEARER}"
PLACEMENTS = ("upper_thoracic", "sacral")
CHILD = Path(__file__).with_name("mqtt_child.py")
ANGLES = {"thoracic_flexion_deg": 12.5, "lumbar_flexion_deg": 4.25, "trunk_flexion_deg": 20.0, "pelvis_tilt_deg": None}


def make_config(target: BrokerHandle | str, **overrides: Any) -> MqttConfig:
    """A config for a broker handle (MQTT 3.1.1 for amqtt, as the service does for it) or a URL."""
    if isinstance(target, BrokerHandle):
        url = target.url
        if target.kind == "amqtt":
            overrides.setdefault("protocol", MqttProtocol.V311)
    else:
        url = target
    return MqttConfig(url=url, client_id=f"sensorhub-test-{uuid.uuid4().hex[:8]}", **overrides)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


def make_publisher(config: MqttConfig, outbox: Outbox, **kwargs: Any) -> MqttPublisher:
    return MqttPublisher(config, WEARER, outbox=outbox, placements=PLACEMENTS, sw_version="0.0.0-test", **kwargs)


@contextlib.asynccontextmanager
async def running(publisher: MqttPublisher) -> AsyncIterator[asyncio.Task[None]]:
    """Run the publisher as a task; cancel it (a clean stop) on exit and surface any crash."""
    task = asyncio.create_task(publisher.run(), name="test-publisher")
    try:
        yield task
    finally:
        task.cancel()
        # A clean stop takes at most SHUTDOWN_TIMEOUT_S for 'offline' plus as much for DISCONNECT.
        done, _ = await asyncio.wait([task], timeout=6)
        if not done:
            chain = []
            coro: Any = task.get_coro()
            while coro is not None and hasattr(coro, "cr_frame"):
                if coro.cr_frame is not None:
                    chain.append(f"{coro.cr_code.co_name}:{coro.cr_frame.f_lineno}")
                coro = coro.cr_await
            chain.append(repr(coro))
            raise AssertionError(f"the publisher did not stop within 6 s of being cancelled: {' > '.join(chain)}")
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(predicate: Callable[[], bool], *, within: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within} s for {what}")
        await asyncio.sleep(0.01)


class CeilingRng(random.Random):
    """Jitter that always waits the whole ceiling (the worst case), and tells when it was asked."""

    def __init__(self) -> None:
        super().__init__(0)
        self.calls = 0

    def uniform(self, a: float, b: float) -> float:
        self.calls += 1
        return b


def messages_text(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("sensorhub")]


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


# ---------------------------------------------------------------------------------------------
# status, will, protocol


async def test_status_is_online_while_running_and_offline_after_a_clean_stop(
    mqtt_broker: BrokerHandle, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sensorhub")
    publisher = make_publisher(make_config(mqtt_broker), outbox)
    async with Subscriber(mqtt_broker, f"{BASE}/status") as sub:
        async with running(publisher):
            await sub.wait_for(1)
            await until(lambda: publisher.stats.connected, what="connected")
            [retained] = await subscribe_collect(mqtt_broker, f"{BASE}/status", count=1)
            assert (retained.text, retained.retain) == ("online", True)
            expected = MqttProtocol.V5 if mqtt_broker.kind == "mosquitto" else MqttProtocol.V311
            assert publisher.stats.protocol is expected
        await sub.wait_for(2)
        await sub.settle(0.1)
    assert [m.text for m in sub.messages] == ["online", "offline"]
    [retained] = await subscribe_collect(mqtt_broker, f"{BASE}/status", count=1)
    assert (retained.text, retained.retain) == ("offline", True)
    assert_no_traceback(caplog)


async def _start_child(
    target: BrokerHandle | str, outbox_path: Path, alerts: int, wait_for: str
) -> asyncio.subprocess.Process:
    config = make_config(target)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        config.url,
        config.protocol.value,
        f"sensorhub-child-{uuid.uuid4().hex[:8]}",
        WEARER,
        str(outbox_path),
        str(alerts),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert child.stdout is not None
    async with asyncio.timeout(20):
        while (line := (await child.stdout.readline()).decode().strip()) != wait_for:
            if not line:
                raise AssertionError(f"the child exited (code {await child.wait()}) before printing {wait_for!r}")
    return child


async def _sigkill(child: asyncio.subprocess.Process) -> None:
    child.send_signal(signal.SIGKILL)
    assert await child.wait() == -signal.SIGKILL


async def test_subscribers_see_offline_when_the_process_is_sigkilled(mqtt_broker: BrokerHandle, tmp_path: Path) -> None:
    async with Subscriber(mqtt_broker, f"{BASE}/status") as sub:
        child = await _start_child(mqtt_broker, tmp_path / "outbox.db", 0, "connected")
        try:
            await sub.wait_for(1)
        finally:
            await _sigkill(child)
        # The broker publishes the will when it notices the dead socket (at once on loopback).
        messages = await sub.wait_for(2, timeout=10)
    assert [m.text for m in messages] == ["online", "offline"]
    [retained] = await subscribe_collect(mqtt_broker, f"{BASE}/status", count=1)
    assert (retained.text, retained.retain) == ("offline", True)


async def test_undelivered_alerts_are_delivered_after_a_restart(mosquitto: BrokerHandle, tmp_path: Path) -> None:
    """A child queues alerts while no broker is reachable and is SIGKILLed; the next run delivers them."""
    outbox_path = tmp_path / "outbox.db"
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    child = await _start_child(nowhere, outbox_path, 20, "queued")
    await _sigkill(child)
    with Outbox(outbox_path) as box:
        assert len(box) == 20
        async with (
            Subscriber(mosquitto, f"{BASE}/alerts") as sub,
            running(make_publisher(make_config(mosquitto), box)),
        ):
            messages = await sub.wait_for(20)
            await until(lambda: len(box) == 0, what="an empty outbox")
    assert [m.json()["seq"] for m in messages] == list(range(20))
    assert len({m.json()["msg_id"] for m in messages}) == 20


# ---------------------------------------------------------------------------------------------
# angles


async def test_angles_are_decimated_to_the_publish_rate(mqtt_broker: BrokerHandle, outbox: Outbox) -> None:
    publisher = make_publisher(make_config(mqtt_broker, publish_rate_hz=10.0), outbox)
    async with Subscriber(mqtt_broker, f"{BASE}/angles", qos=0) as sub, running(publisher):
        await until(lambda: publisher.stats.connected, what="connected")
        t0 = 1_700_000_000.0
        # Two seconds of samples at 100 Hz, offered as fast as the producer can.
        for i in range(200):
            publisher.publish_angles(t0 + i / 100, ANGLES, "slouched")
        messages = await sub.wait_for(20)
        await sub.settle(0.2)
    assert len(sub.messages) == 20
    times = [m.json()["t"] for m in messages]
    assert times == pytest.approx([t0 + i / 10 for i in range(20)], abs=1e-3)
    assert messages[0].json() == {
        "t": t0,
        "thoracic_flexion_deg": 12.5,
        "lumbar_flexion_deg": 4.25,
        "trunk_flexion_deg": 20.0,
        "pelvis_tilt_deg": None,
        "posture": "slouched",
    }
    assert all(m.qos == 0 and not m.retain for m in messages)
    assert publisher.stats.angles_sent == 20
    assert publisher.stats.angles_dropped == 0


async def test_angle_decimation_restarts_when_the_clock_jumps_back(mosquitto: BrokerHandle, outbox: Outbox) -> None:
    """A new session (or a replay from the start) is not silenced until it passes the old clock."""
    publisher = make_publisher(make_config(mosquitto, publish_rate_hz=5.0), outbox)
    async with Subscriber(mosquitto, f"{BASE}/angles", qos=0) as sub, running(publisher):
        await until(lambda: publisher.stats.connected, what="connected")
        for t0 in (1_700_000_100.0, 1_700_000_000.0):
            for i in range(100):  # 1 s at 100 Hz
                publisher.publish_angles(t0 + i / 100 + 0.0003 * (i % 3), ANGLES, "upright")  # jittered stamps
        messages = await sub.wait_for(10)
        await sub.settle(0.2)
    times = [m.json()["t"] for m in sub.messages]
    assert times == pytest.approx(
        [1_700_000_100.0 + i / 5 for i in range(5)] + [1_700_000_000.0 + i / 5 for i in range(5)], abs=2e-3
    )
    assert len(messages) == 10


async def test_angles_queue_keeps_the_newest_and_counts_the_dropped(mosquitto: BrokerHandle, outbox: Outbox) -> None:
    publisher = make_publisher(make_config(mosquitto), outbox)
    t0 = 1_700_000_000.0
    for i in range(ANGLES_QUEUE_MAX + 30):  # offered before there is any connection
        publisher.publish_angles(t0 + i / 10, ANGLES, "upright")
    assert publisher.stats.angles_dropped == 30
    async with Subscriber(mosquitto, f"{BASE}/angles") as sub, running(publisher):
        messages = await sub.wait_for(ANGLES_QUEUE_MAX)
    assert [m.json()["t"] for m in messages] == pytest.approx([t0 + i / 10 for i in range(30, 80)], abs=1e-3)


async def test_angles_carry_a_message_expiry_over_mqtt5(mosquitto: BrokerHandle, outbox: Outbox) -> None:
    publisher = make_publisher(make_config(mosquitto), outbox)
    async with (
        aiomqtt.Client(mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5, timeout=5) as client,
        running(publisher),
    ):
        await client.subscribe(f"{BASE}/angles", qos=0)
        await until(lambda: publisher.stats.connected, what="connected")
        publisher.publish_angles(time.time(), ANGLES, "upright")
        async with asyncio.timeout(5):
            message = await anext(aiter(client.messages))
    assert message.properties is not None
    assert 0 < message.properties.MessageExpiryInterval <= 5


# ---------------------------------------------------------------------------------------------
# retained state


async def test_retained_state_is_published_and_restored_after_a_broker_restart(
    mqtt_broker: BrokerHandle, outbox: Outbox
) -> None:
    publisher = make_publisher(make_config(mqtt_broker, discovery=False), outbox)
    publisher.publish_posture(1_700_000_010.0, "slouched", 1_700_000_000.0)
    publisher.publish_sensor(
        "sacral", t=1_700_000_010.0, connected=True, battery_pct=87.0, rssi=-60, rate_hz=52.0, dropped=3
    )
    publisher.publish_session("s-1", 1_700_000_000.0, {"alerts": 2})
    with pytest.raises(ValueError, match="not configured"):
        publisher.publish_sensor(
            "thoracolumbar", t=0, connected=False, battery_pct=None, rssi=None, rate_hz=None, dropped=0
        )
    expected = {
        f"{BASE}/posture": {"t": 1_700_000_010.0, "posture": "slouched", "since": 1_700_000_000.0},
        f"{BASE}/sensors/sacral": {
            "t": 1_700_000_010.0,
            "connected": True,
            "battery_pct": 87.0,
            "rssi": -60,
            "rate_hz": 52.0,
            "dropped": 3,
        },
        f"{BASE}/session": {"id": "s-1", "started": 1_700_000_000.0, "stats": {"alerts": 2}},
    }

    async def until_retained(want: dict[str, Any]) -> None:
        """Poll the broker's retained messages until they are ``want`` (+ status)."""
        deadline = time.monotonic() + 5
        while True:
            messages = await subscribe_collect(mqtt_broker, f"{BASE}/#", count=None, quiet=0.1)
            retained = {m.topic: m.json() for m in messages if m.retain and not m.topic.endswith("/status")}
            if retained == want:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"retained {retained}, want {want}")

    async with running(publisher):
        await until_retained(expected)
        publisher.publish_posture(1_700_000_020.0, "upright", 1_700_000_020.0)
        expected[f"{BASE}/posture"] = {"t": 1_700_000_020.0, "posture": "upright", "since": 1_700_000_020.0}
        await until_retained(expected)
        # Neither broker keeps retained messages across this restart; the publisher sends them again.
        await mqtt_broker.stop()
        await mqtt_broker.start()
        await until(lambda: publisher.stats.reconnects == 1, within=5, what="a reconnect")
        await until_retained(expected)


# ---------------------------------------------------------------------------------------------
# alerts: outbox, order, outage


async def test_alerts_and_exercise_events_go_through_the_outbox_in_order(
    mqtt_broker: BrokerHandle, outbox: Outbox
) -> None:
    publisher = make_publisher(make_config(mqtt_broker), outbox)
    ids = [publisher.publish_alert(1_700_000_000.0, "slouch", "start", 30.0, episode=1, segment="thoracic")]
    ids.append(publisher.publish_exercise(1_700_000_001.0, {"type": "rep", "rom_deg": {"thoracic": 20.0}}))
    ids.append(publisher.publish_alert(1_700_000_002.0, "slouch", "end", 62.0, episode=1, msg_id="given-id"))
    assert len(outbox) == 3  # durable before anything is sent
    assert ids[2] == "given-id"
    async with Subscriber(mqtt_broker, f"{BASE}/alerts", f"{BASE}/exercise") as sub, running(publisher):
        messages = await sub.wait_for(3)
        await until(lambda: len(outbox) == 0, what="an empty outbox")
    assert [(m.topic.rsplit("/", 1)[1], m.json()["msg_id"]) for m in messages] == [
        ("alerts", ids[0]),
        ("exercise", ids[1]),
        ("alerts", "given-id"),
    ]
    assert messages[0].json() == {
        "t": 1_700_000_000.0,
        "type": "slouch",
        "state": "start",
        "duration_s": 30.0,
        "episode": 1,
        "segment": "thoracic",
        "msg_id": ids[0],
    }
    assert all(m.qos == 1 and not m.retain for m in messages)
    assert publisher.stats.alerts_sent == 3


@pytest.mark.parametrize(
    ("mqtt_broker", "outage_s"),
    [
        pytest.param("mosquitto", 2.5, id="mosquitto-2.5s"),
        pytest.param("amqtt", 2.5, id="amqtt-2.5s"),
        pytest.param("mosquitto", 30.0, id="mosquitto-30s", marks=pytest.mark.slow),
    ],
    indirect=["mqtt_broker"],
)
async def test_alerts_survive_a_broker_outage_in_order_and_angles_resume_quickly(
    mqtt_broker: BrokerHandle, outbox: Outbox, caplog: pytest.LogCaptureFixture, outage_s: float
) -> None:
    """A stream of angles and alerts, the broker gone for ``outage_s``, every alert delivered in order.

    The jitter is pinned to its ceiling, so the reconnect happens at the worst moment the backoff
    allows (1.5 s after a failed attempt, the broker returning just after that attempt). mosquitto
    is SIGKILLed; the embedded amqtt broker is stopped, which must drop every connection at once
    even with QoS 1 in flight. Neither keeps sessions across the restart, so the subscriber
    reconnects. The 30 s outage is the same path on amqtt; it runs on mosquitto only.
    """
    rng = CeilingRng()
    publisher = make_publisher(make_config(mqtt_broker, publish_rate_hz=10.0), outbox, rng=rng)
    filters = (f"{BASE}/alerts", f"{BASE}/angles")
    sent: list[int] = []

    async def stream() -> None:
        for i in range(10_000):
            publisher.publish_angles(time.time(), ANGLES, "upright")
            if i % 5 == 0:
                publisher.publish_alert(time.time(), "slouch", "start", 30.0, seq=len(sent))
                sent.append(len(sent))
            await asyncio.sleep(0.02)

    async with Subscriber(mqtt_broker, *filters) as before, running(publisher):
        await until(lambda: publisher.stats.connected, what="connected")
        streaming = asyncio.create_task(stream(), name="test-stream")
        try:
            await before.wait_for(5, topic=f"{BASE}/alerts")
            await mqtt_broker.stop()
            await asyncio.sleep(outage_s)
            calls = rng.calls
            await until(lambda: rng.calls > calls, what="a failed reconnect attempt")
            await mqtt_broker.start()
            back = time.monotonic()
            async with Subscriber(mqtt_broker, *filters) as after:
                await after.wait_for(1, topic=f"{BASE}/angles", timeout=5)
                resumed_s = time.monotonic() - back
                await asyncio.sleep(0.5)
                streaming.cancel()
                await until(lambda: len(outbox) == 0, what="an empty outbox")
                await after.settle(0.2)
        finally:
            streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await streaming
    print(f"angles resumed {resumed_s:.2f} s after the broker came back (jitter at its ceiling)")
    assert resumed_s <= 2.0, f"angles resumed {resumed_s:.2f} s after the broker came back"
    received = [m.json() for m in before.matching(f"{BASE}/alerts") + after.matching(f"{BASE}/alerts")]
    seen: set[str] = set()
    deduplicated = []
    for payload in received:
        if payload["msg_id"] not in seen:
            seen.add(payload["msg_id"])
            deduplicated.append(payload["seq"])
    assert deduplicated == sent
    assert len(received) - len(deduplicated) <= 1  # at most the one in flight at the kill, resent
    assert publisher.stats.reconnects == 1
    lost = [m for m in messages_text(caplog) if "lost" in m or "refused the TCP connection" in m]
    assert lost, "the outage was not logged"
    assert_no_traceback(caplog)


# ---------------------------------------------------------------------------------------------
# commands


async def test_commands_are_validated_and_errors_never_stop_the_service(
    mqtt_broker: BrokerHandle, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[Command] = []

    async def on_command(command: Command) -> None:
        if isinstance(command, SnoozeCommand) and command.minutes == 13:
            raise RuntimeError("the handler broke")
        received.append(command)

    publisher = make_publisher(make_config(mqtt_broker), outbox, on_command=on_command)
    async with (
        Subscriber(mqtt_broker, f"{BASE}/errors") as errors,
        running(publisher) as task,
        aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, timeout=5) as dashboard,
    ):
        await until(lambda: publisher.stats.connected, what="connected")
        await dashboard.publish(f"{BASE}/cmd/snooze", b'{"minutes": 1000}', qos=1)
        await dashboard.publish(f"{BASE}/cmd/snooze", b"\xff\xfe not json", qos=1)
        await dashboard.publish(f"{BASE}/cmd/dance", b"{}", qos=1)
        await dashboard.publish(f"{BASE}/cmd/snooze", b'{"minutes": 13}', qos=1)
        await dashboard.publish(f"{BASE}/cmd/snooze", b'{"minutes": 20}', qos=1)
        messages = await errors.wait_for(4)
        await until(lambda: len(received) == 1, what="the valid command")
        assert not task.done()
    assert received == [SnoozeCommand(minutes=20.0)]
    bodies = [m.json() for m in messages]
    assert [b["source"] for b in bodies] == ["cmd/snooze", "cmd/snooze", "cmd/dance", "cmd/snooze"]
    assert "minutes" in bodies[0]["message"]
    assert bodies[0]["payload_excerpt"] == '{"minutes": 1000}'
    assert bodies[1]["payload_bytes"] == len(b"\xff\xfe not json")
    assert "dance" in bodies[2]["message"]
    assert bodies[3]["message"] == "cmd/snooze failed: RuntimeError: the handler broke"
    assert all(m.qos == 1 and not m.retain for m in messages)
    assert publisher.stats.commands_rejected == 4
    assert publisher.stats.commands_received == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("MQTT command rejected" in w for w in warnings) == 4


async def test_a_retained_command_is_not_carried_out(mosquitto: BrokerHandle, outbox: Outbox) -> None:
    received: list[Command] = []
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, timeout=5) as dashboard:
        await dashboard.publish(f"{BASE}/cmd/snooze", b'{"minutes": 10}', qos=1, retain=True)
    publisher = make_publisher(make_config(mosquitto), outbox, on_command=received.append)
    async with Subscriber(mosquitto, f"{BASE}/errors") as errors, running(publisher):
        [message] = await errors.wait_for(1)
    assert "retained command is ignored" in message.json()["message"]
    assert received == []


# ---------------------------------------------------------------------------------------------
# Home Assistant discovery


async def test_discovery_is_republished_when_home_assistant_comes_online_and_removed_on_request(
    mqtt_broker: BrokerHandle, outbox: Outbox
) -> None:
    publisher = make_publisher(make_config(mqtt_broker), outbox)
    async with Subscriber(mqtt_broker, "homeassistant/+/+/+/config") as ha, running(publisher):
        await until(lambda: publisher.stats.connected, what="connected")  # discovery is published by then
        first = await ha.settle(0.2)
        count = len(first)
        assert count > 0
        assert all(m.payload for m in first)
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, timeout=5) as home_assistant:
            await home_assistant.publish("homeassistant/status", b"online", qos=1)
            await ha.wait_for(2 * count)
            await publisher.remove_discovery()
            removals = (await ha.wait_for(3 * count))[2 * count :]
            assert [m.topic for m in removals] == [m.topic for m in first]
            assert all(m.payload == b"" for m in removals)
            await home_assistant.publish("homeassistant/status", b"online", qos=1)
            await ha.settle(0.3)
        assert len(ha.messages) == 3 * count  # removed stays removed
    assert await subscribe_collect(mqtt_broker, "homeassistant/#", count=None, quiet=0.2) == []


async def test_remove_discovery_without_a_connection_is_a_clear_error(outbox: Outbox) -> None:
    from sensorhub.errors import SinkError

    publisher = make_publisher(make_config(f"mqtt://127.0.0.1:{free_port()}"), outbox)
    with pytest.raises(SinkError, match=r"discovery not removed: no connection to the MQTT broker .* within 0.2 s"):
        await publisher.remove_discovery(timeout_s=0.2)


# ---------------------------------------------------------------------------------------------
# security and failures: one clear line, a retry schedule, never a traceback, never the password


async def test_tls_with_the_ca_and_a_password_file(mosquitto: BrokerHandle, outbox: Outbox, tmp_path: Path) -> None:
    assert mosquitto.password is not None
    password_file = tmp_path / "password"
    password_file.write_text(mosquitto.password + "\n")
    config = make_config(
        f"mqtts://127.0.0.1:{mosquitto.tls_port}",
        username=mosquitto.username,
        password_file=password_file,
        ca_file=mosquitto.ca_file,
    )
    publisher = make_publisher(config, outbox)
    async with running(publisher):
        await until(lambda: publisher.stats.connected, what="a TLS connection")
        publisher.publish_alert(1_700_000_000.0, "slouch", "start", 30.0)
        await until(lambda: len(outbox) == 0, what="the alert acknowledged")


async def test_mutual_tls_with_a_client_certificate(mosquitto: BrokerHandle, outbox: Outbox) -> None:
    config = make_config(
        f"mqtts://localhost:{mosquitto.mtls_port}",
        ca_file=mosquitto.ca_file,
        client_cert=mosquitto.client_cert,
        client_key=mosquitto.client_key,
    )
    publisher = make_publisher(config, outbox)
    async with running(publisher):
        await until(lambda: publisher.stats.connected, what="a mutual-TLS connection")


async def _failures(
    publisher: MqttPublisher, caplog: pytest.LogCaptureFixture, *, attempts: int, within: float = 10.0
) -> list[logging.LogRecord]:
    """Run until ``attempts`` failures were logged (any level); return the publisher's records."""
    caplog.set_level(logging.DEBUG, logger="sensorhub.mqtt.publisher")

    def failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "sensorhub.mqtt.publisher" and "retrying in" in r.getMessage()]

    async with running(publisher):
        await until(lambda: len(failures()) >= attempts, within=within, what=f"{attempts} failed attempts")
        assert not publisher.stats.connected
    assert_no_traceback(caplog)
    return failures()


async def test_a_wrong_ca_is_one_clear_error_and_a_retry(
    mosquitto: BrokerHandle,
    outbox: Outbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(other_ca)
    monkeypatch.setenv("SENSORHUB_TEST_PW", "not-the-real-one")
    config = make_config(
        f"mqtts://127.0.0.1:{mosquitto.tls_port}", username="u", password_env="SENSORHUB_TEST_PW", ca_file=other_ca
    )
    publisher = make_publisher(config, outbox, rng=random.Random(1))
    [record] = await _failures(publisher, caplog, attempts=1)
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert message.startswith(f"TLS certificate verify failed for MQTT broker 127.0.0.1:{mosquitto.tls_port}: ")
    # OpenSSL's wording depends on whether the server sends its CA along.
    assert "self-signed certificate in certificate chain" in message or "unable to get local issuer" in message
    assert "retrying in" in message
    assert publisher.stats.last_error is not None
    assert "certificate verify failed" in publisher.stats.last_error


async def test_a_wrong_password_is_one_clear_error_that_never_shows_the_password(
    mosquitto: BrokerHandle, outbox: Outbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-" + uuid.uuid4().hex
    password_file = tmp_path / "password"
    password_file.write_text(secret)
    config = make_config(
        f"mqtt://127.0.0.1:{mosquitto.auth_port}", username=mosquitto.username, password_file=password_file
    )
    caplog.set_level(logging.DEBUG)  # paho's packet log included
    publisher = make_publisher(config, outbox, rng=random.Random(1))
    records = await _failures(publisher, caplog, attempts=1)
    # mosquitto 2 answers a wrong password with "not authorised" (MQTT 5 reason 0x87), not 0x86.
    message = records[0].getMessage()
    assert message.startswith(
        f"MQTT broker 127.0.0.1:{mosquitto.auth_port} refused user '{mosquitto.username}': not authorised "
        "(a wrong password, or the user may not connect; check mqtt.username and mqtt.password_file); retrying in "
    )
    assert records[0].levelno == logging.WARNING
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert secret not in repr(publisher)
    assert secret not in repr(config)
    # A refusal starts at <= 2 s and backs off to a minute (REFUSED_BACKOFF).
    assert float(records[0].getMessage().rsplit("retrying in ", 1)[1].split()[0]) <= 2.0


async def test_a_missing_password_file_is_a_clear_error(
    mosquitto: BrokerHandle, outbox: Outbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(mosquitto, username="u", password_file=tmp_path / "nope")
    [record] = await _failures(make_publisher(config, outbox), caplog, attempts=1)
    assert "cannot read the password file" in record.getMessage()


async def test_an_absent_broker_is_one_warning_and_a_retry_schedule(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    publisher = make_publisher(make_config(f"mqtt://127.0.0.1:{port}"), outbox, rng=random.Random(3))
    records = await _failures(publisher, caplog, attempts=4)
    first, *repeats = records
    assert first.levelno == logging.WARNING
    assert first.getMessage().startswith(
        f"MQTT broker 127.0.0.1:{port} refused the TCP connection (is the broker running?); retrying in "
    )
    assert [r.levelno for r in repeats] == [logging.DEBUG] * len(repeats)
    delays = [float(r.getMessage().rsplit("retrying in ", 1)[1].split()[0]) for r in records]
    assert all(0 <= d <= RECONNECT_BACKOFF.cap_s for d in delays)


async def test_mqtt5_falls_back_to_311_for_the_rest_of_the_run(
    amqtt_broker: BrokerHandle, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """amqtt does not answer an MQTT 5 CONNECT; after one probe the run speaks 3.1.1, reconnects included."""
    caplog.set_level(logging.INFO, logger="sensorhub")
    publisher = make_publisher(make_config(amqtt_broker, protocol=MqttProtocol.V5), outbox)
    async with running(publisher):
        await until(lambda: publisher.stats.connected, within=10, what="connected")
        await amqtt_broker.stop()
        await amqtt_broker.start()
        await until(lambda: publisher.stats.reconnects == 1, within=5, what="a reconnect")
        assert publisher.stats.protocol is MqttProtocol.V311
    fallbacks = [m for m in messages_text(caplog) if "using MQTT 3.1.1 for this run" in m]
    assert len(fallbacks) == 1
    assert_no_traceback(caplog)


def test_stats_start_empty(outbox: Outbox) -> None:
    publisher = make_publisher(make_config("mqtt://127.0.0.1:1883"), outbox)
    stats = publisher.stats
    assert (stats.connected, stats.protocol, stats.reconnects, stats.outbox_depth, stats.last_error) == (
        False,
        None,
        0,
        0,
        None,
    )
    assert "password" not in repr(publisher)
    with pytest.raises(ValueError, match="finite"):
        publisher.publish_angles(float("nan"), ANGLES, "upright")


async def test_an_explicit_mqtt5_refusal_switches_to_311_at_once(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that answers an MQTT 5 CONNECT with reason 0x84 gets a 3.1.1 CONNECT right away.

    The peer is a few lines of asyncio that speak just enough MQTT: CONNACK "unsupported protocol
    version" to level 5, "not authorised" to level 4.
    """
    caplog.set_level(logging.INFO, logger="sensorhub")
    levels: list[int] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(1)  # CONNECT fixed header
            length, shift = 0, 0
            while True:  # remaining length, MQTT variable byte integer
                byte = (await reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            body = await reader.readexactly(length)
            levels.append(body[6])  # after the protocol name "\x00\x04MQTT"
            if body[6] == 5:
                writer.write(bytes([0x20, 0x03, 0x00, 0x84, 0x00]))  # CONNACK, reason 0x84, no properties
            else:
                writer.write(bytes([0x20, 0x02, 0x00, 0x05]))  # CONNACK 3.1.1, return code 5: not authorised
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    publisher = make_publisher(make_config(f"mqtt://127.0.0.1:{port}"), outbox, rng=random.Random(0))
    async with server:
        refused = f"127.0.0.1:{port} does not accept anonymous clients"
        async with running(publisher):
            await until(lambda: any(refused in m for m in messages_text(caplog)), what="the 3.1.1 refusal logged")
        assert levels[:2] == [5, 4]
    assert any("does not support MQTT 5; using MQTT 3.1.1 for this run" in m for m in messages_text(caplog))


async def test_the_host_name_is_checked(outbox: Outbox, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A certificate from the trusted CA but for another host is refused (check_hostname stays on)."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("broker.elsewhere.test").configure_cert(server_context)

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        publisher = make_publisher(make_config(f"mqtts://127.0.0.1:{port}", ca_file=ca_file), outbox)
        [record] = await _failures(publisher, caplog, attempts=1)
    message = record.getMessage()
    assert message.startswith(f"TLS certificate verify failed for MQTT broker 127.0.0.1:{port}: ")
    assert "mismatch" in message


async def test_a_password_from_the_environment(
    mosquitto: BrokerHandle, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mosquitto.password is not None
    monkeypatch.setenv("SENSORHUB_TEST_MQTT_PASSWORD", mosquitto.password)
    config = make_config(
        f"mqtt://127.0.0.1:{mosquitto.auth_port}",
        username=mosquitto.username,
        password_env="SENSORHUB_TEST_MQTT_PASSWORD",
    )
    publisher = make_publisher(config, outbox)
    async with running(publisher):
        await until(lambda: publisher.stats.connected, what="an authenticated connection")


async def test_mutual_tls_without_a_client_certificate_says_so(
    mosquitto: BrokerHandle, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """TLS 1.3 lets the handshake finish; the broker's alert comes with the first read, before CONNACK."""
    config = make_config(f"mqtts://localhost:{mosquitto.mtls_port}", ca_file=mosquitto.ca_file)
    [record] = await _failures(make_publisher(config, outbox), caplog, attempts=1)
    assert record.getMessage().startswith(
        f"MQTT broker localhost:{mosquitto.mtls_port} closed the connection before its CONNACK: TLS: tlsv13 alert "
        "certificate required (the broker wants a client certificate: set mqtt.client_cert and mqtt.client_key)"
    )
    assert not [m for m in messages_text(caplog) if "using MQTT 3.1.1" in m]  # not mistaken for "no MQTT 5"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_password_without_a_user_is_read_not_sent_and_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sensorhub.mqtt.publisher import _Credentials

    password_file = tmp_path / "password"
    password_file.write_text("secret\n")
    credentials = _Credentials(make_config("mqtt://127.0.0.1:1883", password_file=password_file))
    with caplog.at_level(logging.WARNING, logger="sensorhub.mqtt.publisher"):
        assert credentials() == ("secret", None)
        assert credentials() == ("secret", None)  # read again at every attempt
    warnings = [r for r in caplog.records if "without mqtt.username" in r.getMessage()]
    assert len(warnings) == 1
    assert "secret" not in caplog.text
