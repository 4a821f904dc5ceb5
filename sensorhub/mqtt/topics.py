"""Topic names of the MQTT v1 contract (DESIGN §7) and the wearer-id sanitiser they rest on.

Every topic of one wearer lives under ``<root>/<wearer>/`` (root ``sensorhub`` by default)::

    sensorhub/<wearer>/status                 1, retained, LWT   online | offline (plain text, not JSON)
    sensorhub/<wearer>/angles                 0                  angles at publish_rate_hz
    sensorhub/<wearer>/posture                1, retained        posture on change
    sensorhub/<wearer>/alerts                 1                  alert start / end
    sensorhub/<wearer>/sensors/<placement>    1, retained        per-sensor link and battery
    sensorhub/<wearer>/session                1, retained        current session and its stats
    sensorhub/<wearer>/exercise               1                  rep and set events
    sensorhub/<wearer>/errors                 1                  rejected commands and other input errors
    sensorhub/<wearer>/cmd/<command>          subscribed         calibrate | snooze | exercise | pain

:data:`DELIVERY` holds the QoS / retain column for the publisher. The wearer level is made safe by
:func:`sanitize_wearer`; everything here is pure string work.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from sensorhub.errors import ConfigError

__all__ = [
    "COMMANDS",
    "DEFAULT_ROOT",
    "DELIVERY",
    "MAX_WEARER_BYTES",
    "Delivery",
    "Topics",
    "sanitize_wearer",
]

#: Longest wearer level in UTF-8 bytes (DESIGN §7).
MAX_WEARER_BYTES: Final = 64

#: Root of the topic tree.
DEFAULT_ROOT: Final = "sensorhub"

#: Commands sensorhub subscribes to under ``cmd/``.
COMMANDS: Final = ("calibrate", "snooze", "exercise", "pain")

# Longest root accepted, in UTF-8 bytes; MQTT allows 65535 for a whole topic (MQTT 5.0 §1.5.4), a
# root is a short prefix and a long one is a configuration mistake.
_MAX_ROOT_BYTES: Final = 256

# Characters that may not appear in a topic level: the wildcards and the level separator
# (MQTT 5.0 §4.7.1).
_TOPIC_SPECIAL: Final = frozenset("+#/")

# Unicode categories replaced in a wearer id: controls (MQTT 5.0 §1.5.4 forbids U+0000 and
# advises against U+0001–U+001F and U+007F–U+009F), surrogates (UTF-8 cannot encode them) and
# format characters (zero-width and bidirectional controls make two ids that look the same differ).
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cs", "Cf", "Zl", "Zp"})


def _is_noncharacter(char: str) -> bool:
    # Unicode §23.7: U+FDD0..U+FDEF and the last two code points of every plane; MQTT 5.0 §1.5.4
    # advises against them in topic names.
    code = ord(char)
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def _is_unsafe(char: str) -> bool:
    return (
        char in _TOPIC_SPECIAL
        or char.isspace()
        or unicodedata.category(char) in _UNSAFE_CATEGORIES
        or _is_noncharacter(char)
    )


def _truncate_utf8(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    # Cutting the bytes may split the last character; "ignore" drops its partial bytes.
    return data[:max_bytes].decode("utf-8", "ignore")


def sanitize_wearer(raw: str) -> str:
    """The wearer id made safe for one MQTT topic level.

    Rules, in order:

    1. Leading and trailing whitespace is removed and the text is put in Unicode NFC, so the same
       name typed on two keyboards gives the same topic.
    2. ``+``, ``#``, ``/``, whitespace, control characters (category Cc, NUL included), surrogates,
       format characters (Cf: zero-width and bidi controls), line/paragraph separators and Unicode
       noncharacters each become ``_``.
    3. A leading ``$`` becomes ``_`` (brokers reserve ``$``-topics, MQTT 5.0 §4.7.2).
    4. The result is cut to at most :data:`MAX_WEARER_BYTES` UTF-8 bytes on a character boundary.

    Underscores already in the id are kept (``_bob`` stays ``_bob``); the function is idempotent.
    Different ids may map to the same level (``"a b"`` and ``"a_b"``): keep ids distinct in the
    characters that survive.

    Args:
        raw: the configured wearer id.

    Returns:
        A non-empty topic level of at most 64 UTF-8 bytes.

    Raises:
        ConfigError: nothing is left (empty or whitespace-only id).
    """
    text = unicodedata.normalize("NFC", raw.strip())
    safe = "".join("_" if _is_unsafe(char) else char for char in text)
    if safe.startswith("$"):
        safe = "_" + safe[1:]
    safe = _truncate_utf8(safe, MAX_WEARER_BYTES)
    if not safe:
        raise ConfigError(
            f"{raw!r} is not a usable wearer id: nothing is left of it for the MQTT topic",
            key="wearer.id",
            advice='use letters, digits, "-" or "_", e.g. id = "alex"',
        )
    return safe


def _check_root(root: str) -> None:
    problem = ""
    if not root:
        problem = "is empty"
    elif root.startswith("$"):
        problem = "starts with '$', which brokers reserve"
    elif root.startswith("/") or root.endswith("/") or "//" in root:
        problem = "has an empty topic level"
    elif any(char in "+#" for char in root):
        problem = "contains an MQTT wildcard"
    elif any(unicodedata.category(char) in ("Cc", "Cs") for char in root):
        problem = "contains a control character"
    elif len(root.encode("utf-8")) > _MAX_ROOT_BYTES:
        problem = f"is longer than {_MAX_ROOT_BYTES} UTF-8 bytes"
    if problem:
        raise ConfigError(f"topic root {root!r} {problem}", advice=f"the default is {DEFAULT_ROOT!r}")


def _check_level(value: str, what: str) -> None:
    if not value or any(_is_unsafe(char) for char in value) or value.startswith("$"):
        raise ValueError(f"{what} {value!r} is not a valid MQTT topic level")


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a topic is published.

    Attributes:
        qos: MQTT quality of service, 0 or 1.
        retain: whether the broker keeps the last message for new subscribers.
    """

    qos: int
    retain: bool


