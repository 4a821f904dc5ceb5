"""Soak test: one wearer, three BLE sensors, mosquitto, the store and the dashboard, with faults on a schedule.

``sensorhub run --config soak.toml`` runs as a child process against real parts: bleak on a
private D-Bus in front of the fake BlueZ, whose three emulated sensors (an open-profile sensor,
a WitMotion and a MetaMotion, ``bench/_soak_devices.py``) stream a wearer who slouches about once
a minute; a private mosquitto; a temporary session store with a stored calibration, so angles flow
from the first sample; ``[alerts] dwell_s = 8`` and no hourly cap, so there are many alerts;
``sensorhub dashboard`` on the same broker and store. The fake BlueZ and the emulators run in this
process.

Faults, at these times in a 10-minute run (scaled for shorter runs; a fault waits for the one
before to recover):

====== ======================================================================================
  40 s upper_thoracic link drop
  70 s mosquitto stopped (SIGTERM, it saves its sessions) for 20 s, started on the same port
 105 s thoracolumbar link drop
 130 s SIGKILL of sensorhub; bluetoothd drops the dead client's links; the same command
       started again 2 s later (same config, same store). With ``--links-survive-kill`` the links
       stay up instead and only the notification sessions end (bluez/bluez#89)
 190 s sacral link stalls for 4 s (the link stays up, notifications stop)
 230 s sacral link drop
 270 s bluetoothd vanishes for 5 s, then comes back (all links lost without a signal)
 330 s mosquitto stopped for 20 s again
 400 s, 460 s, 520 s  link drops on each sensor in turn
   end SIGTERM: a clean stop
====== ======================================================================================

A subscriber process (paho, MQTT 3.1.1, a persistent session: ``clean_session`` False, QoS 1)
records every message on ``sensorhub/soak/alerts`` to a file *before* acknowledging it, and the
arrival time of every ``angles`` message. The RSS, threads and open file descriptors of the
sensorhub process (and of the dashboard) are read from ``/proc`` every 10 s; the dashboard's
``/api/state`` is fetched at the same time.

Checks (each in the JSON report with its measured value):

- ``alerts_exactly_once_in_order``: after de-duplication on ``msg_id``, every alert the store
  recorded as sent (``slouch``/``break`` events with ``alert_state`` sent, both sessions) arrived
  as one ``start`` and, unless the episode was still open when sensorhub was killed, one ``end``;
  nothing arrived that the store does not know (except a start in the last second before the
  kill, which the killed process may have queued before its store commit); ``t`` never goes back.
- ``sessions``: two sessions: the killed one ``interrupted`` and missing at most 1 s of what the
  sensors delivered before the kill (emulator log − stored samples, per sensor), the restarted
  one ``complete``.
- ``loss_only_in_fault_windows``: every hole ≥ 0.1 s in each sensor's stored samples lies in a
  link fault's window (fault → data again, ± 2 s), and every link fault left a hole and a
  ``sensor_links`` record of the loss (disconnected, or its reconnect counter up); broker outages
  and the SIGKILL of the other process leave no hole.
- ``integrity``: ``PRAGMA integrity_check`` is ``ok``.
- ``memory_flat``: RSS of the restarted sensorhub at the end vs. after its first 2 minutes
  (1 minute in ``--quick``): growth ≤ 10 %.
- ``no_fd_leak``: open descriptors, median of the last three samples minus median of the first
  three after warm-up, ≤ 3 (the least-squares trend is reported too); ``no_task_leak``: threads
  the same way, and no "Task was destroyed but it is pending", "never retrieved", ResourceWarning
  or traceback in sensorhub's log.
- ``clean_stop``: SIGTERM → exit code 0 within 3 s.
- ``dashboard``: every poll of ``/api/state`` answered and the wearer is listed (skipped with a
  note when ``sensorhub dashboard`` is not available).

Reported too: reconnect time after every link fault (the fault, or its end for a stall and
bluetoothd's return, → the sensor's first notification delivered to sensorhub again), the restart
time after the kill (spawn → data), the samples lost on the air per fault (emulator log) beside
those the session's ``sensor_links`` events count, angles resuming after each broker restart.

Run: ``make soak`` or ``.venv/bin/python bench/soak.py [--minutes 10] [--quick] [--out report.json]
[--keep]``. Prints one JSON object; exit status 0 only when every check passes. Needs mosquitto
and dbus-daemon (Debian packages ``mosquitto``, ``dbus-daemon``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from _soak_devices import RATE_HZ, SENSORS, SlouchLoop, running_emulators, slouch_loop  # noqa: E402
from fakebluez import FakeBlueZ, running_system_bus  # noqa: E402
from fakebluez.bus import DBusDaemon  # noqa: E402
from fakebluez.devices import DeviceEmulator  # noqa: E402

from sensorhub.calibration_store import calibration_path, save_calibration  # noqa: E402
from sensorhub.config import load_config  # noqa: E402
from sensorhub.model import Placement  # noqa: E402

HOST = "127.0.0.1"
WEARER = "soak"
DWELL_S = 8.0
SAMPLE_EVERY_S = 10.0
BROKER_OUTAGE_S = 20.0
STALL_S = 4.0
VANISH_S = 5.0
RESTART_PAUSE_S = 2.0
RECOVERY_TIMEOUT_S = 60.0
HOLE_S = 0.1  # a gap between stored samples this long is a hole (100 Hz: 0.01 s; none outside faults)
CLOCK_SLACK_S = 2.0  # fault windows on the stored clock are widened by this much (fault times: this process)
KILL_LOSS_MAX_S = 1.0  # docs/reliability.md: the last ≤ 1 s
STOP_MAX_S = 3.0
MEMORY_GROWTH_MAX_PCT = 10.0
FD_GROWTH_MAX = 3
THREAD_GROWTH_MAX = 2
LOG_PROBLEMS = ("Task was destroyed but it is pending", "never retrieved", "ResourceWarning", "Traceback")

UT, TL, SA = Placement.UPPER_THORACIC, Placement.THORACOLUMBAR, Placement.SACRAL

Json = Any


# ---- child processes ----------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the soak process dies, so nothing outlives a killed soak."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Child:
    """One child process with its log file; spawned from the main thread (PDEATHSIG follows that thread)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, *, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.started_wall = 0.0

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.cwd,
                start_new_session=True,  # a Ctrl-C of the soak reaches it through our clean-up only
                preexec_fn=_die_with_parent,  # the child has one thread until exec
            )
        self.started_wall = time.time()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> tuple[int | None, float]:
        """Send ``sig`` and wait; SIGKILL after ``timeout_s``. Returns (exit code, seconds to exit)."""
        process = self.process
        if process is None:
            return None, 0.0
        start = time.monotonic()
        if process.poll() is None:
            process.send_signal(sig)
            try:
                await asyncio.to_thread(process.wait, timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, 5)
        took = time.monotonic() - start
        return process.returncode, took

    def kill_now(self) -> None:
        """Clean-up: SIGKILL and reap, whatever state it is in."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


class Mosquitto(Child):
    """A private mosquitto with persistence, so a stop/start keeps the subscriber's session and queue."""

    def __init__(self, directory: Path, port: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""  # as root it would switch to 'mosquitto'
        conf.write_text(
            f"{user}persistence true\npersistence_location {directory}/\nlog_dest stderr\n"
            f"log_type error\nlog_type warning\nlog_type notice\nlog_timestamp true\n"
            f"listener {port} {HOST}\nallow_anonymous true\n"
        )
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        super().__init__("mosquitto", [exe, "-c", str(conf)], directory / "mosquitto.log")
        self.port = port

    async def start(self) -> None:
        self.spawn()
        await wait_port(self.port)


SUBSCRIBER = textwrap.dedent(
    """
    import json, sys, time
    import paho.mqtt.client as mqtt
    port, alerts, angles, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    out = open(path, "a", buffering=1)
    def on_connect(client, userdata, flags, reason, properties):
        out.write(json.dumps({"connected": time.time(), "session_present": bool(flags.session_present)}) + "\\n")
        client.subscribe([(alerts, 1), (angles, 0)])
    def on_message(client, userdata, msg):
        # written before paho sends the PUBACK (it does so after this callback returns)
        if msg.topic == alerts:
            line = {"recv": time.time(), "payload": msg.payload.decode(), "dup": bool(msg.dup)}
        else:
            line = {"angles": time.time()}
        out.write(json.dumps(line) + "\\n")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-alerts", clean_session=False,
                         protocol=mqtt.MQTTv311)
    client.on_connect, client.on_message = on_connect, on_message
    client.reconnect_delay_set(min_delay=0.2, max_delay=1)
    client.connect_async("127.0.0.1", port, keepalive=5)
    client.loop_forever(retry_first_connection=True)
    """
)


# ---- the run ------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One injected fault and what it did."""

    kind: str
    at_s: float  # since the start of the soak
    wall: float  # epoch of the fault
    placements: list[str] = field(default_factory=list)
    end_wall: float | None = None  # end of a stall / bluetoothd back / broker back / restarted
    recovered_wall: dict[str, float | None] = field(default_factory=dict)  # first delivery after it (emulator)
    detail: dict[str, Json] = field(default_factory=dict)


@dataclass
class Sample:
    t_s: float
    role: str
    pid: int
    rss_kb: int
    threads: int
    fds: int


@dataclass
class Run:
    directory: Path
    config_path: Path
    store_path: Path
    minutes: float
    quick: bool
    mosquitto: Mosquitto
    dashboard_port: int
    links_survive_kill: bool = False
    t0_wall: float = 0.0
    sensorhub: list[Child] = field(default_factory=list)
    dashboard: Child | None = None
    subscriber: Child | None = None
    faults: list[Fault] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    polls: list[dict[str, Json]] = field(default_factory=list)
    stop: dict[str, Json] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    end_wall: float = 0.0

    @property
    def subscriber_log(self) -> Path:
        return self.directory / "subscriber.jsonl"

    def since(self) -> float:
        return time.time() - self.t0_wall


def write_config(directory: Path, port: int) -> Path:
    sensors = "\n".join(
        f'[[sensors]]\nplacement = "{s.placement.value}"\nprofile = "{s.profile}"\naddress = "{s.address}"\n'
        f"rate_hz = {RATE_HZ:g}\n"
        for s in SENSORS
    )
    text = f"""# Written by bench/soak.py.
[wearer]
id = "{WEARER}"
name = "Soak test wearer"

[source]
kind = "ble"

{sensors}
[alerts]
dwell_s = {DWELL_S:g}
max_per_hour = 0      # no cap: every slouch alerts
break_after_min = 0

[mqtt]
url = "mqtt://{HOST}:{port}"
protocol = "5"

[storage]
path = "{directory / "store" / "sessions.db"}"
retention_days = 0
max_size_mb = 0
"""
    path = directory / "soak.toml"
    path.write_text(text)
    return path


def sensorhub_child(run: Run, n: int) -> Child:
    exe = str(Path(sys.executable).with_name("sensorhub"))
    argv = [exe, "--log-level", "info", "run", "--config", str(run.config_path), "--no-view"]
    return Child(f"sensorhub-{n}", argv, run.directory / f"sensorhub-{n}.log", cwd=run.directory)


def delivered_after(emu: DeviceEmulator, loop_t: float) -> float | None:
    """Loop time of the first data notification that reached a subscriber after ``loop_t``, or None."""
    first = None
    for t, _payload, ok in reversed(emu.sent):
        if t <= loop_t:
            break
        if ok:
            first = t
    return first


def _delivered_samples(emu: DeviceEmulator) -> int:
    return sum(1 for sample in emu.log if sample.sent)


def _lost_on_air(emu: DeviceEmulator, loop_t: float) -> int | None:
    """Samples of the device's grid that never reached sensorhub across the hole at ``loop_t`` (the truth)."""
    last_before = first_after = None
    for sample in emu.log:
        if not sample.sent:
            continue
        if sample.host_t < loop_t:
            last_before = sample.k
        elif first_after is None:
            first_after = sample.k
    return None if last_before is None or first_after is None else first_after - last_before - 1


async def wait_delivering(
    emulators: dict[Placement, DeviceEmulator], placements: list[Placement], loop_t: float
) -> dict[str, float | None]:
    """Wait until each sensor delivers again after ``loop_t``; their first delivery as epoch seconds."""
    loop = asyncio.get_running_loop()
    offset = time.time() - loop.time()
    found: dict[str, float | None] = {p.value: None for p in placements}
    deadline = loop.time() + RECOVERY_TIMEOUT_S
    while loop.time() < deadline and any(v is None for v in found.values()):
        for p in placements:
            if found[p.value] is None and (t := delivered_after(emulators[p], loop_t)) is not None:
                found[p.value] = t + offset
        await asyncio.sleep(0.05)
    return found


def read_proc(pid: int) -> tuple[int, int, int] | None:
    """(RSS kB, threads, open fds) of a live process, None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"]), fds


def poll_dashboard(port: int) -> dict[str, Json]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/state", timeout=5) as response:
            body = response.read().decode()
            return {"ok": response.status == 200, "wearer_listed": f'"{WEARER}"' in body}
    except (OSError, ValueError) as exc:
        return {"ok": False, "error": str(exc)}


async def sampler(run: Run) -> None:
    while True:
        now = run.since()
        targets = [("sensorhub", run.sensorhub[-1] if run.sensorhub else None), ("dashboard", run.dashboard)]
        for role, child in targets:
            if child is None or child.pid is None or not child.alive():
                continue
            got = read_proc(child.pid)
            if got is not None:
                run.samples.append(Sample(round(now, 1), role, child.pid, *got))
        if run.dashboard is not None and run.dashboard.alive():
            result = await asyncio.to_thread(poll_dashboard, run.dashboard_port)
            run.polls.append({"t_s": round(now, 1), **result})
        await asyncio.sleep(SAMPLE_EVERY_S)


class Faults:
    """The fault actions; each records a :class:`Fault` and returns once the system has recovered."""

    def __init__(self, run: Run, bluez: FakeBlueZ, emulators: dict[Placement, DeviceEmulator]) -> None:
        self.run = run
        self.bluez = bluez
        self.emulators = emulators

    def _new(self, kind: str, placements: list[Placement]) -> Fault:
        fault = Fault(kind, round(self.run.since(), 2), time.time(), [p.value for p in placements])
        self.run.faults.append(fault)
        return fault

    def _truth(self, fault: Fault, loop_t: float) -> None:
        fault.detail["missing_on_air"] = {
            p: _lost_on_air(self.emulators[Placement(p)], loop_t) for p in fault.placements
        }

    async def link_drop(self, placement: Placement) -> None:
        loop_t = asyncio.get_running_loop().time()
        fault = self._new("link_drop", [placement])
        self.emulators[placement].device.drop_link()
        fault.recovered_wall = await wait_delivering(self.emulators, [placement], loop_t)
        self._truth(fault, loop_t)

    async def stall(self, placement: Placement) -> None:
        fault = self._new("stall", [placement])
        stalled_at = asyncio.get_running_loop().time()
        device = self.emulators[placement].device
        device.stall()
        await asyncio.sleep(STALL_S)
        device.unstall()
        fault.end_wall = time.time()
        loop_t = asyncio.get_running_loop().time()
        fault.recovered_wall = await wait_delivering(self.emulators, [placement], loop_t)
        self._truth(fault, stalled_at)

    async def vanish(self) -> None:
        fault = self._new("bluetoothd_vanish", list(self.emulators))
        vanished_at = asyncio.get_running_loop().time()
        await self.bluez.vanish()
        await asyncio.sleep(VANISH_S)
        await self.bluez.come_back()
        fault.end_wall = time.time()
        loop_t = asyncio.get_running_loop().time()
        fault.recovered_wall = await wait_delivering(self.emulators, list(self.emulators), loop_t)
        self._truth(fault, vanished_at)

    async def broker_outage(self) -> None:
        fault = self._new("broker_restart", [])
        code, took = await self.run.mosquitto.stop(signal.SIGTERM)
        fault.detail = {"mosquitto_exit": code, "stop_s": round(took, 3)}
        await asyncio.sleep(max(0.0, BROKER_OUTAGE_S - took))
        await self.run.mosquitto.start()
        fault.end_wall = time.time()

    async def kill_and_restart(self) -> None:
        fault = self._new("sigkill_restart", list(self.emulators))
        old = self.run.sensorhub[-1]
        code, _ = await old.stop(signal.SIGKILL)
        fault.detail["exit"] = code
        fault.detail["delivered_before_kill"] = {p.value: _delivered_samples(e) for p, e in self.emulators.items()}
        for emu in self.emulators.values():
            if self.run.links_survive_kill:
                # bluetoothd ends the notification sessions of a D-Bus client that went away (BlueZ
                # src/gatt-client.c) but keeps the link (bluez/bluez#89); the fake keeps both.
                for chars in emu.device.services.values():
                    for char in chars:
                        char.notifying = False
            else:
                emu.device.drop_link()  # bluetoothd tears down the dead client's links
        await asyncio.sleep(RESTART_PAUSE_S)
        new = sensorhub_child(self.run, len(self.run.sensorhub) + 1)
        self.run.sensorhub.append(new)
        new.spawn()
        fault.end_wall = new.started_wall
        loop_t = asyncio.get_running_loop().time()
        fault.recovered_wall = await wait_delivering(self.emulators, list(self.emulators), loop_t)


def schedule(faults: Faults, duration_s: float) -> list[tuple[float, Callable[[], Awaitable[None]]]]:
    """The fault plan of a 10-minute run, its times scaled to ``duration_s``."""
    plan: list[tuple[float, Callable[[], Awaitable[None]]]] = [
        (40, lambda: faults.link_drop(UT)),
        (70, faults.broker_outage),
        (105, lambda: faults.link_drop(TL)),
        (130, faults.kill_and_restart),
        (190, lambda: faults.stall(SA)),
        (230, lambda: faults.link_drop(SA)),
        (270, faults.vanish),
        (330, faults.broker_outage),
        (400, lambda: faults.link_drop(UT)),
        (460, lambda: faults.link_drop(TL)),
        (520, lambda: faults.link_drop(SA)),
    ]
    k = duration_s / 600.0
    return [(t * k, action) for t, action in plan]


async def soak(run: Run, wearer: SlouchLoop, daemon: DBusDaemon) -> None:
    duration_s = run.minutes * 60.0
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    loop.add_signal_handler(signal.SIGTERM, main.cancel)  # clean up as on Ctrl-C
    bluez = FakeBlueZ(bus_address=daemon.address)
    await bluez.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        async with running_emulators(bluez, wearer) as emulators:
            await run.mosquitto.start()
            run.subscriber = Child(
                "subscriber",
                [
                    sys.executable,
                    "-c",
                    SUBSCRIBER,
                    str(run.mosquitto.port),
                    f"sensorhub/{WEARER}/alerts",
                    f"sensorhub/{WEARER}/angles",
                    str(run.subscriber_log),
                ],
                run.directory / "subscriber.log",
            )
            run.subscriber.spawn()
            await _wait_file_has(run.subscriber_log, '"connected"', 10.0)
            if shutil.which("sensorhub", path=str(Path(sys.executable).parent)) and _has_dashboard():
                dash = Child(
                    "dashboard",
                    [
                        str(Path(sys.executable).with_name("sensorhub")),
                        "dashboard",
                        "--config",
                        str(run.config_path),
                        "--port",
                        str(run.dashboard_port),
                    ],
                    run.directory / "dashboard.log",
                    cwd=run.directory,
                )
                run.dashboard = dash
                dash.spawn()
                await wait_port(run.dashboard_port, timeout_s=60.0)
            else:
                run.notes.append("sensorhub dashboard is not available: the dashboard was not part of this run")
            first = sensorhub_child(run, 1)
            run.sensorhub.append(first)
            first.spawn()
            streaming = await wait_delivering(emulators, list(emulators), loop.time())
            if any(v is None for v in streaming.values()):
                raise RuntimeError(f"the sensors did not start streaming: {streaming}; see {first.log_path}")
            run.t0_wall = time.time()
            faults = Faults(run, bluez, emulators)
            tasks.append(asyncio.create_task(sampler(run), name="sampler"))
            previous_end = 0.0
            for at_s, action in schedule(faults, duration_s):
                start = max(at_s, previous_end + 5.0)
                if start > duration_s - 10.0:
                    run.notes.append(f"fault at {at_s:.0f} s skipped: no time left in the run")
                    continue
                await asyncio.sleep(max(0.0, start - run.since()))
                await action()
                previous_end = run.since()
            await asyncio.sleep(max(0.0, duration_s - run.since()))
            for task in tasks:  # no sample of a process that is shutting down
                task.cancel()
            # the clean stop
            last = run.sensorhub[-1]
            code, took = await last.stop(signal.SIGTERM, timeout_s=15.0)
            run.stop = {"exit": code, "seconds": round(took, 3)}
            run.end_wall = time.time()
            await _settle(run.subscriber_log, quiet_s=2.0, timeout_s=10.0)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for child in (*run.sensorhub, run.dashboard, run.subscriber):
            if child is not None and child.alive():
                await child.stop(signal.SIGTERM, timeout_s=5.0)
        await run.mosquitto.stop(signal.SIGTERM, timeout_s=5.0)
        await bluez.stop()
        daemon.stop()  # while the loop runs: every D-Bus client sees EOF and closes
        await asyncio.sleep(0.05)


def _has_dashboard() -> bool:
    exe = Path(sys.executable).with_name("sensorhub")
    probe = subprocess.run([str(exe), "dashboard", "--help"], capture_output=True, check=False, timeout=60)
    if probe.returncode != 0:
        return False
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


async def _wait_file_has(path: Path, needle: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in await asyncio.to_thread(_text, path):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{needle} did not appear in {path} within {timeout_s} s")


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


async def _settle(path: Path, *, quiet_s: float, timeout_s: float) -> None:
    """Wait until the subscriber has written no alert for ``quiet_s`` (at most ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    seen = -1
    while time.monotonic() < deadline:
        count = (await asyncio.to_thread(_text, path)).count('"recv"')
        if count == seen:
            return
        seen = count
        await asyncio.sleep(quiet_s)


# ---- the checks -----------------------------------------------------------------------------------


def check(value: Json, ok: bool, limit: str) -> dict[str, Json]:
    return {"ok": bool(ok), "value": value, "limit": limit}


def analyse(run: Run) -> dict[str, Json]:
    from sensorhub.store import SessionStore

    store = SessionStore(run.store_path, create=False)
    try:
        sessions = sorted((s for s in store.list_sessions() if s.wearer == WEARER), key=lambda s: s.started)
        data = {s.id: _imu_times(store, s.id, s.clock_offset_s) for s in sessions}
        events = {s.id: store.read_events(s.id) for s in sessions}
        integrity = store.integrity_check()
    finally:
        store.close()
    kill = next((f for f in run.faults if f.kind == "sigkill_restart"), None)
    checks: dict[str, Json] = {}
    report: dict[str, Json] = {}

    checks["integrity"] = check(integrity, integrity == "ok", "ok")
    checks["sessions"], report["sessions"] = _check_sessions(sessions, data, kill)
    checks["loss_only_in_fault_windows"], report["links"] = _check_loss(run, sessions, data, events)
    checks["alerts_exactly_once_in_order"], report["alerts"] = _check_alerts(run, sessions, events, kill)
    memory, fds, threads, report["process"] = _check_process(run)
    checks["memory_flat"], checks["no_fd_leak"], checks["no_task_leak"] = memory, fds, threads
    checks["clean_stop"] = check(
        run.stop, run.stop.get("exit") == 0 and run.stop.get("seconds", math.inf) <= STOP_MAX_S, "exit 0 within 3 s"
    )
    if run.dashboard is not None:
        failed = [p for p in run.polls if not p.get("ok")]
        listed = bool(run.polls) and bool(run.polls[-1].get("wearer_listed"))
        checks["dashboard"] = check(
            {"polls": len(run.polls), "failed": failed, "wearer_listed_at_end": listed},
            bool(run.polls) and not failed and listed,
            "every /api/state poll answered; the wearer listed",
        )
    report["reconnect_s"] = _reconnects(run)
    report["broker_restarts"] = _broker_restarts(run)
    return {"checks": checks, **report}


def _imu_times(store: Any, session_id: str, offset: float) -> dict[str, list[float]]:
    """Per placement, the epoch time of every stored raw sample, sorted."""
    import numpy as np

    out: dict[str, list[np.ndarray]] = {}
    for batch in store.read_imu(session_id):
        out.setdefault(batch.placement.value, []).append(batch.t + offset)
    return {p: np.sort(np.concatenate(ts)).tolist() for p, ts in out.items()}


def _check_sessions(sessions: list[Any], data: dict[str, dict[str, list[float]]], kill: Fault | None) -> Json:
    summary = [
        {
            "id": s.id,
            "status": s.status,
            "duration_s": round(s.duration_s, 1),
            "samples": s.samples,
            "frames": s.frames,
            "events": s.events,
            "recorder_gaps": s.gaps,
            "dropped": s.dropped,
        }
        for s in sessions
    ]
    problems = []
    if len(sessions) != 2:
        problems.append(f"{len(sessions)} sessions, expected 2 (killed + restarted)")
    lost: dict[str, float] = {}
    if sessions and kill is not None:
        first = sessions[0]
        if first.status != "interrupted":
            problems.append(f"killed session is {first.status}")
        # exact: samples the sensors delivered before the kill minus samples the session kept
        delivered = kill.detail.get("delivered_before_kill", {})
        for placement, count in delivered.items():
            stored = len(data[first.id].get(placement, []))
            lost[placement] = round((count - stored) / RATE_HZ, 3)
        if not lost or max(lost.values()) > KILL_LOSS_MAX_S:
            problems.append(f"the killed session lost {lost} s of data at the kill")
    if len(sessions) >= 2 and sessions[-1].status != "complete":
        problems.append(f"restarted session is {sessions[-1].status}")
    value = {"statuses": [s.status for s in sessions], "killed_session_lost_s": lost, "problems": problems}
    limit = f"killed: interrupted, ≤ {KILL_LOSS_MAX_S:g} s of data lost; restarted: complete"
    return check(value, not problems, limit), summary


def _fault_windows(run: Run, placement: str) -> list[tuple[float, float]]:
    """(start, end) epoch windows in which ``placement`` may lose data: its link faults and the kill."""
    windows = []
    for f in run.faults:
        if placement in f.placements:
            recovered = f.recovered_wall.get(placement) or (f.wall + RECOVERY_TIMEOUT_S)
            windows.append((f.wall - CLOCK_SLACK_S, recovered + CLOCK_SLACK_S))
    return windows


def _holes(ts: list[float]) -> list[tuple[float, float]]:
    return [(a, b) for a, b in itertools.pairwise(ts) if b - a >= HOLE_S]


def _check_loss(
    run: Run, sessions: list[Any], data: dict[str, dict[str, list[float]]], events: dict[str, list[Any]]
) -> Json:
    unexplained = []
    for s in sessions:
        for placement, ts in data[s.id].items():
            windows = _fault_windows(run, placement)
            for a, b in _holes(ts):
                if not any(a <= w1 and b >= w0 for w0, w1 in windows):
                    hole = {"session": s.id, "sensor": placement, "at_s": round(a - run.t0_wall, 2)}
                    unexplained.append({**hole, "hole_s": round(b - a, 3)})
    per_fault = []
    for f in run.faults:
        if f.kind not in ("link_drop", "stall", "bluetoothd_vanish"):
            continue
        s = _session_at(sessions, f.wall)
        for placement in f.placements:
            entry: dict[str, Json] = {"fault": f.kind, "at_s": f.at_s, "sensor": placement}
            recovered = f.recovered_wall.get(placement)
            start = f.end_wall if f.kind != "link_drop" else f.wall
            entry["reconnect_s"] = None if recovered is None or start is None else round(recovered - start, 3)
            if s is not None:
                ts = data[s.id].get(placement, [])
                end = (recovered or f.wall) + CLOCK_SLACK_S
                spans = [b - a for a, b in _holes(ts) if a <= end and b >= f.wall - CLOCK_SLACK_S]
                entry["hole_s"] = round(max(spans), 3) if spans else 0.0
                entry["link_loss_recorded"], entry["missing_recorded_until_next_fault"] = _links_event(
                    run, s, events[s.id], placement, f
                )
            entry["missing_on_air"] = f.detail.get("missing_on_air", {}).get(placement)
            per_fault.append(entry)
    # A reconnect quicker than a hole (fewer than HOLE_S of samples lost on the air) leaves none to see.
    short = HOLE_S * RATE_HZ
    unmarked = [
        e
        for e in per_fault
        if not e.get("link_loss_recorded") or (not e.get("hole_s") and (e.get("missing_on_air") or 0) >= short)
    ]
    value = {"unexplained_holes": unexplained, "link_faults_without_hole_or_event": unmarked}
    limit = (
        f"holes ≥ {HOLE_S:g} s only in link-fault windows; each link fault leaves a sensor_links record, and a "
        f"hole unless under {HOLE_S:g} s was lost on the air"
    )
    return check(value, not unexplained and not unmarked, limit), per_fault


def _session_at(sessions: list[Any], wall: float) -> Any:
    for s in sessions:
        end = s.ended if s.ended is not None else math.inf
        if s.started <= wall <= end:
            return s
    return None


def _links_event(run: Run, session: Any, events: list[Any], placement: str, fault: Fault) -> tuple[bool, int | None]:
    """Whether the session's ``sensor_links`` events record the sensor lost across the fault (its reconnect
    counter up, or it disconnected), and the samples counted missing since (until its next fault)."""
    t_fault = fault.wall - session.clock_offset_s - CLOCK_SLACK_S
    later = [f.wall for f in run.faults if f.wall > fault.wall and placement in f.placements]
    t_next = (min(later) - session.clock_offset_s - CLOCK_SLACK_S) if later else math.inf
    before: dict[str, Json] = {}
    after: list[dict[str, Json]] = []
    for e in events:
        state = e.data.get("sensors", {}).get(placement) if e.type == "sensor_links" else None
        if not isinstance(state, dict):
            continue
        if e.start_t < t_fault:
            before = state
        elif e.start_t < t_next:
            after.append(state)
    if not after:
        return False, None
    lost = any(not st.get("connected", True) for st in after) or int(after[-1].get("reconnects", 0)) > int(
        before.get("reconnects", 0)
    )
    return lost, int(after[-1].get("missing_samples", 0)) - int(before.get("missing_samples", 0))


def _reconnects(run: Run) -> list[dict[str, Json]]:
    """Per fault and sensor: seconds from the fault (from its end for a stall, bluetoothd's return and the
    restart after the kill) to the sensor's first notification delivered to sensorhub again."""
    out = []
    for f in run.faults:
        if f.kind == "broker_restart":
            continue
        start = f.wall if f.kind == "link_drop" else f.end_wall
        for placement in f.placements:
            recovered = f.recovered_wall.get(placement)
            out.append(
                {
                    "fault": f.kind,
                    "at_s": f.at_s,
                    "sensor": placement,
                    "from": "fault" if f.kind == "link_drop" else "fault end",
                    "seconds": None if recovered is None or start is None else round(recovered - start, 3),
                }
            )
    return out


def _subscriber_lines(run: Run) -> list[dict[str, Json]]:
    if not run.subscriber_log.exists():
        return []
    return [json.loads(line) for line in run.subscriber_log.read_text().splitlines() if line.strip()]


def _broker_restarts(run: Run) -> list[dict[str, Json]]:
    angles = [line["angles"] for line in _subscriber_lines(run) if "angles" in line]
    out = []
    for f in run.faults:
        if f.kind != "broker_restart" or f.end_wall is None:
            continue
        back = f.end_wall
        first = next((t for t in angles if t > back), None)
        out.append(
            {
                "at_s": f.at_s,
                "down_s": round(back - f.wall, 1),
                "angles_at_subscriber_after_s": None if first is None else round(first - back, 3),
            }
        )
    return out


def _check_alerts(run: Run, sessions: list[Any], events: dict[str, list[Any]], kill: Fault | None) -> Json:
    lines = _subscriber_lines(run)
    received = [json.loads(line["payload"]) for line in lines if "recv" in line]
    seen: set[str] = set()
    unique = []
    for msg in received:
        if msg.get("msg_id") in seen:
            continue
        seen.add(str(msg.get("msg_id")))
        unique.append(msg)
    duplicates = len(received) - len(unique)

    expected: dict[tuple[str, str, float], str] = {}  # (type, state, start epoch) -> session
    open_at_kill = set()
    for s in sessions:
        for e in events[s.id]:
            if e.type not in ("slouch", "break") or e.data.get("alert_state", "sent") != "sent":
                continue
            start = round(s.clock_offset_s + e.start_t, 3)
            expected[(e.type, "start", start)] = s.id
            if e.end_t is not None:
                expected[(e.type, "end", start)] = s.id
            else:
                open_at_kill.add((e.type, start))

    def key_of(msg: dict[str, Json]) -> tuple[str, str, float]:
        return (str(msg.get("type")), str(msg.get("state")), round(float(msg.get("start_t", math.nan)), 3))

    got = [key_of(m) for m in unique]
    got_keys = set()
    for k in got:
        got_keys.add(_near(k, expected) or k)
    missing = sorted(k for k in expected if k not in got_keys)
    extra = [k for k in got if _near(k, expected) is None]
    kill_window = [k for k in extra if kill is not None and k[1] == "start" and kill.wall - 1.0 <= k[2] <= kill.wall]
    unexplained_extra = [k for k in extra if k not in kill_window]

    order_problems = []
    times = [float(m.get("t", math.nan)) for m in unique]
    for i, (a, b) in enumerate(itertools.pairwise(times)):
        if b < a:
            order_problems.append(f"message {i + 1} (t={b}) after t={a}")
    open_eps: dict[str, float] = {}
    unpaired = []
    for kind, state, start in got:
        if state == "start":
            if kind in open_eps:
                unpaired.append({"type": kind, "start": open_eps[kind], "note": "no end before the next start"})
            open_eps[kind] = start
        elif open_eps.pop(kind, None) is None:
            unpaired.append({"type": kind, "end_of": start, "note": "end without a start"})
    allowed = set(open_at_kill) | {(k[0], k[2]) for k in kill_window}
    unpaired_bad = [u for u in unpaired if "start" not in u or (u["type"], u["start"]) not in allowed]
    for kind, start in open_eps.items():  # still open at the very end
        if (kind, start) not in open_at_kill:
            unpaired_bad.append({"type": kind, "start": start, "note": "never ended"})

    per_session = {s.id: sum(1 for v in expected.values() if v == s.id) for s in sessions}
    value = {
        "received": len(received),
        "unique": len(unique),
        "duplicates_removed": duplicates,
        "expected_from_store": len(expected),
        "expected_per_session": per_session,
        "episodes": sum(1 for k in expected if k[1] == "start"),
        "missing": [list(k) for k in missing],
        "unexplained_extra": [list(k) for k in unexplained_extra],
        "start_just_before_kill_not_in_store": [list(k) for k in kill_window],
        "open_when_killed": sorted([list(k) for k in open_at_kill]),
        "order_problems": order_problems,
        "unpaired": unpaired_bad,
    }
    ok = bool(expected) and not missing and not unexplained_extra and not order_problems and not unpaired_bad
    starts = [m.get("t") for m in unique if m.get("state") == "start"]
    intervals = [round(b - a, 1) for a, b in itertools.pairwise(starts)]
    detail = {"starts": len(starts), "interval_s_median": statistics.median(intervals) if intervals else None}
    return check(value, ok, "each stored alert once, in order, starts and ends paired"), detail


def _near(key: tuple[str, str, float], expected: dict[tuple[str, str, float], str]) -> tuple[str, str, float] | None:
    if key in expected:
        return key
    for k in expected:
        if k[0] == key[0] and k[1] == key[1] and abs(k[2] - key[2]) <= 0.002:
            return k
    return None


def _trend_per_min(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return None if var == 0 else 60.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def _check_process(run: Run) -> tuple[Json, Json, Json, Json]:
    warmup_s = 60.0 if run.quick else 120.0
    last = run.sensorhub[-1] if run.sensorhub else None
    mine = [s for s in run.samples if s.role == "sensorhub" and last is not None and s.pid == last.pid]
    started = (last.started_wall - run.t0_wall) if last is not None else 0.0
    settled = [s for s in mine if s.t_s - started >= warmup_s]
    series = {
        child.name: [(s.t_s, s.rss_kb, s.threads, s.fds) for s in run.samples if s.pid == child.pid]
        for child in (*run.sensorhub, *([run.dashboard] if run.dashboard else []))
    }
    info = {"warmup_s": warmup_s, "samples_after_warmup": len(settled), "series_t_rss_kb_threads_fds": series}
    if len(settled) < 3:
        note = f"only {len(settled)} samples after the {warmup_s:g} s warm-up: run longer"
        bad = check(note, False, "≥ 3 samples after warm-up")
        return bad, bad, bad, info
    first_rss, last_rss = settled[0].rss_kb, settled[-1].rss_kb
    growth = 100.0 * (last_rss - first_rss) / first_rss
    memory = check(
        {
            "rss_after_warmup_mb": round(first_rss / 1024, 1),
            "rss_end_mb": round(last_rss / 1024, 1),
            "rss_max_mb": round(max(s.rss_kb for s in settled) / 1024, 1),
            "growth_pct": round(growth, 2),
            "trend_mb_per_min": _round(_trend_per_min([(s.t_s, s.rss_kb / 1024) for s in settled]), 3),
        },
        growth <= MEMORY_GROWTH_MAX_PCT,
        f"growth ≤ {MEMORY_GROWTH_MAX_PCT:g} % after {warmup_s:g} s",
    )

    def growth_of(values: list[int]) -> float:
        return statistics.median(values[-3:]) - statistics.median(values[:3])

    fd_values = [s.fds for s in settled]
    fds = check(
        {
            "fds_after_warmup": fd_values[:3],
            "fds_end": fd_values[-3:],
            "fds_min_max": [min(fd_values), max(fd_values)],
            "growth": growth_of(fd_values),
            "trend_per_min": _round(_trend_per_min([(s.t_s, s.fds) for s in settled]), 3),
        },
        growth_of(fd_values) <= FD_GROWTH_MAX,
        f"median of the last 3 samples − first 3 after warm-up ≤ {FD_GROWTH_MAX}",
    )
    thread_values = [s.threads for s in settled]
    problems = _log_problems(run)
    threads = check(
        {
            "threads_after_warmup": thread_values[:3],
            "threads_end": thread_values[-3:],
            "growth": growth_of(thread_values),
            "log_problems": problems,
        },
        growth_of(thread_values) <= THREAD_GROWTH_MAX and not problems,
        f"threads growth ≤ {THREAD_GROWTH_MAX}; no pending-task / unretrieved-exception / ResourceWarning / traceback",
    )
    return memory, fds, threads, info


def _log_problems(run: Run) -> list[str]:
    found = []
    for child in run.sensorhub:
        text = child.log_path.read_text(errors="replace") if child.log_path.exists() else ""
        for needle in LOG_PROBLEMS:
            count = text.count(needle)
            if count:
                found.append(f"{child.name}: {needle!r} ×{count}")
    return found


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# ---- the page -------------------------------------------------------------------------------------

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
PAGE_BEGIN, PAGE_END = "<!-- soak:begin -->", "<!-- soak:end -->"


def _seconds(values: list[Json]) -> str:
    got = [f"{v:.2f}" for v in values if isinstance(v, int | float)]
    missing = sum(1 for v in values if not isinstance(v, int | float))
    text = ", ".join(got) if got else "—"
    return text + (f" ({missing} never)" if missing else "") + (" s" if got else "")


def _measured(name: str, value: Json) -> str:
    """One check's measured value in a table cell."""
    if name == "sessions":
        lost = value.get("killed_session_lost_s", {})
        text = " / ".join(value.get("statuses", []))
        if lost:
            text += f"; lost at the kill: {min(lost.values()):.2f}–{max(lost.values()):.2f} s per sensor"
        return text + "".join(f"; {p}" for p in value.get("problems", []))
    if name == "loss_only_in_fault_windows":
        return (
            f"{len(value['unexplained_holes'])} holes outside fault windows; "
            f"{len(value['link_faults_without_hole_or_event'])} link faults without a hole or a record"
        )
    if name == "alerts_exactly_once_in_order":
        return (
            f"{value['expected_from_store']} stored as sent ({value['episodes']} episodes); {value['received']} "
            f"received, {value['duplicates_removed']} duplicates removed, {len(value['missing'])} missing, "
            f"{len(value['unexplained_extra'])} unknown, {len(value['order_problems'])} out of order, "
            f"{len(value['unpaired'])} unpaired"
        )
    if name == "memory_flat" and isinstance(value, dict):
        return (
            f"{value['rss_after_warmup_mb']} MB after warm-up → {value['rss_end_mb']} MB at the end "
            f"({value['growth_pct']:+.1f} %; trend {value['trend_mb_per_min']} MB/min)"
        )
    if name == "no_fd_leak" and isinstance(value, dict):
        return f"{value['fds_after_warmup']} → {value['fds_end']} (range {value['fds_min_max']})"
    if name == "no_task_leak" and isinstance(value, dict):
        problems = value["log_problems"]
        return f"threads {value['threads_after_warmup']} → {value['threads_end']}; log: {problems or 'clean'}"
    if name == "clean_stop" and isinstance(value, dict):
        return f"exit {value.get('exit')} in {value.get('seconds', math.nan):.2f} s"
    if name == "dashboard" and isinstance(value, dict):
        return f"{value['polls']} polls, {len(value['failed'])} failed; wearer listed: {value['wearer_listed_at_end']}"
    return json.dumps(value, ensure_ascii=False)[:160]


def page_block(report: dict[str, Json]) -> str:
    """The markdown written between the markers in docs/reliability.md."""
    verdict = "**all checks passed**" if report["ok"] else f"**failed: {', '.join(report['failed'])}**"
    head = (
        f"Latest `make soak` run: {report['date']}, {report['minutes']:g} min "
        f"({report['wall_s']:.0f} s of wall time with set-up), {os.cpu_count()} CPUs: {verdict}."
    )
    rows = ["| check | ok | measured | passes when |", "|---|---|---|---|"]
    for name, c in report["checks"].items():
        ok = "yes" if c["ok"] else "**no**"
        rows.append(f"| {name.replace('_', ' ')} | {ok} | {_measured(name, c['value'])} | {c['limit']} |")
    rec = report.get("reconnect_s", [])

    def of(kind: str) -> list[Json]:
        return [r["seconds"] for r in rec if r["fault"] == kind]

    holes = [e.get("hole_s") for e in report.get("links", []) if e["fault"] == "link_drop"]
    figures = [
        "| figure | value |",
        "|---|---|",
        f"| reconnect after a link drop (fault → data again) | {_seconds(of('link_drop'))} |",
        f"| stall ended → data | {_seconds(of('stall'))} |",
        f"| bluetoothd back → data | {_seconds(of('bluetoothd_vanish'))} |",
        f"| restart after `kill -9` → data | {_seconds(of('sigkill_restart'))} |",
        "| broker back → angles at the subscriber | "
        + _seconds([b["angles_at_subscriber_after_s"] for b in report.get("broker_restarts", [])])
        + " |",
        f"| hole in the stored data per link drop | {_seconds(holes)} |",
    ]
    return head + "\n\n" + "\n".join(rows) + "\n\n" + "\n".join(figures)


def write_page(report: dict[str, Json], page: Path = PAGE) -> None:
    """Put :func:`page_block` between the markers of ``page`` (the rest of it is kept)."""
    text = page.read_text()
    if PAGE_BEGIN not in text or PAGE_END not in text:
        raise SystemExit(f"{page}: the markers {PAGE_BEGIN} / {PAGE_END} are missing")
    block = f"{PAGE_BEGIN}\n{page_block(report)}\n{PAGE_END}"
    page.write_text(text[: text.index(PAGE_BEGIN)] + block + text[text.index(PAGE_END) + len(PAGE_END) :])


# ---- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0, help="wall time of the soak (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 minutes (a smoke run)")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument(
        "--page", action="store_true", help="write the checks and figures into docs/reliability.md (make soak does)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (store, logs) and say where")
    parser.add_argument(
        "--links-survive-kill",
        action="store_true",
        help="after the SIGKILL, bluetoothd keeps the sensors connected (bluez/bluez#89) instead of dropping them",
    )
    args = parser.parse_args(argv)
    minutes = 3.0 if args.quick else args.minutes
    if minutes < 2.0:
        parser.error("--minutes must be at least 2")
    directory = Path(tempfile.mkdtemp(prefix="sensorhub-soak-"))
    started = time.time()
    try:
        wearer = slouch_loop()
        port = free_port()
        config_path = write_config(directory, port)
        config = load_config(config_path)
        save_calibration(calibration_path(config), wearer.calibration, wearer=WEARER)
        run = Run(
            directory=directory,
            config_path=config_path,
            store_path=config.storage.path,
            minutes=minutes,
            quick=args.quick,
            mosquitto=Mosquitto(directory / "mosquitto", port),
            dashboard_port=free_port(),
            links_survive_kill=args.links_survive_kill,
        )
        try:
            with running_system_bus() as daemon:
                asyncio.run(soak(run, wearer, daemon))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("soak interrupted; everything it started is stopped", file=sys.stderr)
            return 130
        finally:
            for child in (*run.sensorhub, run.dashboard, run.subscriber, run.mosquitto):
                if child is not None:
                    child.kill_now()
        result = analyse(run)
        ok = all(c["ok"] for c in result["checks"].values())
        report = {
            "ok": ok,
            "minutes": minutes,
            "wall_s": round(time.time() - started, 1),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "wearer": {
                "calibration": wearer.calibration.verdict,
                "loop_s": round(wearer.loop_s, 1),
                "slouches_per_loop": len(wearer.slouches),
                "dwell_s": DWELL_S,
            },
            "sensors": {s.placement.value: s.profile for s in SENSORS},
            "failed": [name for name, c in result["checks"].items() if not c["ok"]],
            **result,
            "faults": [
                {
                    "kind": f.kind,
                    "at_s": f.at_s,
                    "sensors": f.placements,
                    **({"lasted_s": round(f.end_wall - f.wall, 2)} if f.end_wall else {}),
                    **f.detail,
                }
                for f in run.faults
            ],
            "notes": run.notes,
            "directory": str(directory) if args.keep else None,
        }
        text = json.dumps(report, indent=1, ensure_ascii=False)
        print(text)
        if args.out is not None:
            args.out.write_text(text + "\n")
        if args.page:
            write_page(report)
            print(f"wrote {PAGE}", file=sys.stderr)
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
