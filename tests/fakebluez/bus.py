"""A private, system-like D-Bus daemon for the fake BlueZ, owned by one test or bench.

bleak's BlueZ backend always connects to the *system* bus (``BusType.SYSTEM`` in
``bleak/backends/bluezdbus/manager.py`` ``BlueZManager.async_init`` and ``client.py``
``BleakClientBlueZDBus.connect``), and dbus-fast resolves that address from
``DBUS_SYSTEM_BUS_ADDRESS`` on every connect (``dbus_fast/_private/address.py``
``get_system_bus_address``). So a private ``dbus-daemon`` plus that variable is all it takes to put
real bleak in front of a fake ``bluetoothd``.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["BLUETOOTHCTL_VERSION", "DBusDaemon", "DBusDaemonError", "find_dbus_daemon", "running_system_bus"]

#: What the ``bluetoothctl`` shim prints. bleak runs ``bluetoothctl --version`` once per process
#: (``bleak/backends/bluezdbus/version.py`` ``BlueZFeatures.check_bluez_version``) and refuses to
#: connect below 5.55; without the program it logs a warning and assumes 5.55+.
BLUETOOTHCTL_VERSION = "5.66"

# dbus-daemon(1) "CONFIGURATION FILE". A system-type bus on a socket of its own, EXTERNAL auth only
# (what dbus-fast and bleak use) and a policy that lets anyone own any name, so the fake can own
# org.bluez without the root-only policy of /usr/share/dbus-1/system.d/bluetooth.conf.
_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

_SHIM = f"""#!/bin/sh
# bluetoothctl stand-in for the fake BlueZ: bleak only asks for the version.
echo "bluetoothctl: {BLUETOOTHCTL_VERSION}"
"""


class DBusDaemonError(RuntimeError):
    """dbus-daemon is missing or did not come up; the message says which and shows its log."""


def find_dbus_daemon() -> str:
    """Path of ``dbus-daemon`` (Debian package ``dbus-daemon``)."""
    found = shutil.which("dbus-daemon") or next(
        (p for p in ("/usr/bin/dbus-daemon", "/bin/dbus-daemon") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise DBusDaemonError("dbus-daemon not found; install the Debian package `dbus-daemon`")
    return found


class DBusDaemon:
    """One ``dbus-daemon`` process with its config, socket and log in ``directory``.

    The socket lives in ``directory``, so keep that path short: ``sun_path`` holds 107 bytes, which
    a pytest ``tmp_path`` can exceed; :func:`running_system_bus` uses ``tempfile.mkdtemp``.
    """

    def __init__(self, directory: Path, *, start_timeout_s: float = 10.0) -> None:
        self.directory = directory
        self.socket_path = directory / "system_bus_socket"
        self.config_path = directory / "system.conf"
        self.log_path = directory / "dbus-daemon.log"
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._address: str | None = None

    @property
    def address(self) -> str:
        """The bus address printed by the daemon (``unix:path=…,guid=…``)."""
        if self._address is None:
            raise DBusDaemonError("dbus-daemon is not running")
        return self._address

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """True while the daemon process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> str:
        """Start the daemon and return its address once it accepts connections."""
        if self._process is not None:
            raise DBusDaemonError("dbus-daemon already started")
        self.config_path.write_text(_CONFIG.format(socket=self.socket_path))
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    find_dbus_daemon(),
                    f"--config-file={self.config_path}",
                    "--nofork",
                    "--nopidfile",
                    "--nosyslog",
                    "--print-address",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                close_fds=True,
            )
        try:
            assert self._process.stdout is not None  # Popen(stdout=PIPE) always sets it
            self._address = self._read_address(self._process.stdout)
        except BaseException:
            self.stop()
            raise
        return self._address

    def _read_address(self, stdout: IO[bytes]) -> str:
        # --print-address writes the address once the socket listens; a deadline instead of a
        # blocking readline so a daemon that hangs fails the test with its log.
        deadline = time.monotonic() + self._start_timeout_s
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DBusDaemonError(f"dbus-daemon printed no address in {self._start_timeout_s} s{self._log_tail()}")
            ready, _, _ = select.select([stdout], [], [], remaining)
            if ready:
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    raise DBusDaemonError(f"dbus-daemon exited before printing its address{self._log_tail()}")
                line += chunk
        return line.decode().strip()

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").strip()
            if text:
                return f"; its log:\n{text[-2000:]}"
        return ""

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL after 5 s) and reap it. Idempotent."""
        process, self._process, self._address = self._process, None, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        finally:
            if process.stdout is not None:
                process.stdout.close()


@contextlib.contextmanager
def running_system_bus() -> Iterator[DBusDaemon]:
    """Run a private system bus and point ``DBUS_SYSTEM_BUS_ADDRESS`` at it; restore env after.

    Also puts a ``bluetoothctl`` shim first on ``PATH`` (see :data:`BLUETOOTHCTL_VERSION`). Usable
    from benches: ``with running_system_bus() as bus: asyncio.run(main())``.
    """
    directory = Path(tempfile.mkdtemp(prefix="fakebluez-"))
    shim_dir = directory / "bin"
    shim_dir.mkdir()
    shim = shim_dir / "bluetoothctl"
    shim.write_text(_SHIM)
    shim.chmod(0o755)
    saved = {name: os.environ.get(name) for name in ("DBUS_SYSTEM_BUS_ADDRESS", "PATH")}
    daemon = DBusDaemon(directory)
    try:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = daemon.start()
        os.environ["PATH"] = os.pathsep.join(p for p in (str(shim_dir), saved["PATH"]) if p)
        yield daemon
    finally:
        daemon.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(directory, ignore_errors=True)