#: QoS and retain flag per topic kind (DESIGN §7); ``discovery`` is Home Assistant's config topics.
DELIVERY: Final[Mapping[str, Delivery]] = MappingProxyType(
    {
        "status": Delivery(qos=1, retain=True),
        "angles": Delivery(qos=0, retain=False),
        "posture": Delivery(qos=1, retain=True),
        "alerts": Delivery(qos=1, retain=False),
        "sensors": Delivery(qos=1, retain=True),
        "session": Delivery(qos=1, retain=True),
        "exercise": Delivery(qos=1, retain=False),
        "errors": Delivery(qos=1, retain=False),
        "discovery": Delivery(qos=1, retain=True),
    }
)


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic of one wearer.

    Build it with :meth:`for_wearer`, which sanitises the id; the constructor checks that ``wearer``
    is already sanitised and that ``root`` is a valid prefix.

    Attributes:
        wearer: the sanitised wearer level (:func:`sanitize_wearer`).
        root: first level(s) of the tree, ``sensorhub`` by default; may contain ``/``.
    """

    wearer: str
    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        _check_root(self.root)
        if sanitize_wearer(self.wearer) != self.wearer:
            raise ConfigError(
                f"wearer level {self.wearer!r} is not sanitised",
                advice="build topics with Topics.for_wearer(raw_id)",
            )

    @classmethod
    def for_wearer(cls, raw_wearer_id: str, root: str = DEFAULT_ROOT) -> Topics:
        """Topics for a configured wearer id (sanitised here).

        Raises:
            ConfigError: the id sanitises to nothing or the root is not a valid topic prefix.
        """
        return cls(wearer=sanitize_wearer(raw_wearer_id), root=root)

    @property
    def base(self) -> str:
        """``<root>/<wearer>``, the prefix of every topic below."""
        return f"{self.root}/{self.wearer}"

    @property
    def status(self) -> str:
        """``online`` / ``offline`` as plain text, retained; ``offline`` is also the will message."""
        return f"{self.base}/status"

    @property
    def angles(self) -> str:
        """Spine angles at the publish rate."""
        return f"{self.base}/angles"

    @property
    def posture(self) -> str:
        """Current posture, retained, on change."""
        return f"{self.base}/posture"

    @property
    def alerts(self) -> str:
        """Alert starts and ends."""
        return f"{self.base}/alerts"

    @property
    def session(self) -> str:
        """Current session and its statistics, retained."""
        return f"{self.base}/session"

    @property
    def exercise(self) -> str:
        """Exercise rep and set events."""
        return f"{self.base}/exercise"

    @property
    def errors(self) -> str:
        """Rejected commands and other input errors, for the dashboard that sent them."""
        return f"{self.base}/errors"

    @property
    def sensors_filter(self) -> str:
        """Subscription filter matching every ``sensors/<placement>`` topic."""
        return f"{self.base}/sensors/+"

    @property
    def cmd_filter(self) -> str:
        """Subscription filter matching every command topic."""
        return f"{self.base}/cmd/+"

    def sensor(self, placement: str) -> str:
        """``sensors/<placement>`` topic of one sensor.

        Raises:
            ValueError: ``placement`` is not a valid topic level.
        """
        _check_level(placement, "placement")
        return f"{self.base}/sensors/{placement}"

    def cmd(self, name: str) -> str:
        """Topic of one command.

        Raises:
            ValueError: ``name`` is not one of :data:`COMMANDS`.
        """
        if name not in COMMANDS:
            raise ValueError(f"unknown command {name!r}; one of {', '.join(COMMANDS)}")
        return f"{self.base}/cmd/{name}"

    def command_name(self, topic: str) -> str | None:
        """The command level of an incoming topic, or None when it is not this wearer's command topic.

        The level is returned as received, also when it is not one of :data:`COMMANDS`, so the caller
        can hand it to :func:`~sensorhub.mqtt.commands.parse_command` and report the unknown command
        on the ``errors`` topic. ``+`` matches an empty level too, so the result may be ``""``.
        """
        prefix = f"{self.base}/cmd/"
        if not topic.startswith(prefix):
            return None
        name = topic[len(prefix) :]
        return None if "/" in name else name
