"""Reports: a PNG and a self-contained HTML page; clear errors for a wrong path or a missing extra."""

from __future__ import annotations

import base64
import builtins
import re

import pytest

from sensorhub.errors import DependencyError, InputError
from sensorhub.store import SessionStore
from sensorhub.store.report import load_report_data, write_report
from tests.store_helpers import template

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(tmp_path_factory, tmp_path):
    rec = template(tmp_path_factory.getbasetemp())
    with SessionStore(rec.copy_to(tmp_path)) as s:
        yield s


def test_png_report(store, tmp_path):
    sid = store.list_sessions()[0].id
    path = write_report(store, sid, tmp_path / "r.png", progress=False)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 50_000  # a real picture, not an empty canvas


def test_html_report_is_self_contained(store, tmp_path):
    sid = store.list_sessions()[0].id
    path = write_report(store, sid, tmp_path / "r.html", progress=False)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)["\']', text, flags=re.IGNORECASE)
    assert refs, "the picture must be embedded"
    assert not [r for r in refs if not r.startswith("data:")]
    assert not re.search(r"https?://", text)
    assert "<link" not in text.lower()
    assert "<script" not in text.lower()
    embedded = re.search(r'src="data:image/png;base64,([^"]+)"', text)
    assert embedded is not None
    assert base64.b64decode(embedded.group(1)).startswith(PNG_MAGIC)
    assert "Summary" not in text or "<table" in text
    assert "Slouch episodes" in text
    assert "How to read this" in text


def test_report_summary_in_plain_words(store):
    sid = store.list_sessions()[0].id
    data = load_report_data(store, sid)
    keys = [k for k, _ in data.summary]
    for needed in ("Session length", "Upright", "Slouched", "Slouch alerts", "Cat/camel", "Calibration"):
        assert needed in keys
    assert dict(data.summary)["Calibration"] in ("good", "fair (angles less certain)", "poor (recalibrate)")


def test_report_path_must_end_in_png_or_html(store, tmp_path):
    sid = store.list_sessions()[0].id
    with pytest.raises(InputError, match=r"\.png or \.html"):
        write_report(store, sid, tmp_path / "r.pdf", progress=False)


def test_report_without_matplotlib_names_the_extra(store, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    sid = store.list_sessions()[0].id
    with pytest.raises(DependencyError, match=r"sensorhub\[report\]"):
        write_report(store, sid, tmp_path / "r.png", progress=False)
