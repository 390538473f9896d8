"""Importing sysvipc from a source checkout without a built extension says
what is wrong and what to do (as numpy does), not "circular import"."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import sysvipc

PACKAGE = Path(sysvipc.__file__).resolve().parent


def copy_package(dest: Path, checkout: bool) -> None:
    shutil.copytree(PACKAGE, dest / "sysvipc", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    if checkout:
        (dest / "src").mkdir()
        (dest / "src" / "_sysvipc.c").write_text("")
        (dest / "setup.py").write_text("")


def import_in(cwd: Path) -> subprocess.CompletedProcess[str]:
    # -S: no site-packages, so only the copy in the current directory is found.
    return subprocess.run(
        [sys.executable, "-S", "-c", "import sysvipc"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_source_checkout_without_extension(tmp_path: Path) -> None:
    copy_package(tmp_path, checkout=True)
    proc = import_in(tmp_path)
    assert proc.returncode == 1
    last = proc.stderr[proc.stderr.rindex("ImportError: ") :]
    assert "is not built in this source checkout" in last
    assert str(tmp_path) in last
    assert "run Python from another directory" in last
    assert "pip install -e ." in last
    assert "circular import" not in last


def test_broken_installation(tmp_path: Path) -> None:
    copy_package(tmp_path, checkout=False)
    proc = import_in(tmp_path)
    assert proc.returncode == 1
    last = proc.stderr[proc.stderr.rindex("ImportError: ") :]
    assert "cannot import sysvipc's C extension" in last
    assert "Reinstall it for this interpreter" in last
