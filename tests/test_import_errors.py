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


def test_import_loads_only_what_the_handles_need() -> None:
    # Import time (issue 17): what a feature needs is imported when it is
    # first used.  Checked by what is loaded, not by the clock.
    code = (
        "import sys, sysvipc\n"
        "heavy = ['asyncio', 'concurrent.futures', 'dataclasses', 'random', 'datetime',\n"
        "         'sysvipc.lowlevel', 'sysvipc._structs', 'sysvipc._introspect']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "sysvipc.SemaphoreSetStat, sysvipc.lowlevel.msgget, sysvipc.limits\n"
        "print('sysvipc.lowlevel' in sys.modules, 'sysvipc._structs' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "True True"]


def test_lazy_names_are_the_real_ones() -> None:
    from sysvipc import _structs, lowlevel

    assert sysvipc.lowlevel is lowlevel
    assert sysvipc.IpcPerm is _structs.IpcPerm
    assert sysvipc.SemaphoreSetStat is sysvipc._semaphore.SemaphoreSetStat
    assert set(sysvipc.__all__) <= set(dir(sysvipc))
    for name in sysvipc.__all__:
        assert getattr(sysvipc, name) is not None
    try:
        sysvipc.no_such_name  # type: ignore[attr-defined]
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("no AttributeError")
