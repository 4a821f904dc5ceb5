"""The dashboard's HTTP server (aiohttp): pages, server-sent events, commands and session files.

The only module that imports aiohttp. :class:`Dashboard` is an async context manager that binds
the server and runs the MQTT subscriber (:class:`~sensorhub.mqtt.subscriber.MqttSubscriber`, all
wearers: ``sensorhub/+/#``) as a named task until the context exits.

Routes (every one but ``/static/`` behind :mod:`~sensorhub.dashboard.security`'s rules):

==========================================  ==========================================================
``GET /``                                   overview of every wearer
``GET /w/<wearer>``                         one wearer's live page
``GET /api/events[?wearer=<wearer>]``       server-sent events: ``snapshot``, then ``update`` and ``broker``
``GET /api/state``                          the overview as JSON (scripts, tests)
``GET /api/sessions[?wearer=<wearer>]``     stored sessions, newest first
``POST /api/w/<wearer>/cmd/<name>``         publish a command (JSON body, CSRF header, same origin)
``GET /sessions/<id>/angles.csv``           angle CSV export of a stored session, made on demand
``GET /sessions/<id>/report.html``          HTML report of a stored session, made on demand
``GET /static/<file>``                      the page's CSS and JavaScript (no CDN: works offline)
==========================================  ==========================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import html
import logging
import secrets
import shutil
import tempfile
import time
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.typedefs import Handler

from sensorhub.config import MqttConfig
from sensorhub.errors import ConfigError, DependencyError, InputError, SinkError
from sensorhub.model import JsonValue
from sensorhub.mqtt.commands import MAX_COMMAND_BYTES, CommandError, parse_command
from sensorhub.mqtt.subscriber import MqttSubscriber
from sensorhub.mqtt.topics import COMMANDS, DEFAULT_ROOT, sanitize_wearer

from .files import SessionFiles, SessionNotFoundError
from .security import (
    CSRF_HEADER,
    Signer,
    check_bind,
    loopback_host_header,
    same_origin,
    valid_session_id,
)
from .sse import KEEPALIVE_FRAME, Broadcaster, SseClient, sse_frame
from .state import DashboardState, Update

__all__ = ["DEFAULT_PORT", "KEEPALIVE_S", "Dashboard", "DashboardSettings", "broker_config", "dashboard_client_id"]

log = logging.getLogger(__name__)

#: Default TCP port of the dashboard.
DEFAULT_PORT: Final = 8765
#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE_S: Final = 15.0
#: Seconds the server waits for open requests when it stops (event streams are ended first).
SHUTDOWN_TIMEOUT_S: Final = 2.0

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"

# Every response: no framing, no sniffing, no referrer, scripts and styles only from the server.
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# The stored report is self-contained: inline CSS and a data: PNG, no script at all.
_REPORT_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

# The session nonce of the request being handled (set by the guard middleware, in the handler's context).
_nonce: ContextVar[str] = ContextVar("sensorhub_dashboard_nonce")


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardSettings:
    """What ``sensorhub dashboard`` (or the demo) starts.

    Attributes:
        mqtt: the broker to subscribe to (URL, client id, credentials, TLS).
        host: address to listen on; anything but loopback needs ``token``.
        port: TCP port; 0 = any free port.
        db: session database for the session list; the default store when None.
        token: access token, or None (loopback only).
        root: topic root.
        fallback_port: when ``port`` is in use, listen on any free port instead of failing (the demo).
        keepalive_s: seconds between keep-alive comments on an idle event stream.
    """

    mqtt: MqttConfig
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    db: Path | None = None
    token: str | None = None
    root: str = DEFAULT_ROOT
    fallback_port: bool = False
    keepalive_s: float = KEEPALIVE_S


def broker_config(url: str) -> MqttConfig:
    """The connection of a dashboard to the broker at ``url`` (anonymous; TLS for mqtts://).

    The URL is checked by the config loader's rules for ``mqtt.url``; the client id is unique per
    process so that two dashboards do not take each other's connection.

    Raises:
        ConfigError: a malformed URL.
    """
    from sensorhub.config import parse_config

    config = parse_config(
        {
            "wearer": {"id": "dashboard"},
            "sensors": [{"placement": "upper_thoracic", "profile": "sensorhub_open", "name": "unused"}],
            "mqtt": {"url": url},
        }
    )
    assert config.mqtt is not None
    return replace(config.mqtt, client_id=dashboard_client_id())


def dashboard_client_id() -> str:
    """An MQTT client id for one dashboard process."""
    return f"sensorhub-dashboard-{secrets.token_hex(4)}"


def _level_or_none(text: str) -> str | None:
    """``text`` when it is a sanitised wearer level, else None."""
    try:
        return text if text and sanitize_wearer(text) == text else None
    except ConfigError:
        return None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class Dashboard:
    """The running dashboard: ``async with Dashboard(settings) as dashboard: ... dashboard.url``.

    Raises:
        ConfigError: (when created) a non-loopback host without a token, or a short token.
        SinkError: (on entry) the address cannot be bound: the port is in use without
            ``fallback_port``, or no permission.
    """

    def __init__(self, settings: DashboardSettings) -> None:
        check_bind(settings.host, settings.token)
        self.settings = settings
        self.state = DashboardState(settings.root)
        self.broadcaster = Broadcaster()
        self._signer = Signer(settings.token)
        self.subscriber = MqttSubscriber(
            settings.mqtt,
            [f"{settings.root}/+/#"],
            on_message=self._on_message,
            on_connection=self._on_connection,
        )
        self._broker_connected = False
        self._broker_changed_at = time.monotonic()
        self._broker_error: str | None = None
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self._cache_dir: Path | None = None
        self._files: SessionFiles | None = None
        self._pages: dict[str, str] = {}
        self.port: int | None = None

    def __repr__(self) -> str:
        return f"Dashboard({self.url if self.port is not None else 'not started'!r})"

    @property
    def url(self) -> str:
        """``http://host:port/`` of the running server."""
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._pages = {name: (STATIC_DIR / f"{name}.html").read_text(encoding="utf-8") for name in ("index", "wearer")}
        self._cache_dir = Path(tempfile.mkdtemp(prefix="sensorhub-dashboard-"))
        self._files = SessionFiles(self.settings.db, self._cache_dir)
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            self.port = await self._bind(runner)
        except BaseException:
            await runner.cleanup()
            shutil.rmtree(self._cache_dir, ignore_errors=True)
            raise
        self._runner = runner
        self._task = asyncio.create_task(self.subscriber.run(), name="dashboard-mqtt")
        self._task.add_done_callback(_log_crash)
        log.info("dashboard on %s (MQTT %s)", self.url, self.settings.mqtt.url)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            self.broadcaster.close_all()
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
            if self._cache_dir is not None:
                shutil.rmtree(self._cache_dir, ignore_errors=True)

    async def serve_forever(self) -> None:
        """Wait until cancelled (``sensorhub dashboard``); the subscriber's crash, a bug, is raised."""
        if self._task is None:
            raise RuntimeError("enter the Dashboard context first")
        await asyncio.shield(self._task)

    async def _bind(self, runner: web.AppRunner) -> int:
        host, port = self.settings.host, self.settings.port
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and self.settings.fallback_port and port != 0:
                log.info("dashboard: port %d is in use; using a free port", port)
                site = web.TCPSite(runner, host, 0)
                await site.start()
            elif exc.errno == errno.EADDRINUSE:
                raise SinkError(
                    f"dashboard: port {port} on {host} is in use", advice="choose another with --port (0 = any free)"
                ) from exc
            else:
                raise SinkError(f"dashboard: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        return int(runner.addresses[0][1])

    # -- MQTT -> browsers ---------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, _retained: bool) -> None:
        try:
            update = self.state.ingest(topic, payload)
            if update is not None:
                self._push(update)
        except Exception:
            # A message nobody foresaw must not end the subscription of every other wearer.
            log.exception("dashboard: could not handle a message on %s (%d bytes); ignored", topic, len(payload))

    def _push(self, update: Update) -> None:
        data: dict[str, JsonValue] = {"wearer": update.wearer, "kind": update.kind, **update.data}
        self.broadcaster.publish(update.wearer, "update", data, droppable=update.kind == "angles")

    def _on_connection(self, connected: bool, reason: str | None) -> None:
        if connected != self._broker_connected:
            self._broker_changed_at = time.monotonic()
        self._broker_connected = connected
        self._broker_error = reason
        self.broadcaster.publish(None, "broker", self._broker())

    def _broker(self) -> dict[str, JsonValue]:
        return {
            "connected": self._broker_connected,
            "age_s": round(time.monotonic() - self._broker_changed_at, 3),
            "error": self._broker_error,
            "url": self.settings.mqtt.url,
        }

    # -- the application ----------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._overview_page)
        app.router.add_get("/w/{wearer}", self._wearer_page)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/state", self._state_json)
        app.router.add_get("/api/sessions", self._sessions)
        app.router.add_post("/api/w/{wearer}/cmd/{name}", self._command)
        app.router.add_get("/sessions/{session_id}/angles.csv", self._session_csv)
        app.router.add_get("/sessions/{session_id}/report.html", self._session_report)
        app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
        app.on_response_prepare.append(self._on_prepare)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        self.broadcaster.close_all()  # event streams end now instead of holding the shutdown

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")

    def _set_cookie(self, request: web.Request, response: web.StreamResponse, value: str) -> None:
        # Behind a TLS-terminating proxy the request itself is plain HTTP; the proxy says https.
        secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        response.set_cookie(self._cookie_name(), value, httponly=True, samesite="Strict", secure=secure, path="/")

    def _cookie_name(self) -> str:
        # Browsers keep cookies per host, not per port: two dashboards on one host need two names.
        return f"sensorhub_dashboard_{self.port}"

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Host check, token, session cookie; see :mod:`~sensorhub.dashboard.security`."""
        signer = self._signer
        if signer.token is None and not loopback_host_header(request.headers.get("Host")):
            return web.Response(status=403, text="dashboard: unexpected Host header (loopback only)\n")
        if request.path.startswith("/static/"):
            return await handler(request)
        nonce = signer.session_nonce(request.cookies.get(self._cookie_name()))
        if signer.token is not None and "token" in request.query:
            if not signer.token_ok(request.query.get("token")):
                return web.Response(status=401, text="dashboard: wrong token\n")
            # Keep the token out of the address bar, the history and any Referer: the cookie carries it now.
            query = {k: v for k, v in request.query.items() if k != "token"}
            location = request.path + (f"?{urlencode(query)}" if query else "")
            redirect = web.HTTPSeeOther(location)
            self._set_cookie(request, redirect, signer.new_session())
            raise redirect
        new_cookie = None
        if nonce is None:
            if signer.token is not None:
                return web.Response(
                    status=401, text="dashboard: open it with ?token=<token> once (or check the token)\n"
                )
            new_cookie = signer.new_session()
            nonce = new_cookie.partition(".")[0]
        reset = _nonce.set(nonce)
        try:
            response = await handler(request)
        finally:
            _nonce.reset(reset)
        if new_cookie is not None and not response.prepared:
            self._set_cookie(request, response, new_cookie)
        return response

    # -- pages --------------------------------------------------------------------------------

    def _page(self, name: str, request: web.Request, wearer: str = "") -> web.Response:
        text = (
            self._pages[name]
            .replace("{{csrf}}", html.escape(self._signer.csrf_token(_nonce.get())))
            .replace("{{wearer}}", html.escape(wearer))
        )
        return web.Response(text=text, content_type="text/html", charset="utf-8")

    async def _overview_page(self, request: web.Request) -> web.Response:
        return self._page("index", request)

    async def _wearer_page(self, request: web.Request) -> web.Response:
        wearer = _level_or_none(request.match_info["wearer"])
        if wearer is None:
            raise web.HTTPNotFound(text="dashboard: not a wearer id\n")
        return self._page("wearer", request, wearer)

    # -- data ---------------------------------------------------------------------------------

    def _snapshot(self, wearer: str | None) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {"broker": self._broker(), "server_time": time.time()}
        if wearer is None:
            out["wearers"] = self.state.overview()
        else:
            out["wearer"] = self.state.wearer_detail(wearer)
        return out

    async def _state_json(self, request: web.Request) -> web.Response:
        return web.json_response(self._snapshot(None))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        wearer = request.query.get("wearer")
        if wearer is not None and _level_or_none(wearer) is None:
            return _error(400, "not a wearer id")
        client = SseClient(wearer)
        # Registered and snapshotted in one event-loop step: no update falls between the two.
        self.broadcaster.add(client)
        first = b"retry: 2000\n\n" + sse_frame("snapshot", self._snapshot(wearer))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", "X-Accel-Buffering": "no"}
        )
        try:
            await response.prepare(request)
            await response.write(first)
            while not client.closed:
                try:
                    async with asyncio.timeout(self.settings.keepalive_s):
                        await client.wait()
                except TimeoutError:
                    await response.write(KEEPALIVE_FRAME)
                    continue
                chunk = client.take()
                if chunk:
                    await response.write(chunk)
        except ConnectionResetError:
            log.debug("dashboard: an event stream's browser went away")
        finally:
            self.broadcaster.remove(client)
        if client.overflowed:
            log.info("dashboard: closed the event stream of a browser that fell %d events behind", client.dropped)
        return response

    async def _sessions(self, request: web.Request) -> web.Response:
        assert self._files is not None
        wearer = request.query.get("wearer")
        if wearer is not None and _level_or_none(wearer) is None:
            return _error(400, "not a wearer id")
        try:
            sessions = await asyncio.to_thread(self._files.list, wearer)
        except SinkError as exc:
            return _error(503, str(exc))
        return web.json_response({"sessions": sessions})

    async def _command(self, request: web.Request) -> web.Response:
        headers = request.headers
        if not same_origin(headers.get("Sec-Fetch-Site"), headers.get("Origin"), headers.get("Host")):
            return _error(403, "cross-site request refused (Origin / Sec-Fetch-Site is not this dashboard)")
        if not self._signer.csrf_ok(_nonce.get(), headers.get(CSRF_HEADER)):
            return _error(403, f"missing or wrong {CSRF_HEADER} header (reload the page)")
        if request.content_type != "application/json":
            return _error(415, "send the command as application/json")
        name = request.match_info["name"]
        if name not in COMMANDS:
            return _error(404, f"unknown command {name!r}; one of {', '.join(COMMANDS)}")
        wearer = _level_or_none(request.match_info["wearer"])
        if wearer is None or wearer not in self.state:
            return _error(404, "no such wearer on the broker")
        if request.content_length is not None and request.content_length > MAX_COMMAND_BYTES:
            return _error(413, f"a command has at most {MAX_COMMAND_BYTES} bytes")
        body = await request.read()
        if len(body) > MAX_COMMAND_BYTES:
            return _error(413, f"a command has at most {MAX_COMMAND_BYTES} bytes")
        try:
            parse_command(name, body)
        except CommandError as exc:
            return _error(400, str(exc))
        try:
            await self.subscriber.send_command(wearer, name, body)
        except SinkError as exc:
            return _error(503, str(exc))
        return web.json_response({"ok": True, "topic": f"{self.settings.root}/{wearer}/cmd/{name}"})

    async def _session_file(self, request: web.Request, kind: str) -> web.StreamResponse:
        assert self._files is not None
        session_id = request.match_info["session_id"]
        if not valid_session_id(session_id):
            raise web.HTTPNotFound(text="dashboard: no such session\n")
        make = self._files.export_csv if kind == "csv" else self._files.report_html
        try:
            path = await asyncio.to_thread(make, session_id)
        except SessionNotFoundError as exc:
            raise web.HTTPNotFound(text=f"dashboard: {exc}\n") from exc
        except DependencyError as exc:
            raise web.HTTPServiceUnavailable(text=f"dashboard: {exc}\n") from exc
        except (InputError, SinkError) as exc:
            raise web.HTTPConflict(text=f"dashboard: {exc}\n") from exc
        if kind == "csv":
            headers = {
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{session_id}-angles.csv"',
            }
        else:
            headers = {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": _REPORT_CSP}
        return web.FileResponse(path, headers=headers)

    async def _session_csv(self, request: web.Request) -> web.StreamResponse:
        return await self._session_file(request, "csv")

    async def _session_report(self, request: web.Request) -> web.StreamResponse:
        return await self._session_file(request, "report")


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("dashboard: the MQTT subscriber stopped", exc_info=task.exception())
