"""Firmware profiles: how to find, configure and decode each supported BLE IMU (docs/profiles.md).

- :mod:`~sensorhub.profiles.base`: the records (:class:`ImuSample`, :class:`DeviceInfo`,
  :class:`Profile`) and the :class:`Decoder` interface;
- :mod:`~sensorhub.profiles.loader`: one ``firmware_profiles/<name>.toml`` → a validated Profile;
- :mod:`~sensorhub.profiles.registry`: the installed profiles, decoders and command bytes from them;
- ``sensorhub.profiles.decoders.<family>``: one decoder module per device family.
"""

from __future__ import annotations

from sensorhub.profiles.base import DeviceInfo, ImuSample, Profile
from sensorhub.profiles.loader import load_profile
from sensorhub.profiles.registry import (
    Registry,
    all_profiles,
    get_profile,
    make_decoder,
    match_advertisement,
    render_command,
)

__all__ = [
    "DeviceInfo",
    "ImuSample",
    "Profile",
    "Registry",
    "all_profiles",
    "get_profile",
    "load_profile",
    "make_decoder",
    "match_advertisement",
    "render_command",
]
