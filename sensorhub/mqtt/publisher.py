"""The MQTT publisher: one connection to the broker, the topics of DESIGN §7, commands back.

This is the only module that imports aiomqtt (and paho, underneath it); every library error is
translated here into one log line a person can act on.

Producers (the service, on the event loop thread) call the sync ``publish_*`` methods, which never
block and never wait for the network. What happens to each kind of message:

==========================  ==========  ==========================================================
topic                       QoS/retain  path and overflow policy
==========================  ==========  ==========================================================
``status``                  1, yes      ``online`` on every connect; the will is ``offline``, and a
                                        clean stop publishes ``offline`` itself
``angles``                  0, no       decimated to ``publish_rate_hz`` on the sample clock; a
                                        deque of :data:`ANGLES_QUEUE_MAX`, oldest dropped (counted)
                                        when the link is slow; older than :data:`ANGLES_MAX_AGE_S`
                                        is dropped (counted) instead of sent; MQTT 5 message expiry
``posture``, ``session``,   1, yes      latest state per topic; re-sent after every reconnect, so a
``sensors/<placement>``                 broker restart without persistence loses nothing
``alerts``, ``exercise``    1, no       durable :class:`~sensorhub.mqtt.outbox.Outbox` first, then
                                        sent oldest first, one in flight, removed after PUBACK
``errors``                  1, no       a rejected command, published while connected
==========================  ==========  ==========================================================

Delivery of alerts is at-least-once: a message whose PUBACK was lost in an outage is sent again
after the reconnect, right before the messages that followed it. Each alert and exercise payload
carries a ``msg_id`` (a random UUID, the same on every resend), so a subscriber that drops ids it
has seen gets exactly the sequence that was published.

``aiomqtt.Client.publish`` with ``qos=1`` returns only after the PUBACK: it waits for the
``on_publish`` callback, which paho calls from ``_handle_pubackcomp("PUBACK")`` (aiomqtt 2.5.1
``client.py``, ``Client.publish`` and ``Client._on_publish``; paho-mqtt 2.2 documents
``on_publish`` as "for messages with QoS levels 1 and 2, this means that the appropriate
handshakes have completed"). That is what makes "removed from the outbox after the broker has it"
true.

Reconnects follow :mod:`~sensorhub.mqtt.backoff` (full jitter), with two schedules: the broker
being away (refused, reset, timed out, connection lost) retries within :data:`RECONNECT_BACKOFF`
(ceiling 1.5 s), so angles resume within 2 s of the broker's return even after a long outage;
the broker or TLS refusing *us* (password, certificate, authorisation, busy) is not fixed by
hammering and backs off to a minute (:data:`REFUSED_BACKOFF`). The attempt counter restarts after a
connection that stayed up :data:`STABLE_CONNECTION_S`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import re
import socket
import ssl
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiomqtt
from paho.mqtt.client import MQTT_LOG_ERR
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sensorhub.config import MqttConfig, MqttProtocol
from sensorhub.errors import ConfigError, SinkError
from sensorhub.model import JsonValue
from sensorhub.mqtt.backoff import Backoff
from sensorhub.mqtt.commands import Command, CommandError, parse_command
from sensorhub.mqtt.discovery import discovery_messages, ha_status_topic, removal_messages
from sensorhub.mqtt.outbox import Outbox
from sensorhub.mqtt.payloads import (
    STATUS_ONLINE,
    alert_payload,
    angles_payload,
    encode,
    error_payload,
    exercise_payload,
    posture_payload,
    sensor_payload,
    session_payload,
    status_payload,
)
from sensorhub.mqtt.topics import DELIVERY, Topics

__all__ = [
    "ANGLES_MAX_AGE_S",
    "ANGLES_QUEUE_MAX",
    "RECONNECT_BACKOFF",
    "REFUSED_BACKOFF",
    "STABLE_CONNECTION_S",
    "CommandHandler",
    "MqttPublisher",
    "PublisherStats",
]

log = logging.getLogger(__name__)
# paho's own debug log (packets in and out, never the password) and aiomqtt's warnings.
_client_log = logging.getLogger("sensorhub.mqtt.client")
# paho's error log line when a read fails (paho/mqtt/client.py, Client._packet_read).
_PAHO_RECEIVE_FAILED: Final = "failed to receive on socket: "


class _ReportedElsewhere(logging.Filter):
    """Demotes two library errors to DEBUG: the publisher's own failure line says it better.

    - aiomqtt's "Unexpected message ID" (with a KeyError traceback): a SUBACK or PUBACK arrived for a
      call that was cancelled because the connection was being torn down; an expected race.
    - paho's "failed to receive on socket: ...": the reason a connection closed (a TLS alert, a
      reset), which the publisher puts into its one line about the failure.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith(("Unexpected message ID", _PAHO_RECEIVE_FAILED)):
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            record.exc_info, record.exc_text = None, None
            return _client_log.isEnabledFor(logging.DEBUG)
        return True


_client_log.addFilter(_ReportedElsewhere())

#: A callback for valid commands; may be a coroutine function. It should return quickly: commands
#: are handled one after the other, by one task per connection.
CommandHandler = Callable[[Command], Awaitable[None] | None]

