"""The built-in web dashboard (``sensorhub dashboard``; also started by ``sensorhub demo``).

A small aiohttp server that subscribes to every wearer's MQTT topics and pushes them to the
browser as server-sent events; the pages (plain HTML, CSS and JavaScript in ``static/``, traces
drawn on a canvas) are served by it too, so it works offline. See docs/dashboards.md.

- :mod:`~sensorhub.dashboard.state`: what is known per wearer, built from MQTT messages (pure);
- :mod:`~sensorhub.dashboard.sse`: the event-stream format and the bounded per-browser queues;
- :mod:`~sensorhub.dashboard.security`: token, session cookie, CSRF and origin rules (pure);
- :mod:`~sensorhub.dashboard.files`: the session list, export and report files (blocking);
- :mod:`~sensorhub.dashboard.server`: the HTTP server, the only aiohttp importer.

aiohttp is the optional extra ``dashboard``: call :func:`require` before importing the server.
"""

from __future__ import annotations

import importlib.util

from sensorhub.errors import DependencyError

__all__ = ["require"]


def require() -> None:
    """Check that the server can be imported.

    Raises:
        DependencyError: aiohttp is not installed.
    """
    if importlib.util.find_spec("aiohttp") is None:
        raise DependencyError("the dashboard needs aiohttp, which is not installed", extra="dashboard")
