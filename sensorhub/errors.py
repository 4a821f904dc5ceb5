"""One exception tree for sensorhub.

Every error the package raises on purpose derives from :class:`SensorhubError`,
so callers (the CLI above all) can catch one type and print one clear line::

    SensorhubError
    ├── ConfigError          bad or missing configuration (file, key, what is allowed)
    │   └── ProfileError     a firmware profile file that is wrong (file, key)
    ├── InputError           bad input data: CSV rows, payloads, windows, arguments
    │   ├── DataFormatError  a file that does not follow a DESIGN §6 format (file, row)
    │   ├── DecodeError      a sensor payload that cannot be decoded (profile, what is wrong)
    │   └── CalibrationError a calibration capture that cannot be used (what moved, when)
    ├── SimulationError      an impossible simulator request (unknown scenario, rate ...)
    ├── SourceError          a sensor source failed at run time
    ├── SinkError            a sink (store, MQTT, dashboard) failed at run time
    └── DependencyError      an optional extra is not installed (Parquet, report plots)

The CLI maps ConfigError and InputError to exit code 2 and everything else to 1.
"""

from __future__ import annotations

__all__ = [
    "CalibrationError",
    "ConfigError",
    "DataFormatError",
    "DecodeError",
    "DependencyError",
    "InputError",
    "ProfileError",
    "SensorhubError",
    "SimulationError",
    "SinkError",
    "SourceError",
]


class SensorhubError(Exception):
    """Base of every error sensorhub raises on purpose.

    Attributes:
        advice: what the user can do about it, or "" when there is nothing to add.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, advice: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.advice = advice

    def __str__(self) -> str:
        if self.advice:
            return f"{self.message} ({self.advice})"
        return self.message


class ConfigError(SensorhubError):
    """A configuration file or value is wrong.

    Attributes:
        path: the config file, or None for values given on the command line.
        key: dotted key that is wrong, e.g. ``sensors[0].placement``; "" for the whole file.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, key: str = "", advice: str = "") -> None:
        where = ": ".join(part for part in (path or "", key) if part)
        super().__init__(f"{where}: {message}" if where else message, advice=advice)
        self.path = path
        self.key = key


class ProfileError(ConfigError):
    """A firmware profile file (``firmware_profiles/*.toml``) that is wrong.

    ``path`` is the profile file and ``key`` the dotted key, e.g. ``commands.start[1].hex``.
    """


class InputError(SensorhubError):
    """Input data or arguments that cannot be used (bad usage, bad data)."""

    exit_code = 2


class DecodeError(InputError):
    """A sensor payload that cannot be decoded: too short, too long, bad header or checksum.

    The decoder that raises it has dropped the payload (no samples come out of it) and counted it;
    the stream goes on with the next payload.

    Attributes:
        profile: the profile name, e.g. ``polar_verity_sense``.
        payload: the offending bytes (at most the first 64 are kept).
    """

    def __init__(self, message: str, *, profile: str, payload: bytes = b"", advice: str = "") -> None:
        super().__init__(f"{profile}: {message}", advice=advice)
        self.profile = profile
        self.payload = bytes(payload[:64])


class DataFormatError(InputError):
    """A file that does not follow its DESIGN §6 format.

    Attributes:
        path: the offending file.
        row: 1-based line number in the file (header = 1), or None when not row-specific.
    """

    def __init__(self, message: str, *, path: str, row: int | None = None, advice: str = "") -> None:
        where = f"{path}:{row}" if row is not None else path
        super().__init__(f"{where}: {message}", advice=advice)
        self.path = path
        self.row = row


class CalibrationError(InputError):
    """A calibration window that cannot be used: too short, not still, no functional movement.

    Attributes:
        sensor: placement or sensor id the problem is about ("" when it concerns the rig).
        window: (start_s, end_s) of the window looked at, or None.
    """

    def __init__(
        self, message: str, *, sensor: str = "", window: tuple[float, float] | None = None, advice: str = ""
    ) -> None:
        prefix = f"{sensor}: " if sensor else ""
        super().__init__(prefix + message, advice=advice)
        self.sensor = sensor
        self.window = window


class SimulationError(InputError):
    """A simulator request that cannot be met (unknown scenario, unsupported rate ...)."""


class SourceError(SensorhubError):
    """A sensor source failed at run time (BLE, replay, simulator)."""


class SinkError(SensorhubError):
    """A sink failed at run time (store, MQTT, dashboard)."""


class DependencyError(SensorhubError):
    """A feature needs an optional extra that is not installed.

    Attributes:
        extra: the extra to install, e.g. ``parquet`` for ``pip install 'sensorhub[parquet]'``.
    """

    def __init__(self, message: str, *, extra: str, advice: str = "") -> None:
        super().__init__(message, advice=advice or f"pip install 'sensorhub[{extra}]'")
        self.extra = extra
