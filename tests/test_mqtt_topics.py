"""Wearer-id sanitiser and the MQTT v1 topic tree (DESIGN §7)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensorhub.errors import ConfigError
from sensorhub.model import Placement
from sensorhub.mqtt.topics import COMMANDS, DELIVERY, MAX_WEARER_BYTES, Delivery, Topics, sanitize_wearer

# Any Unicode text, surrogates and unassigned code points included.
any_text = st.text(st.characters(exclude_categories=()), max_size=120)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 5.0 §4.7 filter matching, for checking our filters (no $-topic rule needed here)."""
    levels, filter_levels = topic.split("/"), topic_filter.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(levels) or (level != "+" and level != levels[i]):
            return False
    return len(levels) == len(filter_levels)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alex", "alex"),
        ("Alex-Smith_2", "Alex-Smith_2"),
        ("  alex\n", "alex"),  # surrounding whitespace goes
        ("alex smith", "alex_smith"),  # inner whitespace becomes _
        ("a+b#c/d", "a_b_c_d"),  # wildcards and separator
        ("a\x00b", "a_b"),  # NUL (MQTT 5.0 §1.5.4)
        ("a\x07b\x7fc\x9fd", "a_b_c_d"),  # C0, DEL, C1 controls
        ("a\u200bb", "a_b"),  # zero-width space (Cf)
        ("a\u202eb", "a_b"),  # right-to-left override (Cf)
        ("a\u2028b", "a_b"),  # line separator
        ("a\ud800b", "a_b"),  # lone surrogate: UTF-8 cannot encode it
        ("a\ufffeb\U0010ffffc\ufdd0", "a_b_c_"),  # noncharacters
        ("$SYS", "_SYS"),  # brokers reserve $-topics
        ("a$b", "a$b"),  # only a leading $ matters
        ("_bob_", "_bob_"),  # the user's own underscores are kept
        ("Jo\u0308rg", "Jörg"),  # NFC: decomposed and composed spellings give one topic
        ("jörg", "jörg"),
        ("日本語", "日本語"),
        ("👩‍💻", "👩_💻"),  # the zero-width joiner is a format character
    ],
)
def test_sanitize_examples(raw: str, expected: str) -> None:
    assert sanitize_wearer(raw) == expected


def test_sanitize_truncates_on_a_character_boundary() -> None:
    assert sanitize_wearer("a" * 100) == "a" * MAX_WEARER_BYTES
    # "é" is 2 bytes: 32 of them fill 64 bytes exactly.
    assert sanitize_wearer("é" * 40) == "é" * 32
    # "€" is 3 bytes: 21 make 63 bytes, a 22nd would make 66.
    assert sanitize_wearer("€" * 30) == "€" * 21
    # "😀" is 4 bytes; one ASCII byte first leaves 63, so 15 fit (61 bytes).
    result = sanitize_wearer("x" + "😀" * 20)
    assert result == "x" + "😀" * 15
    assert len(result.encode("utf-8")) == 61


