"""Posture classifier: synthetic backs per sensor set, latches, chunk invariance, a simulated scenario."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from sensorhub.config import AlertsConfig
from sensorhub.errors import InputError
from sensorhub.model import Posture
from sensorhub.posture.classifier import (
    ClassifierSettings,
    PostureClassifier,
    ambiguities,
    latch,
    slouch_segments,
)
from sensorhub.sim.evaluate import evaluate
from sensorhub.sim.evaluate_posture import label_confusion
from sensorhub.sim.wearer import WearerConfig
from tests.posture_helpers import ALL, SA, TL, UT, chunks, random_sizes, timeline

SETTINGS = ClassifierSettings.from_alerts(AlertsConfig())

#: Held poses (deg) and the label three sensors give them.
POSES = [
    ({}, "upright"),
    ({"thoracic": 18.0, "lumbar": 4.0, "pelvis": -4.0}, "slouched"),  # thoracic ≥ 15
    ({"thoracic": 6.0, "lumbar": 14.0, "pelvis": -8.0}, "slouched"),  # lumbar ≥ 10
    ({"pelvis": 20.0, "lumbar": 2.0}, "leaning_forward"),  # hip hinge, spine neutral
    ({"pelvis": 15.0, "lumbar": 12.0, "thoracic": 16.0}, "leaning_forward"),  # on the elbows: pelvis forward
    ({"pelvis": -16.0, "lumbar": 4.0}, "reclined"),
    ({"pelvis": 12.0, "lumbar": -10.0}, "standing"),
    ({"movement": 1.2}, "moving"),
]


def _label_at_end(steps, placements=ALL) -> str:
    frame = timeline(steps, placements=placements)
    labels = PostureClassifier(placements, SETTINGS).classify(frame).labels
    return str(labels[-1])


@pytest.mark.parametrize(("pose", "expected"), POSES)
def test_three_sensors_tell_every_pose_apart(pose, expected):
    assert _label_at_end([(2.0, {}), (5.0, pose)]) == expected


@pytest.mark.parametrize(
    ("pose", "expected"),
    [
        ({"thoracic": 18.0, "lumbar": 4.0, "pelvis": -4.0}, "slouched"),
        ({"pelvis": 20.0, "lumbar": 2.0}, "slouched"),  # a hinge looks like a slouch to one sensor
        ({"pelvis": -16.0, "lumbar": 4.0}, "reclined"),
        ({"pelvis": 12.0, "lumbar": -10.0}, "upright"),  # standing looks like sitting upright
        ({"movement": 1.2}, "moving"),
    ],
)
def test_one_sensor_confuses_what_the_docs_say(pose, expected):
    assert _label_at_end([(2.0, {}), (5.0, pose)], placements=(UT,)) == expected


@pytest.mark.parametrize(
    ("pose", "expected"),
    [
        ({"thoracic": 12.0, "lumbar": 12.0, "pelvis": -8.0}, "slouched"),  # spine 24 ≥ 15
        ({"pelvis": 20.0, "lumbar": 2.0}, "leaning_forward"),
        ({"pelvis": 12.0, "lumbar": -10.0}, "standing"),
        ({"pelvis": -16.0, "lumbar": 4.0}, "reclined"),
    ],
)
def test_upper_thoracic_and_sacral(pose, expected):
    assert _label_at_end([(2.0, {}), (5.0, pose)], placements=(UT, SA)) == expected


@pytest.mark.parametrize(
    ("placements", "pose", "expected"),
    [
        ((UT, TL), {"thoracic": 18.0, "lumbar": 4.0, "pelvis": -4.0}, "slouched"),
        ((UT, TL), {"pelvis": 20.0, "lumbar": 2.0}, "slouched"),  # no pelvis: a hinge reads as trunk flexion
        ((UT, TL), {"pelvis": -16.0, "lumbar": 4.0}, "reclined"),
        ((UT, TL), {"pelvis": 12.0, "lumbar": -10.0}, "upright"),
        ((TL, SA), {"thoracic": 6.0, "lumbar": 14.0, "pelvis": -8.0}, "slouched"),
        ((TL, SA), {"thoracic": 18.0, "lumbar": 3.0, "pelvis": -4.0}, "upright"),  # thoracic flexion unseen
        ((TL, SA), {"pelvis": 20.0, "lumbar": 2.0}, "leaning_forward"),
        ((TL, SA), {"pelvis": 12.0, "lumbar": -10.0}, "standing"),
        ((TL, SA), {"pelvis": -16.0, "lumbar": 4.0}, "reclined"),  # from the pelvis alone
        ((SA,), {"pelvis": -16.0, "lumbar": 12.0}, "reclined"),  # a slouch and a recline look alike
        ((TL,), {"thoracic": 18.0}, "unknown"),  # no angle at all
    ],
)
def test_two_sensor_and_partial_rigs(placements, pose, expected):
    assert _label_at_end([(2.0, {}), (5.0, pose)], placements=placements) == expected


def test_segments_and_ambiguities_per_sensor_set():
    assert slouch_segments(ALL) == ("thoracic", "lumbar", "spine")
    assert slouch_segments((UT, TL)) == ("thoracic", "trunk")
    assert slouch_segments((TL, SA)) == ("lumbar",)
    assert slouch_segments((UT, SA)) == ("spine",)
    assert slouch_segments((UT,)) == ("trunk",)
    assert slouch_segments((SA,)) == ()
    assert ambiguities(ALL) == ()
    one = " ".join(ambiguities((UT,)))
    assert "slouched vs leaning_forward" in one
    assert "standing vs upright" in one
    assert "no slouch alerts" in " ".join(ambiguities((SA,)))


def test_latch_holds_between_thresholds_and_on_nan():
    x = np.array([0.0, 16.0, 14.0, 12.5, np.nan, 11.9, 13.0, 15.0])
    state, last = latch(x >= 15.0, x < 12.0, False)
    assert state.tolist() == [False, True, True, True, True, False, False, True]
    assert last is True
    empty, last = latch(np.zeros(0, dtype=bool), np.zeros(0, dtype=bool), True)
    assert len(empty) == 0
    assert last is True


def test_hysteresis_keeps_a_hovering_angle_slouched():
    """Flexion wobbling 2° around the threshold stays one slouched stretch (re-arm only 3° below)."""
    t = np.arange(0.0, 60.0, 0.02)
    frame = timeline([(60.0, {})])
    lumbar = 10.0 + 2.0 * np.sin(2 * np.pi * 0.3 * t)
    lumbar[:250] = 0.0  # upright for 5 s first
    object.__setattr__(frame, "lumbar_flexion_deg", lumbar)
    labels = [str(p) for p in PostureClassifier(ALL, SETTINGS).classify(frame).labels]
    changes = sum(a != b for a, b in itertools.pairwise(labels))
    assert changes == 1
    assert labels[-1] == "slouched"


def test_exercising_uncalibrated_and_unknown_take_precedence():
    frame = timeline([(4.0, {"thoracic": 20.0, "movement": 1.0})])
    clf = PostureClassifier(ALL, SETTINGS)
    assert set(clf.classify(frame, exercising=np.ones(len(frame.t), dtype=bool)).labels) == {Posture.EXERCISING}
    assert set(clf.classify(frame, calibrated=False).labels) == {Posture.UNCALIBRATED}
    assert frame.lumbar_flexion_deg is not None
    frame.lumbar_flexion_deg[10:20] = np.nan  # a sensor gap
    labels = clf.classify(frame).labels
    assert set(labels[10:20]) == {Posture.UNKNOWN}


def test_classifier_is_chunk_invariant():
    frame = timeline([(20.0, pose) for pose, _ in POSES] * 2, ramp_s=3.0)
    whole = PostureClassifier(ALL, SETTINGS).classify(frame)
    clf = PostureClassifier(ALL, SETTINGS)
    parts = [clf.classify(f) for f in chunks(frame, random_sizes(len(frame.t), 3))]
    assert [p for part in parts for p in part.labels] == whole.labels
    for seg in ("thoracic", "lumbar", "spine"):
        assert [f for p in parts for f in p.flexed[seg]] == whole.flexed[seg]


def test_bad_settings_are_refused():
    with pytest.raises(InputError):
        ClassifierSettings({"thoracic": 0.0})
    with pytest.raises(InputError):
        ClassifierSettings({"neck": 10.0})
    with pytest.raises(InputError):
        ClassifierSettings({"thoracic": 5.0}, hysteresis_deg=6.0)
    with pytest.raises(InputError):
        ClassifierSettings({"thoracic": 5.0}, moving_on=0.2, moving_off=0.3)


def test_simulated_stand_walk_sit_against_truth_labels():
    """Confounders (seed 0, first 105 s, upper thoracic + sacral): sitting, standing up, walking,
    turning, sitting down."""
    ev = evaluate(WearerConfig(scenario="confounders", seed=0, duration_s=105.0, placements=(UT, SA)))
    labels = ev.result.posture
    assert labels is not None
    mask = (ev.result.frame.t >= ev.compare_from_s).tolist()
    conf = label_confusion(ev.truth.posture, labels, mask)
    per_truth = Counter[str]()
    for (truth, _), n in conf.items():
        per_truth[truth] += n
    recall = {truth: conf[(truth, truth)] / n for truth, n in per_truth.items()}
    # Measured: upright 0.91, standing 0.43, moving 1.0. The truth labels change at a move's
    # midpoint, so the first half of each walk is "standing" there; here it is "moving", as is the
    # second or two after a stand-up while the movement measure settles (docs/posture.md).
    assert recall["upright"] > 0.85
    assert recall["moving"] > 0.9
    assert recall["standing"] > 0.35
    assert (conf[("standing", "standing")] + conf[("standing", "moving")]) / per_truth["standing"] > 0.98
