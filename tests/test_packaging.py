"""The wheel matrix and the metadata that announces it agree: every CPython
minor version the project builds wheels for is a classifier, and the other
way round, and the free-threaded builds are announced at the level the docs
justify (docs/free-threading.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

# CPython versions with wheels: regular and free-threaded builds.
MINORS = ["3.11", "3.12", "3.13", "3.14", "3.15"]
FREE_THREADED = ["3.14", "3.15"]
PLATFORMS = ["manylinux_x86_64", "manylinux_aarch64", "musllinux_x86_64", "musllinux_aarch64"]
# Level 1: builds and imports, but the module still asks the interpreter to
# re-enable the GIL (no Py_mod_gil slot) and no free-threaded interpreter has
# run the suite; see docs/free-threading.md.
FREE_THREADING_CLASSIFIER = "Programming Language :: Python :: Free Threading :: 1 - Unstable"


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    if not PYPROJECT.exists():
        pytest.skip("no pyproject.toml next to the tests (testing an installed wheel)")
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def expected_identifiers() -> list[str]:
    tags = [f"cp{m.replace('.', '')}" for m in MINORS]
    tags += [f"cp{m.replace('.', '')}t" for m in FREE_THREADED]
    return sorted(f"{tag}-{platform}" for tag in tags for platform in PLATFORMS)


def test_build_selectors_cover_every_version(pyproject: dict[str, Any]) -> None:
    build = pyproject["tool"]["cibuildwheel"]["build"]
    expected = [f"cp{m.replace('.', '')}-*" for m in MINORS]
    expected += [f"cp{m.replace('.', '')}t-*" for m in FREE_THREADED]
    assert sorted(build) == sorted(expected)
    linux = pyproject["tool"]["cibuildwheel"]["linux"]
    assert sorted(linux["archs"]) == ["aarch64", "x86_64"]


def test_classifiers_match_the_wheel_matrix(pyproject: dict[str, Any]) -> None:
    classifiers = pyproject["project"]["classifiers"]
    minors = sorted(
        c.rsplit(" :: ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    assert minors == MINORS
    assert pyproject["project"]["requires-python"] == f">={MINORS[0]}"
    free_threading = [c for c in classifiers if "Free Threading" in c]
    assert free_threading == [FREE_THREADING_CLASSIFIER]


def test_classifiers_are_known_to_pypi(pyproject: dict[str, Any]) -> None:
    trove = pytest.importorskip("trove_classifiers")
    unknown = set(pyproject["project"]["classifiers"]) - set(trove.classifiers)
    assert not unknown


def test_cibuildwheel_lists_the_matrix() -> None:
    """What cibuildwheel itself would build, when it is installed."""
    exe = shutil.which("cibuildwheel") or str(Path(sys.executable).with_name("cibuildwheel"))
    if not PYPROJECT.exists() or not Path(exe).exists():
        pytest.skip("cibuildwheel is not installed")
    out = subprocess.run(
        [exe, "--print-build-identifiers", "--platform", "linux"],
        cwd=PYPROJECT.parent,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert sorted(out.split()) == expected_identifiers()
