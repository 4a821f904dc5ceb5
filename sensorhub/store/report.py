"""The session report: one picture (PNG) or one self-contained web page (HTML) a person reads at a glance.

What it shows, in plain words (no knowledge of sensorhub needed):

1. a header: who, when, how long, how good the calibration was;
2. the thoracic (upper back), lumbar (lower back) and trunk bend over the session's clock time,
   with slouch episodes shaded red, alerts marked (filled = sent, hollow = held back by snooze,
   quiet hours or the hourly cap), break reminders and cat/camel sets marked, and the slouch
   thresholds dashed;
3. a posture strip: which posture when;
4. time per posture (minutes and share);
5. cat/camel range of motion per rep and region (bars), or a note that there was none;
6. a summary table.

Made with matplotlib (the ``report`` extra) on the Agg backend: no display needed. The HTML page
embeds the PNG as base64 and has its tables as HTML; it loads nothing from anywhere.

Long sessions: each trace is reduced to a min/max envelope of at most 2 000 buckets before
plotting (what a 1 200-pixel-wide plot can show anyway), so an 8-hour session draws in seconds.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from sensorhub.errors import DependencyError, InputError
from sensorhub.model import Event, FloatArray, JsonValue
from sensorhub.store.records import SessionInfo
from sensorhub.store.store import SessionStore

__all__ = ["POSTURE_WORDS", "ReportData", "load_report_data", "render_html", "render_png", "write_report"]

#: Plain words for each posture label.
POSTURE_WORDS: Final[Mapping[str, str]] = {
    "upright": "Upright",
    "slouched": "Slouched",
    "leaning_forward": "Leaning forward",
    "reclined": "Reclined",
    "standing": "Standing",
    "moving": "Moving",
    "exercising": "Exercising",
    "uncalibrated": "Not calibrated yet",
    "unknown": "No reading",
}

_POSTURE_COLORS: Final[Mapping[str, str]] = {
    "upright": "#2e9e44",
    "slouched": "#d62728",
    "leaning_forward": "#ff9f1c",
    "reclined": "#4c78a8",
    "standing": "#8e6bbf",
    "moving": "#8c8c8c",
    "exercising": "#17a2b8",
    "uncalibrated": "#d9d9d9",
    "unknown": "#eeeeee",
}

_TRACES: Final = (
    ("thoracic_flexion_deg", "Upper back (thoracic)", "#1f77b4", "thoracic_threshold_deg"),
    ("lumbar_flexion_deg", "Lower back (lumbar)", "#ff7f0e", "lumbar_threshold_deg"),
    ("trunk_flexion_deg", "Whole trunk lean", "#7f7f7f", "trunk_threshold_deg"),
)
_REGIONS: Final = (("thoracic", "Upper back"), ("lumbar", "Lower back"), ("trunk", "Trunk"), ("pelvis", "Pelvis"))
_REGION_WORDS: Final = {k: w.lower() for k, w in _REGIONS}
_REGION_COLORS: Final = ("#1f77b4", "#ff7f0e", "#7f7f7f", "#9467bd")
_MAX_BUCKETS: Final = 2000


@dataclass(frozen=True, slots=True)
class Episode:
    """A slouch episode: onset → end (epoch s), its alert and how far the back bent."""

    onset: float
    alert: float
    end: float
    open: bool
    state: str
    peak_deg: dict[str, float]


@dataclass(frozen=True, slots=True)
class Rep:
    """One cat/camel rep: set and rep number, start (epoch s), range per region (deg, None = not measured)."""

    set: int
    rep: int
    start: float
    rom_deg: dict[str, float | None]
    too_fast: bool


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything the report shows, already reduced (times are epoch seconds).

    Attributes:
        info: the session.
        t: (M,) plot times (envelope of the frames).
        traces: per trace field, (M,) values (None when the sensors cannot give it).
        strip: (start, end, posture) runs.
        posture_s: seconds per posture label, largest first.
        episodes: slouch episodes.
        breaks: (time, alert state) of break reminders.
        sets: (start, end) of cat/camel sets.
        reps: the reps.
        thresholds: slouch thresholds per trace field (deg).
        calibration: verdict ("good", "fair", "poor") or None.
        measured_s: seconds with angles.
    """

    info: SessionInfo
    t: FloatArray
    traces: dict[str, FloatArray | None]
    strip: list[tuple[float, float, str]]
    posture_s: list[tuple[str, float]]
    episodes: list[Episode]
    breaks: list[tuple[float, str]]
    sets: list[tuple[float, float]]
    reps: list[Rep]
    thresholds: dict[str, float]
    calibration: str | None
    measured_s: float
    summary: list[tuple[str, str]] = field(default_factory=list)


