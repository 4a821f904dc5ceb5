"""The embedded MQTT broker (amqtt), `sensorhub broker`, and the broker fixtures the MQTT tests rely on.

Tests that take ``mqtt_broker`` run against mosquitto and amqtt: the publisher's tests assume the
two brokers agree on retained messages, QoS 1 and wills, so that agreement is pinned here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import struct
import sys
from pathlib import Path

import aiomqtt
import pytest
import trustme
from brokers import BrokerHandle, Subscriber, subscribe_collect

from sensorhub.cli import main
from sensorhub.config import MqttProtocol
from sensorhub.errors import ConfigError, SinkError
from sensorhub.mqtt import broker as broker_module
from sensorhub.mqtt.broker import EmbeddedBroker

REPO = Path(__file__).resolve().parents[1]


def client(handle: BrokerHandle, **options: object) -> aiomqtt.Client:
    """An MQTT 3.1.1 client of the handle's plain listener (options override)."""
    kwargs: dict[str, object] = {"port": handle.port, "protocol": aiomqtt.ProtocolVersion.V311, "timeout": 5}
    kwargs.update(options)
    return aiomqtt.Client(handle.host, **kwargs)  # type: ignore[arg-type]


def connect_with_will(client_id: str, will_topic: str, will_payload: bytes) -> bytes:
    """An MQTT 3.1.1 CONNECT packet with a retained QoS 1 will (MQTT 3.1.1 §3.1).

    Connect flags 0x2E = will retain (0x20) | will QoS 1 (0x08) | will flag (0x04) | clean session (0x02).
    """

    def utf8(text: bytes) -> bytes:
        return struct.pack("!H", len(text)) + text

    body = utf8(b"MQTT") + bytes([4, 0x2E]) + struct.pack("!H", 60)
    body += utf8(client_id.encode()) + utf8(will_topic.encode()) + utf8(will_payload)
    assert len(body) < 128  # one-byte remaining length
    return bytes([0x10, len(body)]) + body


# --- the embedded broker -------------------------------------------------------------------------------


async def test_embedded_broker_listens_on_loopback_only():
    async with EmbeddedBroker(port=None) as broker:
        port = broker.port
        assert broker.host == "127.0.0.1"
        assert broker.url == f"mqtt://127.0.0.1:{port}"
        assert broker.protocol is MqttProtocol.V311
        # A probe that connects and closes without a CONNECT must not leak the broker's socket.
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        # A socket bound to 0.0.0.0 would also answer on 127.0.0.2; one bound to 127.0.0.1 does not.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", port), timeout=2).close()
        await asyncio.sleep(0.1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(RuntimeError, match="not running"):
        _ = broker.port


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "::1", "192.168.1.20", "broker.example"])
def test_embedded_broker_refuses_hosts_off_loopback(host):
    with pytest.raises(ConfigError, match="loopback only") as err:
        EmbeddedBroker(host)
    assert "mosquitto" in err.value.advice


def test_embedded_broker_localhost_means_ipv4_loopback():
    assert EmbeddedBroker("localhost").host == "127.0.0.1"


async def test_embedded_broker_falls_back_to_a_free_port_when_its_port_is_taken(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="sensorhub"):
            async with EmbeddedBroker(port=busy) as broker:
                port = broker.port
                assert port not in (busy, 0)
                async with Subscriber(broker.url, "t") as sub, aiomqtt.Client("127.0.0.1", port) as pub:
                    await pub.publish("t", b"x", qos=1)
                    await sub.wait_for(1)
        assert f"port {busy} on 127.0.0.1 is in use" in caplog.text
        assert f"listens on port {port} instead" in caplog.text

        with pytest.raises(SinkError, match=f"port {busy} on 127.0.0.1 is in use"):
            async with EmbeddedBroker(port=busy, fallback_to_free_port=False):
                pass


