"""Exports of a stored session: the DESIGN §6 files, Parquet and JSON Lines.

Every export puts times on the Unix epoch (``t`` = session clock + the session's clock offset, in
seconds), so files from different sessions line up and ``analyze`` applies quiet hours to them.

Angles (default) — one row per output instant:

- CSV: the angle CSV of DESIGN §6 written by the same :class:`~sensorhub.formats.AngleCsvWriter`
  as ``analyze``: ``t,thoracic_flexion_deg,lumbar_flexion_deg,trunk_flexion_deg,pelvis_tilt_deg,
  posture,spine_flexion_deg,movement,time_utc``; angles with 6 decimals (the stored float64 to
  within 5·10⁻⁷°), ``t`` with 4, ``time_utc`` ISO 8601 UTC with milliseconds; empty = not available;
- Parquet: the same columns, float64, ``posture`` dictionary-encoded, ``time_utc`` a UTC timestamp
  (µs); units in each field's metadata (``unit``) and the session in the schema metadata
  (``sensorhub`` key, JSON);
- JSON Lines: one object per row with the same keys, ``null`` where not available;
- plus the events JSON (DESIGN §6) beside the file: ``NAME.events.json``, times on the epoch too
  (``start_t``, ``end_t`` and every ``*_t`` number inside an event).

Raw (``--raw``) — one row per sample, the raw IMU CSV of DESIGN §6 (``t,sensor,ax,ay,az,gx,gy,gz``,
``sensor`` = placement, m/s² and rad/s), the input of ``analyze``: ``t`` with 6 decimals (1 µs),
acc/gyro as the shortest decimal that reads back to the stored float32 exactly. Parquet keeps
acc/gyro as float32 columns; JSON Lines one object per sample. Rows come in blocks of about half a
second per sensor, sensors interleaved by time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from sensorhub.errors import DependencyError, InputError
from sensorhub.formats import AngleCsvWriter, write_events_json
from sensorhub.model import ANGLE_COLUMNS, Event, FloatArray, JsonValue, SpineFrame
from sensorhub.store.codec import ImuChunk
from sensorhub.store.recorder import FRAME_FIELDS
from sensorhub.store.records import SessionInfo
from sensorhub.store.store import SessionStore

__all__ = [
    "ANGLE_EXPORT_COLUMNS",
    "RAW_COLUMNS",
    "UNITS",
    "ExportFormat",
    "epoch_events",
    "events_path",
    "export_session",
]

ExportFormat = Literal["csv", "parquet", "jsonl"]

RAW_COLUMNS: Final = ("t", "sensor", "ax", "ay", "az", "gx", "gy", "gz")
_ANGLES: Final = ANGLE_COLUMNS[1:5]
#: Frame fields after the DESIGN §6 leading columns, in order (spine_flexion_deg, movement, ...).
_EXTRA_FIELDS: Final = tuple(f for f in FRAME_FIELDS if f not in _ANGLES)
#: Columns of an angle export.
ANGLE_EXPORT_COLUMNS: Final = (*ANGLE_COLUMNS, *_EXTRA_FIELDS, "time_utc")

#: Unit of every exported column ("" = none).
UNITS: Final[Mapping[str, str]] = {
    "t": "s (Unix epoch)",
    "time_utc": "ISO 8601 UTC",
    "posture": "",
    "sensor": "placement",
    "ax": "m/s^2",
    "ay": "m/s^2",
    "az": "m/s^2",
    "gx": "rad/s",
    "gy": "rad/s",
    "gz": "rad/s",
    "movement": "1 (dimensionless, ~0.1 still, ~1 walking)",
    **{name: "deg (+ = flexion, relative to the calibrated neutral)" for name in FRAME_FIELDS if name.endswith("_deg")},
}

_BLOCK_ROWS: Final = 200_000  # rows formatted at a time (memory ~ 100 bytes a row)


def events_path(path: Path) -> Path:
    """Where the events JSON of an angle export goes: ``angles.csv`` → ``angles.events.json``."""
    return path.with_name(path.stem + ".events.json")


def export_session(
    store: SessionStore,
    session_id: str,
    fmt: ExportFormat,
    path: Path,
    *,
    raw: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Export a session; returns the files written.

    Raises:
        InputError: unknown session, nothing to export, or an unknown format.
        DependencyError: Parquet without pyarrow.
    """
    info = store.get(session_id)
    if fmt not in ("csv", "parquet", "jsonl"):
        raise InputError(f"unknown export format {fmt!r}; choose csv, parquet or jsonl")
    if fmt == "parquet":
        _pyarrow()  # fail before writing anything
    if raw:
        chunks = _tracked_chunks(store, info, progress)
        writer = {"csv": _raw_csv, "parquet": _raw_parquet, "jsonl": _raw_jsonl}[fmt]
        writer(chunks, info, path)
        return [path]
    blocks = _frame_blocks(store, info, progress)
    angle_writer = {"csv": _angles_csv, "parquet": _angles_parquet, "jsonl": _angles_jsonl}[fmt]
    angle_writer(blocks, info, path)
    ev_path = events_path(path)
    write_events_json(
        ev_path,
        epoch_events(store.read_events(info.id), info.clock_offset_s),
        session=info.id,
        wearer=info.wearer,
        clock="unix epoch seconds",
    )
    return [path, ev_path]