def load_report_data(store: SessionStore, session_id: str) -> ReportData:
    """Read a session and reduce it to what the report shows.

    Raises:
        InputError: unknown session, or it has no angles.
    """
    info = store.get(session_id)
    frame, labels = store.read_frame(info.id)
    if len(frame) == 0:
        raise InputError(f"session {info.id} has no angles to report", advice="replay it first")
    offset = info.clock_offset_s
    t = frame.t + offset
    step = float(np.median(np.diff(frame.t))) if len(frame) > 1 else 0.02
    plot_t, traces = _envelope(t, {name: getattr(frame, name) for name, _, _, _ in _TRACES})
    strip = _runs(t, labels, step)
    seconds: dict[str, float] = {}
    for start, end, label in strip:
        seconds[label] = seconds.get(label, 0.0) + (end - start)
    posture_s = sorted(((k, v) for k, v in seconds.items() if v >= 1.0), key=lambda kv: -kv[1])
    events = store.read_events(info.id)
    last = float(t[-1])
    episodes = [_episode(e, offset, last) for e in events if e.type == "slouch"]
    breaks = [(e.start_t + offset, str(e.data.get("alert_state", "sent"))) for e in events if e.type == "break"]
    sets = [
        (e.start_t + offset, (e.end_t if e.end_t is not None else frame.t[-1]) + offset)
        for e in events
        if e.type == "set"
    ]
    reps = [_rep(e, offset) for e in events if e.type == "rep"]
    alerts = info.settings.get("alerts")
    thresholds: dict[str, float] = {}
    if isinstance(alerts, dict):
        for name, _, _, key in _TRACES:
            value = alerts.get(key)
            if isinstance(value, int | float):
                thresholds[name] = float(value)
    cals = store.read_calibrations(info.id)
    verdict = cals[-1].calibration.verdict if cals else None
    measured = sum(s for label, s in posture_s if label not in ("unknown", "uncalibrated"))
    data = ReportData(
        info, plot_t, traces, strip, posture_s, episodes, breaks, sets, reps, thresholds, verdict, measured
    )
    return _with_summary(data)


def _episode(e: Event, offset: float, last: float) -> Episode:
    onset = e.data.get("onset_t")
    peak = e.data.get("peak_deg")
    return Episode(
        onset=(float(onset) if isinstance(onset, int | float) else e.start_t) + offset,
        alert=e.start_t + offset,
        end=last if e.end_t is None else e.end_t + offset,
        open=e.end_t is None,
        state=str(e.data.get("alert_state", "sent")),
        peak_deg={str(k): float(v) for k, v in peak.items() if isinstance(v, int | float)}
        if isinstance(peak, dict)
        else {},
    )


def _rep(e: Event, offset: float) -> Rep:
    rom = e.data.get("rom_deg")
    values: dict[str, float | None] = {}
    if isinstance(rom, dict):
        for region, _ in _REGIONS:
            v = rom.get(region)
            values[region] = float(v) if isinstance(v, int | float) else None
    number = e.data.get("rep")
    set_no = e.data.get("set")
    return Rep(
        set=int(set_no) if isinstance(set_no, int) else 0,
        rep=int(number) if isinstance(number, int) else 0,
        start=e.start_t + offset,
        rom_deg=values,
        too_fast=bool(e.data.get("too_fast", False)),
    )


def _envelope(
    t: FloatArray, series: Mapping[str, FloatArray | None]
) -> tuple[FloatArray, dict[str, FloatArray | None]]:
    """Min/max envelope per bucket, interleaved (2 points a bucket), when there are many samples."""
    n = len(t)
    if n <= 2 * _MAX_BUCKETS:
        return t, dict(series)
    k = math.ceil(n / _MAX_BUCKETS)
    buckets = math.ceil(n / k)
    pad = buckets * k - n

    def shaped(values: FloatArray) -> FloatArray:
        return np.concatenate([values, np.full(pad, np.nan)]).reshape(buckets, k)

    tb = shaped(t)
    t_lo = np.fmin.reduce(tb, axis=1)
    t_hi = np.fmax.reduce(tb, axis=1)
    out_t = np.column_stack([t_lo, t_hi]).reshape(-1)
    out: dict[str, FloatArray | None] = {}
    for name, values in series.items():
        if values is None:
            out[name] = None
            continue
        vb = shaped(values)
        out[name] = np.column_stack([np.fmin.reduce(vb, axis=1), np.fmax.reduce(vb, axis=1)]).reshape(-1)
    return out_t, out


