"""An embedded MQTT broker for the out-of-the-box default (DESIGN §5 ``demo``, §7), built on amqtt.

It lets ``sensorhub demo`` and a dashboard on the same machine talk MQTT without installing
anything else. It listens on loopback only, plain TCP, anonymous: it is not a production broker
(use mosquitto for that, see ``docs/mqtt-broker.md``).

amqtt speaks MQTT 3.1.1 only: an MQTT 5 CONNECT is refused with "unacceptable protocol version",
so clients of this broker connect with :attr:`EmbeddedBroker.protocol`. amqtt is the optional
extra ``sensorhub[broker]`` and is imported only when a broker starts.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import logging
from types import TracebackType
from typing import Any, ClassVar, Final, Self, cast

from sensorhub.config import MqttProtocol
from sensorhub.errors import ConfigError, SinkError

__all__ = ["DEFAULT_PORT", "EmbeddedBroker"]

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 1883
# A stop takes milliseconds (see _broker_class); this bounds one that hangs all the same, so that
# `sensorhub demo` still ends promptly on SIGINT.
_SHUTDOWN_TIMEOUT_S: Final = 2.0
# How long client connections get to end by themselves once their sockets are closed.
_CONNECTION_GRACE_S: Final = 0.5
_LISTENER: Final = "default"

# Loggers of amqtt and of the state-machine library it uses; both log every connection at INFO.
_LIBRARY_LOGGERS: Final = ("amqtt", "transitions")

# amqtt records about expected events, or ones sensorhub reports itself: a start that fails on a
# busy port (we fall back or raise SinkError), the will messages of clients our own shutdown cuts
# off (amqtt drops them with a warning), a client that closes before sending CONNECT (a port
# probe; amqtt logs an ERROR plus a WARNING), and an acknowledgement that arrives as its client
# disconnects (amqtt handles each packet in its own task, so the DISCONNECT may cancel the waiter
# first: "PUBACK waiter with Id '1' already done").
_EXPECTED_RECORDS: Final = (
    "Broker startup failed",
    "messages not broadcasted",
    "No data to decode MQTT packet fixed header",
    "waiter with Id",
)
_FILTERED_LOGGERS: Final = ("amqtt.broker", "amqtt.mqtt.protocol.handler")


class EmbeddedBroker:
    """An amqtt broker on loopback, run as an async context manager.

    Example::

        async with EmbeddedBroker(port=None) as broker:
            print(broker.url)  # mqtt://127.0.0.1:40123

    Args:
        host: IPv4 loopback address to listen on; ``localhost`` means 127.0.0.1.
        port: TCP port, or None (or 0) for any free port.
        fallback_to_free_port: when ``port`` is taken, listen on a free port instead (logged as a
            warning) rather than fail.

    Raises:
        ConfigError: ``host`` is not an IPv4 loopback address, or ``port`` is out of range.
    """

    #: The newest MQTT version the broker speaks.
    protocol: ClassVar[MqttProtocol] = MqttProtocol.V311

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = DEFAULT_PORT, *, fallback_to_free_port: bool = True
    ) -> None:
        self._host = _loopback_host(host)
        if port is not None and not 0 <= port <= 65535:
            raise ConfigError(f"port {port} is out of range", advice="use 1-65535, or 0 for any free port")
        self._requested_port = port or 0
        self._fallback = fallback_to_free_port
        self._broker: Any = None
        self._port: int | None = None

    @property
    def host(self) -> str:
        """The address the broker listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port the broker listens on (the fallback port when the requested one was taken).

        Raises:
            RuntimeError: the broker is not running.
        """
        if self._port is None:
            raise RuntimeError("the embedded broker is not running")
        return self._port

    @property
    def url(self) -> str:
        """``mqtt://HOST:PORT`` of the running broker."""
        return f"mqtt://{self._host}:{self.port}"

    async def __aenter__(self) -> Self:
        """Start listening.

        Raises:
            SinkError: amqtt is not installed, the port is taken (without fallback) or cannot be bound.
        """
        if self._broker is not None:
            raise RuntimeError("the embedded broker is already running")
        broker_class = _broker_class()
        _quiet_library_logs()
        try:
            self._broker = await _start(broker_class, self._host, self._requested_port)
        except OSError as exc:
            if not (exc.errno == errno.EADDRINUSE and self._fallback and self._requested_port):
                raise _bind_error(self._host, self._requested_port, exc) from exc
            try:
                self._broker = await _start(broker_class, self._host, 0)
            except OSError as exc2:
                raise _bind_error(self._host, 0, exc2) from exc2
            self._port = _bound_port(self._broker)
            log.warning(
                "port %d on %s is in use; the embedded MQTT broker listens on port %d instead",
                self._requested_port,
                self._host,
                self._port,
            )
        else:
            self._port = _bound_port(self._broker)
        log.info("embedded MQTT broker listening on %s", self.url)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Disconnect every client and stop listening."""
        broker, self._broker, self._port = self._broker, None, None
        if broker is None:
            return
        try:
            async with asyncio.timeout(_SHUTDOWN_TIMEOUT_S):
                await broker.shutdown()
        except TimeoutError:
            log.warning("the embedded MQTT broker did not stop within %.0f s", _SHUTDOWN_TIMEOUT_S)
        log.info("embedded MQTT broker stopped")


def _loopback_host(host: str) -> str:
    """The IPv4 loopback address ``host`` names, or ConfigError."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ConfigError(
            f"the embedded MQTT broker listens on IPv4 loopback only (127.0.0.1), not on {host!r}",
            advice="use 127.0.0.1; to serve other machines run mosquitto, see docs/mqtt-broker.md",
        )
    return str(address)