async def test_embedded_broker_without_amqtt_says_which_extra_to_install(monkeypatch):
    broker_module._broker_class.cache_clear()
    monkeypatch.setitem(sys.modules, "amqtt.broker", None)  # makes `import amqtt.broker` fail
    try:
        with pytest.raises(SinkError) as err:
            async with EmbeddedBroker(port=None):
                pass
    finally:
        broker_module._broker_class.cache_clear()
    assert "amqtt" in err.value.message
    assert "sensorhub[broker]" in err.value.advice


async def test_embedded_broker_refuses_mqtt5_so_clients_use_3_1_1(amqtt_broker):
    """amqtt 0.12 answers an MQTT 5 CONNECT with "unacceptable protocol version"."""
    with pytest.raises(aiomqtt.MqttError):
        async with client(amqtt_broker, protocol=aiomqtt.ProtocolVersion.V5):
            pass
    async with client(amqtt_broker, protocol=aiomqtt.ProtocolVersion.V311) as ok:
        await ok.publish("still/works", b"1", qos=1)


async def test_embedded_broker_keeps_amqtt_quiet_and_stops_cleanly(caplog):
    """No amqtt INFO chatter, and no warnings when clients are still connected at shutdown."""
    caplog.set_level(logging.INFO)
    async with EmbeddedBroker(port=None) as broker:
        will = aiomqtt.Will("gone", b"x", qos=1, retain=True)
        async with Subscriber(broker.url, "#") as sub:
            async with aiomqtt.Client("127.0.0.1", broker.port, will=will) as pub:
                await pub.publish("a/b", b"1", qos=1, retain=True)
                await sub.wait_for(1)
            stuck = aiomqtt.Client("127.0.0.1", broker.port, will=will)
            await stuck.__aenter__()
    with pytest.raises(aiomqtt.MqttError):
        await stuck.publish("after", b"shutdown", qos=1)
    await stuck.__aexit__(None, None, None)
    stuck._disconnected.exception()  # retrieved, so asyncio logs nothing at collection
    library = [r for r in caplog.records if r.name.split(".")[0] in ("amqtt", "transitions")]
    assert library == []


def _amqtt_tasks() -> list[asyncio.Task[object]]:
    """Tasks running amqtt's code (broker, client handlers, deliveries) or the EmbeddedBroker's."""
    found = []
    for task in asyncio.all_tasks():
        filename = getattr(getattr(task.get_coro(), "cr_code", None), "co_filename", "")
        if f"{os.sep}amqtt{os.sep}" in filename or filename == broker_module.__file__:
            found.append(task)
    return found


