"""The durable MQTT outbox: FIFO order, acks, bounded with drop-oldest, survives reopen and SIGKILL."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sensorhub.errors import SinkError
from sensorhub.mqtt.outbox import SCHEMA_VERSION, Outbox, OutboxMessage


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.db"


def test_messages_come_out_in_put_order_until_acked(db_path: Path) -> None:
    with Outbox(db_path, max_messages=100, clock=lambda: 1234.5) as outbox:
        ids = [outbox.put("sensorhub/a/alerts", f"m{i}".encode(), 1, False) for i in range(5)]
        assert ids == sorted(ids)
        assert len(outbox) == 5
        head = outbox.peek(2)
        assert head == [
            OutboxMessage(ids[0], "sensorhub/a/alerts", b"m0", 1, False, 1234.5),
            OutboxMessage(ids[1], "sensorhub/a/alerts", b"m1", 1, False, 1234.5),
        ]
        assert outbox.peek(2) == head  # peek does not remove
        assert outbox.ack(ids[0]) is True
        assert outbox.ack(ids[0]) is False  # already gone
        assert [m.payload for m in outbox.peek(10)] == [b"m1", b"m2", b"m3", b"m4"]
        assert outbox.ack(ids[3]) is True  # acks need not come in order
        assert [m.payload for m in outbox.peek(10)] == [b"m1", b"m2", b"m4"]
        assert len(outbox) == 3


def test_qos_and_retain_round_trip(db_path: Path) -> None:
    with Outbox(db_path) as outbox:
        outbox.put("t/retained", b"", 2, True)
        (message,) = outbox.peek(1)
        assert (message.topic, message.payload, message.qos, message.retain) == ("t/retained", b"", 2, True)
        with pytest.raises(ValueError, match="qos"):
            outbox.put("t", b"x", 3, False)


def test_ids_never_go_back_even_after_the_outbox_empties(db_path: Path) -> None:
    with Outbox(db_path) as outbox:
        first = outbox.put("t", b"a")
        outbox.ack(first)
        assert len(outbox) == 0
        assert outbox.peek(5) == []
    with Outbox(db_path) as outbox:
        assert outbox.put("t", b"b") > first


def test_a_full_outbox_drops_the_oldest_counts_and_warns(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Outbox(db_path, max_messages=3) as outbox:
        for i in range(3):
            outbox.put("sensorhub/a/alerts", f"m{i}".encode())
        assert outbox.overflow_dropped == 0
        with caplog.at_level(logging.WARNING, logger="sensorhub.mqtt.outbox"):
            outbox.put("sensorhub/a/alerts", b"m3")
            outbox.put("sensorhub/a/alerts", b"m4")
        assert [m.payload for m in outbox.peek(10)] == [b"m2", b"m3", b"m4"]
        assert len(outbox) == 3
        assert outbox.overflow_dropped == 2
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 2
        assert "is full (3 messages): dropped the oldest" in warnings[0]
        assert warnings[1].endswith("2 dropped so far")
    # The counter is persisted with the messages.
    with Outbox(db_path, max_messages=3) as outbox:
        assert outbox.overflow_dropped == 2
        assert len(outbox) == 3


def test_a_smaller_capacity_on_reopen_trims_at_the_next_put(db_path: Path) -> None:
    with Outbox(db_path, max_messages=10) as outbox:
        for i in range(6):
            outbox.put("t", f"m{i}".encode())
    with Outbox(db_path, max_messages=3) as outbox:
        assert len(outbox) == 6  # nothing is dropped before it has to be
        outbox.put("t", b"m6")
        assert [m.payload for m in outbox.peek(10)] == [b"m4", b"m5", b"m6"]
        assert outbox.overflow_dropped == 4


def test_messages_survive_close_and_reopen(db_path: Path) -> None:
    with Outbox(db_path) as outbox:
        for i in range(4):
            outbox.put("t", f"m{i}".encode())
        outbox.ack(outbox.peek(1)[0].id)
    with Outbox(db_path) as outbox:
        assert [m.payload for m in outbox.peek(10)] == [b"m1", b"m2", b"m3"]
        assert len(outbox) == 3


def test_database_settings_and_self_contained_schema(db_path: Path) -> None:
    Outbox(db_path).close()
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"mqtt_outbox", "mqtt_outbox_meta", "sqlite_sequence"}
        assert db.execute("SELECT value FROM mqtt_outbox_meta WHERE key = 'schema_version'").fetchone() == (
            SCHEMA_VERSION,
        )
        # PRAGMA user_version belongs to whoever owns the file (the session store, later), not the outbox.
        assert db.execute("PRAGMA user_version").fetchone() == (0,)
    finally:
        db.close()


def test_shares_a_database_file_with_other_tables(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY)")
    db.execute("INSERT INTO sessions VALUES ('s1')")
    db.execute("PRAGMA user_version = 7")
    db.commit()
    db.close()
    with Outbox(db_path) as outbox:
        outbox.put("t", b"x")
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("SELECT id FROM sessions").fetchall() == [("s1",)]
        assert db.execute("PRAGMA user_version").fetchone() == (7,)
    finally:
        db.close()


def test_an_outbox_from_a_newer_sensorhub_is_refused(db_path: Path) -> None:
    Outbox(db_path).close()
    db = sqlite3.connect(db_path)
    db.execute("UPDATE mqtt_outbox_meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(SinkError, match=r"schema version 2, newer than this sensorhub understands \(1\)"):
        Outbox(db_path)


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SinkError, match=r"cannot use the MQTT outbox .*outbox\.db.*move the file aside"):
        Outbox(path)


def test_an_unwritable_location_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SinkError, match="cannot open the MQTT outbox"):
        Outbox(blocker / "outbox.db")


def test_use_after_close_is_a_sink_error(db_path: Path) -> None:
    outbox = Outbox(db_path)
    outbox.close()
    outbox.close()  # idempotent
    with pytest.raises(SinkError, match="cannot write"):
        outbox.put("t", b"x")


def test_bad_capacity_is_refused(db_path: Path) -> None:
    with pytest.raises(ValueError, match="max_messages"):
        Outbox(db_path, max_messages=0)


_PUT_FOREVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from sensorhub.mqtt.outbox import Outbox

    outbox = Outbox(Path(sys.argv[1]), max_messages=1_000_000)
    i = 0
    while True:
        message_id = outbox.put("sensorhub/a/alerts", b"alert %d" % i, 1, False)
        # Reported only after put() returned: the parent holds us to every id it reads.
        print(message_id, i, flush=True)
        i += 1
    """
)


def test_every_put_that_returned_survives_sigkill(db_path: Path) -> None:
    """A child puts as fast as it can and is SIGKILLed mid-stream; reopening finds every reported put."""
    child = subprocess.Popen(
        [sys.executable, "-c", _PUT_FOREVER, str(db_path)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert child.stdout is not None
    reported: list[tuple[int, int]] = []
    try:
        for line in child.stdout:
            message_id, index = map(int, line.split())
            reported.append((message_id, index))
            if len(reported) == 500:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with Outbox(db_path, max_messages=1_000_000) as outbox:
        stored = outbox.peek(1_000_000)
    stored_ids = [m.id for m in stored]
    assert stored_ids == sorted(stored_ids)
    by_id = {m.id: m.payload for m in stored}
    for message_id, index in reported:
        assert by_id[message_id] == b"alert %d" % index
    # The child ran on after the 500th line until the signal landed; whatever it stored is a
    # gap-free prefix of what it put, with no torn or reordered message.
    assert len(stored) >= len(reported)
    assert [m.payload for m in stored] == [b"alert %d" % i for i in range(len(stored))]