def _runs(t: FloatArray, labels: Sequence[str], step: float) -> list[tuple[float, float, str]]:
    """(start, end, label) runs; a jump in time longer than 1 s ends a run (a gap counts nowhere)."""
    if not labels:
        return []
    lab = np.asarray(labels)
    change = np.flatnonzero((lab[1:] != lab[:-1]) | (np.diff(t) > 1.0)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(t)]])
    return [
        (float(t[a]), float(t[b - 1]) + step, str(lab[a])) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60.0
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{int(minutes // 60)} h {round(minutes % 60):02d} min"


def _local(epoch_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).astimezone()


def _with_summary(data: ReportData) -> ReportData:
    info = data.info
    start = _local(info.started)
    seconds = dict(data.posture_s)
    sent = [e for e in data.episodes if e.state == "sent"]
    held = len(data.episodes) - len(sent)
    longest = max((e.end - e.onset for e in data.episodes), default=0.0)
    measured = data.measured_s or 1.0
    rows: list[tuple[str, str]] = [
        ("Date", f"{start:%A %d %B %Y}, {start:%H:%M} – {_local(info.started + info.duration_s):%H:%M}"),
        ("Session length", _minutes(info.duration_s)),
        ("Time with posture readings", _minutes(data.measured_s)),
        ("Upright", f"{_minutes(seconds.get('upright', 0.0))} ({100 * seconds.get('upright', 0.0) / measured:.0f} %)"),
        (
            "Slouched",
            f"{_minutes(seconds.get('slouched', 0.0))} ({100 * seconds.get('slouched', 0.0) / measured:.0f} %)",
        ),
        (
            "Slouch alerts",
            f"{len(sent)} sent" + (f", {held} held back (snooze, quiet hours or hourly limit)" if held else ""),
        ),
        ("Longest slouch", _minutes(longest) if data.episodes else "none"),
        ("Break reminders", str(len(data.breaks))),
    ]
    if data.reps:
        sets = sorted({r.set for r in data.reps})
        best = []
        for region, word in _REGIONS:
            values = [v for r in data.reps if (v := r.rom_deg.get(region)) is not None]
            if values:
                best.append(f"{word.lower()} {max(values):.0f}°")
        rows.append(("Cat/camel", f"{len(sets)} set(s), {len(data.reps)} reps; best range: " + ", ".join(best)))
    else:
        rows.append(("Cat/camel", "none"))
    rows.append(
        (
            "Calibration",
            {"good": "good", "fair": "fair (angles less certain)", "poor": "poor (recalibrate)"}.get(
                data.calibration or "", "not recorded"
            ),
        )
    )
    if info.gaps or info.dropped:
        rows.append(("Data gaps", f"{info.gaps} (the recorder fell behind; {info.dropped} samples missing)"))
    if info.status != "complete":
        rows.append(
            (
                "Recording",
                "interrupted (the program stopped before the end)" if info.status == "interrupted" else "still running",
            )
        )
    return dataclasses.replace(data, summary=rows)


# -- drawing -----------------------------------------------------------------------------------


def _matplotlib() -> tuple[Any, Any, Any]:
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DependencyError("reports need matplotlib", extra="report") from exc
    return matplotlib, plt, mdates


def render_png(data: ReportData, *, dpi: int = 100) -> bytes:
    """The report picture as PNG bytes (1 200 px wide at the default dpi)."""
    matplotlib, plt, mdates = _matplotlib()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    info = data.info
    tz = _local(info.started).tzinfo
    with matplotlib.rc_context({"font.size": 10, "axes.titlesize": 12, "axes.titleweight": "bold"}):
        rows = len(data.summary)
        fig = plt.figure(figsize=(12, 10.3 + 0.25 * rows), dpi=dpi)
        grid = fig.add_gridspec(
            4,
            2,
            height_ratios=[3.2, 0.45, 2.3, 0.3 * rows],
            hspace=0.6,
            wspace=0.3,
            left=0.125,
            right=0.97,
            top=0.865,
            bottom=0.02,
        )
        start = _local(info.started)
        fig.suptitle(
            f"Posture session of {info.wearer} — {start:%a %d %b %Y, %H:%M}",
            fontsize=16,
            fontweight="bold",
            x=0.125,
            y=0.985,
            ha="left",
        )
        fig.text(
            0.125,
            0.947,
            f"{_minutes(info.duration_s)} recorded · {len(data.episodes)} slouch episode(s) · "
            f"{len(data.reps)} cat/camel rep(s) · calibration {data.calibration or 'not recorded'} · session {info.id}",
            fontsize=10,
            color="#444444",
        )

        # 1. angle traces
        ax = fig.add_subplot(grid[0, :])
        times = _datetimes(data.t)
        handles: list[Any] = []
        for name, word, color, _ in _TRACES:
            values = data.traces.get(name)
            if values is None:
                continue
            (line,) = ax.plot(times, values, color=color, linewidth=0.9, label=word)
            handles.append(line)
            threshold = data.thresholds.get(name)
            if threshold is not None and name != "trunk_flexion_deg":
                ax.axhline(threshold, color=color, linestyle="--", linewidth=0.8, alpha=0.8)
        if data.thresholds:
            handles.append(Line2D([], [], color="#555555", linestyle="--", linewidth=0.8, label="slouch threshold"))
        for e in data.episodes:
            ax.axvspan(_dt(e.onset), _dt(e.end), color="#d62728", alpha=0.13, linewidth=0)
        for a, b in data.sets:
            ax.axvspan(_dt(a), _dt(b), color="#17a2b8", alpha=0.15, linewidth=0)
        if data.episodes:
            handles.append(Patch(color="#d62728", alpha=0.25, label="slouching (alert episode)"))
        if data.sets:
            handles.append(Patch(color="#17a2b8", alpha=0.3, label="cat/camel set"))
        top = _top(data)
        sent = [e.alert for e in data.episodes if e.state == "sent"]
        held = [e.alert for e in data.episodes if e.state != "sent"]
        if sent:
            ax.plot(_datetimes(np.array(sent)), [top] * len(sent), "v", color="#d62728", markersize=9, clip_on=False)
            handles.append(
                Line2D([], [], marker="v", color="#d62728", linestyle="", markersize=8, label="slouch alert sent")
            )
        if held:
            ax.plot(
                _datetimes(np.array(held)),
                [top] * len(held),
                "v",
                markerfacecolor="white",
                markeredgecolor="#d62728",
                markersize=9,
                clip_on=False,
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="v",
                    markerfacecolor="white",
                    markeredgecolor="#d62728",
                    linestyle="",
                    markersize=8,
                    label="alert held back",
                )
            )
        if data.breaks:
            bt = np.array([b for b, _ in data.breaks])
            ax.plot(_datetimes(bt), [top] * len(bt), "s", color="#8e6bbf", markersize=7, clip_on=False)
            handles.append(
                Line2D([], [], marker="s", color="#8e6bbf", linestyle="", markersize=7, label="break reminder")
            )
        ax.axhline(0.0, color="#222222", linewidth=0.6)
        ax.set_title("How far your back bent forward", loc="left", pad=34)
        ax.set_ylabel("bend from your upright posture (°)\n+ rounded forward,  − arched back")
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8.5, ncol=5, frameon=False)
        ax.grid(True, color="#e5e5e5", linewidth=0.6)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
        ax.set_xlim(times[0], times[-1])
        ax.set_ylim(top=top + (top - ax.get_ylim()[0]) * 0.18)

        # 2. posture strip
        strip = fig.add_subplot(grid[1, :], sharex=ax)
        by_label: dict[str, list[tuple[float, float]]] = {}
        for a, b, label in data.strip:
            by_label.setdefault(label, []).append((a, b))
        for label, spans in by_label.items():
            # One collection per posture: an 8-hour session has thousands of runs.
            starts = mdates.date2num(_datetimes(np.array([a for a, _ in spans])))
            ends = mdates.date2num(_datetimes(np.array([b for _, b in spans])))
            strip.broken_barh(
                list(zip(starts, ends - starts, strict=True)), (0, 1), color=_POSTURE_COLORS.get(label, "#cccccc")
            )
        strip.set_ylim(0, 1)
        strip.set_yticks([])
        strip.set_title("Posture over time (colours as in “Time in each posture” below)", loc="left", fontsize=10)
        strip.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
        strip.set_xlabel(f"time of day ({start:%Z})")

        # 3. time per posture
        bars = fig.add_subplot(grid[2, 0])
        labels = [POSTURE_WORDS.get(k, k) for k, _ in data.posture_s][::-1]
        minutes = [s / 60.0 for _, s in data.posture_s][::-1]
        colors = [_POSTURE_COLORS.get(k, "#cccccc") for k, _ in data.posture_s][::-1]
        total = sum(minutes) or 1.0
        bars.barh(labels, minutes, color=colors, edgecolor="#555555", linewidth=0.5)
        for y, m in enumerate(minutes):
            bars.text(m, y, f"  {m:.1f} min ({100 * m / total:.0f} %)", va="center", fontsize=8.5)
        bars.set_xlim(0, max(minutes or [1.0]) * 1.55)
        bars.set_xlabel("minutes")
        bars.set_title("Time in each posture")

        # 4. cat/camel range of motion
        rom = fig.add_subplot(grid[2, 1])
        _draw_rom(rom, data)

        # 5. summary table
        table_ax = fig.add_subplot(grid[3, :])
        table_ax.axis("off")
        table_ax.set_title("Summary", loc="left")
        table = table_ax.table(
            cellText=[list(r) for r in data.summary], colWidths=[0.28, 0.72], cellLoc="left", bbox=(0.0, 0.0, 1.0, 1.0)
        )
        table.auto_set_font_size(False)
        table.set_fontsize(9.5)
        for (row, col), cell in table.get_celld().items():
            cell.set_edgecolor("#dddddd")
            if col == 0:
                cell.set_text_props(fontweight="bold")
            if row % 2 == 0:
                cell.set_facecolor("#f6f6f6")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
    return buf.getvalue()


def _draw_rom(ax: Any, data: ReportData) -> None:
    ax.set_title("Cat/camel: range of motion per rep")
    if not data.reps:
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "No cat/camel exercise\nin this session",
            ha="center",
            va="center",
            fontsize=11,
            color="#666666",
            transform=ax.transAxes,
        )
        return
    present = [
        (r, w, c)
        for (r, w), c in zip(_REGIONS, _REGION_COLORS, strict=True)
        if any(rep.rom_deg.get(r) is not None for rep in data.reps)
    ]
    n = len(data.reps)
    width = 0.8 / max(len(present), 1)
    x = np.arange(n)
    for i, (region, word, color) in enumerate(present):
        values = [rep.rom_deg.get(region) for rep in data.reps]
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x + (i - (len(present) - 1) / 2) * width, heights, width, color=color, label=word)
    ax.set_xticks(x)
    ax.set_xticklabels(
        [f"S{r.set}·{r.rep}" + ("\nfast" if r.too_fast else "") for r in data.reps],
        fontsize=8,
        rotation=0 if n <= 12 else 90,
    )
    for label, rep in zip(ax.get_xticklabels(), data.reps, strict=True):
        if rep.too_fast:
            label.set_color("#d62728")
    ax.set_xlabel("set · rep  (“fast”: quicker than the coach advises)")
    ax.set_ylabel("range arch → round (°)")
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    ax.grid(True, axis="y", color="#e5e5e5", linewidth=0.6)


