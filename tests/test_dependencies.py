"""The deployment lock file matches pyproject.toml: every dependency pinned within its range, with hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def _pins() -> dict[str, tuple[Version, int]]:
    """name -> (pinned version, number of hashes)."""
    pins: dict[str, tuple[Version, int]] = {}
    current = None
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = (Version(match.group(2)), 0)
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def test_every_dependency_is_pinned_with_hashes_inside_its_declared_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _pins()
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: regenerate it (see its first line)"
        version, _ = pins[name]
        assert version in requirement.specifier, f"{name}=={version} does not satisfy {requirement.specifier}"
    assert all(hashes > 0 for _, hashes in pins.values()), "every pin needs --hash lines"


def test_floors_are_past_the_known_advisories() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    floors = {canonicalize_name(Requirement(s).name): Requirement(s).specifier for s in project["dependencies"]}
    # aiohttp < 3.10.11: CVE-2024-52303, CVE-2024-52304; < 3.12.14: CVE-2025-53643
    assert not floors["aiohttp"].contains("3.12.13")
    assert not floors["cryptography"].contains("44.0.0")  # CVE-2024-12797
