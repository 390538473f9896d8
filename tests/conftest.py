"""Shared fixtures, and the suite's isolation from everything else on the machine.

Isolation.  Before anything else, the test process moves into a private IPC
namespace (``unshare(CLONE_NEWIPC)``; needs CAP_SYS_ADMIN, which root has), so
the whole run, and every process it starts, sees only the objects it made
itself: nothing another program owns can be listed, removed or counted by
mistake.  ``SYSVIPC_TEST_ISOLATION`` chooses: ``auto`` (the default: a private
namespace when the machine allows it, else shared), ``namespace`` (a private
namespace or a usage error) or ``shared`` (stay in the caller's namespace).

In a private namespace every object that appears during a test is the test's
own: the autouse leak check fails a test that leaves one behind, and removes
it.  In a shared namespace the suite touches only the ids it created (the
``ipc`` fixture, ``remove_on_close`` handles): the leak check is off, and
tests that assert on every object of the namespace (marked
``private_namespace``) are skipped, because other programs' objects would
make them fail or, worse, make them remove what is not theirs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

CLONE_NEWIPC = 0x08000000
# Set to the private namespace's identity once the run is in it: a process
# the run starts that imports this file (a multiprocessing "spawn" child
# unpickling a test's function) is then already where it belongs.
_ENTERED = "SYSVIPC_TEST_PRIVATE_NAMESPACE"
# The namespace the run was started in, before it left it (for the tests of
# the isolation itself).
ORIGINAL_IPC_NAMESPACE = os.readlink("/proc/self/ns/ipc")


def _isolate() -> tuple[bool, str]:
    """Leave the caller's IPC namespace if asked and allowed; return
    (private, how), ``how`` for the report header."""
    setting = os.environ.get("SYSVIPC_TEST_ISOLATION", "auto")
    if setting not in ("auto", "namespace", "shared"):
        raise pytest.UsageError(
            f"SYSVIPC_TEST_ISOLATION={setting!r}: expected auto, namespace or shared"
        )
    if setting == "shared":
        return False, "shared IPC namespace (SYSVIPC_TEST_ISOLATION=shared)"
    if os.environ.get(_ENTERED) == ORIGINAL_IPC_NAMESPACE:
        return True, "private IPC namespace (the run's, inherited)"
    # unshare() moves only the calling thread: every thread must be this one.
    threads = len(os.listdir("/proc/self/task"))
    if threads == 1 and threading.active_count() == 1:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWIPC) == 0:
            os.environ[_ENTERED] = os.readlink("/proc/self/ns/ipc")
            return True, "private IPC namespace (unshare CLONE_NEWIPC)"
        reason = f"unshare(CLONE_NEWIPC): {os.strerror(ctypes.get_errno())}"
    else:
        reason = f"{threads} threads already running"
    if setting == "namespace":
        raise pytest.UsageError(f"SYSVIPC_TEST_ISOLATION=namespace, but {reason}")
    return False, f"shared IPC namespace ({reason}): leak check off"


# At import, before any test module (or the library) runs: conftest.py is
# the first project code pytest loads.
PRIVATE_NAMESPACE, ISOLATION = _isolate()

# A run started in the background of a script (`pytest &` without job
# control, nohup) inherits SIGINT ignored, and Python then installs no
# KeyboardInterrupt handler, in this process or in the children it starts:
# the Ctrl-C tests would fail.  Run as if started from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from sysvipc import lowlevel as ll  # noqa: E402  (after leaving the namespace)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak tests")


def pytest_report_header(config: pytest.Config) -> str:
    return f"sysvipc tests: {ISOLATION}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    soak = config.getoption("--soak")
    skip_slow = pytest.mark.skip(reason="long soak: run with --soak")
    skip_shared = pytest.mark.skip(
        reason="asserts on every object of the IPC namespace: needs a private one "
        "(run as root, SYSVIPC_TEST_ISOLATION=auto)"
    )
    for item in items:
        if "slow" in item.keywords and not soak:
            item.add_marker(skip_slow)
        if "private_namespace" in item.keywords and not PRIVATE_NAMESPACE:
            item.add_marker(skip_shared)


# --------------------------------------------------------------------------
# Timing: tests never assert how fast something is (benchmarks/ measures
# that).  They assert that a timeout did not end early, and that nothing
# hung: HANG is a bound only a hang exceeds, whatever the load on the machine
# (another test run, a compiler, a soak).  A test that must tell "woken" from
# "timed out" gives the call a timeout well above HANG (LONG_TIMEOUT).
# --------------------------------------------------------------------------

HANG = 10.0
LONG_TIMEOUT = 60.0


# --------------------------------------------------------------------------
# What exists: /proc/sysvipc lists every object on the machine
# --------------------------------------------------------------------------

KINDS = ("msg", "sem", "shm")


def proc_rows(kind: str) -> list[dict[str, str]]:
    """Rows of /proc/sysvipc/<kind> as dicts keyed by the header's names."""
    with open(f"/proc/sysvipc/{kind}") as f:
        header = f.readline().split()
        return [dict(zip(header, line.split(), strict=False)) for line in f if line.strip()]


