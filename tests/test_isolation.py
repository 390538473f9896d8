"""The suite touches nothing it did not create (see conftest.py).

- The run has a private IPC namespace whenever the machine allows it.
- A run of part of the suite beside a bystander program that keeps creating
  and removing its own objects removes none of them, and passes: with a
  private namespace (the default) and without one (the fallback, where the
  suite touches only the ids it created).  Both happen inside a scratch IPC
  namespace that stands for "the machine", so this test never sees the real
  machine's objects either.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import HANG, ORIGINAL_IPC_NAMESPACE, PRIVATE_NAMESPACE

ROOT = Path(__file__).resolve().parent.parent
BYSTANDER = ROOT / "tests" / "ipc_bystander.py"
# Files whose tests create, list and remove objects the most, the leak
# check's work included; about 10 s.
NEIGHBOURS = ["tests/test_cli.py", "tests/test_errors.py"]


def test_the_run_has_a_private_namespace() -> None:
    if not PRIVATE_NAMESPACE:
        pytest.skip("this machine gives the run no private IPC namespace")
    assert os.readlink("/proc/self/ns/ipc") != ORIGINAL_IPC_NAMESPACE


def can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--ipc", "true"], capture_output=True).returncode == 0


# Runs inside a scratch namespace: the bystander, and beside it a pytest run
# of NEIGHBOURS with the isolation setting under test.
DRIVER = """
    import json, os, signal, subprocess, sys
    bystander = subprocess.Popen(
        [sys.executable, sys.argv[1]], stdout=subprocess.PIPE, text=True
    )
    assert bystander.stdout.readline().strip() == "ready"
    env = dict(os.environ, SYSVIPC_TEST_ISOLATION=sys.argv[2])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *sys.argv[3:]],
        env=env, capture_output=True, text=True, timeout=600,
    )
    bystander.send_signal(signal.SIGTERM)
    report = json.loads(bystander.communicate(timeout=60)[0])
    report["pytest_exit"] = run.returncode
    report["pytest_tail"] = run.stdout[-3000:] + run.stderr[-2000:]
    print(json.dumps(report))
"""


@pytest.mark.parametrize("isolation", ["auto", "shared"])
def test_a_run_beside_a_bystander_removes_nothing_of_its(isolation: str) -> None:
    if not can_unshare():
        pytest.skip("unshare --ipc is not allowed here: no scratch namespace")
    proc = subprocess.run(
        ["unshare", "--ipc", "--", sys.executable, "-c", textwrap.dedent(DRIVER)]
        + [str(BYSTANDER), isolation, *NEIGHBOURS],
        capture_output=True,
        text=True,
        timeout=600 + 6 * HANG,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["pytest_exit"] == 0, report["pytest_tail"]
    assert report["made"] > 30, report
    assert report["lost"] == 0, report
    print(f"bystander made {report['made']} objects in {report['seconds']} s, lost none")
