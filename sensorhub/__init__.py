"""sensorhub: real-time thoracic and lumbar posture sensing from BLE IMUs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sensorhub")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