def _top(data: ReportData) -> float:
    highs = [float(np.nanmax(v)) for v in data.traces.values() if v is not None and np.isfinite(v).any()]
    highs.extend(data.thresholds.values())
    return max(highs, default=10.0) + 3.0


def _dt(epoch_s: float) -> np.datetime64:
    return np.datetime64(round(epoch_s * 1e6), "us")


def _datetimes(epoch_s: FloatArray) -> Any:
    return np.round(np.asarray(epoch_s) * 1e6).astype("datetime64[us]")


# -- HTML --------------------------------------------------------------------------------------


def render_html(data: ReportData, png: bytes) -> str:
    """A self-contained HTML page: the picture inline (base64), the summary and the events as tables."""
    info = data.info
    start = _local(info.started)
    esc = html.escape
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in data.summary)
    episodes = "".join(
        "<tr>"
        f"<td>{_local(e.onset):%H:%M:%S}</td>"
        f"<td>{esc(_minutes(e.end - e.onset))}{' (still going)' if e.open else ''}</td>"
        f"<td>{esc(', '.join(f'{_REGION_WORDS.get(k, k)} {v:.0f}°' for k, v in e.peak_deg.items()) or '–')}</td>"
        f"<td>{esc(_STATE_WORDS.get(e.state, e.state))}</td>"
        "</tr>"
        for e in data.episodes
    )
    reps = "".join(
        "<tr>"
        f"<td>{r.set}</td><td>{r.rep}</td><td>{_local(r.start):%H:%M:%S}</td>"
        + "".join(f"<td>{'–' if r.rom_deg.get(k) is None else f'{r.rom_deg[k]:.1f}°'}</td>" for k, _ in _REGIONS)
        + f"<td>{'yes' if r.too_fast else ''}</td></tr>"
        for r in data.reps
    )
    title = f"Posture session of {info.wearer} — {start:%a %d %b %Y, %H:%M}"
    encoded = base64.b64encode(png).decode("ascii")
    region_heads = "".join(f"<th>{esc(w)}</th>" for _, w in _REGIONS)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="sub">Session {esc(info.id)} · status {esc(info.status)}</p>',
        f'<table class="summary">{rows}</table>',
        f'<img src="data:image/png;base64,{encoded}" alt="{esc(_ALT)}">',
        "<h2>Slouch episodes</h2>",
        (
            f"<table><tr><th>Began</th><th>Lasted</th><th>Largest bend</th><th>Alert</th></tr>{episodes}</table>"
            if episodes
            else "<p>No slouch episode long enough for an alert.</p>"
        ),
        "<h2>Cat/camel reps</h2>",
        (
            f"<table><tr><th>Set</th><th>Rep</th><th>At</th>{region_heads}<th>Too fast</th></tr>{reps}</table>"
            '<p class="note">Range of motion: how far each part of the back moved between the arched and '
            "the rounded position of the rep.</p>"
            if reps
            else "<p>No cat/camel exercise in this session.</p>"
        ),
        f'<h2>How to read this</h2><p class="note">{esc(_HOW_TO_READ)}</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


