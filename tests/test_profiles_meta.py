"""Every profile is complete: it loads, its decoder family exists, and byte vectors pin it.

A profile without a vector file, with too few cases, or with a corrupt-input table that misses a
category fails here, so a new profile cannot land untested (STYLE: "a meta-test that fails when a
profile has no vectors").
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from profiles_helpers import VECTOR_DIR, load_vectors, vector_files

from sensorhub.config import PROFILE_NAMES
from sensorhub.profiles import decoders
from sensorhub.profiles.base import Decoder
from sensorhub.profiles.registry import DECODERS_PACKAGE, decoder_class, default_registry, get_profile, make_decoder

ROOT = Path(__file__).resolve().parent.parent
NAMES = sorted(set(PROFILE_NAMES) | set(default_registry().names()))
FAMILY_MODULES = sorted(m.name for m in pkgutil.iter_modules(decoders.__path__) if not m.name.startswith("_"))

MIN_CASES = 2
MIN_CORRUPT = 4
#: Corrupt-input categories every table covers (matched in entry names, DESIGN/STYLE: short, long,
#: bad header or checksum); saturation may sit in the cases (full-scale values decode) or the table.
REQUIRED_CORRUPT: dict[str, tuple[str, ...]] = {
    "short": ("short", "truncated", "empty"),
    "long": ("long",),
    "bad header or checksum": ("header", "checksum", "crc", "type", "opcode", "unknown", "module", "register"),
}
SATURATION = ("saturat", "full scale", "full_scale", "rails", "extreme")


def test_config_profile_names_equal_the_registry() -> None:
    assert sorted(PROFILE_NAMES) == list(default_registry().names())


@pytest.mark.parametrize("name", NAMES)
def test_profile_loads_and_builds_its_decoder(name: str) -> None:
    profile = get_profile(name)
    assert profile.name == name
    assert Path(profile.path) == default_registry().directory / f"{name}.toml"
    cls = decoder_class(profile)
    assert cls.family == profile.family
    decoder = make_decoder(profile)
    assert decoder.settings["rate_hz"] == profile.default_rate_hz
    assert (decoder.stats.payloads, decoder.stats.samples, decoder.stats.errors) == (0, 0, 0)


@pytest.mark.parametrize("name", NAMES)
def test_profile_has_a_device_page(name: str) -> None:
    page = default_registry().directory / f"{name}.md"
    assert page.is_file(), f"{name}: no {page.name} beside the profile (docs/profiles.md links it)"


@pytest.mark.parametrize("name", NAMES)
def test_profile_has_vectors(name: str) -> None:
    path = VECTOR_DIR / f"{name}.json"
    assert path.is_file(), f"{name}: no byte vectors; write tests/vectors/{name}.json (docs/profiles.md)"
    data = load_vectors(path)
    assert data["profile"] == name
    assert isinstance(data["tolerance"], int | float)
    assert 0 <= data["tolerance"] <= 1e-3
    cases, corrupt = data["cases"], data["corrupt"]
    assert len(cases) >= MIN_CASES, f"{name}: {len(cases)} vector cases, at least {MIN_CASES} wanted"
    assert len(corrupt) >= MIN_CORRUPT, f"{name}: {len(corrupt)} corrupt entries, at least {MIN_CORRUPT} wanted"
    for case in cases:
        assert case.get("source", "").strip(), f"{name}: case {case['name']!r} cites no source"
        assert case["expect"], f"{name}: case {case['name']!r} expects nothing"
    for entry in corrupt:
        assert entry.get("why", "").strip(), f"{name}: corrupt entry {entry['name']!r} says not why"
    for kind in ("cases", "corrupt"):
        names = [item["name"] for item in data[kind]]
        assert len(set(names)) == len(names), f"{name}: {kind} names repeat"
    corrupt_names = [entry["name"].lower() for entry in corrupt]
    for category, words in REQUIRED_CORRUPT.items():
        assert any(w in n for n in corrupt_names for w in words), f"{name}: no {category!r} entry in 'corrupt'"
    all_names = [item["name"].lower() for item in [*cases, *corrupt]]
    assert any(w in n for n in all_names for w in SATURATION), f"{name}: no saturation (full-scale) vector"


def test_every_vector_file_has_a_profile() -> None:
    names = set(default_registry().names())
    orphans = [p.name for p in vector_files() if p.stem not in names]
    assert not orphans, f"vector files without a profile: {orphans}"


@pytest.mark.parametrize("module_name", FAMILY_MODULES)
def test_family_module_exposes_decoder(module_name: str) -> None:
    module = importlib.import_module(f"{DECODERS_PACKAGE}.{module_name}")
    cls = getattr(module, "DECODER", None)
    assert isinstance(cls, type), f"{module_name}: no DECODER class"
    assert issubclass(cls, Decoder)
    assert cls.family == module_name


def test_every_family_is_used_by_a_profile() -> None:
    used = {get_profile(name).family for name in default_registry().names()}
    assert sorted(used) == FAMILY_MODULES


def test_docs_list_every_profile() -> None:
    text = (ROOT / "docs" / "profiles.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"firmware_profiles/{name}.md" in text, f"docs/profiles.md does not link {name}"