#: Angle messages waiting for the link, at most (5 s at the default 10 Hz).
ANGLES_QUEUE_MAX: Final = 50
#: Angle messages older than this are dropped rather than sent; also their MQTT 5 message expiry.
ANGLES_MAX_AGE_S: Final = 5
#: Backoff while the broker is away: ceiling 0.5 s, 1 s, then 1.5 s for every later attempt.
RECONNECT_BACKOFF: Final = Backoff(base_s=0.5, cap_s=1.5)
#: Backoff while the broker or TLS refuses us: 2, 4, 8 … up to 60 s.
REFUSED_BACKOFF: Final = Backoff(base_s=2.0, cap_s=60.0)
#: A connection that lasted this long restarts the backoff from the first attempt.
STABLE_CONNECTION_S: Final = 10.0
#: Time allowed for the CONNACK. A broker that does not understand an MQTT 5 CONNECT may neither
#: answer nor close (amqtt 0.12 waits for bytes that never come), so this also bounds the MQTT 5 probe.
CONNACK_TIMEOUT_S: Final = 3.0
#: Time allowed for SUBACK and PUBACK before the connection counts as broken.
OPERATION_TIMEOUT_S: Final = 10.0
#: Time allowed for publishing ``offline`` and disconnecting on a clean stop.
SHUTDOWN_TIMEOUT_S: Final = 2.0
#: Incoming messages (commands, HA status) waiting to be handled, at most; aiomqtt drops the newest.
INCOMING_QUEUE_MAX: Final = 100
#: A failure that repeats is logged at DEBUG, with a WARNING reminder this often.
REPEAT_REMINDER_S: Final = 60.0

# CONNACK reason codes (MQTT 5.0 §3.2.2.2; paho maps the 3.1.1 return codes 1-5 onto them).
_RC_UNSPECIFIED: Final = 0x80
_RC_UNSUPPORTED_PROTOCOL: Final = 0x84
_RC_CLIENT_ID_NOT_VALID: Final = 0x85
_RC_BAD_USERNAME_OR_PASSWORD: Final = 0x86
_RC_NOT_AUTHORIZED: Final = 0x87