@pytest.mark.parametrize("qos", [1, 2])
async def test_embedded_broker_stops_at_once_with_qos_traffic_in_flight(caplog, qos):
    """Stopping with QoS 1/2 messages in flight both ways takes well under 1 s and drops every client at once.

    Pins the EmbeddedBroker fix. On Python 3.11 amqtt 0.12 alone loses the cancellation of a client
    handler's reader while packets keep arriving, then waits for that reader: the stop ran into
    EmbeddedBroker's timeout with every socket open, and clients noticed at their PUBACK timeout
    (10 s here) or keep-alive. Three publishers and three subscribers made that happen in most runs.
    """
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    broker = EmbeddedBroker(port=None)
    await broker.__aenter__()
    port = broker.port
    received: dict[str, int] = {}
    streaming = asyncio.Event()  # every subscriber has had 50 messages
    dropped: dict[str, float] = {}

    def connect(client_id: str) -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1", port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V311, timeout=10
        )

    async def publish_forever(client: aiomqtt.Client) -> None:
        i = 0
        with contextlib.suppress(aiomqtt.MqttError):  # "not currently connected", once the broker is gone
            while True:  # each publish returns after its PUBACK (QoS 1) or PUBCOMP (QoS 2)
                await client.publish(f"load/{client.identifier}", str(i).encode(), qos=qos)
                i += 1

    async def watch(client: aiomqtt.Client) -> None:
        # aiomqtt reports a dropped connection only to the reader of its messages.
        try:
            async for _ in client.messages:
                received[client.identifier] = received.get(client.identifier, 0) + 1
                if len(received) == 3 and min(received.values()) >= 50:
                    streaming.set()
        except aiomqtt.MqttError:
            dropped[client.identifier] = loop.time()

    try:
        async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as tasks:
            publishers = [await stack.enter_async_context(connect(f"pub-{i}")) for i in range(3)]
            subscribers = [await stack.enter_async_context(connect(f"sub-{i}")) for i in range(3)]
            for client in subscribers:
                await client.subscribe("load/#", qos=qos)
            running = [tasks.create_task(publish_forever(client)) for client in publishers]
            watchers = [tasks.create_task(watch(client)) for client in publishers + subscribers]
            async with asyncio.timeout(10):
                await streaming.wait()
            assert _amqtt_tasks(), "this test looks for amqtt's tasks in the wrong place"
            stop_at = loop.time()
            await broker.__aexit__(None, None, None)
            stop_s = loop.time() - stop_at
            await asyncio.wait(watchers, timeout=3)
            for task in running + watchers:
                task.cancel()  # a publish waits for an acknowledgement that will not come
    finally:
        await broker.__aexit__(None, None, None)
    assert stop_s < 1.0, f"the broker took {stop_s:.2f} s to stop"
    everyone = {client.identifier for client in publishers + subscribers}
    assert set(dropped) == everyone, f"still connected 3 s after the stop: {sorted(everyone - set(dropped))}"
    late = {name: round(at - stop_at, 2) for name, at in dropped.items() if at - stop_at > 1.0}
    assert late == {}, "clients saw the disconnect late (seconds after the stop began)"
    assert _amqtt_tasks() == []
    library = [r for r in caplog.records if r.name.split(".")[0] in ("amqtt", "transitions")]
    assert [r.getMessage() for r in library] == []
    # The port is free at once: a new broker takes it, without falling back.
    async with EmbeddedBroker(port=port, fallback_to_free_port=False) as again, connect("after") as client:
        assert again.port == port
        await client.publish("load/after", b"1", qos=qos)


# --- what the publisher relies on, on both brokers ---------------------------------------------------


async def test_retained_qos1_message_reaches_later_subscribers(mqtt_broker):
    async with client(mqtt_broker) as pub:
        await pub.publish("sensorhub/w/status", b"online", qos=1, retain=True)
        await pub.publish("sensorhub/w/angles", b"{}", qos=0)
    [status] = await subscribe_collect(mqtt_broker, "sensorhub/w/#")
    assert (status.topic, status.text, status.retain, status.qos) == ("sensorhub/w/status", "online", True, 1)

    async with client(mqtt_broker) as pub:
        await pub.publish("sensorhub/w/status", b"", qos=1, retain=True)  # an empty retained payload clears it
    assert await subscribe_collect(mqtt_broker, "sensorhub/w/#", quiet=0.2) == []


async def test_live_qos1_messages_arrive_once_in_order(mqtt_broker):
    async with Subscriber(mqtt_broker, "sensorhub/+/alerts") as sub, client(mqtt_broker) as pub:
        for i in range(20):
            await pub.publish("sensorhub/w/alerts", str(i).encode(), qos=1)
        await pub.publish("sensorhub/w/angles", b"not subscribed", qos=1)
        got = await sub.wait_for(20)
        await sub.settle(0.2)
    assert [m.text for m in sub.messages] == [str(i) for i in range(20)]
    assert {(m.qos, m.retain) for m in got} == {(1, False)}


async def test_retained_messages_go_only_to_matching_subscriptions(mqtt_broker):
    """Pins the EmbeddedBroker fix: amqtt 0.12 alone sends retained messages to clients that never subscribed."""
    async with Subscriber(mqtt_broker, "dev/#"), client(mqtt_broker) as pub:
        await pub.publish("dev/status", b"online", qos=1, retain=True)
        async with Subscriber(mqtt_broker, "other/#") as stranger, Subscriber(mqtt_broker, "dev/#") as late:
            await late.wait_for(1)
            await late.settle(0.3)
            assert stranger.messages == []
            assert [(m.topic, m.retain, m.qos) for m in late.messages] == [("dev/status", True, 1)]


