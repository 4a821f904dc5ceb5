"""The firmware profiles sensorhub knows, and what is built from them (decoders, command bytes).

Profiles live in one directory of ``<name>.toml`` files: the copy installed inside the package
(``sensorhub/firmware_profiles``, put there by the wheel build) when there is one, else the
source tree's ``firmware_profiles/`` (editable installs and a git checkout). A :class:`Registry`
can also be pointed at any directory (tests, a user's own profiles).

Decoder families are found by name, not registered: a profile with ``family = "polar"`` is
decoded by ``sensorhub.profiles.decoders.polar.DECODER``.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from sensorhub.errors import ConfigError, ProfileError
from sensorhub.profiles.base import CommandStep, Decoder, Profile, SettingValue
from sensorhub.profiles.loader import load_profile, normalize_uuid, render_hex, template_values

__all__ = [
    "DECODERS_PACKAGE",
    "Registry",
    "all_profiles",
    "decoder_class",
    "default_registry",
    "get_profile",
    "make_decoder",
    "match_advertisement",
    "profile_dir",
    "render_command",
]

#: Package holding one decoder module per family, each exposing ``DECODER: type[Decoder]``.
DECODERS_PACKAGE: Final = "sensorhub.profiles.decoders"

_NO_OVERRIDES: Final[Mapping[str, SettingValue]] = MappingProxyType({})

_PACKAGE_DIR: Final = Path(__file__).resolve().parent.parent


def profile_dir() -> Path:
    """The directory of the bundled profiles: the installed copy if present, else the source tree's."""
    installed = _PACKAGE_DIR / "firmware_profiles"
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / "firmware_profiles"


class Registry:
    """The profiles of one directory, loaded on first use and kept."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._loaded: dict[str, Profile] = {}
        self._all: tuple[Profile, ...] | None = None

    def names(self) -> tuple[str, ...]:
        """Profile names (file stems), sorted."""
        if not self.directory.is_dir():
            raise ProfileError(
                "the profile directory does not exist",
                path=str(self.directory),
                advice="reinstall sensorhub, or run it from a source checkout",
            )
        return tuple(sorted(p.stem for p in self.directory.glob("*.toml") if p.is_file()))

    def all(self) -> tuple[Profile, ...]:
        """Every profile, sorted by name; the first broken file raises its ProfileError."""
        if self._all is None:
            self._all = tuple(self.get(name) for name in self.names())
        return self._all

    def get(self, name: str) -> Profile:
        """One profile by name.

        Raises:
            ProfileError: no such profile (the message lists the names), or its file is wrong.
        """
        profile = self._loaded.get(name)
        if profile is not None:
            return profile
        names = self.names()
        if name not in names:
            raise _unknown(name, names)
        profile = load_profile(self.directory / f"{name}.toml")
        self._loaded[name] = profile
        return profile

    def match_advertisement(self, name: str | None, service_uuids: Iterable[str] = ()) -> list[Profile]:
        """Profiles whose name pattern matches the advertised name or whose service UUID is advertised."""
        advertised: set[str] = set()
        for uuid in service_uuids:
            try:
                advertised.add(normalize_uuid(uuid))
            except ValueError:
                continue  # a malformed advertisement cannot match anything
        return [
            profile
            for profile in self.all()
            if (name and any(fnmatch.fnmatchcase(name, pattern) for pattern in profile.name_patterns))
            or advertised.intersection(profile.service_uuids)
        ]


def _unknown(name: str, names: tuple[str, ...]) -> ProfileError:
    listing = f"profiles: {', '.join(names)}" if names else "no profiles are installed"
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    prefixed = [n for n in names if name and n.startswith(name)]
    suggestion = prefixed[0] if len(prefixed) == 1 else close[0] if close else None
    advice = f"did you mean {suggestion!r}? {listing}" if suggestion else listing
    return ProfileError(f"unknown profile {name!r}", advice=advice)


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of :func:`profile_dir`, created on first use."""
    global _default
    if _default is None:
        _default = Registry(profile_dir())
    return _default


def _registry(registry: Registry | None) -> Registry:
    return default_registry() if registry is None else registry


def all_profiles(registry: Registry | None = None) -> tuple[Profile, ...]:
    """Every bundled profile (or every profile of ``registry``), sorted by name."""
    return _registry(registry).all()


def get_profile(name: str, registry: Registry | None = None) -> Profile:
    """One profile by name; an unknown name raises ProfileError listing the known ones."""
    return _registry(registry).get(name)


def match_advertisement(
    name: str | None, service_uuids: Iterable[str] = (), registry: Registry | None = None
) -> list[Profile]:
    """Profiles an advertisement (name, service UUIDs) matches, sorted by name."""
    return _registry(registry).match_advertisement(name, service_uuids)


def decoder_class(profile: Profile) -> type[Decoder]:
    """The ``DECODER`` of the profile's family module.

    Raises:
        ProfileError: naming the profile file and ``family`` when the module or its DECODER is missing.
    """
    module_name = f"{DECODERS_PACKAGE}.{profile.family}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the module exists but an import inside it failed: a bug to see, not a profile error
        raise ProfileError(f"no decoder module {module_name}", path=profile.path or None, key="family") from exc
    cls = getattr(module, "DECODER", None)
    if not (isinstance(cls, type) and issubclass(cls, Decoder)):
        raise ProfileError(
            f"{module_name} has no DECODER (a Decoder subclass)", path=profile.path or None, key="family"
        )
    return cls


def make_decoder(
    profile_or_name: Profile | str,
    overrides: Mapping[str, SettingValue] = _NO_OVERRIDES,
    *,
    registry: Registry | None = None,
) -> Decoder:
    """A fresh decoder for a profile.

    Its settings are ``{"rate_hz": profile.default_rate_hz} | profile.decoder_settings | overrides``.

    Raises:
        ProfileError: unknown profile, missing decoder module, or a setting the decoder refuses.
    """
    profile = get_profile(profile_or_name, registry) if isinstance(profile_or_name, str) else profile_or_name
    settings: dict[str, SettingValue] = {"rate_hz": profile.default_rate_hz, **profile.decoder_settings, **overrides}
    return decoder_class(profile)(settings, profile=profile.name)


def render_command(
    profile: Profile,
    step: CommandStep,
    rate_hz: float,
    overrides: Mapping[str, SettingValue] = _NO_OVERRIDES,
) -> bytes:
    """The bytes to write for one command step at a sample rate, placeholders filled.

    Placeholders take the rate's template values, then ``rate_hz``, then ``overrides``, then the
    profile's decoder settings.

    Raises:
        ConfigError: ``rate_hz`` is not one of the profile's rates, or an override does not fit.
    """
    rate = float(rate_hz)
    if rate not in profile.rates_hz:
        options = ", ".join(f"{hz:g}" for hz in profile.rates_hz)
        raise ConfigError(f"{profile.name} cannot run at {rate:g} Hz", advice=f"choose one of: {options}")
    values = template_values(rate, profile.rate_values, {**profile.decoder_settings, **overrides})
    try:
        return render_hex(step.hex, values)
    except ValueError as exc:
        # The loader rendered every step at every rate, so only an override can get here.
        raise ConfigError(f"{profile.name}: {step.meaning}: {exc}") from None
