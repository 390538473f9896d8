"""Shared fixtures.  Every IPC object a test creates is removed at teardown,
whether the test passed or not, and a test that leaves one behind fails."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from sysvipc import lowlevel as ll


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="long soak: run with --soak")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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


def existing_ids() -> set[tuple[str, int]]:
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
    """Fail a test that leaves an IPC object behind (and remove it)."""
    before = existing_ids()
    yield
    deadline = time.monotonic() + 3.0
    while True:
        leaked = existing_ids() - before
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
