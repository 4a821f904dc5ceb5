"""Scenarios contain what they promise, and their ground truth is consistent."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sensorhub.errors import SimulationError
from sensorhub.sim.scenarios import SCENARIOS, build_script
from sensorhub.sim.wearer import SimulatedWearer, WearerConfig

SEEDS = (0, 1, 2)


def _events(wearer, type_):
    return [e for e in wearer.events() if e.type == type_]


@pytest.mark.parametrize("seed", SEEDS)
def test_desk_session(seed):
    wearer = SimulatedWearer(WearerConfig(scenario="desk_session", seed=seed))
    assert 1200.0 <= wearer.duration_s < 1300.0
    ev = wearer.events()
    types = [e.type for e in ev]
    assert types[:2] == ["neutral", "functional"]
    slouches = _events(wearer, "slouch")
    assert len(slouches) >= 5
    durations = [e.end_t - e.start_t for e in slouches]
    assert min(durations) < 30.0 < max(durations)  # one shorter than the default 30 s dwell, and long ones
    activities = {e.data["activity"] for e in _events(wearer, "activity")}
    assert {"swivel", "lean_forward", "recline", "reach"} <= activities

    t = np.arange(0.0, wearer.duration_s, 0.1)
    tr = wearer.truth(t)
    posture = np.array(tr.posture)
    assert {"upright", "slouched", "leaning_forward", "reclined", "moving"} <= set(posture)
    # Slouched: a clearly flexed spine. Leaning forward: hip hinge with a near-neutral spine.
    for e in slouches:
        peak = e.data["peak_deg"]
        assert peak["lumbar"] > 5.0
        assert peak["thoracic"] > 4.0
    lean = posture == "leaning_forward"
    assert np.median(tr.pelvis_tilt_deg[lean]) > 12.0
    assert np.abs(tr.thoracic_flexion_deg[lean]).max() < 4.0
    assert np.abs(tr.lumbar_flexion_deg[lean]).max() < 5.0
    recline = posture == "reclined"
    assert np.median(tr.pelvis_tilt_deg[recline]) < -10.0
    upright = posture == "upright"
    assert np.percentile(np.abs(tr.trunk_flexion_deg[upright]), 95) < 3.0
    # Chair swivels turn the heading by tens of degrees.
    assert np.ptp(tr.heading_deg) > 30.0


@pytest.mark.parametrize("seed", SEEDS)
def test_cat_camel(seed):
    wearer = SimulatedWearer(WearerConfig(scenario="cat_camel", seed=seed, functional="none"))
    sets = _events(wearer, "set")
    reps = _events(wearer, "rep")
    assert [s.data["reps"] for s in sets] == [5, 5]
    assert len(reps) == 10
    assert [r.data["too_fast"] for r in reps].count(True) == 1
    roms = np.array([[r.data["rom_deg"][k] for k in ("thoracic", "lumbar", "trunk", "pelvis")] for r in reps])
    assert np.all(roms[:, :2] > 10.0)
    slow = [r for r in reps if not r.data["too_fast"]]
    assert np.polyfit(np.arange(len(slow)), [r.data["rom_deg"]["lumbar"] for r in slow], 1)[0] > 0  # growing range
    assert min(r.data["duration_s"] for r in slow) > 2.5 * max(r.data["duration_s"] for r in reps if r.data["too_fast"])
    # The pause: a gap of ≥ 10 s between two reps of the first set.
    gaps = [b.start_t - a.end_t for a, b in itertools.pairwise(reps[:5])]
    assert max(gaps) >= 10.0
    tr = wearer.truth(np.arange(reps[0].start_t, reps[-1].end_t, 0.1))
    assert "exercising" in tr.posture


@pytest.mark.parametrize("seed", SEEDS)
def test_long_sitting_script(seed):
    for functional in ("bends", "cat_camel", "none"):
        assert build_script("long_sitting", seed, functional).t == pytest.approx(7200.0)
    s = build_script("long_sitting", seed)
    wearer = SimulatedWearer(WearerConfig(scenario="long_sitting", seed=seed, duration_s=s.t))
    assert len(_events(wearer, "slouch")) >= 3
    tr = wearer.truth(np.arange(0.0, wearer.duration_s, 1.0))
    assert np.mean(np.array(tr.posture) == "upright") > 0.8


@pytest.mark.parametrize("seed", SEEDS)
def test_confounders(seed):
    wearer = SimulatedWearer(WearerConfig(scenario="confounders", seed=seed))
    activities = [e.data["activity"] for e in _events(wearer, "activity")]
    for name in ("stand_up", "walk", "sit_down", "elbows", "pick_up"):
        assert name in activities
    tr = wearer.truth(np.arange(0.0, wearer.duration_s, 0.1))
    assert "standing" in tr.posture
    assert np.max(tr.trunk_flexion_deg) > 70.0  # picking something off the floor
    assert len(_events(wearer, "slouch")) == 0


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_with_each_functional_movement(name):
    for functional in ("bends", "cat_camel", "none"):
        s = build_script(name, 0, functional)
        kinds = [m.type for m in s.marks]
        assert kinds[0] == "neutral"
        assert ("functional" in kinds) == (functional != "none")
        times = [seg.t0 for seg in s.segments]
        assert times == sorted(times)


def test_seeds_give_different_people():
    a = SimulatedWearer(WearerConfig(seed=0)).events()
    b = SimulatedWearer(WearerConfig(seed=1)).events()
    assert [e.start_t for e in a] != [e.start_t for e in b]


def test_a_wearer_streams_once():
    wearer = SimulatedWearer(WearerConfig(duration_s=2.0))
    assert sum(len(chunk) for chunk in wearer.notifications()) > 0
    with pytest.raises(SimulationError, match="already been streamed"):
        next(iter(wearer.notifications()))
