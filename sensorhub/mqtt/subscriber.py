"""A reconnecting MQTT subscriber for dashboards: every message of some topic filters, and commands out.

The dashboard (``sensorhub/dashboard/``) reads all wearers' topics through this class and sends the
buttons' ``cmd/<name>`` commands with :meth:`MqttSubscriber.send_command`; like the publisher it is
an aiomqtt adapter, so the dashboard itself never imports aiomqtt.

Connection handling is the publisher's (:mod:`~sensorhub.mqtt.publisher`): the same two backoff
schedules (:data:`~sensorhub.mqtt.publisher.RECONNECT_BACKOFF` while the broker is away,
:data:`~sensorhub.mqtt.publisher.REFUSED_BACKOFF` while it refuses us), the same TLS rules (the
broker's certificate and host name are always verified), the password read from its file or
variable at every attempt and never logged, one log line per failure that says what to do, and the
publisher's helpers for opening and closing an aiomqtt client without leaking a socket.

It always speaks MQTT 3.1.1: a subscriber gains nothing from MQTT 5 here (message expiry is set by
the publisher and applied by the broker for every subscriber), and 3.1.1 works with every broker,
the embedded amqtt included, without the publisher's MQTT 5 probe. It has no will and publishes no
``status``: a dashboard is not a wearer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Final

import aiomqtt

from sensorhub.config import MqttConfig
from sensorhub.errors import ConfigError, SinkError
from sensorhub.mqtt.publisher import (
    OPERATION_TIMEOUT_S,
    RECONNECT_BACKOFF,
    REFUSED_BACKOFF,
    REPEAT_REMINDER_S,
    SHUTDOWN_TIMEOUT_S,
    STABLE_CONNECTION_S,
    _as_bytes,
    _close,
    _Credentials,
    _describe,
    _Failure,
    _host_port,
    _is_aiomqtt_timeout,
    _open,
    _publish,
    _reason_text,
    _reason_value,
    _root_cause,
    _SetupError,
    _tls_failure,
    _transport_failure,
)
from sensorhub.mqtt.topics import Topics

__all__ = ["CONNECT_TIMEOUT_S", "ConnectionHandler", "MessageHandler", "MqttSubscriber"]

log = logging.getLogger(__name__)
_client_log = logging.getLogger("sensorhub.mqtt.client")

#: Called with ``(topic, payload, retained)`` for every message, on the event loop; must not block.
MessageHandler = Callable[[str, bytes, bool], None]
#: Called with ``(connected, reason)`` when the connection comes up (reason None) or goes (why).
ConnectionHandler = Callable[[bool, str | None], None]

#: Time allowed for the CONNACK (a 3.1.1 broker answers at once; this bounds a silent one).
CONNECT_TIMEOUT_S: Final = 5.0
#: Incoming messages aiomqtt queues for the reader at most (it drops the newest beyond that).
INCOMING_QUEUE_MAX: Final = 1000

# CONNACK reason codes (MQTT 5.0 §3.2.2.2; paho maps the 3.1.1 return codes 1-5 onto them).
_RC_BAD_USERNAME_OR_PASSWORD: Final = 0x86
_RC_NOT_AUTHORIZED: Final = 0x87


class MqttSubscriber:
    """Subscribes to topic filters, stays connected until cancelled, and sends commands.

    Start :meth:`run` as a task; messages go to ``on_message`` as they arrive (retained ones right
    after each (re)connect, so the caller's state is complete again after an outage).

    Args:
        config: the broker connection (URL, client id, credentials, TLS files).
        topic_filters: what to subscribe to, at QoS 1.
        on_message: called for every message.
        on_connection: told when the connection comes up and goes away.
        rng: random generator of the reconnect jitter; a fresh unseeded one when None.
    """

    def __init__(
        self,
        config: MqttConfig,
        topic_filters: Sequence[str],
        *,
        on_message: MessageHandler,
        on_connection: ConnectionHandler | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not topic_filters:
            raise ValueError("need at least one topic filter")
        self._config = config
        self._filters = tuple(topic_filters)
        self._on_message = on_message
        self._on_connection = on_connection
        self._rng = rng if rng is not None else random.Random()
        self._where = f"MQTT broker {_host_port(config.host, config.port)}"
        self._client: aiomqtt.Client | None = None
        self._credentials = _Credentials(config)
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"MqttSubscriber({self._config.url!r}, filters={self._filters!r}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        """Connected and subscribed."""
        return self._client is not None

    @property
    def url(self) -> str:
        """The broker's URL."""
        return self._config.url

    async def send_command(self, wearer: str, name: str, payload: bytes) -> None:
        """Publish one command to ``sensorhub/<wearer>/cmd/<name>`` (QoS 1, not retained); returns after the PUBACK.

        Args:
            wearer: the sanitised wearer level of the topic.
            name: one of :data:`~sensorhub.mqtt.topics.COMMANDS`.
            payload: the JSON payload (validated by the caller).

        Raises:
            ValueError: an unknown command or a wearer level that is not sanitised.
            SinkError: not connected, or the broker did not acknowledge in time.
        """
        try:
            topic = Topics(wearer=wearer).cmd(name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        client = self._client
        if client is None:
            raise SinkError(f"not connected to the {self._where}: command cmd/{name} not sent")
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT_S):
                await _publish(client, topic, payload, qos=1, retain=False)
        except TimeoutError as exc:
            late = f"the {self._where} did not acknowledge cmd/{name} within {OPERATION_TIMEOUT_S:g} s"
            raise SinkError(late) from exc
        except aiomqtt.MqttError as exc:
            raise SinkError(f"cmd/{name} not sent to the {self._where}: {exc}") from exc
        log.info("sent %s (%d bytes)", topic, len(payload))

    async def run(self) -> None:
        """Stay connected and subscribed until cancelled; each failure is one log line, then a retry."""
        attempt = 0
        last_message: str | None = None
        failing_since = remind_at = 0.0
        while True:
            failure = await self._connect_and_read()
            now = time.monotonic()
            if failure.connected_s is not None:
                last_message = None
                if failure.connected_s >= STABLE_CONNECTION_S:
                    attempt = 0
            delay = failure.backoff.delay(attempt, self._rng)
            attempt += 1
            self.last_error = failure.message
            self._tell(False, failure.message)
            if failure.message != last_message:
                log.warning("%s; retrying in %.1f s", failure.message, delay)
                last_message, failing_since, remind_at = failure.message, now, now + REPEAT_REMINDER_S
            elif now >= remind_at:
                log.warning("%s (still, for %.0f s); retrying in %.1f s", failure.message, now - failing_since, delay)
                remind_at = now + REPEAT_REMINDER_S
            else:
                log.debug("%s; retrying in %.1f s", failure.message, delay)
            await asyncio.sleep(delay)

    def _tell(self, connected: bool, reason: str | None) -> None:
        if self._on_connection is not None:
            self._on_connection(connected, reason)

    async def _connect_and_read(self) -> _Failure:
        try:
            password, tls_context = await asyncio.to_thread(self._credentials)
        except _SetupError as exc:
            return _Failure(str(exc), REFUSED_BACKOFF)
        config = self._config
        client = aiomqtt.Client(
            config.host,
            config.port,
            username=config.username,
            password=password,
            logger=_client_log,
            identifier=config.client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            transport="websockets" if config.websocket_path is not None else "tcp",
            websocket_path=config.websocket_path,
            timeout=CONNECT_TIMEOUT_S,
            keepalive=config.keepalive_s,
            max_queued_incoming_messages=INCOMING_QUEUE_MAX,
            tls_context=tls_context,
        )
        try:
            await _open(client)
        except (aiomqtt.MqttError, OSError) as exc:
            return self._explain(exc, None)
        client.timeout = OPERATION_TIMEOUT_S
        connected_at = time.monotonic()
        try:
            await client.subscribe([(f, 1) for f in self._filters])  # QoS 1: alerts and state arrive once at least
            self._client = client
            self.last_error = None
            log.info("MQTT subscriber connected to %s (%s)", config.url, ", ".join(self._filters))
            self._tell(True, None)
            async for message in client.messages:  # raises MqttError when the connection breaks
                payload = message.payload if isinstance(message.payload, bytes) else _as_bytes(message.payload)
                self._on_message(message.topic.value, payload, message.retain)
            raise aiomqtt.MqttError("the broker's message stream ended")
        except (aiomqtt.MqttError, OSError) as exc:
            return self._explain(exc, connected_at)
        finally:
            self._client = None
            client.timeout = SHUTDOWN_TIMEOUT_S  # bounds the DISCONNECT, also on cancellation
            await _close(client)

    def _explain(self, exc: BaseException, connected_at: float | None) -> _Failure:
        """One line a person can act on, never the password."""
        where = self._where
        connected_s = None if connected_at is None else time.monotonic() - connected_at
        user = self._config.username
        if connected_at is None and isinstance(exc, aiomqtt.MqttCodeError):
            code = _reason_value(exc.rc)
            if code in (_RC_BAD_USERNAME_OR_PASSWORD, _RC_NOT_AUTHORIZED):
                if user is None:
                    return _Failure(
                        f"{where} does not accept anonymous clients (set mqtt.username and mqtt.password_file)",
                        REFUSED_BACKOFF,
                    )
                return _Failure(
                    f"{where} refused user {user!r} (a wrong password, or the user may not connect; "
                    "check mqtt.username and mqtt.password_file)",
                    REFUSED_BACKOFF,
                )
            return _Failure(f"{where} refused the connection: {_reason_text(exc.rc)}", REFUSED_BACKOFF)
        if connected_at is None and _is_aiomqtt_timeout(exc):
            return _Failure(
                f"{where} accepted the connection but sent no CONNACK within {CONNECT_TIMEOUT_S:g} s", RECONNECT_BACKOFF
            )
        cause = _root_cause(exc)
        if (tls := _tls_failure(cause, where)) is not None:
            return tls
        if connected_s is not None:
            reason = "the connection closed" if isinstance(cause, aiomqtt.MqttCodeError) else _describe(cause)
            return _Failure(f"MQTT connection to {self._config.url} lost: {reason}", RECONNECT_BACKOFF, connected_s)
        return _transport_failure(cause, where)
