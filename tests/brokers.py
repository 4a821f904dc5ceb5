"""Real MQTT brokers on loopback for the test suite, and a subscriber that records what arrives.

Fixtures (registered in ``conftest.py``):

- ``mosquitto``: a fresh mosquitto per test with four listeners on free 127.0.0.1 ports: plain
  anonymous (``port``), plain with a password (``auth_port``), TLS with a password (``tls_port``) and
  mutual TLS (``mtls_port``: a client certificate is required; its common name becomes the user
  name, no password needed). Certificates come from trustme (a CA, a server certificate for
  ``localhost`` and ``127.0.0.1``, a client certificate), the password file is written in
  mosquitto 2's PBKDF2-SHA512 format, and the broker's log is ``<tmp_path>/mosquitto/mosquitto.log``.
- ``amqtt_broker``: sensorhub's :class:`~sensorhub.mqtt.broker.EmbeddedBroker` on a free port
  (plain, anonymous, MQTT 3.1.1 only).
- ``mqtt_broker``: each test runs twice, once per broker (ids ``mosquitto`` and ``amqtt``).

Every handle can ``await stop()`` (mosquitto is SIGKILLed, like a broker that dies) and
``await start()`` again on the same ports, for outage tests. Use :class:`Subscriber` or
:func:`subscribe_collect` to assert on what a publisher sent; both speak MQTT 3.1.1, which both
brokers understand.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiomqtt
import pytest
import trustme

from sensorhub.mqtt.broker import EmbeddedBroker

__all__ = [
    "BrokerHandle",
    "Message",
    "Subscriber",
    "amqtt_broker",
    "find_mosquitto",
    "free_port",
    "free_ports",
    "mosquitto",
    "mosquitto_password_line",
    "mqtt_broker",
    "subscribe_collect",
]

HOST = "127.0.0.1"
USERNAME = "sensorhub-test"
CLIENT_CERT_CN = "sensorhub-test-client"
READY_TIMEOUT_S = 10.0
_MOSQUITTO_PLACES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: the sockets stay bound until all are chosen (the kernel may
    otherwise hand out the same port twice in a row)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def find_mosquitto() -> str:
    """Path of the mosquitto executable; fails the test (never skips) when it is not installed."""
    found = shutil.which("mosquitto") or next((p for p in _MOSQUITTO_PLACES if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail(
            "mosquitto is not installed (looked on PATH and in " + ", ".join(_MOSQUITTO_PLACES) + "); "
            "install the Debian package 'mosquitto' (.ci/run does)",
            pytrace=False,
        )
    return found


def mosquitto_password_line(username: str, password: str, *, iterations: int = 101) -> str:
    """A password-file line mosquitto 2 accepts: ``user:$7$ITERATIONS$SALT$HASH`` (PBKDF2-SHA512).

    This is the format ``mosquitto_passwd`` writes (mosquitto ``src/password_mosq.c``): a 12-byte
    salt and the 64-byte derived key, both base64 with padding.
    """
    salt = secrets.token_bytes(12)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"{username}:$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


class _Runner(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class BrokerHandle:
    """A broker a test can connect to, stop and start again.

    Attributes:
        kind: "mosquitto" or "amqtt".
        host: "127.0.0.1".
        port: plain listener, anonymous allowed.
        url: ``mqtt://127.0.0.1:{port}``.
        auth_port: plain listener that requires ``username``/``password`` (mosquitto only).
        tls_port: TLS listener (server certificate for "localhost" and 127.0.0.1, signed by
            ``ca_file``) that requires ``username``/``password`` (mosquitto only).
        ca_file: PEM of the CA that signed the server and client certificates (mosquitto only).
        client_cert: PEM client certificate signed by ``ca_file`` (mosquitto only).
        client_key: PEM private key of ``client_cert`` (mosquitto only).
        mtls_port: TLS listener that requires a client certificate signed by ``ca_file``; its
            common name is the user name, no password needed (mosquitto only).
        username: a user in the password file (mosquitto only).
        password: that user's password (mosquitto only).
        log_file: the broker's log (mosquitto only).
    """

    kind: str
    host: str
    port: int
    url: str
    auth_port: int | None = None
    tls_port: int | None = None
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    mtls_port: int | None = None
    username: str | None = None
    password: str | None = None
    log_file: Path | None = None
    _runner: _Runner = field(kw_only=True, repr=False, compare=False)

    async def stop(self) -> None:
        """Take the broker away: SIGKILL for mosquitto, an immediate shutdown for amqtt."""
        await self._runner.stop()

    async def start(self) -> None:
        """Start the broker again on the same ports; returns once it accepts connections."""
        await self._runner.start()

    def ssl_context(self, *, client_cert: bool = False, ca_file: Path | None = None) -> ssl.SSLContext:
        """A client SSL context that trusts ``ca_file`` (or the given CA), optionally with the client certificate."""
        ca = ca_file or self.ca_file
        if ca is None:
            raise ValueError(f"the {self.kind} broker has no TLS listener")
        context = ssl.create_default_context(cafile=str(ca))
        if client_cert:
            if self.client_cert is None or self.client_key is None:
                raise ValueError(f"the {self.kind} broker has no client certificate")
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


@dataclass(frozen=True)
class _TlsFiles:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_tls_files(directory: Path) -> _TlsFiles:
    ca = trustme.CA()
    server = ca.issue_cert("localhost", HOST)
    client = ca.issue_cert("client.sensorhub.test", common_name=CLIENT_CERT_CN)
    files = _TlsFiles(
        ca_file=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    ca.cert_pem.write_to_path(files.ca_file)
    server.cert_chain_pems[0].write_to_path(files.server_cert)
    server.private_key_pem.write_to_path(files.server_key)
    client.cert_chain_pems[0].write_to_path(files.client_cert)
    client.private_key_pem.write_to_path(files.client_key)
    return files


class _MosquittoRunner:
    """One mosquitto process with a fixed config; killed and started again on the same ports."""

    def __init__(self, executable: str, directory: Path, ports: dict[str, int]) -> None:
        self.executable = executable
        self.config = directory / "mosquitto.conf"
        self.log_file = directory / "mosquitto.log"
        self.ports = ports
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [self.executable, "-c", str(self.config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def _check_ready(self) -> bool:
        """True when every listener accepts TCP; fails the test when mosquitto has exited."""
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(
                f"mosquitto exited with code {self.process.returncode}; its log ({self.log_file}):\n"
                + self.log_file.read_text(errors="replace")[-4000:],
                pytrace=False,
            )
        for port in self.ports.values():
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
            except OSError:
                return False
        return True

    def _not_ready(self) -> None:
        self.kill_now()
        pytest.fail(
            f"mosquitto did not accept connections within {READY_TIMEOUT_S} s; its log ({self.log_file}):\n"
            + self.log_file.read_text(errors="replace")[-4000:],
            pytrace=False,
        )

    def start_sync(self) -> None:
        self.spawn()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._check_ready():
            if time.monotonic() > deadline:
                self._not_ready()
            time.sleep(0.01)

    async def start(self) -> None:
        await asyncio.to_thread(self.spawn)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not await asyncio.to_thread(self._check_ready):
            if time.monotonic() > deadline:
                self._not_ready()
            await asyncio.sleep(0.01)

    def kill_now(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=5)
        self.process = None

    async def stop(self) -> None:
        await asyncio.to_thread(self.kill_now)


def _mosquitto_config(directory: Path, ports: dict[str, int], tls: _TlsFiles, password_file: Path) -> str:
    certificates = f"cafile {tls.ca_file}\ncertfile {tls.server_cert}\nkeyfile {tls.server_key}\n"
    lines = [
        "# Written by tests/brokers.py for one test.",
        "per_listener_settings true",
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "log_type subscribe",
        "log_timestamp_format %H:%M:%S",
        # Run as root (CI containers), mosquitto would switch to the 'mosquitto' user, who cannot read tmp_path.
        *(["user root"] if os.geteuid() == 0 else []),
        "",
        f"listener {ports['plain']} {HOST}",
        "allow_anonymous true",
        "",
        f"listener {ports['auth']} {HOST}",
        "allow_anonymous false",
        f"password_file {password_file}",
        "",
        f"listener {ports['tls']} {HOST}",
        certificates + "require_certificate false",
        "allow_anonymous false",
        f"password_file {password_file}",
        "",
        f"listener {ports['mtls']} {HOST}",
        certificates + "require_certificate true",
        "use_identity_as_username true",
        "allow_anonymous false",
        "",
    ]
    return "\n".join(lines)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[BrokerHandle]:
    """A fresh mosquitto with plain, password, TLS and mutual-TLS listeners (see the module docstring)."""
    executable = find_mosquitto()
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    tls = _write_tls_files(directory)
    password = secrets.token_urlsafe(12)
    password_file = directory / "passwords"
    password_file.write_text(mosquitto_password_line(USERNAME, password) + "\n")
    password_file.chmod(0o600)
    ports = dict(zip(("plain", "auth", "tls", "mtls"), free_ports(4), strict=True))
    runner = _MosquittoRunner(executable, directory, ports)
    runner.config.write_text(_mosquitto_config(directory, ports, tls, password_file))
    runner.start_sync()
    try:
        yield BrokerHandle(
            kind="mosquitto",
            host=HOST,
            port=ports["plain"],
            url=f"mqtt://{HOST}:{ports['plain']}",
            auth_port=ports["auth"],
            tls_port=ports["tls"],
            ca_file=tls.ca_file,
            client_cert=tls.client_cert,
            client_key=tls.client_key,
            mtls_port=ports["mtls"],
            username=USERNAME,
            password=password,
            log_file=runner.log_file,
            _runner=runner,
        )
    finally:
        runner.kill_now()
        # Keep the log for debugging; pytest's tmp_path retention removes it later.
        for path in directory.iterdir():
            if path != runner.log_file:
                path.unlink()


class _AmqttRunner:
    """The embedded broker, stopped and started again on the port it got first."""

    def __init__(self) -> None:
        self.port: int | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    async def start(self) -> None:
        if self._stack is not None:
            return
        stack = contextlib.AsyncExitStack()
        broker = await stack.enter_async_context(EmbeddedBroker(HOST, self.port, fallback_to_free_port=False))
        self.port = broker.port
        self._stack = stack

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()


@pytest.fixture
async def amqtt_broker() -> AsyncIterator[BrokerHandle]:
    """sensorhub's embedded amqtt broker on a free port: plain, anonymous, MQTT 3.1.1."""
    runner = _AmqttRunner()
    await runner.start()
    assert runner.port is not None
    try:
        yield BrokerHandle(
            kind="amqtt", host=HOST, port=runner.port, url=f"mqtt://{HOST}:{runner.port}", _runner=runner
        )
    finally:
        await runner.stop()


