"""The dashboard server without a browser: a real server on a free port, a real mosquitto.

Server-sent events, commands as MQTT messages, the cross-site and token rules, session files
and path traversal, the stale broker state, and the demo's wiring. The page itself is tested in
headless Chromium by ``test_dashboard_browser.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import aiomqtt
import pytest
from brokers import BrokerHandle, Subscriber

from sensorhub.cli import main
from sensorhub.dashboard.security import Signer, check_bind, same_origin, valid_session_id
from sensorhub.dashboard.server import Dashboard, DashboardSettings, broker_config
from sensorhub.dashboard.sse import Broadcaster, SseClient, sse_frame
from sensorhub.dashboard.state import DashboardState
from sensorhub.errors import ConfigError
from sensorhub.runner import DemoOptions, run_demo

TOKEN = "correct-horse-battery-staple-42"


# ---------------------------------------------------------------------------------------------
# Helpers


@contextlib.asynccontextmanager
async def running(broker: BrokerHandle, **settings: object) -> AsyncIterator[Dashboard]:
    """A dashboard on a free loopback port, subscribed to ``broker``, connected before it yields."""
    options: dict[str, object] = {"mqtt": broker_config(broker.url), "port": 0, **settings}
    async with Dashboard(DashboardSettings(**options)) as dashboard:  # type: ignore[arg-type]
        await eventually(lambda: dashboard.subscriber.connected, "the dashboard's MQTT connection", 10)
        yield dashboard


async def eventually(predicate: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` every 20 ms; fails naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.02)


async def publish(broker: BrokerHandle, *messages: tuple[str, object, bool]) -> None:
    """Publish (topic, payload, retain) messages at QoS 1; dict payloads as JSON."""
    async with aiomqtt.Client(broker.host, broker.port, timeout=5) as client:
        for topic, payload, retain in messages:
            data = json.dumps(payload).encode() if isinstance(payload, dict) else str(payload).encode()
            await client.publish(topic, data, qos=1, retain=retain)


@dataclass
class Event:
    name: str | None
    data: str | None
    comment: str | None


async def next_event(response: aiohttp.ClientResponse, timeout_s: float = 5.0) -> Event:
    """The next block of an event stream (an event, or a comment line such as the keep-alive)."""
    name = data = comment = None
    async with asyncio.timeout(timeout_s):
        while True:
            line = (await response.content.readline()).decode()
            if line in ("\n", ""):
                if name or data or comment:
                    return Event(name, data, comment)
                if line == "":
                    raise AssertionError("the event stream ended")
                continue
            field, _, value = line.rstrip("\n").partition(":")
            value = value.removeprefix(" ")
            if field == "":
                comment = value
            elif field == "event":
                name = value
            elif field == "data":
                data = value


async def next_named(response: aiohttp.ClientResponse, name: str, timeout_s: float = 5.0) -> dict[str, object]:
    """The data of the next event called ``name`` (others are skipped)."""
    async with asyncio.timeout(timeout_s):
        while True:
            event = await next_event(response, timeout_s)
            if event.name == name and event.data is not None:
                return json.loads(event.data)  # type: ignore[no-any-return]


@dataclass
class PageSession:
    """What a browser holds after loading a page: the cookie and the page's CSRF token."""

    cookie: str
    csrf: str
    origin: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {
            "Cookie": self.cookie,
            "X-CSRF-Token": self.csrf,
            "Origin": self.origin,
            "Content-Type": "application/json",
            **extra,
        }


async def load_page(http: aiohttp.ClientSession, dashboard: Dashboard, path: str) -> PageSession:
    async with http.get(dashboard.url.rstrip("/") + path) as response:
        assert response.status == 200, await response.text()
        body = await response.text()
        morsel = response.cookies[f"sensorhub_dashboard_{dashboard.port}"]
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', body)
    assert match is not None
    return PageSession(f"{morsel.key}={morsel.value}", match.group(1), dashboard.url.rstrip("/"))


# ---------------------------------------------------------------------------------------------
# Pure parts