def epoch_events(events: Iterable[Event], offset_s: float) -> list[Event]:
    """Events with their times moved from the session clock to the epoch (``*_t`` data keys too)."""
    out = []
    for e in events:
        data: dict[str, JsonValue] = {
            k: v + offset_s if _is_time_key(k) and isinstance(v, int | float) and not isinstance(v, bool) else v
            for k, v in e.data.items()
        }
        out.append(Event(e.type, e.start_t + offset_s, None if e.end_t is None else e.end_t + offset_s, data))
    return out


def _is_time_key(key: str) -> bool:
    return key == "t" or key.endswith("_t")


# -- reading -----------------------------------------------------------------------------------


def _tracked_chunks(store: SessionStore, info: SessionInfo, progress: bool) -> Iterator[ImuChunk]:
    raw = info
    if not info.record_raw and info.parent_id is not None:
        raw = store.get(info.parent_id)
    if raw.samples == 0:
        raise InputError(f"session {info.id} has no raw IMU data", advice="export the angles (without --raw)")
    chunks: Iterable[ImuChunk] = store.read_imu_chunks(info.id)
    if progress:
        from sensorhub.progress import track

        first = raw.first_t or 0.0
        chunks = track(chunks, max((raw.last_t or 0.0) - first, 1e-9), lambda c: float(c.t[-1]) - first, "exporting")
    return iter(chunks)


def _frame_blocks(
    store: SessionStore, info: SessionInfo, progress: bool
) -> Iterator[tuple[FloatArray, dict[str, FloatArray | None], list[str]]]:
    """Stored frames regrouped into blocks of up to _BLOCK_ROWS rows: (t, fields, posture)."""
    if info.frames == 0:
        raise InputError(f"session {info.id} has no angles", advice="export the raw data with --raw, or replay it")
    blocks: Iterable[tuple[SpineFrame, list[str]]] = store.read_frames(info.id)
    if progress:
        from sensorhub.progress import track

        first = info.first_t or 0.0
        blocks = track(
            blocks, max((info.last_t or 0.0) - first, 1e-9), lambda b: float(b[0].t[-1]) - first, "exporting"
        )
    pending: list[tuple[SpineFrame, list[str]]] = []
    rows = 0
    for block in blocks:
        pending.append(block)
        rows += len(block[0])
        if rows >= _BLOCK_ROWS:
            yield _join(pending)
            pending, rows = [], 0
    if pending:
        yield _join(pending)


def _join(blocks: Sequence[tuple[SpineFrame, list[str]]]) -> tuple[FloatArray, dict[str, FloatArray | None], list[str]]:
    t = np.concatenate([f.t for f, _ in blocks])
    fields: dict[str, FloatArray | None] = {}
    for name in FRAME_FIELDS:
        parts = [getattr(f, name) for f, _ in blocks]
        if all(p is None for p in parts):
            fields[name] = None
        else:
            fields[name] = np.concatenate(
                [np.full(len(f.t), np.nan) if p is None else p for (f, _), p in zip(blocks, parts, strict=True)]
            )
    return t, fields, [label for _, ls in blocks for label in ls]


