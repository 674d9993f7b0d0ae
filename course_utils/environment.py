"""Checking the Python environment against the course's pinned versions."""

from __future__ import annotations

import platform
import re
from importlib import metadata

DIST = "course-utils"


def pinned_requirements() -> dict[str, str]:
    """``{package: version}`` pinned by the installed ``course-utils`` distribution (pyproject.toml)."""
    pins = {}
    for req in metadata.requires(DIST) or []:
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^;\s]+)", req)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def check_environment() -> list[dict[str, str | bool]]:
    """One row per pinned package: ``package``, ``pinned``, ``installed``, ``ok``.

    The installed version counts as matching when it equals the pin, ignoring a local build
    tag such as ``+cpu`` (torch's CPU wheels are ``2.13.0+cpu``).
    """
    rows: list[dict[str, str | bool]] = []
    for name, pinned in sorted(pinned_requirements().items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        rows.append({"package": name, "pinned": pinned, "installed": installed,
                     "ok": installed.split("+")[0] == pinned})
    return rows


def python_version() -> str:
    return platform.python_version()