@pytest.mark.parametrize("raw", ["", " ", "\t\n", "\u3000"])
def test_sanitize_rejects_what_leaves_nothing(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        sanitize_wearer(raw)
    assert info.value.key == "wearer.id"
    assert "not a usable wearer id" in str(info.value)
    assert 'e.g. id = "alex"' in str(info.value)


@given(any_text)
def test_sanitize_output_is_a_safe_topic_level_or_a_config_error(raw: str) -> None:
    try:
        safe = sanitize_wearer(raw)
    except ConfigError:
        assert not raw.strip()
        return
    assert raw.strip(), "a blank id must be rejected"
    data = safe.encode("utf-8")  # would raise on a surrogate
    assert 0 < len(data) <= MAX_WEARER_BYTES
    assert not any(char in "+#/" for char in safe)
    assert not safe.startswith("$")
    for char in safe:
        assert not char.isspace()
        assert unicodedata.category(char) not in {"Cc", "Cs", "Cf", "Zl", "Zp"}
    assert unicodedata.is_normalized("NFC", safe)
    assert sanitize_wearer(safe) == safe  # idempotent


@given(any_text)
def test_topics_of_any_wearer_stay_inside_its_tree(raw: str) -> None:
    try:
        topics = Topics.for_wearer(raw)
    except ConfigError:
        return
    names = [topics.status, topics.angles, topics.posture, topics.alerts, topics.session, topics.exercise]
    names += [topics.errors, *(topics.sensor(p.value) for p in Placement), *(topics.cmd(c) for c in COMMANDS)]
    for name in names:
        assert name.startswith(topics.base + "/")
        assert not any(char in "+#" for char in name)
        assert name.split("/")[1] == topics.wearer  # the wearer is exactly one level
    for command in COMMANDS:
        assert topics.command_name(topics.cmd(command)) == command
        assert topic_matches(topics.cmd_filter, topics.cmd(command))


def test_topic_tree_of_design_7() -> None:
    topics = Topics.for_wearer("alex")
    assert (topics.wearer, topics.root, topics.base) == ("alex", "sensorhub", "sensorhub/alex")
    assert topics.status == "sensorhub/alex/status"
    assert topics.angles == "sensorhub/alex/angles"
    assert topics.posture == "sensorhub/alex/posture"
    assert topics.alerts == "sensorhub/alex/alerts"
    assert topics.session == "sensorhub/alex/session"
    assert topics.exercise == "sensorhub/alex/exercise"
    assert topics.errors == "sensorhub/alex/errors"
    assert topics.sensor("upper_thoracic") == "sensorhub/alex/sensors/upper_thoracic"
    assert topics.sensor(Placement.SACRAL) == "sensorhub/alex/sensors/sacral"
    assert topics.sensors_filter == "sensorhub/alex/sensors/+"
    assert topics.cmd_filter == "sensorhub/alex/cmd/+"
    assert [topics.cmd(c) for c in COMMANDS] == [
        "sensorhub/alex/cmd/calibrate",
        "sensorhub/alex/cmd/snooze",
        "sensorhub/alex/cmd/exercise",
        "sensorhub/alex/cmd/pain",
    ]


def test_for_wearer_sanitises_and_takes_a_multi_level_root() -> None:
    topics = Topics.for_wearer(" alex smith ", root="home/desk1/sensorhub")
    assert topics.status == "home/desk1/sensorhub/alex_smith/status"
    assert topics.cmd_filter == "home/desk1/sensorhub/alex_smith/cmd/+"
    assert topics.command_name("home/desk1/sensorhub/alex_smith/cmd/pain") == "pain"


def test_command_name_is_the_inverse_of_cmd_for_incoming_topics() -> None:
    topics = Topics.for_wearer("alex")
    assert topics.command_name("sensorhub/alex/cmd/snooze") == "snooze"
    # Unknown names come back as received, for parse_command to reject with a message.
    assert topics.command_name("sensorhub/alex/cmd/dance") == "dance"
    assert topics.command_name("sensorhub/alex/cmd/") == ""
    assert topics.command_name("sensorhub/alex/cmd/snooze/extra") is None
    assert topics.command_name("sensorhub/bob/cmd/snooze") is None
    assert topics.command_name("sensorhub/alex/angles") is None
    assert topics.command_name("sensorhub/alexander/cmd/snooze") is None


def test_cmd_filter_matches_command_topics_only() -> None:
    topics = Topics.for_wearer("alex")
    assert topic_matches(topics.cmd_filter, "sensorhub/alex/cmd/anything")
    assert not topic_matches(topics.cmd_filter, "sensorhub/alex/cmd/a/b")
    assert not topic_matches(topics.cmd_filter, "sensorhub/alex/angles")
    assert topic_matches(topics.sensors_filter, topics.sensor("sacral"))


def test_cmd_rejects_unknown_command() -> None:
    with pytest.raises(ValueError, match="unknown command 'dance'; one of calibrate, snooze, exercise, pain"):
        Topics.for_wearer("alex").cmd("dance")


@pytest.mark.parametrize("placement", ["", "a/b", "a+b", "#", "a b", "$x"])
def test_sensor_rejects_a_placement_that_is_not_one_level(placement: str) -> None:
    with pytest.raises(ValueError, match="not a valid MQTT topic level"):
        Topics.for_wearer("alex").sensor(placement)


@pytest.mark.parametrize(
    ("root", "problem"),
    [
        ("", "is empty"),
        ("$SYS", "starts with '\\$'"),
        ("/sensorhub", "empty topic level"),
        ("sensorhub/", "empty topic level"),
        ("a//b", "empty topic level"),
        ("a/+/b", "wildcard"),
        ("a#", "wildcard"),
        ("a\x00b", "control character"),
        ("x" * 300, "longer than 256"),
    ],
)
def test_bad_roots_are_config_errors(root: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Topics.for_wearer("alex", root=root)


def test_constructor_refuses_an_unsanitised_wearer() -> None:
    assert Topics("alex").status == "sensorhub/alex/status"
    with pytest.raises(ConfigError, match="not sanitised"):
        Topics("alex smith")
    with pytest.raises(ConfigError):
        Topics("")


def test_delivery_follows_the_design_table() -> None:
    assert DELIVERY["status"] == Delivery(qos=1, retain=True)
    assert DELIVERY["angles"] == Delivery(qos=0, retain=False)
    assert DELIVERY["posture"] == Delivery(qos=1, retain=True)
    assert DELIVERY["alerts"] == Delivery(qos=1, retain=False)
    assert DELIVERY["sensors"] == Delivery(qos=1, retain=True)
    assert DELIVERY["session"] == Delivery(qos=1, retain=True)
    assert DELIVERY["exercise"] == Delivery(qos=1, retain=False)
    assert DELIVERY["errors"] == Delivery(qos=1, retain=False)
    assert DELIVERY["discovery"] == Delivery(qos=1, retain=True)
    with pytest.raises(TypeError):
        DELIVERY["angles"] = Delivery(qos=1, retain=True)  # type: ignore[index]