@dataclass(frozen=True, slots=True, kw_only=True)
class PublisherStats:
    """A snapshot of the publisher's counters.

    Attributes:
        connected: connected to the broker, with `online`, the subscriptions and discovery done.
        protocol: MQTT version of the current or last connection; None before the first.
        reconnects: successful connections after the first one.
        angles_sent: angle messages handed to the socket.
        angles_dropped: angle messages dropped: queue full (slow link) or too old to send.
        outbox_depth: alerts and exercise events waiting for the broker.
        outbox_overflow_dropped: outbox messages dropped because it was full (over the file's life).
        alerts_sent: outbox messages the broker has acknowledged during this run.
        commands_received: valid commands handed to the callback.
        commands_rejected: commands answered on the ``errors`` topic.
        last_error: the last connection failure, as logged (kept after a reconnect); None if none yet.
    """

    connected: bool
    protocol: MqttProtocol | None
    reconnects: int
    angles_sent: int
    angles_dropped: int
    outbox_depth: int
    outbox_overflow_dropped: int
    alerts_sent: int
    commands_received: int
    commands_rejected: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why a connection attempt or a connection ended, and how to wait before the next one."""

    message: str
    backoff: Backoff
    connected_s: float | None = None  # how long the connection was up; None = never connected
    retry_now: bool = False


class _SetupError(Exception):
    """Credentials or TLS files that cannot be loaded (before any network traffic)."""


class MqttPublisher:
    """Publishes one wearer's topics to an MQTT broker and receives its commands.

    Create it, start :meth:`run` as a task of the service's TaskGroup, and call the ``publish_*``
    methods from the event loop. Cancelling :meth:`run` publishes ``offline`` and disconnects.

    Args:
        config: the ``[mqtt]`` section.
        wearer_id: the configured wearer id (sanitised into the topic level here).
        outbox: durable store for alerts and exercise events; the caller opens and closes it.
        placements: placements of the configured sensors (``sensors/<placement>`` topics, discovery).
        sw_version: sensorhub version for Home Assistant's device page.
        on_command: called with every valid command; exceptions are logged and reported on the
            ``errors`` topic, never raised.
        clock: epoch-seconds clock for message times.
        rng: random generator of the reconnect jitter; a fresh unseeded one when None.

    Raises:
        ConfigError: the wearer id sanitises to nothing.
        ValueError: a malformed placement, discovery prefix or sw_version.
    """

    def __init__(
        self,
        config: MqttConfig,
        wearer_id: str,
        *,
        outbox: Outbox,
        placements: Sequence[str],
        sw_version: str,
        on_command: CommandHandler | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._topics = Topics.for_wearer(wearer_id)
        self._outbox = outbox
        self._placements = tuple(placements)
        self._on_command = on_command
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._where = f"MQTT broker {_host_port(config.host, config.port)}"
        self._ha_status = ha_status_topic(config.discovery_prefix)
        discovery_args = {"prefix": config.discovery_prefix, "sw_version": sw_version}
        self._discovery = discovery_messages(
            self._topics, self._placements, **discovery_args, publish_rate_hz=config.publish_rate_hz
        )
        self._removal = removal_messages(
            self._topics, self._placements, **discovery_args, publish_rate_hz=config.publish_rate_hz
        )
        self._discovery_wanted = config.discovery
        self._discovery_lock = asyncio.Lock()

        self._protocol = config.protocol  # falls back to 3.1.1 for the rest of the run if refused
        self._client: aiomqtt.Client | None = None
        self._connected_event = asyncio.Event()
        self._active_protocol: MqttProtocol | None = None
        self._v5_confirmed = False  # a CONNACK timeout no longer means "no MQTT 5" once v5 worked
        self._ever_connected = False
        self._credentials = _Credentials(config)

        self._angles: deque[tuple[float, bytes]] = deque(maxlen=ANGLES_QUEUE_MAX)
        self._angles_ready = asyncio.Event()
        self._angle_origin: float | None = None  # t of the first sample (of the current session)
        self._angle_last_t = -math.inf  # newest t offered
        self._angle_slot: int | None = None
        self._angles_expiry = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho leaves it untyped
        self._angles_expiry.MessageExpiryInterval = ANGLES_MAX_AGE_S

        self._state: dict[str, bytes] = {}  # topic → latest retained payload
        self._state_dirty: dict[str, None] = {}  # ordered set of topics to (re)send
        self._state_ready = asyncio.Event()
        self._outbox_ready = asyncio.Event()

        self._reconnects = 0
        self._angles_sent = 0
        self._angles_dropped = 0
        self._alerts_sent = 0
        self._commands_received = 0
        self._commands_rejected = 0
        self._last_error: str | None = None

    def __repr__(self) -> str:
        return (
            f"MqttPublisher({self._config.url!r}, wearer={self._topics.wearer!r}, connected={self._client is not None})"
        )

    @property
    def topics(self) -> Topics:
        """The wearer's topics."""
        return self._topics

    @property
    def stats(self) -> PublisherStats:
        """Counters and connection state, now."""
        return PublisherStats(
            connected=self._client is not None,
            protocol=self._active_protocol,
            reconnects=self._reconnects,
            angles_sent=self._angles_sent,
            angles_dropped=self._angles_dropped,
            outbox_depth=len(self._outbox),
            outbox_overflow_dropped=self._outbox.overflow_dropped,
            alerts_sent=self._alerts_sent,
            commands_received=self._commands_received,
            commands_rejected=self._commands_rejected,
            last_error=self._last_error,
        )

    # -----------------------------------------------------------------------------------------
    # Producers: sync, non-blocking, event-loop thread only.

    def publish_angles(self, t: float, angles: Mapping[str, float | None], posture: str) -> None:
        """Offer one angle sample; the first sample of every ``1 / publish_rate_hz`` slot of ``t`` is sent.

        Decimating on the sample clock (not on arrival) keeps the published series evenly spaced
        and adds no delay: the sample sent is the newest one at the moment it is sent. A jump of
        ``t`` more than a second backwards (a new session) restarts the slots.

        Raises:
            ValueError: a non-finite ``t``, an unknown angle key or posture.
        """
        if not math.isfinite(t):
            raise ValueError(f"t must be finite, got {t!r}")
        rate_hz = self._config.publish_rate_hz
        origin = self._angle_origin
        if origin is None or t < self._angle_last_t - 1.0:
            origin = self._angle_origin = self._angle_last_t = t
            self._angle_slot = None
        else:
            self._angle_last_t = max(self._angle_last_t, t)
        # Slots count from the first sample, not from the epoch: at 1.7e9 s a float resolves only
        # ~0.2 µs, too coarse for the epsilon that keeps a sample stamped exactly on a slot
        # boundary (0.1 * 10 = 0.9999…) in that slot.
        slot = math.floor((t - origin) * rate_hz + 1e-6)
        last = self._angle_slot
        if last is not None and slot <= last:
            return
        payload = encode(angles_payload(t, angles, posture))
        self._angle_slot = slot
        if len(self._angles) == ANGLES_QUEUE_MAX:
            self._angles_dropped += 1  # the deque drops its oldest entry on append
        self._angles.append((time.monotonic(), payload))
        self._angles_ready.set()

    def publish_posture(self, t: float, posture: str, since: float) -> None:
        """Set the retained ``posture`` state (sent now, and again after every reconnect)."""
        self._set_state(self._topics.posture, encode(posture_payload(t, posture, since)))

    def publish_sensor(
        self,
        placement: str,
        *,
        t: float,
        connected: bool,
        battery_pct: float | None,
        rssi: int | None,
        rate_hz: float | None,
        dropped: int,
    ) -> None:
        """Set the retained ``sensors/<placement>`` state of a configured sensor.

        Raises:
            ValueError: ``placement`` is not one of the configured placements, or a bad value.
        """
        if placement not in self._placements:
            raise ValueError(f"placement {placement!r} is not configured; configured: {', '.join(self._placements)}")
        payload = sensor_payload(
            t, connected=connected, battery_pct=battery_pct, rssi=rssi, rate_hz=rate_hz, dropped=dropped
        )
        self._set_state(self._topics.sensor(placement), encode(payload))

    def publish_session(self, session_id: str, started: float, stats: Mapping[str, JsonValue]) -> None:
        """Set the retained ``session`` state."""
        self._set_state(self._topics.session, encode(session_payload(session_id, started, stats)))

    def publish_alert(self, t: float, type: str, state: str, duration_s: float | None, **extra: JsonValue) -> str:
        """Store an alert durably in the outbox; it is sent when the broker is reachable.

        Returns:
            The message's ``msg_id`` (``extra["msg_id"]`` when given, else a new UUID).

        Raises:
            ValueError: a payload the contract cannot carry (see :func:`~sensorhub.mqtt.payloads.alert_payload`).
            SinkError: the outbox cannot be written.
        """
        payload = alert_payload(t, type, state, duration_s, **extra)
        return self._put_durable(self._topics.alerts, "alerts", payload)

    def publish_exercise(self, t: float, event: Mapping[str, JsonValue]) -> str:
        """Store an exercise rep or set event durably in the outbox; returns its ``msg_id``.

        Raises:
            ValueError: a payload the contract cannot carry.
            SinkError: the outbox cannot be written.
        """
        return self._put_durable(self._topics.exercise, "exercise", exercise_payload(t, event))

    def _set_state(self, topic: str, payload: bytes) -> None:
        self._state[topic] = payload
        self._state_dirty[topic] = None
        self._state_ready.set()

    def _put_durable(self, topic: str, kind: str, payload: dict[str, JsonValue]) -> str:
        msg_id = payload.setdefault("msg_id", uuid.uuid4().hex)
        if not isinstance(msg_id, str) or not msg_id:
            raise ValueError(f"msg_id must be a non-empty string, got {msg_id!r}")
        delivery = DELIVERY[kind]
        self._outbox.put(topic, encode(payload), delivery.qos, delivery.retain)
        self._outbox_ready.set()
        return msg_id

    # -----------------------------------------------------------------------------------------
    # Home Assistant discovery removal.

    async def remove_discovery(self, *, timeout_s: float = OPERATION_TIMEOUT_S) -> None:
        """Remove the wearer's Home Assistant entities (empty retained configs); stop announcing them.

        Waits up to ``timeout_s`` for the connection when :meth:`run` is still connecting.

        Raises:
            SinkError: not connected within ``timeout_s``, or the connection broke meanwhile.
        """
        self._discovery_wanted = False
        try:
            async with asyncio.timeout(timeout_s):
                while self._client is None:
                    await self._connected_event.wait()
                client = self._client
                async with self._discovery_lock:
                    for topic, payload in self._removal:
                        await client.publish(topic, payload, qos=DELIVERY["discovery"].qos, retain=True)
        except TimeoutError as exc:
            raise SinkError(
                f"Home Assistant discovery not removed: no connection to the {self._where} within {timeout_s:g} s"
            ) from exc
        except aiomqtt.MqttError as exc:
            raise SinkError(f"Home Assistant discovery not removed: {self._where}: {exc}") from exc
        log.info("removed the Home Assistant discovery of wearer %r", self._topics.wearer)

    # -----------------------------------------------------------------------------------------
    # The connection loop.

    async def run(self) -> None:
        """Stay connected until cancelled: reconnect with backoff, log each failure once, clearly.

        On cancellation, publishes ``offline`` (within :data:`SHUTDOWN_TIMEOUT_S`), disconnects and
        re-raises. Errors that are not about the broker, the network or the configuration (bugs)
        propagate.
        """
        attempt = 0
        last_message: str | None = None
        failing_since = 0.0
        remind_at = 0.0
        while True:
            failure = await self._connect_and_serve()
            if failure.retry_now:
                continue
            now = time.monotonic()
            if failure.connected_s is not None:
                last_message = None  # a later failure of the same kind is news again
                if failure.connected_s >= STABLE_CONNECTION_S:
                    attempt = 0
            delay = failure.backoff.delay(attempt, self._rng)
            attempt += 1
            self._last_error = failure.message
            if failure.message != last_message:
                log.warning("%s; retrying in %.1f s", failure.message, delay)
                last_message, failing_since, remind_at = failure.message, now, now + REPEAT_REMINDER_S
            elif now >= remind_at:
                log.warning(
                    "%s (still, for %.0f s); retrying in %.1f s, then at most every %g s",
                    failure.message,
                    now - failing_since,
                    delay,
                    failure.backoff.cap_s,
                )
                remind_at = now + REPEAT_REMINDER_S
            else:
                log.debug("%s; retrying in %.1f s", failure.message, delay)
            await asyncio.sleep(delay)

    async def _connect_and_serve(self) -> _Failure:
        """One connection attempt and, when it succeeds, the connection's life; returns why it ended."""
        protocol = self._protocol
        try:
            password, tls_context = await asyncio.to_thread(self._credentials)
        except _SetupError as exc:
            return _Failure(str(exc), REFUSED_BACKOFF)
        client = self._new_client(protocol, password, tls_context)
        socket_errors = _capture_socket_errors(client)
        try:
            await _open(client)
        except (aiomqtt.MqttError, OSError) as exc:
            return self._explain(exc, protocol, None, socket_errors)
        client.timeout = OPERATION_TIMEOUT_S
        connected_at = time.monotonic()
        self._on_connected(client, protocol)
        try:
            await self._serve(client)
        except asyncio.CancelledError:
            await self._say_offline(client)
            raise
        except BaseExceptionGroup as group:
            error = _first_expected(group)
            if error is None:
                raise
            failure = self._explain(error, protocol, connected_at, socket_errors)
        except (aiomqtt.MqttError, OSError, SinkError) as exc:
            failure = self._explain(exc, protocol, connected_at, socket_errors)
        finally:
            self._on_disconnected()
            await _close(client)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Cancelled while a connection error was being raised: the TaskGroup reported the error
            # and kept the cancellation pending; honour it.
            raise asyncio.CancelledError
        return failure

    def _password_source(self) -> str:
        if self._config.password_file is not None:
            return "mqtt.password_file"
        if self._config.password_env is not None:
            return "mqtt.password_env"
        return "the password: none is configured, set mqtt.password_file or mqtt.password_env"

    def _new_client(
        self, protocol: MqttProtocol, password: str | None, tls_context: ssl.SSLContext | None
    ) -> aiomqtt.Client:
        config = self._config
        v5 = protocol is MqttProtocol.V5
        status = DELIVERY["status"]
        will = aiomqtt.Will(self._topics.status, status_payload(False), status.qos, status.retain)
        # Clean sessions: what must survive an outage is in the outbox and the state dict, and a
        # persistent session would replay stale commands (a snooze from an hour ago). paho's
        # defaults give them, as every attempt uses a new client: clean_session=True for 3.1.1, and
        # MQTT 5 clean start on a client's first connection.
        return aiomqtt.Client(
            config.host,
            config.port,
            username=config.username,
            password=password,
            logger=_client_log,
            identifier=config.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=will,
            transport="websockets" if config.websocket_path is not None else "tcp",
            websocket_path=config.websocket_path,
            timeout=CONNACK_TIMEOUT_S,  # raised to OPERATION_TIMEOUT_S once connected
            keepalive=config.keepalive_s,
            max_queued_incoming_messages=INCOMING_QUEUE_MAX,
            tls_context=tls_context,
        )

    def _on_connected(self, client: aiomqtt.Client, protocol: MqttProtocol) -> None:
        if self._ever_connected:
            self._reconnects += 1
            log.info("MQTT reconnected to %s (MQTT %s)", self._config.url, protocol.value)
        else:
            log.info("MQTT connected to %s as %r (MQTT %s)", self._config.url, self._config.client_id, protocol.value)
        self._ever_connected = True
        self._active_protocol = protocol
        self._v5_confirmed = self._v5_confirmed or protocol is MqttProtocol.V5
        # Re-send every retained state: the broker may have restarted without persistence.
        self._state_dirty = dict.fromkeys(self._state)
        for ready in (self._state_ready, self._angles_ready, self._outbox_ready):
            ready.set()

    def _on_disconnected(self) -> None:
        self._client = None
        self._connected_event.clear()

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Run one connection until it breaks: announce, subscribe, send, receive.

        The TaskGroup's body does nothing but read ``client.messages``, the one place aiomqtt
        reports a broken connection (its ``publish`` waits for a PUBACK until its timeout even when
        the socket is gone). So every send, the announcement included, runs in a task that the
        body's MqttError cancels at once. Reading in the body rather than in a task also steps
        around Python 3.11's TaskGroup, which does not uncancel its parent when a task fails after
        the body has finished; that stray cancellation count would read as a shutdown request.
        """
        incoming: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(maxsize=INCOMING_QUEUE_MAX)
        announced = asyncio.Event()  # senders wait for "online", the subscriptions and discovery
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._announce(client, announced), name="mqtt-announce")
            tasks.create_task(self._send_outbox(client, announced), name="mqtt-outbox")
            tasks.create_task(self._send_state(client, announced), name="mqtt-state")
            tasks.create_task(self._send_angles(client, announced), name="mqtt-angles")
            tasks.create_task(self._handle_incoming(client, incoming), name="mqtt-commands")
            async for message in client.messages:  # raises MqttError when the connection breaks
                try:
                    incoming.put_nowait(message)
                except asyncio.QueueFull:
                    log.warning(
                        "MQTT: %d incoming messages wait already; dropped one on %s", incoming.qsize(), message.topic
                    )
            raise aiomqtt.MqttError("the broker's message stream ended")

    async def _announce(self, client: aiomqtt.Client, announced: asyncio.Event) -> None:
        status = DELIVERY["status"]
        await _publish(client, self._topics.status, status_payload(True), qos=status.qos, retain=status.retain)
        filters = [(self._topics.cmd_filter, 1)]
        if self._config.discovery:
            filters.append((self._ha_status, 1))
        await client.subscribe(filters)
        await self._publish_discovery(client)
        # Ready: "connected" in stats, and remove_discovery() may use the connection.
        self._client = client
        self._connected_event.set()
        announced.set()

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """On a clean stop: retained ``offline`` (a clean DISCONNECT discards the will)."""
        client.timeout = SHUTDOWN_TIMEOUT_S  # also bounds the DISCONNECT handshake that follows
        status = DELIVERY["status"]
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                await client.publish(self._topics.status, status_payload(False), qos=status.qos, retain=status.retain)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("MQTT: could not publish 'offline' to the %s on shutdown: %s", self._where, exc)

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        delivery = DELIVERY["discovery"]
        async with self._discovery_lock:  # never interleaved with remove_discovery()
            if not self._discovery_wanted:
                return
            for topic, payload in self._discovery:
                await _publish(client, topic, payload, qos=delivery.qos, retain=delivery.retain)
        log.debug("published %d Home Assistant discovery messages", len(self._discovery))

    # -----------------------------------------------------------------------------------------
    # The tasks of one connection. Each ends only by an exception (the connection broke, or cancel).

    async def _send_angles(self, client: aiomqtt.Client, announced: asyncio.Event) -> None:
        await announced.wait()
        properties = self._angles_expiry if self._active_protocol is MqttProtocol.V5 else None
        topic = self._topics.angles
        qos = DELIVERY["angles"].qos
        while True:
            await self._angles_ready.wait()
            while self._angles:
                queued_at, payload = self._angles.popleft()
                if time.monotonic() - queued_at > ANGLES_MAX_AGE_S:
                    self._angles_dropped += 1
                    continue
                await _publish(client, topic, payload, qos=qos, properties=properties)
                self._angles_sent += 1
            self._angles_ready.clear()

    async def _send_state(self, client: aiomqtt.Client, announced: asyncio.Event) -> None:
        await announced.wait()
        while True:
            await self._state_ready.wait()
            while self._state_dirty:
                topic = next(iter(self._state_dirty))
                payload = self._state[topic]
                await _publish(client, topic, payload, qos=1, retain=True)
                if self._state.get(topic) is payload:  # unchanged while in flight: done
                    self._state_dirty.pop(topic, None)
            self._state_ready.clear()

    async def _send_outbox(self, client: aiomqtt.Client, announced: asyncio.Event) -> None:
        await announced.wait()
        outbox = self._outbox
        while True:
            # Clear before looking: a put between the peek and the wait sets it again.
            self._outbox_ready.clear()
            head = outbox.peek(1)
            if not head:
                await self._outbox_ready.wait()
                continue
            message = head[0]
            await _publish(client, message.topic, message.payload, qos=message.qos, retain=message.retain)
            outbox.ack(message.id)
            self._alerts_sent += 1

    async def _handle_incoming(self, client: aiomqtt.Client, incoming: asyncio.Queue[aiomqtt.Message]) -> None:
        while True:
            message = await incoming.get()
            payload = message.payload if isinstance(message.payload, bytes) else _as_bytes(message.payload)
            await self._handle(client, message.topic.value, payload, retained=message.retain)

    async def _handle(self, client: aiomqtt.Client, topic: str, payload: bytes, *, retained: bool) -> None:
        """One incoming message; bad input is answered on ``errors``, never raised."""
        if topic == self._ha_status:
            # A retained "online" arrives right after subscribing, when discovery was just published.
            if payload.strip() == STATUS_ONLINE.encode() and not retained and self._discovery_wanted:
                log.info("Home Assistant is online: republishing discovery")
                await self._publish_discovery(client)
            return
        name = self._topics.command_name(topic)
        if name is None:
            return
        source = f"cmd/{name}"
        if retained:
            reason = f"{source}: a retained command is ignored (publish commands with retain=false)"
            await self._reject(client, source, reason, payload)
            return
        try:
            command = parse_command(name, payload)
        except CommandError as exc:
            await self._reject(client, source, str(exc), payload)
            return
        self._commands_received += 1
        log.info("MQTT command %s: %r", source, command)
        if self._on_command is None:
            return
        try:
            result = self._on_command(command)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            log.error("MQTT command %s failed in its handler", source, exc_info=True)
            await self._reject(client, source, f"{source} failed: {type(exc).__name__}: {exc}", payload)

    async def _reject(self, client: aiomqtt.Client, source: str, message: str, payload: bytes) -> None:
        """Answer a command on ``errors``; ``message`` is the whole line, naming the command."""
        self._commands_rejected += 1
        log.warning("MQTT command rejected: %s", message)
        body = encode(error_payload(self._clock(), source=source, message=message, payload=payload))
        delivery = DELIVERY["errors"]
        await _publish(client, self._topics.errors, body, qos=delivery.qos, retain=delivery.retain)

    # -----------------------------------------------------------------------------------------
    # Error translation: one line a person can act on, never the password.

    def _explain(
        self, exc: BaseException, protocol: MqttProtocol, connected_at: float | None, socket_errors: Sequence[str]
    ) -> _Failure:
        connected_s = None if connected_at is None else time.monotonic() - connected_at
        where = self._where
        socket_error = _socket_error_text(socket_errors[-1]) if socket_errors else None
        if isinstance(exc, SinkError):
            return _Failure(f"MQTT: {exc}", REFUSED_BACKOFF, connected_s)
        if connected_at is None and _is_aiomqtt_timeout(exc) and socket_error is not None:
            # The broker hung up before its CONNACK (aiomqtt then waits for its timeout); paho's
            # log holds the reason, e.g. a TLS alert when mutual TLS wants a client certificate.
            backoff = REFUSED_BACKOFF if "SSL" in socket_errors[-1] else RECONNECT_BACKOFF
            return _Failure(f"{where} closed the connection before its CONNACK: {socket_error}", backoff)
        if connected_at is None and _is_aiomqtt_timeout(exc):
            if protocol is MqttProtocol.V5 and not self._v5_confirmed:
                self._protocol = MqttProtocol.V311
                log.info(
                    "%s sent no CONNACK to an MQTT 5 CONNECT within %g s; "
                    "using MQTT 3.1.1 for this run (angles without message expiry)",
                    where,
                    CONNACK_TIMEOUT_S,
                )
                return _Failure(f"{where} did not answer MQTT 5", RECONNECT_BACKOFF, retry_now=True)
            return _Failure(
                f"{where} accepted the connection but sent no CONNACK within {CONNACK_TIMEOUT_S:g} s", RECONNECT_BACKOFF
            )
        if connected_at is None and isinstance(exc, aiomqtt.MqttCodeError):
            code = _reason_value(exc.rc)
            if code == _RC_UNSUPPORTED_PROTOCOL and protocol is MqttProtocol.V5:
                self._protocol = MqttProtocol.V311
                log.info(
                    "%s does not support MQTT 5; using MQTT 3.1.1 for this run (angles without message expiry)", where
                )
                return _Failure(f"{where} refused MQTT 5", RECONNECT_BACKOFF, retry_now=True)
            user = self._config.username
            source = self._password_source()
            if code in (_RC_BAD_USERNAME_OR_PASSWORD, _RC_NOT_AUTHORIZED) and user is None:
                return _Failure(
                    f"{where} does not accept anonymous clients (set mqtt.username and mqtt.password_file)",
                    REFUSED_BACKOFF,
                )
            if code == _RC_BAD_USERNAME_OR_PASSWORD:
                return _Failure(f"{where} refused the password for user {user!r} (check {source})", REFUSED_BACKOFF)
            if code == _RC_NOT_AUTHORIZED:
                # mosquitto 2 answers a wrong password with "not authorised" too.
                return _Failure(
                    f"{where} refused user {user!r}: not authorised (a wrong password, or the user may not "
                    f"connect; check mqtt.username and {source})",
                    REFUSED_BACKOFF,
                )
            if code == _RC_CLIENT_ID_NOT_VALID:
                return _Failure(
                    f"{where} rejected the client id {self._config.client_id!r} (set mqtt.client_id)", REFUSED_BACKOFF
                )
            return _Failure(f"{where} refused the connection: {_reason_text(exc.rc)}", REFUSED_BACKOFF)
        cause = _root_cause(exc)
        if (tls := _tls_failure(cause, where)) is not None:
            return tls
        if connected_s is not None:
            if isinstance(cause, aiomqtt.MqttCodeError) and _reason_value(cause.rc) == _RC_UNSPECIFIED:
                # paho reports a socket that closed (broker gone, network down) as "Unspecified error".
                reason = socket_error or "the connection closed"
            elif _is_aiomqtt_timeout(exc):
                reason = f"the broker did not acknowledge within {OPERATION_TIMEOUT_S:g} s"
            else:
                reason = _describe(cause)
            lost = f"MQTT connection to {self._config.url} lost: {reason}"
            return _Failure(lost, RECONNECT_BACKOFF, connected_s)
        return _transport_failure(cause, where)


def _tls_failure(cause: BaseException, where: str) -> _Failure | None:
    """A failed TLS handshake as one line to act on (the publisher's and the subscriber's); None otherwise."""
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = cause.verify_message or cause.reason or str(cause)
        return _Failure(
            f"TLS certificate verify failed for {where}: {reason} (check mqtt.ca_file and the host name in mqtt.url)",
            REFUSED_BACKOFF,
        )
    if isinstance(cause, ssl.SSLError):
        return _Failure(f"TLS handshake with {where} failed: {_ssl_reason(cause)}", REFUSED_BACKOFF)
    return None


def _transport_failure(cause: BaseException, where: str) -> _Failure:
    """A connection that never reached MQTT (refused, unresolvable, timed out, anything else)."""
    if isinstance(cause, ConnectionRefusedError):
        return _Failure(f"{where} refused the TCP connection (is the broker running?)", RECONNECT_BACKOFF)
    if isinstance(cause, socket.gaierror):
        return _Failure(
            f"cannot resolve the host of the {where}: {cause.strerror or cause} (check mqtt.url)", RECONNECT_BACKOFF
        )
    if isinstance(cause, TimeoutError) or "timed out" in str(cause):
        return _Failure(f"{where} did not accept the TCP connection in time", RECONNECT_BACKOFF)
    return _Failure(f"cannot connect to the {where}: {_describe(cause)}", RECONNECT_BACKOFF)


# ---------------------------------------------------------------------------------------------


async def _publish(client: aiomqtt.Client, topic: str, payload: bytes, **kwargs: Any) -> None:
    """``client.publish`` that never loses a cancellation.

    aiomqtt waits for the acknowledgement with ``asyncio.wait_for``, which on Python 3.11 returns
    the result and drops a cancellation that arrives as the acknowledgement completes (fixed in
    3.12, gh-86296). A sender loop that missed its cancellation would wait for more data forever
    and hold up shutdown, so the cancellation is raised again here.
    """
    await client.publish(topic, payload, **kwargs)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _as_bytes(payload: object) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()


def _capture_socket_errors(client: aiomqtt.Client) -> list[str]:
    """paho's error log lines of this client, collected (paho's public ``on_log`` hook).

    paho reports why a read failed (a TLS alert, a reset) only in its log; aiomqtt then says
    "Operation timed out" or "Unspecified error". The lines let the failure message say why.
    """
    errors: list[str] = []

    def on_log(_client: object, _userdata: object, level: int, buf: str) -> None:
        if level == MQTT_LOG_ERR and buf.startswith(_PAHO_RECEIVE_FAILED) and len(errors) < 8:
            errors.append(buf)  # list.append is atomic: paho may call this from the connect thread

    client._client.on_log = on_log  # aiomqtt keeps the paho client private; on_log is paho's public hook
    return errors


def _socket_error_text(line: str) -> str:
    """``failed to receive on socket: [SSL: X] text (_ssl.c:2580)`` → ``text``, with advice where there is some."""
    text = line.removeprefix(_PAHO_RECEIVE_FAILED)
    text = re.sub(r"^\[[A-Z]+: [A-Z0-9_]+\]\s*", "", text)
    text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text)
    if "CERTIFICATE_REQUIRED" in line:
        text += " (the broker wants a client certificate: set mqtt.client_cert and mqtt.client_key)"
    return f"TLS: {text}" if "SSL" in line else text


def _is_aiomqtt_timeout(exc: BaseException) -> bool:
    # aiomqtt raises a plain MqttError("Operation timed out") when a CONNACK, SUBACK or PUBACK does
    # not come in time (client.py, Client._wait_for); a TCP connect timeout is MqttError("timed out").
    return type(exc) is aiomqtt.MqttError and str(exc) == "Operation timed out"


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _first_expected(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The connection error that ended a connection's TaskGroup, or None when a leaf is something else."""
    leaves = [exc for exc in _leaves(group) if not isinstance(exc, asyncio.CancelledError)]
    if not leaves or not all(isinstance(exc, aiomqtt.MqttError | OSError | SinkError) for exc in leaves):
        return None
    return leaves[0]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        # aiomqtt raises MqttError(str(exc)) "from None": the original stays in __context__.
        current = current.__cause__ or current.__context__


