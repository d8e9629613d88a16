"""The version is defined once (``bayesdrop.__version__``) and everything else reads it; the package is typed."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
from packaging.version import Version

import bayesdrop as bd

tomllib = pytest.importorskip("tomllib")  # Python 3.11

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_is_defined_once_and_read_everywhere():
    Version(bd.__version__)  # a PEP 440 version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bayesdrop.__version__"}
    # the installed metadata (make install: an editable install) says the same
    assert importlib.metadata.version("bayesdrop") == bd.__version__


def test_the_changelog_starts_with_this_version():
    first = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert first is not None and first.group(1) == bd.__version__


def test_the_package_is_marked_typed_and_ships_the_marker():
    assert (ROOT / "bayesdrop" / "py.typed").is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["bayesdrop"]