@pytest.fixture(params=["mosquitto", "amqtt"])
def mqtt_broker(request: pytest.FixtureRequest) -> BrokerHandle:
    """Each broker in turn: the test runs once against mosquitto and once against amqtt."""
    handle: BrokerHandle = request.getfixturevalue("mosquitto" if request.param == "mosquitto" else "amqtt_broker")
    return handle


@dataclass(frozen=True, slots=True)
class Message:
    """One message as a subscriber received it."""

    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)

    @property
    def text(self) -> str:
        """The payload as UTF-8 text."""
        return self.payload.decode()


class Subscriber:
    """Subscribes on entry and records every message that arrives, in the background.

    Example::

        async with Subscriber(mqtt_broker, "sensorhub/#") as sub:
            ...  # make the code under test publish
            [status] = await sub.wait_for(1, topic="sensorhub/w/status")
        assert status.retain and status.text == "online"

    Args:
        target: a broker handle (its plain, anonymous listener unless ``port`` says otherwise) or
            an ``mqtt://host:port`` URL.
        topic_filters: what to subscribe to; "#" when none.
        qos: the subscription's maximum QoS.
        port: connect to this port of the handle's host instead (e.g. ``handle.tls_port``).
        username, password, tls_context: passed to aiomqtt.
        protocol: MQTT version (3.1.1 by default: amqtt speaks nothing newer).
    """

    def __init__(
        self,
        target: BrokerHandle | str,
        *topic_filters: str,
        qos: int = 1,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V311,
    ) -> None:
        if isinstance(target, BrokerHandle):
            host, default_port = target.host, target.port
        else:
            parts = urlsplit(target)
            if parts.scheme != "mqtt" or parts.hostname is None:
                raise ValueError(f"expected mqtt://host:port, got {target!r}")
            host, default_port = parts.hostname, parts.port or 1883
        self.topic_filters = topic_filters or ("#",)
        self.messages: list[Message] = []
        self.error: aiomqtt.MqttError | None = None
        self._qos = qos
        self._client = aiomqtt.Client(
            host,
            port or default_port,
            username=username,
            password=password,
            tls_context=tls_context,
            protocol=protocol,
            timeout=5,
        )
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        await self._client.__aenter__()
        for topic_filter in self.topic_filters:
            # aiomqtt returns after the SUBACK, so nothing published afterwards can be missed.
            await self._client.subscribe(topic_filter, qos=self._qos)
        self._task = asyncio.create_task(self._collect(), name="test-subscriber")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)
        # aiomqtt leaves an unexpected disconnection in a future nobody awaits; asyncio would log
        # "Future exception was never retrieved" when it is collected.
        disconnected = self._client._disconnected
        if disconnected.done() and not disconnected.cancelled():
            disconnected.exception()

    async def _collect(self) -> None:
        try:
            async for message in self._client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
                self.messages.append(Message(message.topic.value, payload, message.retain, message.qos))
                async with self._changed:
                    self._changed.notify_all()
        except aiomqtt.MqttError as exc:
            self.error = exc
            async with self._changed:
                self._changed.notify_all()

    def matching(self, topic: str | None = None) -> list[Message]:
        """Messages received so far, those whose topic matches ``topic`` (a filter) when given."""
        if topic is None:
            return list(self.messages)
        topic_filter = aiomqtt.Wildcard(topic)
        return [m for m in self.messages if aiomqtt.Topic(m.topic).matches(topic_filter)]

    async def wait_for(self, count: int = 1, *, topic: str | None = None, timeout: float = 5.0) -> list[Message]:
        """Wait until ``count`` messages (matching ``topic`` when given) have arrived; return all of them.

        Raises:
            AssertionError: they did not arrive within ``timeout`` seconds, or the connection broke.
        """
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.matching(topic)) >= count or self.error is not None)
        except TimeoutError:
            pass
        found = self.matching(topic)
        if len(found) < count:
            what = f" on {topic!r}" if topic else ""
            broken = f"; the subscriber lost its connection: {self.error}" if self.error else ""
            raise AssertionError(
                f"expected {count} message(s){what} within {timeout} s, got {len(found)}{broken}; "
                f"all received: {[(m.topic, m.payload[:80]) for m in self.messages]}"
            )
        return found

    async def settle(self, quiet: float = 0.3, *, timeout: float = 5.0) -> list[Message]:
        """Wait until no message has arrived for ``quiet`` seconds (at most ``timeout``); return all received."""
        deadline = asyncio.get_running_loop().time() + timeout
        seen = -1
        while seen != len(self.messages) and asyncio.get_running_loop().time() < deadline:
            seen = len(self.messages)
            await asyncio.sleep(quiet)
        return list(self.messages)


async def subscribe_collect(
    target: BrokerHandle | str,
    topic_filter: str,
    *,
    count: int | None = None,
    timeout: float = 5.0,
    quiet: float = 0.3,
    **client_options: Any,
) -> list[Message]:
    """Subscribe, collect, disconnect: ``count`` messages, or when None all that arrive until ``quiet`` s of silence.

    With ``count=None`` this reads what the broker holds, e.g. its retained messages. Extra
    keyword arguments go to :class:`Subscriber` (``port``, ``username``, ``tls_context`` ...).

    Raises:
        AssertionError: fewer than ``count`` messages arrived within ``timeout`` seconds.
    """
    async with Subscriber(target, topic_filter, **client_options) as sub:
        if count is None:
            return await sub.settle(quiet, timeout=timeout)
        return await sub.wait_for(count, timeout=timeout)