_STATE_WORDS: Final[Mapping[str, str]] = {
    "sent": "sent",
    "snoozed": "held back (snoozed)",
    "quiet_hours": "held back (quiet hours)",
    "rate_limited": "held back (hourly limit)",
    "disabled": "alerts off",
}

_ALT: Final = (
    "Plot of upper-back, lower-back and trunk bend over the session with slouch episodes shaded, "
    "posture over time, time per posture and cat/camel range of motion"
)

_HOW_TO_READ: Final = (
    "Angles are measured from the upright posture you held while calibrating: 0° is that posture, "
    "positive means bent (rounded) forward, negative arched back. The upper back is the bend between "
    "the sensors between your shoulder blades and at the bottom of your ribs; the lower back between "
    "that one and the sensor on your pelvis; the trunk is how far your upper body leans as a whole. "
    "A slouch alert comes when you stay above the dashed threshold for longer than the set time."
)

_CSS: Final = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1240px;margin:1.5em auto;"
    "padding:0 1em;color:#222}h1{font-size:1.5em;margin-bottom:.2em}.sub{color:#555;margin-top:0}"
    "table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ddd;padding:.3em .7em;"
    "text-align:left}table.summary th{background:#f6f6f6}img{max-width:100%;height:auto;"
    "border:1px solid #eee}.note{color:#555;max-width:60em}"
)


