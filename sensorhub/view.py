"""The live terminal view of a running service (rich), or plain log lines when not on a terminal."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sensorhub.service import ServiceStatus

__all__ = ["LiveView", "render"]

log = logging.getLogger("sensorhub.view")

_ANGLES = (
    ("thoracic_flexion_deg", "thoracic"),
    ("lumbar_flexion_deg", "lumbar"),
    ("trunk_flexion_deg", "trunk"),
    ("pelvis_tilt_deg", "pelvis"),
)
_POSTURE_STYLE = {"upright": "green", "slouched": "bold red", "exercising": "cyan", "uncalibrated": "yellow"}
_BAR_DEG = 30.0  # a full bar is ±30°
_BAR_CELLS = 20


def _bar(value: float | None) -> Text:
    """A centred bar: left of the middle = extension, right = flexion."""
    half = _BAR_CELLS // 2
    if value is None:
        return Text("·" * _BAR_CELLS, style="dim")
    cells = max(-half, min(half, round(value / _BAR_DEG * half)))
    left = " " * (half + min(cells, 0)) + "█" * -min(cells, 0)
    right = "█" * max(cells, 0) + " " * (half - max(cells, 0))
    return Text(left + "│" + right, style="red" if value >= 15 else "green")


def render(status: ServiceStatus) -> Group:
    """The view of one status snapshot."""
    head = Text()
    head.append(f"sensorhub · {status.wearer}  ", style="bold")
    posture = status.posture
    head.append(posture.replace("_", " "), style=_POSTURE_STYLE.get(posture, "white"))
    if status.t is not None:
        head.append(f"   t = {status.t:,.0f} s")
    if status.calibrating:
        head.append(f"\ncalibrating: {status.calibrating}", style="yellow")

    angles = Table(box=None, show_header=False, padding=(0, 1))
    for key, label in _ANGLES:
        value = status.angles.get(key)
        shown = "–" if value is None else f"{value:+6.1f}°"
        angles.add_row(label, shown, _bar(value))

    sensors = Table(box=None, header_style="bold", padding=(0, 1))
    for column in ("sensor", "link", "rate", "battery", "dropped"):
        sensors.add_column(column)
    for s in status.sensors.values():
        sensors.add_row(
            s.placement.value,
            Text("connected", style="green") if s.connected else Text("waiting", style="yellow"),
            "–" if s.rate_hz is None else f"{s.rate_hz:.0f} Hz",
            "–" if s.battery_pct is None else f"{s.battery_pct:.0f} %",
            str(s.dropped),
        )

    footer = Text()
    footer.append(f"alerts: {status.alerts_started}", style="bold")
    for line in status.last_alerts[-3:]:
        footer.append(f"\n  {line}")
    if status.exercise:
        footer.append("\nexercise:", style="bold")
        for line in status.exercise[-3:]:
            footer.append(f"\n  {line}")
    footer.append(f"\nMQTT: {status.mqtt}   recording: {status.recording}")
    for error in status.errors[-2:]:
        footer.append(f"\n{error}", style="red")
    return Group(head, angles, sensors, footer)


class LiveView:
    """Shows a service's status: a live panel on a terminal, a log line every ``log_period_s`` otherwise.

    Args:
        status: the service's status object (read, never written).
        stream: where to draw; the view is live only when it is a terminal.
        refresh_hz: redraws per second on a terminal.
        log_period_s: seconds between plain status lines when not on a terminal.
    """

    def __init__(
        self,
        status: ServiceStatus,
        *,
        stream: TextIO | None = None,
        refresh_hz: float = 4.0,
        log_period_s: float = 10.0,
        force_terminal: bool | None = None,
    ) -> None:
        self.status = status
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream, force_terminal=force_terminal)
        self.refresh_hz = refresh_hz
        self.log_period_s = log_period_s

    @property
    def live(self) -> bool:
        """Whether the view draws a live panel (a terminal) or logs lines."""
        return self.console.is_terminal

    async def run(self) -> None:
        """Draw until cancelled."""
        if not self.live:
            await self._log_lines()
            return
        with Live(render(self.status), console=self.console, refresh_per_second=self.refresh_hz) as live:
            while True:
                await asyncio.sleep(1.0 / self.refresh_hz)
                live.update(render(self.status))

    async def _log_lines(self) -> None:
        while True:
            await asyncio.sleep(self.log_period_s)
            s = self.status
            angles = ", ".join(
                f"{label} {s.angles[key]:+.1f}°" for key, label in _ANGLES if s.angles.get(key) is not None
            )
            log.info(
                "t=%.0f s posture=%s %s alerts=%d mqtt=%s", s.t or 0.0, s.posture, angles, s.alerts_started, s.mqtt
            )
