"""Type checking of example snippets against the stubs and annotations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "typing"


def mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir=/dev/null",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(autouse=True)
def _needs_mypy() -> None:
    pytest.importorskip("mypy")
    pytest.importorskip("numpy")


def test_typical_use_type_checks() -> None:
    proc = mypy(HERE / "good.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_misuse_is_rejected_line_by_line() -> None:
    source = (HERE / "bad.py").read_text().splitlines()
    expected = {n for n, line in enumerate(source, 1) if line.rstrip().endswith("# E")}
    proc = mypy(HERE / "bad.py")
    flagged = {
        int(line.split("bad.py:")[1].split(":")[0])
        for line in proc.stdout.splitlines()
        if "bad.py:" in line and ": error:" in line
    }
    assert flagged == expected, proc.stdout