def _bind_error(host: str, port: int, exc: OSError) -> SinkError:
    if exc.errno == errno.EADDRINUSE:
        return SinkError(
            f"cannot start the embedded MQTT broker: port {port} on {host} is in use",
            advice="stop the program using it, or choose another port",
        )
    return SinkError(f"cannot start the embedded MQTT broker on {host}:{port}: {exc.strerror or exc}")


def _import_amqtt() -> Any:
    try:
        import amqtt.broker
    except ImportError as exc:
        raise SinkError(
            "the embedded MQTT broker needs the amqtt package, which is not installed",
            advice="install sensorhub[broker], or use an MQTT broker such as mosquitto with --broker URL",
        ) from exc
    return amqtt.broker


@functools.cache
def _broker_class() -> type[Any]:
    """amqtt's Broker with three faults of amqtt 0.12 worked around.

    - Retained messages (MQTT 3.1.1 §3.3.1.3): on every CONNECT amqtt sends the newcomer, at QoS 0,
      each retained message matching *any* client's subscription, even when the newcomer
      subscribed to nothing, so a subscriber may also get a retained message twice. Here they go
      only to the session's own subscriptions, at the QoS granted to them.
    - A client that disconnects before its CONNECT is accepted (a port probe, a refused MQTT 5
      CONNECT, a bad packet) keeps its socket open until garbage collection, which then warns
      "unclosed transport" (ResourceWarning). Here the socket is closed when amqtt is done with it.
    - Shutdown with traffic in flight hangs, its clients still connected. ``Broker.shutdown`` stops
      the clients one by one, and each ``ProtocolHandler.stop`` cancels the handler's reader task
      and waits for it to end before it closes the socket. The reader waits in
      ``asyncio.wait_for(MQTTFixedHeader.from_stream(...), keep_alive)``, and Python 3.11's
      ``wait_for`` drops a cancellation that arrives as the read completes (CPython gh-86296,
      fixed in 3.12): with QoS 1 packets arriving all the time the reader goes on reading, and when
      the client goes quiet, waiting for a PUBACK, it waits for the client's next packet. The
      client's socket stays open until the client gives up (its PUBACK timeout, or keep-alive).
      Here shutdown first stops listening and drops every connection (``transport.abort()``),
      so each reader sees end-of-file and ends whatever became of its cancellation, and the
      clients see the connection drop at once (an MQTT 3.1.1 server has no DISCONNECT to send: it
      closes the network connection). Connection tasks still running after amqtt's shutdown are
      cancelled, so no task outlives the broker.
    """
    base: Any = _import_amqtt().Broker

    # amqtt ships no type information, so its Broker is Any to mypy.
    class _Broker(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # The task asyncio.start_server runs for each client connection, and the connection's writer.
            self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
            self._cancelled: set[asyncio.Task[None]] = set()
            self._closing = False

        async def start(self) -> None:
            self._closing = False
            await super().start()

        async def stream_connected(
            self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
        ) -> None:
            if self._closing:  # accepted as the listener closed
                writer.transport.abort()
                return
            task = cast("asyncio.Task[None]", asyncio.current_task())
            self._connections[task] = writer
            try:
                await super().stream_connected(reader, writer, listener_name)
            except asyncio.CancelledError:
                # Python 3.11's start_server logs a cancelled connection task as an error (asyncio/streams.py,
                # StreamReaderProtocol.connection_made), so one that only shutdown cancelled ends quietly.
                if task not in self._cancelled or task.uncancel() > 0:
                    raise
            finally:
                del self._connections[task]
                self._cancelled.discard(task)
                writer.close()

        async def shutdown(self) -> None:
            self._closing = True
            for server in self._servers.values():
                if server.instance is not None:
                    server.instance.close()  # amqtt closes its listeners last, accepting clients until then
            handlers = [handler for _, handler in self._sessions.values()]
            for writer in self._connections.values():
                writer.transport.abort()
            if self._connections:
                # Each connection now ends by itself: its reader reads end-of-file, which stops the
                # handler (cancelling its deliveries' waits for an acknowledgement) and the session.
                await asyncio.wait(list(self._connections), timeout=_CONNECTION_GRACE_S)
            try:
                await super().shutdown()
            finally:
                await self._cancel_connections(handlers)

        async def _cancel_connections(self, handlers: list[Any]) -> None:
            """Cancel the connection tasks still running, so that none outlives the broker.

            One may wait for a retained message's delivery that began writing as the socket closed
            and then started its wait for the acknowledgement (5 s) after the handler had stopped;
            that wait is cancelled first, as amqtt's ``ProtocolHandler.stop`` does.
            """
            if not self._connections:
                return
            for handler in handlers:
                handler._stop_waiters()
            pending = list(self._connections)
            self._cancelled.update(pending)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending)

        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            topic_filter, _ = subscription
            subscribers: list[tuple[Any, int]] = self._subscriptions.get(topic_filter, [])
            granted = [qos for owner, qos in subscribers if owner.client_id == session.client_id]
            if granted:
                await super()._publish_retained_messages_for_subscription((topic_filter, granted[0]), session)

    return _Broker