def test_client_queue_drops_oldest_angles_and_closes_when_full_of_state() -> None:
    client = SseClient("w", max_events=3)
    client.offer(b"a1", droppable=True)
    client.offer(b"p1", droppable=False)
    client.offer(b"a2", droppable=True)
    client.offer(b"a3", droppable=True)  # full: a1 goes
    assert client.take() == b"p1a2a3"
    assert client.dropped == 1
    for frame in (b"p1", b"p2", b"p3"):
        client.offer(frame, droppable=False)
    client.offer(b"p4", droppable=False)  # full of events that must not be lost: the browser starts over
    assert client.closed
    assert client.overflowed

    broadcaster = Broadcaster()
    mine, other = SseClient("w"), SseClient("x")
    broadcaster.add(mine)
    broadcaster.add(other)
    broadcaster.publish("w", "update", {"k": 1})
    broadcaster.publish(None, "broker", {"connected": True})
    assert mine.take() == sse_frame("update", {"k": 1}) + sse_frame("broker", {"connected": True})
    assert other.take() == sse_frame("broker", {"connected": True})


def test_state_pairs_alerts_drops_redelivery_and_ignores_what_it_cannot_read() -> None:
    state = DashboardState(clock=lambda: 100.0)
    start = {"t": 1.0, "type": "slouch", "state": "start", "duration_s": 30.0, "episode": 1, "msg_id": "a"}
    end = {"t": 9.0, "type": "slouch", "state": "end", "duration_s": 8.0, "episode": 1, "msg_id": "b"}
    update = state.ingest("sensorhub/w/alerts", json.dumps(start).encode())
    assert update is not None
    assert update.data["open"] == [start]
    assert state.ingest("sensorhub/w/alerts", json.dumps(start).encode()) is None  # same msg_id again
    update = state.ingest("sensorhub/w/alerts", json.dumps(end).encode())
    assert update is not None
    assert update.data["open"] == []
    for topic, payload in [
        ("sensorhub/w/angles", b"NaN"),
        ("sensorhub/w/angles", b'{"t": NaN}'),
        ("sensorhub/w/angles", b'{"t": 1e999}'),
        ("sensorhub/w/posture", b"\xff"),
        ("sensorhub/w/status", b"maybe"),
        ("sensorhub/w/cmd/calibrate", b"{}"),
        ("sensorhub/w w/status", b"online"),
        ("other/w/status", b"online"),
    ]:
        assert state.ingest(topic, payload) is None, topic
    assert state.wearers == ["w"]
    state.ingest("sensorhub/w/angles", b'{"t": 5.0, "thoracic_flexion_deg": 12.5, "posture": "upright"}')
    detail = state.wearer_detail("w")
    assert detail is not None
    assert detail["history"] == [[5.0, 12.5, None, None]]