def _iso_utc(epoch_s: FloatArray) -> list[str]:
    ms = np.round(epoch_s * 1e3).astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(ms, unit="ms").tolist()]


# -- angle writers -----------------------------------------------------------------------------


def _angles_csv(
    blocks: Iterator[tuple[FloatArray, dict[str, FloatArray | None], list[str]]], info: SessionInfo, path: Path
) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        writer = AngleCsvWriter(fh, (*_EXTRA_FIELDS, "time_utc"), decimals=6)
        for t, fields, posture in blocks:
            epoch = t + info.clock_offset_s
            extra: dict[str, FloatArray | Sequence[str] | None] = {name: fields[name] for name in _EXTRA_FIELDS}
            extra["time_utc"] = _iso_utc(epoch)
            writer.write(epoch, {name: fields[name] for name in _ANGLES}, posture, extra)


def _angles_jsonl(
    blocks: Iterator[tuple[FloatArray, dict[str, FloatArray | None], list[str]]], info: SessionInfo, path: Path
) -> None:
    number_columns = (*_ANGLES, *_EXTRA_FIELDS)
    keys = [b'{"t":', *(f',"{name}":'.encode() for name in number_columns), b',"posture":"', b'","time_utc":"']
    with path.open("wb") as fh:
        for t, fields, posture in blocks:
            epoch = t + info.clock_offset_s
            parts: list[NDArray[np.bytes_] | bytes] = [keys[0], *_fixed(epoch, 4)]
            for key, name in zip(keys[1:], number_columns, strict=False):
                values = fields[name]
                parts += [key, *(_fixed(values, 6) if values is not None else [b"null"])]
            labels = np.asarray(posture, dtype=np.bytes_)  # posture labels are plain ASCII words
            utc = np.datetime_as_string(np.round(epoch * 1e3).astype("datetime64[ms]"), unit="ms").astype(np.bytes_)
            parts += [keys[-2], labels, keys[-1], utc, b'Z"}\n']
            fh.write(_bytes_matrix(parts, len(t)))


def _fixed(values: FloatArray, decimals: Literal[4, 6]) -> list[NDArray[np.bytes_]]:
    """Numbers with 4 or 6 decimals as byte-string columns (sign and whole part, decimals); ``null``
    where not finite.

    Rounds ``values · 10^decimals`` to an integer: a printed value is within half a unit of the last
    digit plus the float64 error of the product (what JSON Lines needs), vectorised.
    """
    finite = np.isfinite(values)
    scale = 10**decimals
    scaled = np.round(np.where(finite, values, 0.0) * scale).astype(np.int64)
    whole_part, frac = np.divmod(np.abs(scaled), scale)
    whole = _via_unique(whole_part, lambda u: _tight(u.astype("S20")))
    if (scaled < 0).any():
        whole = np.where(scaled < 0, np.char.add(b"-", whole), whole)
    if decimals == 6:
        milli, micro = np.divmod(frac, 1000)
        columns = [whole, _POINT_DIGITS[milli], _DIGITS[micro]]
    else:
        columns = [whole, _POINT_FOUR[frac]]
    if not finite.all():
        columns = [np.where(finite, columns[0], b"null"), *(np.where(finite, c, b"") for c in columns[1:])]
    return columns