async def test_will_is_published_and_retained_when_a_client_dies(mqtt_broker):
    async with Subscriber(mqtt_broker, "sensorhub/+/status") as sub:
        reader, writer = await asyncio.open_connection(mqtt_broker.host, mqtt_broker.port)
        writer.write(connect_with_will("victim", "sensorhub/w/status", b"offline"))
        await writer.drain()
        assert (await reader.readexactly(4)) == bytes([0x20, 2, 0, 0])  # CONNACK, accepted
        # What the kernel does to the socket of a killed process: close it without an MQTT DISCONNECT.
        writer.transport.abort()
        [will] = await sub.wait_for(1)
    assert (will.topic, will.text, will.qos) == ("sensorhub/w/status", "offline", 1)
    [retained] = await subscribe_collect(mqtt_broker, "sensorhub/#", count=1)
    assert (retained.topic, retained.text, retained.retain) == ("sensorhub/w/status", "offline", True)


async def test_no_will_after_a_clean_disconnect(mqtt_broker):
    will = aiomqtt.Will("sensorhub/w/status", b"offline", qos=1, retain=True)
    async with Subscriber(mqtt_broker, "sensorhub/#") as sub:
        async with client(mqtt_broker, will=will) as pub:
            await pub.publish("sensorhub/w/status", b"online", qos=1, retain=True)
        await sub.settle(0.3)
    assert [m.text for m in sub.messages] == ["online"]


async def test_broker_stop_and_start_on_the_same_port(mqtt_broker):
    port = mqtt_broker.port
    async with Subscriber(mqtt_broker, "#") as sub:
        await mqtt_broker.stop()
        with pytest.raises(AssertionError, match="lost its connection"):
            await sub.wait_for(1, timeout=3)
    with pytest.raises(aiomqtt.MqttError):
        async with client(mqtt_broker):
            pass
    await mqtt_broker.start()
    assert mqtt_broker.port == port
    async with Subscriber(mqtt_broker, "t") as sub, client(mqtt_broker) as pub:
        await pub.publish("t", b"back", qos=1)
        assert [m.text for m in await sub.wait_for(1)] == ["back"]
    await mqtt_broker.stop()
    await mqtt_broker.stop()  # idempotent; the fixture's teardown stops again


# --- the mosquitto fixture ----------------------------------------------------------------------------