def test_security_rules() -> None:
    assert same_origin("same-origin", None, "127.0.0.1:8765")
    assert not same_origin("cross-site", "http://127.0.0.1:8765", "127.0.0.1:8765")
    assert not same_origin("same-site", None, "127.0.0.1:8765")
    assert same_origin(None, "http://127.0.0.1:8765", "127.0.0.1:8765")
    assert not same_origin(None, "http://evil.example", "127.0.0.1:8765")
    assert not same_origin(None, "null", "127.0.0.1:8765")
    assert not same_origin(None, None, "127.0.0.1:8765")
    for bad in ("../etc/passwd", "..", "a/b", "a\\b", "", ".hidden", "x" * 200, "a%2Fb"):
        assert not valid_session_id(bad), bad
    assert valid_session_id("20261126T162200Z-a1b2c3")
    signer = Signer(None)
    cookie = signer.new_session()
    nonce = signer.session_nonce(cookie)
    assert nonce is not None
    assert signer.csrf_ok(nonce, signer.csrf_token(nonce))
    assert not signer.csrf_ok(nonce, Signer(None).csrf_token(nonce))
    assert signer.session_nonce(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None
    assert signer.session_nonce("ümlaut.ünicode") is None
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    with pytest.raises(ConfigError, match="token is required"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ConfigError, match="at least 16"):
        check_bind("0.0.0.0", "short")


def test_cli_refuses_an_exposed_dashboard_without_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENSORHUB_DASHBOARD_TOKEN", raising=False)
    assert main(["dashboard", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "token is required" in err
    assert "SENSORHUB_DASHBOARD_TOKEN" in err


# ---------------------------------------------------------------------------------------------
# Against mosquitto


async def test_events_stream_snapshot_updates_keepalive_and_cleanup(mosquitto: BrokerHandle) -> None:
    await publish(
        mosquitto,
        ("sensorhub/alex/status", "online", True),
        ("sensorhub/alex/posture", {"t": 10.0, "posture": "upright", "since": 5.0}, True),
    )
    async with running(mosquitto, keepalive_s=0.3) as dashboard, aiohttp.ClientSession() as http:
        await eventually(lambda: "alex" in dashboard.state, "the retained status of alex")
        events_url = dashboard.url + "api/events?wearer=alex"
        async with http.get(events_url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            snapshot = await next_named(response, "snapshot")
            wearer = snapshot["wearer"]
            assert isinstance(wearer, dict)
            assert wearer["status"] == "online"
            assert wearer["posture"] == {"t": 10.0, "posture": "upright", "since": 5.0}
            assert snapshot["broker"] == {**snapshot["broker"], "connected": True}  # type: ignore[dict-item]

            angles = {"t": 11.0, "thoracic_flexion_deg": 17.25, "lumbar_flexion_deg": 3.5, "posture": "slouched"}
            await publish(
                mosquitto,
                ("sensorhub/alex/angles", angles, False),
                ("sensorhub/bob/angles", {"t": 1.0}, False),  # another wearer: not on this stream
                ("sensorhub/alex/sensors/sacral", {"t": 11.0, "connected": True, "battery_pct": 80.0}, True),
            )
            update = await next_named(response, "update")
            assert update == {"wearer": "alex", "kind": "angles", "value": angles}
            update = await next_named(response, "update")
            assert update["kind"] == "sensors"
            assert update["placement"] == "sacral"
            keepalive = await next_event(response, timeout_s=2)
            assert keepalive.comment == "keep-alive"
            assert len(dashboard.broadcaster) == 1
        # The browser went away: its queue is dropped at the next write at the latest.
        await eventually(lambda: len(dashboard.broadcaster) == 0, "the closed stream's cleanup")


async def test_buttons_publish_the_commands_of_the_schemas(mosquitto: BrokerHandle) -> None:
    await publish(mosquitto, ("sensorhub/alex/status", "online", True))
    async with (
        running(mosquitto) as dashboard,
        aiohttp.ClientSession() as http,
        Subscriber(mosquitto, "sensorhub/alex/cmd/#") as sub,
    ):
        await eventually(lambda: "alex" in dashboard.state, "the retained status of alex")
        page = await load_page(http, dashboard, "/w/alex")
        sent = [
            ("calibrate", {"functional": False}),
            ("snooze", {"minutes": 15}),
            ("snooze", {}),
            ("exercise", {"action": "start", "reps": 8}),
            ("exercise", {"action": "stop"}),
            ("pain", {"region": "lower", "level": 6}),
        ]
        for name, body in sent:
            url = f"{dashboard.url}api/w/alex/cmd/{name}"
            async with http.post(url, data=json.dumps(body), headers=page.headers()) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["topic"] == f"sensorhub/alex/cmd/{name}"
        received = await sub.wait_for(len(sent), timeout=5)
        assert [(m.topic.rsplit("/", 1)[1], m.json()) for m in received] == sent
        assert not any(m.retain for m in received)
        assert all(m.qos == 1 for m in received)


async def test_commands_need_csrf_same_origin_json_and_a_valid_payload(mosquitto: BrokerHandle) -> None:
    await publish(mosquitto, ("sensorhub/alex/status", "online", True))
    async with (
        running(mosquitto) as dashboard,
        aiohttp.ClientSession() as http,
        Subscriber(mosquitto, "sensorhub/+/cmd/#") as sub,
    ):
        await eventually(lambda: "alex" in dashboard.state, "the retained status of alex")
        page = await load_page(http, dashboard, "/w/alex")
        other = await load_page(http, dashboard, "/")
        url = f"{dashboard.url}api/w/alex/cmd/calibrate"
        good = page.headers()
        refused = {
            "no CSRF header": ({k: v for k, v in good.items() if k != "X-CSRF-Token"}, "{}", 403),
            "another session's CSRF token": ({**good, "X-CSRF-Token": other.csrf}, "{}", 403),
            "foreign Origin": ({**good, "Origin": "http://evil.example"}, "{}", 403),
            "cross-site fetch": ({**good, "Sec-Fetch-Site": "cross-site"}, "{}", 403),
            "no Origin nor Sec-Fetch-Site": ({k: v for k, v in good.items() if k != "Origin"}, "{}", 403),
            "a form post": ({**good, "Content-Type": "application/x-www-form-urlencoded"}, "{}", 415),
            "no cookie": ({k: v for k, v in good.items() if k != "Cookie"}, "{}", 403),
            "an out-of-range payload": (good, '{"neutral_s": 1}', 400),
            "an unknown key": (good, '{"rm": "-rf"}', 400),
        }
        for why, (headers, body, status) in refused.items():
            async with http.post(url, data=body, headers=headers) as response:
                assert response.status == status, why
                assert "error" in await response.json()
        async with http.get(url, headers=good) as response:
            assert response.status == 405  # commands are POSTs only
        async with http.post(f"{dashboard.url}api/w/nobody/cmd/calibrate", data="{}", headers=good) as response:
            assert response.status == 404
        async with http.post(f"{dashboard.url}api/w/alex/cmd/reboot", data="{}", headers=good) as response:
            assert response.status == 404
        await asyncio.sleep(0.3)
        assert sub.messages == []


async def test_token_cookie_and_host_rules(mosquitto: BrokerHandle) -> None:
    async with running(mosquitto, token=TOKEN) as dashboard, aiohttp.ClientSession() as http:
        base = dashboard.url
        for path in ("", "w/alex", "api/events", "api/state", "api/sessions", f"?token={TOKEN[:-1]}x"):
            async with http.get(base + path, allow_redirects=False) as response:
                assert response.status == 401, path
        async with http.get(f"{base}w/alex?token={TOKEN}", allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/w/alex"  # the token leaves the address bar
            set_cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in set_cookie
            assert "SameSite=Strict" in set_cookie
            morsel = response.cookies[f"sensorhub_dashboard_{dashboard.port}"]
        cookie = {"Cookie": f"{morsel.key}={morsel.value}"}
        async with http.get(f"{base}w/alex", headers=cookie) as response:
            assert response.status == 200
        async with http.get(f"{base}static/dashboard.css") as response:
            assert response.status == 200  # no secrets in the static files
    async with running(mosquitto) as dashboard, aiohttp.ClientSession() as http:
        # Without a token only loopback names are accepted (DNS rebinding).
        async with http.get(dashboard.url, headers={"Host": f"evil.example:{dashboard.port}"}) as response:
            assert response.status == 403
        async with http.get(dashboard.url, headers={"Host": f"localhost:{dashboard.port}"}) as response:
            assert response.status == 200
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'self' only
            assert "<script>" not in await response.text()  # no inline script


async def test_broker_loss_is_pushed_and_reconnects(mosquitto: BrokerHandle) -> None:
    async with (
        running(mosquitto) as dashboard,
        aiohttp.ClientSession() as http,
        http.get(dashboard.url + "api/events") as response,
    ):
        assert (await next_named(response, "snapshot"))["broker"]["connected"] is True  # type: ignore[index]
        await mosquitto.stop()
        lost = await next_named(response, "broker", timeout_s=10)
        assert lost["connected"] is False
        assert lost["error"]
        await mosquitto.start()
        back = await next_named(response, "broker", timeout_s=10)
        while back["connected"] is not True:
            back = await next_named(response, "broker", timeout_s=10)


async def test_demo_serves_the_dashboard_and_its_session_files(
    mosquitto: BrokerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's dashboard answers while the demo runs and is gone after it; then the files of its session."""
    options = DemoOptions(
        speed=math.inf, duration_s=45.0, broker=mosquitto.url, out_dir=tmp_path / "out", db=tmp_path / "s.db"
    )
    demo = asyncio.create_task(run_demo(options))
    url = None
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(20):
            while url is None and not demo.done():
                found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)w/demo", capsys.readouterr().out)
                url = found.group(1) if found else None
                await asyncio.sleep(0.01)
            assert url is not None, "the demo printed no dashboard URL"
            async with http.get(url + "api/state") as response:
                assert response.status == 200
        service = await demo
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(url + "api/state"):
                pass
    assert service.session_id is not None
    session_id = service.session_id

    async with running(mosquitto, db=tmp_path / "s.db") as dashboard, aiohttp.ClientSession() as http:
        base = dashboard.url
        async with http.get(base + "api/sessions?wearer=demo") as response:
            listed = (await response.json())["sessions"]
        assert [s["id"] for s in listed] == [session_id]
        async with http.get(f"{base}sessions/{session_id}/angles.csv") as response:
            assert response.status == 200
            assert "attachment" in response.headers["Content-Disposition"]
            assert (await response.text()).startswith("t,thoracic_flexion_deg,lumbar_flexion_deg")
        async with http.get(f"{base}sessions/{session_id}/report.html") as response:
            assert response.status == 200
            assert "<html" in (await response.text()).lower()
            assert "script-src" not in response.headers["Content-Security-Policy"]
        for path in (
            f"sessions/{session_id[:-2]}/angles.csv",  # a prefix is not an id
            "sessions/20990101T000000Z-000000/report.html",
            "sessions/..%2F..%2F..%2Fetc%2Fpasswd/angles.csv",
            "sessions/%2e%2e/angles.csv",
            "sessions/..%5c..%5cs.db/report.html",
            "sessions/%00/angles.csv",
        ):
            async with http.get(base + path) as response:
                assert response.status == 404, path
        async with http.get(base + "static/../server.py") as response:
            assert response.status in (403, 404)


async def test_demo_goes_on_without_aiohttp(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sensorhub.dashboard
    from sensorhub import runner
    from sensorhub.config import MqttProtocol
    from sensorhub.errors import DependencyError

    def missing() -> None:
        raise DependencyError("the dashboard needs aiohttp, which is not installed", extra="dashboard")

    monkeypatch.setattr(sensorhub.dashboard, "require", missing)
    config = runner.demo_config(DemoOptions(db=tmp_path / "s.db"), "mqtt://127.0.0.1:1", MqttProtocol.V311)
    async with contextlib.AsyncExitStack() as stack:
        assert await runner._start_dashboard(config, stack, 0) is None
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "dashboard: not started: the dashboard needs aiohttp, which is not installed "
        "(pip install 'sensorhub[dashboard]')"
    ]


async def test_run_serves_the_dashboard_on_request(
    mosquitto: BrokerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sensorhub run --dashboard``: the page is served while the service runs, and it sees the wearer."""
    from dataclasses import replace

    from sensorhub.config import parse_config
    from sensorhub.runner import run_config

    config = parse_config(
        {
            "wearer": {"id": "runner"},
            "source": {"kind": "simulator", "scenario": "desk_session"},
            "sensors": [{"placement": "upper_thoracic", "profile": "sensorhub_open"}],
            "mqtt": {"url": mosquitto.url},
            "storage": {"path": str(tmp_path / "s.db")},
        }
    )
    config = replace(config, source=replace(config.source, speed=20.0))
    task = asyncio.create_task(run_config(config, view=False, dashboard=True))
    try:
        url = ""
        for _ in range(100):
            found = re.search(r"dashboard: (http://\S+)", capsys.readouterr().out)
            if found:
                url = found.group(1)
                break
            await asyncio.sleep(0.05)
        assert url.endswith("/w/runner"), url
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 200
                assert "text/html" in response.headers["Content-Type"]
            root = url.removesuffix("w/runner")
            seen = False
            for _ in range(100):
                async with http.get(root + "api/state") as response:
                    if response.status == 200 and "runner" in await response.text():
                        seen = True
                        break
                await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen, "the dashboard saw the wearer"


async def test_run_dashboard_needs_mqtt(tmp_path: Path) -> None:
    from sensorhub.config import parse_config
    from sensorhub.runner import run_config

    config = parse_config(
        {
            "wearer": {"id": "x"},
            "source": {"kind": "simulator"},
            "sensors": [{"placement": "sacral", "profile": "sensorhub_open"}],
            "storage": {"path": str(tmp_path / "s.db")},
        }
    )
    with pytest.raises(ConfigError, match=r"--dashboard needs an \[mqtt\] section"):
        await run_config(config, view=False, dashboard=True)
