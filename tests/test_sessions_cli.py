"""`sensorhub sessions`: list, show, export, report, replay, delete; bad ids exit 2 with one line."""

from __future__ import annotations

import json

import pytest

from sensorhub.cli import main
from sensorhub.store import SessionStore
from tests.store_helpers import template
from tests.test_cli_simulate import run_cli


@pytest.fixture
def db(tmp_path_factory, tmp_path):
    return template(tmp_path_factory.getbasetemp()).copy_to(tmp_path)


@pytest.fixture
def sid(db):
    with SessionStore(db) as store:
        return store.list_sessions()[0].id


def test_list_json_shape(db, sid, capsys):
    assert main(["sessions", "--db", str(db), "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert isinstance(doc, list)
    assert len(doc) == 1
    row = doc[0]
    for key in ("id", "wearer", "started", "ended", "status", "duration_s"):
        assert key in row
    assert row["id"] == sid
    assert row["wearer"] == "alex"
    assert row["status"] == "complete"
    assert isinstance(row["started"], float)
    assert row["ended"] > row["started"]
    assert row["duration_s"] == pytest.approx(row["ended"] - row["started"], abs=1e-3)


def test_list_is_newest_first_and_db_goes_after_the_action_too(db, sid, capsys):
    assert main(["sessions", "--db", str(db), "replay", sid[:10]]) == 0
    capsys.readouterr()
    assert main(["sessions", "list", "--json", "--db", str(db)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["parent_id"] for r in doc] == [sid, None]  # same start; the derived one was made later
    assert main(["sessions", "list", "--db", str(db)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:5] == ["ID", "WEARER", "STARTED", "LENGTH", "STATUS"]
    assert f"replay of {sid}" in table[1]


def test_db_from_the_environment(db, sid, capsys, monkeypatch):
    monkeypatch.setenv("SENSORHUB_DB", str(db))
    assert main(["sessions", "show", sid]) == 0
    out = capsys.readouterr().out
    assert sid in out
    assert "complete" in out
    assert "calibration" in out


def test_show_json(db, sid, capsys):
    assert main(["sessions", "--db", str(db), "show", sid, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["id"] == sid
    assert doc["event_counts"] == {"set": 1}
    assert doc["calibrations"][0]["verdict"] in ("good", "fair", "poor")


def test_export_formats(db, sid, tmp_path, capsys):
    out = tmp_path / "angles.csv"
    assert main(["sessions", "--db", str(db), "export", sid, "--format", "csv", "-o", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out), str(tmp_path / "angles.events.json")]
    assert out.read_text().startswith(
        "t,thoracic_flexion_deg,lumbar_flexion_deg,trunk_flexion_deg,pelvis_tilt_deg,posture"
    )
    raw = tmp_path / "raw.csv"
    assert main(["sessions", "--db", str(db), "export", sid, "--format", "csv", "--raw", "-o", str(raw)]) == 0
    assert raw.read_text().startswith("t,sensor,ax,ay,az,gx,gy,gz\n")
    pq = tmp_path / "a.parquet"
    assert main(["sessions", "--db", str(db), "export", sid, "--format", "parquet", "-o", str(pq)]) == 0
    assert pq.read_bytes()[:4] == b"PAR1"


def test_report_png_and_html(db, sid, tmp_path):
    png = tmp_path / "r.png"
    html = tmp_path / "r.html"
    assert main(["sessions", "--db", str(db), "report", sid, "-o", str(png)]) == 0
    assert main(["sessions", "--db", str(db), "report", sid, "-o", str(html)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert html.read_text().startswith("<!doctype html>")


def test_replay_with_options(db, sid, capsys):
    assert (
        main(["sessions", "--db", str(db), "replay", sid, "--thoracic-threshold", "5", "--dwell", "2", "--json"]) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["of"] == sid
    assert doc["session"]["parent_id"] == sid
    assert doc["settings"]["alerts"]["thoracic_threshold_deg"] == 5.0
    assert doc["settings"]["alerts"]["dwell_s"] == 2.0


def test_replay_window_options_need_recompute(db, sid, capsys):
    assert main(["sessions", "--db", str(db), "replay", sid, "--neutral", "0:10"]) == 2
    assert "--calibration recompute" in capsys.readouterr().err


def test_delete(db, sid, capsys):
    assert main(["sessions", "--db", str(db), "delete", sid]) == 0
    assert capsys.readouterr().out.startswith(f"deleted {sid}")
    assert main(["sessions", "--db", str(db), "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    "action",
    [
        ["show", "nope"],
        ["export", "nope", "--format", "csv", "-o", "x.csv"],
        ["report", "nope", "-o", "x.png"],
        ["replay", "nope"],
        ["delete", "nope"],
    ],
)
def test_bad_id_exits_2_with_one_line(db, action, capsys):
    assert main(["sessions", "--db", str(db), *action]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no session 'nope'" in err
    assert "Traceback" not in err


def test_bad_id_in_a_real_process(db):
    proc = run_cli("sessions", "--db", str(db), "show", "nope")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("sensorhub: error: no session")


def test_missing_store(tmp_path, capsys):
    missing = tmp_path / "none.db"
    assert main(["sessions", "--db", str(missing), "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["sessions", "--db", str(missing), "show", "x"]) == 2
    assert "no session store" in capsys.readouterr().err
    assert not missing.exists()


def test_usage_errors(db, capsys):
    assert main(["sessions", "--db", str(db)]) == 2  # no action: help on stderr
    assert "ACTION" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["sessions", "--db", str(db), "export", "x", "--format", "xls", "-o", "a"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "invalid choice" in err