async def test_mosquitto_speaks_mqtt5_on_its_plain_listener(mosquitto):
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    async with client(mosquitto, protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.publish("v5", b"1", qos=1, retain=True)
    [m] = await subscribe_collect(mosquitto.url, "v5", count=1)
    assert m.text == "1"


async def test_mosquitto_password_listener(mosquitto):
    async with client(mosquitto, port=mosquitto.auth_port, username=mosquitto.username, password=mosquitto.password):
        pass
    for credentials in ({"username": mosquitto.username, "password": "wrong"}, {}):
        with pytest.raises(aiomqtt.MqttCodeError) as err:
            async with client(mosquitto, port=mosquitto.auth_port, **credentials):
                pass
        # CONNACK 4 or 5 of MQTT 3.1.1, which paho reports as reason codes 134 and 135.
        assert str(err.value.rc) in ("Bad user name or password", "Not authorized")


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
async def test_mosquitto_tls_listener_with_the_ca(mosquitto, hostname):
    options = {"username": mosquitto.username, "password": mosquitto.password, "port": mosquitto.tls_port}
    async with (
        Subscriber(mosquitto, "tls", tls_context=mosquitto.ssl_context(), **options) as sub,
        aiomqtt.Client(hostname, tls_context=mosquitto.ssl_context(), timeout=5, **options) as pub,
    ):
        await pub.publish("tls", b"secret", qos=1)
        [m] = await sub.wait_for(1)
    assert m.text == "secret"


async def test_mosquitto_tls_listener_rejects_a_server_the_client_does_not_trust(mosquitto, tmp_path):
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(stranger)
    context = mosquitto.ssl_context(ca_file=stranger)
    with pytest.raises(aiomqtt.MqttError, match="CERTIFICATE_VERIFY_FAILED"):
        async with client(
            mosquitto,
            port=mosquitto.tls_port,
            tls_context=context,
            username=mosquitto.username,
            password=mosquitto.password,
        ):
            pass


async def test_mosquitto_mutual_tls_needs_the_client_certificate(mosquitto):
    async with client(mosquitto, port=mosquitto.mtls_port, tls_context=mosquitto.ssl_context(client_cert=True)) as c:
        await c.publish("mtls", b"1", qos=1)
    # Over TLS 1.3 the server rejects a missing certificate after the handshake, which aiomqtt
    # only reports as a timeout waiting for CONNACK; TLS 1.2 fails in the handshake itself.
    no_cert = mosquitto.ssl_context()
    no_cert.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(aiomqtt.MqttError, match="handshake failure"):
        async with client(mosquitto, port=mosquitto.mtls_port, tls_context=no_cert):
            pass


def test_mosquitto_handle_describes_every_listener(mosquitto):
    ports = [mosquitto.port, mosquitto.auth_port, mosquitto.tls_port, mosquitto.mtls_port]
    assert len(set(ports)) == 4
    for path in (mosquitto.ca_file, mosquitto.client_cert, mosquitto.client_key, mosquitto.log_file):
        assert path is not None
        assert path.is_file()
    assert mosquitto.kind == "mosquitto"
    assert mosquitto.username
    assert mosquitto.password
    assert isinstance(mosquitto.ssl_context(client_cert=True), ssl.SSLContext)


# --- `sensorhub broker` ----------------------------------------------------------------------------------


async def _start_cli(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    # Without asyncio debug mode, whose slow-callback warnings would land on stderr.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"} | {"PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sensorhub", "broker", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        line = (await proc.stdout.readline()).decode()
    return proc, line


async def _stop_cli(proc: asyncio.subprocess.Process, signum: int) -> tuple[int, str, str]:
    proc.send_signal(signum)
    async with asyncio.timeout(10):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_broker_serves_until_sigint():
    proc, line = await _start_cli("--port", "0")
    try:
        assert line.startswith("MQTT broker listening on mqtt://127.0.0.1:"), line
        url = line.split()[4]
        port = int(url.rsplit(":", 1)[1])
        async with Subscriber(url, "cli") as sub, aiomqtt.Client("127.0.0.1", port) as pub:
            await pub.publish("cli", b"hello", qos=1)
            await sub.wait_for(1)
    finally:
        code, out, err = await _stop_cli(proc, signal.SIGINT)
    assert (code, err) == (0, "")
    assert out.strip() == "MQTT broker stopped"


async def test_cli_broker_prints_the_fallback_port_and_stops_on_sigterm():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        proc, line = await _start_cli("--port", str(busy))
        code, _, err = await _stop_cli(proc, signal.SIGTERM)
    assert f"; port {busy} is in use" in line
    assert int(line.split()[4].rsplit(":", 1)[1].rstrip(";")) != busy
    assert code == 0
    assert f"port {busy} on 127.0.0.1 is in use" in err  # the warning log line


def test_cli_broker_refuses_a_public_host_in_one_line(capsys):
    assert main(["broker", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sensorhub: error: the embedded MQTT broker listens on IPv4 loopback only")
    assert err.count("\n") == 1


def test_cli_broker_rejects_a_bad_port(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["broker", "--port", "70000"])
    assert exit_.value.code == 2
    assert "not a TCP port" in capsys.readouterr().err
