"""Commands from dashboards: the ``cmd/<name>`` payloads of DESIGN §7, parsed into typed records.

A payload is a UTF-8 JSON object, or empty (or only whitespace) for "all defaults" where every key
has one. Anything else — an unknown command, bytes that are not UTF-8, text that is not JSON, a JSON
value that is not an object, an unknown or repeated key, a wrong type, a value out of range — is a
:class:`CommandError` whose message names the command, the key and what is allowed, ready for the
``errors`` topic. :func:`parse_command` raises nothing else for any input (property-tested).

- ``calibrate``: ``functional`` bool = false, ``neutral_s`` number 4–120 = 10 (seconds);
  empty = a 10 s neutral capture;
- ``snooze``: ``minutes`` number 1–240 = 30; empty = 30 minutes;
- ``exercise``: ``action`` "start" | "stop" (required), ``reps`` integer 1–100 or null (start only);
- ``pain``: ``region`` "upper" | "mid" | "lower" | null, ``level`` integer 0–10 | null; empty = a
  report without details. A pain report stops a running exercise.

Integers may be written as integral floats (``5.0``). The schemas ``docs/mqtt/schemas/cmd-*.schema.json``
say the same, and the tests check that parser and schemas agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from sensorhub.errors import InputError
from sensorhub.mqtt.topics import COMMANDS

__all__ = [
    "DEFAULT_NEUTRAL_S",
    "DEFAULT_SNOOZE_MIN",
    "MAX_COMMAND_BYTES",
    "NEUTRAL_RANGE_S",
    "PAIN_LEVEL_RANGE",
    "PAIN_REGIONS",
    "REPS_RANGE",
    "SNOOZE_RANGE_MIN",
    "CalibrateCommand",
    "Command",
    "CommandError",
    "ExerciseCommand",
    "PainCommand",
    "SnoozeCommand",
    "parse_command",
]

#: Largest command payload accepted, in bytes; real commands are a few dozen bytes.
MAX_COMMAND_BYTES: Final = 4096

#: Snooze length of the config's default (``[alerts] snooze_min``), minutes; a payload without
#: ``minutes`` leaves the choice to the wearer's config.
DEFAULT_SNOOZE_MIN: Final = 30.0
#: Snooze length range, minutes (one minute to four hours).
SNOOZE_RANGE_MIN: Final = (1.0, 240.0)
#: Default and range of the neutral capture, seconds; under 3 s breathing and sway dominate the
#: average (the same bounds as ``[pipeline] neutral_duration_s``).
DEFAULT_NEUTRAL_S: Final = 10.0
NEUTRAL_RANGE_S: Final = (4.0, 120.0)  # calibration needs 3 s of samples inside the window
#: Range of ``reps`` for an exercise set.
REPS_RANGE: Final = (1, 100)
#: Regions a pain report may name.
PAIN_REGIONS: Final = ("upper", "mid", "lower")
#: Range of a pain level (0 = none, 10 = worst imaginable, as on a numeric rating scale).
PAIN_LEVEL_RANGE: Final = (0, 10)

# A valid payload per command, quoted in advice.
_EXAMPLES: Final = {
    "calibrate": '{"functional": false}',
    "snooze": '{"minutes": 30}',
    "exercise": '{"action": "start", "reps": 10}',
    "pain": '{"region": "lower", "level": 4}',
}

# Longest piece of user input quoted back in a message.
_MAX_SHOWN_CHARS: Final = 40


class CommandError(InputError):
    """A command that cannot be carried out as sent.

    Attributes:
        command: the command name as received (may be one that does not exist).
        key: the payload key at fault, or None when the problem is the whole payload.
        reason: the message without the ``cmd/<name>:`` prefix.
    """

    def __init__(self, command: str, reason: str, *, key: str | None = None, advice: str = "") -> None:
        super().__init__(f"cmd/{_level(command)}: {reason}", advice=advice)
        self.command = command
        self.key = key
        self.reason = reason


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN_CHARS else text[: _MAX_SHOWN_CHARS - 1] + "…"


def _quoted(value: object) -> str:
    """User input for a message: its repr (quoted, controls escaped), cut to a readable length."""
    return _cut(repr(value))


def _level(command: str) -> str:
    """The command level for the ``cmd/<name>:`` prefix: as is when printable, else its repr."""
    return _cut(command if command and command.isprintable() else repr(command))


@dataclass(frozen=True, slots=True)
class CalibrateCommand:
    """Start a calibration.

    Attributes:
        functional: also capture a functional movement (forward bends or cat/camel reps) after the
            neutral capture, to find the left-right axis (DESIGN §3).
        neutral_s: length of the static neutral capture, seconds.
    """

    functional: bool = False
    neutral_s: float = DEFAULT_NEUTRAL_S

    def __post_init__(self) -> None:
        if not NEUTRAL_RANGE_S[0] <= self.neutral_s <= NEUTRAL_RANGE_S[1]:
            raise ValueError(f"neutral_s must be from {NEUTRAL_RANGE_S[0]:g} to {NEUTRAL_RANGE_S[1]:g} s")


@dataclass(frozen=True, slots=True)
class SnoozeCommand:
    """Silence alerts for a while.

    Attributes:
        minutes: how long, 1–240 minutes; None (the payload gave none) = the config's
            ``[alerts] snooze_min``.
    """

    minutes: float | None = None

    def __post_init__(self) -> None:
        if self.minutes is not None and not SNOOZE_RANGE_MIN[0] <= self.minutes <= SNOOZE_RANGE_MIN[1]:
            raise ValueError(f"minutes must be from {SNOOZE_RANGE_MIN[0]:g} to {SNOOZE_RANGE_MIN[1]:g}")


@dataclass(frozen=True, slots=True)
class ExerciseCommand:
    """Start or stop the cat/camel coach.

    Attributes:
        action: ``"start"`` or ``"stop"``.
        reps: reps in the set (start only), or None for the coach's default.
    """

    action: Literal["start", "stop"]
    reps: int | None = None

    def __post_init__(self) -> None:
        if self.action not in ("start", "stop"):
            raise ValueError(f"action must be 'start' or 'stop', got {self.action!r}")
        if self.reps is not None and (self.action != "start" or not REPS_RANGE[0] <= self.reps <= REPS_RANGE[1]):
            raise ValueError(f"reps must be from {REPS_RANGE[0]} to {REPS_RANGE[1]}, and only with 'start'")


@dataclass(frozen=True, slots=True)
class PainCommand:
    """The wearer reports pain; a running exercise stops.

    Attributes:
        region: ``"upper"``, ``"mid"`` or ``"lower"`` back, or None when not said.
        level: 0–10, or None when not said.
    """

    region: str | None = None
    level: int | None = None

    def __post_init__(self) -> None:
        if self.region is not None and self.region not in PAIN_REGIONS:
            raise ValueError(f"region must be one of {', '.join(PAIN_REGIONS)} or None, got {self.region!r}")
        if self.level is not None and not PAIN_LEVEL_RANGE[0] <= self.level <= PAIN_LEVEL_RANGE[1]:
            raise ValueError(f"level must be from {PAIN_LEVEL_RANGE[0]} to {PAIN_LEVEL_RANGE[1]}")


Command: TypeAlias = CalibrateCommand | SnoozeCommand | ExerciseCommand | PainCommand


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> float:
    # Python's json accepts NaN, Infinity and -Infinity, which are not JSON (RFC 8259 §6).
    raise ValueError(f"{name} is not a JSON number")


def _load_object(command: str, payload: bytes) -> dict[str, object]:
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandError(command, f"payload is {len(payload)} bytes; at most {MAX_COMMAND_BYTES}")
    try:
        # utf-8-sig: a byte order mark some editors write is not an error.
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CommandError(command, f"payload is not UTF-8 text (bad byte at {exc.start})") from None
    # JSON whitespace only (RFC 8259 §2), the same characters json.loads skips around a value.
    text = text.strip(" \t\n\r")
    if not text:
        return {}
    try:
        value = json.loads(text, object_pairs_hook=_object_pairs, parse_constant=_reject_constant)
    except _DuplicateKeyError as exc:
        raise CommandError(command, f"key {_quoted(exc.key)} appears twice", key=exc.key) from None
    except json.JSONDecodeError as exc:
        raise CommandError(
            command,
            f"payload is not JSON: {exc.msg} at character {exc.pos}",
            advice=f"send a JSON object, e.g. {_EXAMPLES[command]}",
        ) from None
    except (ValueError, RecursionError) as exc:
        # NaN/Infinity (above), integers too long to convert, nesting deeper than the recursion limit.
        raise CommandError(command, f"payload is not usable JSON: {_cut(str(exc))}") from None
    if not isinstance(value, dict):
        raise CommandError(
            command, f"payload must be a JSON object, got {_json_type(value)}", advice=f"e.g. {_EXAMPLES[command]}"
        )
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check_keys(command: str, obj: Mapping[str, object], allowed: tuple[str, ...]) -> None:
    for key in obj:
        if key not in allowed:
            raise CommandError(command, f"unknown key {_quoted(key)}; allowed: {', '.join(allowed) or 'none'}", key=key)


def _bool(command: str, obj: Mapping[str, object], key: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise CommandError(command, f"{key!r} must be true or false, got {_json_type(value)}", key=key)
    return value


def _out_of_range(command: str, key: str, value: object, wanted: str) -> CommandError:
    shown = _quoted(value) if isinstance(value, int | float) and not isinstance(value, bool) else _json_type(value)
    return CommandError(command, f"{key!r} must be {wanted}, got {shown}", key=key)


def _number(command: str, obj: Mapping[str, object], key: str, default: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    value = obj.get(key, default)
    # JSON numbers arrive as int or float; inf (from 1e999) fails the range test.
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _out_of_range(command, key, value, f"a number from {low:g} to {high:g}")
    return float(value)


def _optional_int(command: str, obj: Mapping[str, object], key: str, bounds: tuple[int, int]) -> int | None:
    low, high = bounds
    value = obj.get(key)
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():  # False for inf
        number = int(value)
    if number is None or not low <= number <= high:
        raise _out_of_range(command, key, value, f"an integer from {low} to {high} or null")
    return number


def _choice(
    command: str, obj: Mapping[str, object], key: str, choices: tuple[str, ...], *, required: bool
) -> str | None:
    if key not in obj and required:
        raise CommandError(command, f"{key!r} is required: one of {', '.join(choices)}", key=key)
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or value not in choices:
        shown = _quoted(value) if isinstance(value, str) else _json_type(value)
        allowed = ", ".join(choices) + ("" if required else " or null")
        raise CommandError(command, f"{key!r} must be one of {allowed}, got {shown}", key=key)
    return value


def _calibrate(obj: Mapping[str, object]) -> CalibrateCommand:
    _check_keys("calibrate", obj, ("functional", "neutral_s"))
    return CalibrateCommand(
        functional=_bool("calibrate", obj, "functional", False),
        neutral_s=_number("calibrate", obj, "neutral_s", DEFAULT_NEUTRAL_S, NEUTRAL_RANGE_S),
    )


def _snooze(obj: Mapping[str, object]) -> SnoozeCommand:
    _check_keys("snooze", obj, ("minutes",))
    if "minutes" not in obj:
        return SnoozeCommand(minutes=None)  # the wearer's configured snooze length
    return SnoozeCommand(minutes=_number("snooze", obj, "minutes", DEFAULT_SNOOZE_MIN, SNOOZE_RANGE_MIN))


def _exercise(obj: Mapping[str, object]) -> ExerciseCommand:
    _check_keys("exercise", obj, ("action", "reps"))
    action = _choice("exercise", obj, "action", ("start", "stop"), required=True)
    reps = _optional_int("exercise", obj, "reps", REPS_RANGE)
    if action == "stop":
        if reps is not None:
            raise CommandError("exercise", "'reps' goes only with action 'start'", key="reps")
        return ExerciseCommand(action="stop")
    return ExerciseCommand(action="start", reps=reps)


def _pain(obj: Mapping[str, object]) -> PainCommand:
    _check_keys("pain", obj, ("region", "level"))
    return PainCommand(
        region=_choice("pain", obj, "region", PAIN_REGIONS, required=False),
        level=_optional_int("pain", obj, "level", PAIN_LEVEL_RANGE),
    )


_PARSERS: Final[Mapping[str, Callable[[Mapping[str, object]], Command]]] = {
    "calibrate": _calibrate,
    "snooze": _snooze,
    "exercise": _exercise,
    "pain": _pain,
}


def parse_command(name: str, payload: bytes) -> Command:
    """Parse the payload of ``cmd/<name>``.

    Args:
        name: the command level of the topic (:meth:`~sensorhub.mqtt.topics.Topics.command_name`).
        payload: the message payload as received.

    Returns:
        The typed command.

    Raises:
        CommandError: the command is unknown or the payload is not valid for it; the message says
            what is allowed. No other exception escapes, whatever the bytes.
    """
    if name not in COMMANDS:
        raise CommandError(name, f"unknown command {_quoted(name)}", advice=f"one of {', '.join(COMMANDS)}")
    return _PARSERS[name](_load_object(name, payload))