def _root_cause(exc: BaseException) -> BaseException:
    """The most specific error in ``exc``'s chain: an OSError (socket, TLS) when there is one."""
    chain = list(_chain(exc))
    for candidate in chain:
        if isinstance(candidate, OSError):
            return candidate
    return chain[-1]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    if isinstance(exc, aiomqtt.MqttCodeError):
        return _reason_text(exc.rc)
    return str(exc) or type(exc).__name__


def _reason_value(rc: object) -> int | None:
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else None


def _reason_text(rc: object) -> str:
    name = getattr(rc, "getName", None)
    if callable(name):
        return f"{name()} (reason code {_reason_value(rc)})"
    return f"code {rc}"


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(exc, ssl.SSLError) and reason:
        return str(reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


# aiomqtt 2.x has no public way to abandon a connection attempt; the helpers below reach into it
# (pinned by "aiomqtt>=2.5,<3" and covered by the tests that cancel, time out and refuse).


async def _open(client: aiomqtt.Client) -> None:
    """Connect; on failure or cancellation leave no socket, reader callback or pending future behind.

    ``Client.__aenter__`` leaves paho's socket open when the CONNACK does not come, and when it is
    cancelled in the middle it also leaves a cancelled future that breaks aiomqtt's disconnect
    callback later. So the attempt runs shielded; a cancellation waits for it (bounded) and then
    closes whatever it opened.
    """
    entering = asyncio.create_task(client.__aenter__(), name="mqtt-connect")
    try:
        await asyncio.shield(entering)
    except asyncio.CancelledError:
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                await entering
        except BaseException:  # whatever the attempt ended with, its socket goes
            _force_close(client)
        else:
            await _close(client)
        raise
    except BaseException:
        _force_close(client)
        raise


async def _close(client: aiomqtt.Client) -> None:
    """Disconnect cleanly when still connected (bounded by ``client.timeout``), then make sure the socket is gone."""
    try:
        await client.__aexit__(None, None, None)
    except aiomqtt.MqttError as exc:
        log.debug("MQTT disconnect: %s", exc)
    finally:
        _force_close(client)


def _force_close(client: aiomqtt.Client) -> None:
    """Close paho's socket (unregistering aiomqtt's reader) and consume aiomqtt's disconnect error."""
    paho = client._client  # aiomqtt keeps the paho client private
    paho._sock_close()  # paho: closes the socket through aiomqtt's on_socket_close; no-op when closed
    disconnected = client._disconnected  # aiomqtt keeps the disconnect error only there
    if disconnected.done() and not disconnected.cancelled():
        disconnected.exception()  # retrieved, so asyncio does not log "never retrieved"


class _Credentials:
    """Password and TLS context, read from their files at every attempt (call it in a thread); warns
    once that a password without ``mqtt.username`` is not sent. The publisher's and the subscriber's."""

    def __init__(self, config: MqttConfig) -> None:
        self._config = config
        self._warned_password_without_user = False

    def __call__(self) -> tuple[str | None, ssl.SSLContext | None]:
        password, context = _load_credentials(self._config)
        if password is not None and self._config.username is None and not self._warned_password_without_user:
            self._warned_password_without_user = True
            log.warning("MQTT: a password is configured without mqtt.username; it is not sent")
        return password, context


def _load_credentials(config: MqttConfig) -> tuple[str | None, ssl.SSLContext | None]:
    """The password (from its file or environment variable) and the TLS context of ``config``.

    Raises:
        _SetupError: one line naming the file that cannot be read or loaded.
    """
    try:
        password = config.read_password()
    except ConfigError as exc:
        raise _SetupError(f"MQTT: {exc}") from exc
    if not config.tls:
        return password, None
    try:
        context = ssl.create_default_context(cafile=None if config.ca_file is None else str(config.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise _SetupError(f"MQTT: cannot load the CA file {str(config.ca_file)!r}: {_ssl_reason(exc)}") from exc
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if config.client_cert is not None:
        try:
            context.load_cert_chain(
                str(config.client_cert), None if config.client_key is None else str(config.client_key)
            )
        except (OSError, ssl.SSLError) as exc:
            raise _SetupError(
                f"MQTT: cannot load the client certificate {str(config.client_cert)!r}: {_ssl_reason(exc)}"
            ) from exc
    return password, context