async def _start(broker_class: type[Any], host: str, port: int) -> Any:
    """Start a broker listening on ``host:port``.

    Raises:
        OSError: the listening socket cannot be bound.
        SinkError: amqtt fails to start for another reason.
    """
    config = {
        "listeners": {_LISTENER: {"type": "tcp", "bind": f"{host}:{port}"}},
        # The default plugin set adds packet logging and $SYS topics, whose plugin warns (DeprecationWarning).
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = broker_class(config)
    try:
        await broker.start()
    except _import_amqtt().BrokerError as exc:
        if isinstance(exc.__cause__, OSError):
            raise exc.__cause__ from None
        raise SinkError(f"cannot start the embedded MQTT broker: {exc}") from exc
    return broker


def _bound_port(broker: Any) -> int:
    # amqtt does not expose the bound port; with port 0 only the listening socket knows it.
    server = broker._servers[_LISTENER].instance
    port: int = server.sockets[0].getsockname()[1]
    return port


class _ExpectedRecords(logging.Filter):
    """Drops amqtt records about events sensorhub expects and reports itself (unless debugging)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if log.isEnabledFor(logging.DEBUG):
            return True
        message = record.getMessage()
        return not any(expected in message for expected in _EXPECTED_RECORDS)


_expected_records = _ExpectedRecords()


def _quiet_library_logs() -> None:
    """Keep amqtt at WARNING unless sensorhub logs at DEBUG; a level someone else set is kept."""
    if not log.isEnabledFor(logging.DEBUG):
        for name in _LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)
    for name in _FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if _expected_records not in logger.filters:
            logger.addFilter(_expected_records)