def _angles_parquet(
    blocks: Iterator[tuple[FloatArray, dict[str, FloatArray | None], list[str]]], info: SessionInfo, path: Path
) -> None:
    pa, pq = _pyarrow()
    fields = [pa.field("t", pa.float64(), metadata={"unit": UNITS["t"]})]
    for name in _ANGLES:
        fields.append(pa.field(name, pa.float64(), metadata={"unit": UNITS[name]}))
    fields.append(pa.field("posture", pa.dictionary(pa.int8(), pa.string()), metadata={"unit": ""}))
    for name in _EXTRA_FIELDS:
        fields.append(pa.field(name, pa.float64(), metadata={"unit": UNITS.get(name, "")}))
    fields.append(pa.field("time_utc", pa.timestamp("us", tz="UTC"), metadata={"unit": "UTC"}))
    schema = pa.schema(fields, metadata={"sensorhub": json.dumps(_schema_doc(info, "angles"))})
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        for t, values, posture in blocks:
            epoch = t + info.clock_offset_s
            n = len(t)
            columns: list[Any] = [pa.array(epoch)]
            for name in _ANGLES:
                columns.append(_pa_float(pa, values[name], n))
            columns.append(
                pa.array(posture, pa.string()).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string()))
            )
            for name in _EXTRA_FIELDS:
                columns.append(_pa_float(pa, values[name], n))
            columns.append(pa.array(np.round(epoch * 1e6).astype("datetime64[us]"), pa.timestamp("us", tz="UTC")))
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def _pa_float(pa: Any, values: FloatArray | None, n: int) -> Any:
    if values is None:
        return pa.nulls(n, pa.float64())
    return pa.array(values, pa.float64(), mask=~np.isfinite(values))


def _schema_doc(info: SessionInfo, kind: str) -> dict[str, JsonValue]:
    return {
        "format": f"sensorhub.{kind}/1",
        "session": info.id,
        "wearer": info.wearer,
        "started_utc": dt.datetime.fromtimestamp(info.started, tz=dt.UTC).isoformat(),
        "status": info.status,
        "clock": "t = Unix epoch seconds",
        "units": dict(UNITS),
    }


# -- raw writers -------------------------------------------------------------------------------


def _raw_blocks(
    chunks: Iterator[ImuChunk],
) -> Iterator[tuple[FloatArray, NDArray[np.int64], list[str], NDArray[np.float32]]]:
    """Chunks regrouped into blocks: (t, placement code per row, placement names, (N, 6) float32 acc|gyro)."""
    names: list[str] = []
    pending: list[ImuChunk] = []
    rows = 0

    def flush() -> tuple[FloatArray, NDArray[np.int64], list[str], NDArray[np.float32]]:
        codes = []
        for c in pending:
            name = c.placement.value
            if name not in names:
                names.append(name)
            codes.append(np.full(len(c), names.index(name), dtype=np.int64))
        t = np.concatenate([c.t for c in pending])
        values = np.concatenate([np.hstack((c.acc, c.gyro)) for c in pending])
        return t, np.concatenate(codes), list(names), values

    for chunk in chunks:
        pending.append(chunk)
        rows += len(chunk)
        if rows >= _BLOCK_ROWS:
            yield flush()
            pending, rows = [], 0
    if pending:
        yield flush()


def _bytes_matrix(parts: Sequence[NDArray[np.bytes_] | bytes], n: int) -> bytes:
    """Rows made of byte-string columns and literals, as one buffer (vectorised).

    Each column becomes an (n, width) uint8 block (numpy pads shorter strings with NUL bytes), the
    blocks are laid side by side and the NUL padding is squeezed out: a few passes over memory
    instead of a Python format call per value. The text itself never contains NUL.
    """
    blocks = []
    for part in parts:
        if isinstance(part, bytes):
            blocks.append(np.broadcast_to(np.frombuffer(part, dtype=np.uint8), (n, len(part))))
        else:
            width = part.dtype.itemsize
            blocks.append(np.ascontiguousarray(part).view(np.uint8).reshape(n, width))
    flat = np.hstack(blocks).reshape(-1)
    text: bytes = flat[flat != 0].tobytes()
    return text


def _format_time(t_epoch: FloatArray) -> tuple[NDArray[np.bytes_], NDArray[np.bytes_], NDArray[np.bytes_]]:
    """Seconds with exactly 6 decimals as three byte-string columns: sign and whole seconds, the
    first three decimals with the point, the last three."""
    us = np.round(t_epoch * 1e6).astype(np.int64)
    sec, frac = np.divmod(np.abs(us), 1_000_000)
    whole = _via_unique(sec, lambda u: _tight(u.astype("S20")))
    if (us < 0).any():
        whole = np.where(us < 0, np.char.add(b"-", whole), whole)
    milli, micro = np.divmod(frac, 1000)
    return whole, _POINT_DIGITS[milli], _DIGITS[micro]