def proc_row(kind: str, ident: int) -> dict[str, str] | None:
    id_field = {"msg": "msqid", "sem": "semid", "shm": "shmid"}[kind]
    for row in proc_rows(kind):
        if int(row[id_field]) == ident:
            return row
    return None


def require_private_namespace() -> None:
    """Skip the calling test unless the run has its own IPC namespace: what it
    is about to read or do concerns every object in the namespace."""
    if not PRIVATE_NAMESPACE:
        pytest.skip("needs a private IPC namespace (see tests/conftest.py)")


def existing_ids() -> set[tuple[str, int]]:
    """Every object in the namespace: only meaningful in a private one."""
    require_private_namespace()
    return _all_ids()


def _all_ids() -> set[tuple[str, int]]:
    ids = set()
    for kind in KINDS:
        id_field = {"msg": "msqid", "sem": "semid", "shm": "shmid"}[kind]
        ids.update((kind, int(row[id_field])) for row in proc_rows(kind))
    return ids


def remove_quietly(kind: str, ident: int) -> None:
    try:
        if kind == "msg":
            ll.msgctl(ident, ll.IPC_RMID)
        elif kind == "sem":
            ll.semctl(ident, 0, ll.IPC_RMID)
        else:
            ll.shmctl(ident, ll.IPC_RMID)
    except OSError:
        pass  # already gone


@pytest.fixture(autouse=True)
def no_leaked_ipc_objects() -> Iterator[None]:
    """Fail a test that leaves an IPC object behind, and remove it: only in
    a private namespace, where whatever appeared is the test's own."""
    if not PRIVATE_NAMESPACE:
        yield
        return
    before = _all_ids()
    yield
    deadline = time.monotonic() + 3.0
    while True:
        leaked = _all_ids() - before
        # A segment marked for removal goes when its last (child) process
        # detaches: give exiting children a moment.
        pending = [
            (k, i)
            for k, i in leaked
            if not (k == "shm" and (row := proc_row(k, i)) and int(row["perms"], 8) & 0o1000)
        ]
        if not leaked or (not pending and time.monotonic() > deadline):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for kind, ident in leaked:
        remove_quietly(kind, ident)
    if pending:
        pytest.fail(f"test leaked IPC objects: {sorted(pending)}")


# --------------------------------------------------------------------------
# Creating objects that are always removed
# --------------------------------------------------------------------------


class Tracker:
    """Creates IPC objects for a test and removes them all at teardown."""

    def __init__(self) -> None:
        self.created: list[tuple[str, int]] = []

    def track(self, kind: str, ident: int) -> int:
        self.created.append((kind, ident))
        return ident

    def msgget(self, key: int = ll.IPC_PRIVATE, mode: int = 0o600) -> int:
        return self.track("msg", ll.msgget(key, ll.IPC_CREAT | ll.IPC_EXCL, mode))

    def semget(self, nsems: int = 1, key: int = ll.IPC_PRIVATE, mode: int = 0o600) -> int:
        return self.track("sem", ll.semget(key, nsems, ll.IPC_CREAT | ll.IPC_EXCL, mode))

    def shmget(self, size: int = 4096, key: int = ll.IPC_PRIVATE, mode: int = 0o600) -> int:
        return self.track("shm", ll.shmget(key, size, ll.IPC_CREAT | ll.IPC_EXCL, mode))

    def cleanup(self) -> None:
        for kind, ident in reversed(self.created):
            remove_quietly(kind, ident)
        self.created.clear()


@pytest.fixture
def ipc() -> Iterator[Tracker]:
    tracker = Tracker()
    try:
        yield tracker
    finally:
        tracker.cleanup()


@pytest.fixture
def msqid(ipc: Tracker) -> int:
    return ipc.msgget()


@pytest.fixture
def semid(ipc: Tracker) -> int:
    return ipc.semget(1)


@pytest.fixture
def shmid(ipc: Tracker) -> int:
    return ipc.shmget(4096)


def unused_key() -> int:
    """A random positive key that no object uses now."""
    used = {int(row["key"]) for kind in KINDS for row in proc_rows(kind)}
    while True:
        key = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        if key and key not in used:
            return key


@pytest.fixture
def key() -> int:
    return unused_key()


# --------------------------------------------------------------------------
# Running crash-prone code in a child interpreter
# --------------------------------------------------------------------------


def run_python(
    code: str, timeout: float = 60, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter; a segfault there is a returncode < 0."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,  # type: ignore[call-overload]
    )


def assert_child_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"child exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