def write_report(store: SessionStore, session_id: str, path: Path, *, progress: bool = True) -> Path:
    """Write the report of a session: PNG when ``path`` ends in ``.png``, HTML when it ends in ``.html``.

    Raises:
        InputError: another extension, an unknown session, or no angles.
        DependencyError: matplotlib is not installed.
    """
    suffix = path.suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise InputError(f"the report path must end in .png or .html, got {str(path)!r}")
    _matplotlib()
    steps = ["reading", "drawing", "writing"]
    status = _Status(progress)
    status.step(steps[0])
    data = load_report_data(store, session_id)
    status.step(steps[1])
    png = render_png(data)
    status.step(steps[2])
    if suffix == ".png":
        path.write_bytes(png)
    else:
        path.write_text(render_html(data, png), encoding="utf-8")
    status.done()
    return path


class _Status:
    """A transient progress bar over the report's steps (terminal only)."""

    def __init__(self, enabled: bool) -> None:
        import sys

        self._progress: Any = None
        self._task: Any = None
        if enabled and sys.stderr.isatty():
            from rich.progress import Progress

            self._progress = Progress(transient=True)
            self._progress.start()
            self._task = self._progress.add_task("report", total=3)
        self._n = 0

    def step(self, name: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self._n, description=f"report: {name}")
        self._n += 1

    def done(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def summary_json(data: ReportData) -> dict[str, JsonValue]:
    """The summary table as a JSON object (for scripts)."""
    return dict(data.summary)