#: "000" ... "999", and the same with a leading point: the decimals of a time by table look-up.
_DIGITS: Final = np.array([b"%03d" % i for i in range(1000)], dtype="S3")
_POINT_DIGITS: Final = np.array([b".%03d" % i for i in range(1000)], dtype="S4")
_POINT_FOUR: Final = np.array([b".%04d" % i for i in range(10000)], dtype="S5")


def _format_f32(values: NDArray[np.float32]) -> NDArray[np.bytes_]:
    """Shortest decimal that reads back to the same float32 (numpy's repr), per value."""
    return _via_unique(values, lambda u: _tight(u.astype("S16")))


def _tight(strings: NDArray[np.bytes_]) -> NDArray[np.bytes_]:
    """The same strings in the narrowest fixed width (less padding to squeeze out later)."""
    if len(strings) == 0:
        return strings
    width = int(np.char.str_len(strings).max())
    out: NDArray[np.bytes_] = strings.astype(f"S{max(width, 1)}")
    return out


def _via_unique(values: NDArray[Any], fmt: Callable[[NDArray[Any]], NDArray[np.bytes_]]) -> NDArray[np.bytes_]:
    """Format each distinct value once: sensor data are quantised (a few thousand distinct values per column)."""
    unique, inverse = np.unique(values, return_inverse=True)
    out: NDArray[np.bytes_] = fmt(unique)[inverse.reshape(-1)]
    return out


def _raw_text(
    t: FloatArray, codes: NDArray[np.int64], names: list[str], values: NDArray[np.float32], keys: Sequence[bytes]
) -> bytes:
    """Rows ``keys[0] t keys[1] sensor keys[2] ax ... keys[7] gz keys[8]`` for a block of samples."""
    width = max(len(n) for n in names)
    sensor = np.array([n.encode() for n in names], dtype=f"S{width}")[codes]
    whole, milli, micro = _format_time(t)
    parts: list[NDArray[np.bytes_] | bytes] = [keys[0], whole, milli, micro, keys[1], sensor]
    for k in range(6):
        parts += [keys[k + 2], _format_f32(values[:, k])]
    parts.append(keys[8])
    return _bytes_matrix(parts, len(t))


def _raw_csv(chunks: Iterator[ImuChunk], info: SessionInfo, path: Path) -> None:
    keys = (b"", *([b","] * 7), b"\n")
    with path.open("wb") as fh:
        fh.write((",".join(RAW_COLUMNS) + "\n").encode())
        for t, codes, names, values in _raw_blocks(chunks):
            fh.write(_raw_text(t + info.clock_offset_s, codes, names, values, keys))


def _raw_jsonl(chunks: Iterator[ImuChunk], info: SessionInfo, path: Path) -> None:
    keys = (b'{"t":', b',"sensor":"', b'","ax":', *(f',"{name}":'.encode() for name in RAW_COLUMNS[3:]), b"}\n")
    with path.open("wb") as fh:
        for t, codes, names, values in _raw_blocks(chunks):
            fh.write(_raw_text(t + info.clock_offset_s, codes, names, values, keys))


def _raw_parquet(chunks: Iterator[ImuChunk], info: SessionInfo, path: Path) -> None:
    pa, pq = _pyarrow()
    fields = [pa.field("t", pa.float64(), metadata={"unit": UNITS["t"]})]
    fields.append(pa.field("sensor", pa.dictionary(pa.int8(), pa.string()), metadata={"unit": UNITS["sensor"]}))
    for name in RAW_COLUMNS[2:]:
        fields.append(pa.field(name, pa.float32(), metadata={"unit": UNITS[name]}))
    schema = pa.schema(fields, metadata={"sensorhub": json.dumps(_schema_doc(info, "raw_imu"))})
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        for t, codes, names, values in _raw_blocks(chunks):
            sensor = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int8)), pa.array(names, pa.string()))
            columns: list[Any] = [pa.array(t + info.clock_offset_s), sensor]
            columns.extend(pa.array(np.ascontiguousarray(values[:, k])) for k in range(6))
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DependencyError(
            "Parquet export needs pyarrow", extra="parquet", advice="pip install 'sensorhub[parquet]'"
        ) from exc
    return pa, pq
