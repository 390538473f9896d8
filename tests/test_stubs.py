"""The type stubs of the C core match it: mypy's stubtest passes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sysvipc

ALLOWLIST = Path(__file__).resolve().parent / "stubtest-allowlist.txt"


def test_stubtest_passes(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed")
    package_parent = Path(sysvipc.__file__).resolve().parent.parent
    stub = Path(sysvipc.__file__).resolve().parent / "_sysvipc.pyi"
    assert stub.exists(), f"no stub at {stub}"
    command = [sys.executable, "-m", "mypy.stubtest", "sysvipc._sysvipc"]
    if ALLOWLIST.exists():
        # Entries for one Python version only (__buffer__ exists from 3.12)
        # are unused on the others.
        command += ["--allowlist", str(ALLOWLIST), "--ignore-unused-allowlist"]
    env = {**os.environ, "MYPY_CACHE_DIR": str(tmp_path / "mypy-cache")}
    if package_parent.name == "site-packages":
        # An installed package: mypy finds it (py.typed) from anywhere, and
        # must not run inside site-packages, whose modules would shadow the
        # libraries it checks against.
        cwd = tmp_path
    else:
        cwd = package_parent
        env["PYTHONPATH"] = str(package_parent)
    proc = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"stubtest failed:\n{proc.stdout}\n{proc.stderr}"
