"""Every errno the low-level layer maps to an exception, against the kernel.

Each failing syscall raises an OSError subclass with the errno, and its
message names the syscall ("... (originated from msgrcv)").
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    HANG,
    LONG_TIMEOUT,
    Tracker,
    assert_child_ok,
    existing_ids,
    proc_row,
    run_python,
)

import sysvipc
from sysvipc import lowlevel as ll

REPO = str(Path(sysvipc.__file__).resolve().parent.parent)
CHILD_ENV = {**os.environ, "PYTHONPATH": REPO}

# Syscall numbers, to see a thread blocked in the kernel (/proc/.../syscall).
SYSCALL_NUMBERS = {
    "x86_64": {"msgsnd": 69, "msgrcv": 70, "semop": 65, "semtimedop": 220},
    "aarch64": {"msgsnd": 189, "msgrcv": 188, "semop": 193, "semtimedop": 192},
}


def wait_in_syscall(tid: int, *names: str, timeout: float = 5.0) -> None:
    """Wait until thread tid of this process sleeps in one of the syscalls."""
    numbers = SYSCALL_NUMBERS.get(platform.machine())
    path = f"/proc/self/task/{tid}/syscall"
    if numbers is None or not os.access(path, os.R_OK):
        time.sleep(0.3)  # no way to look: give it time
        return
    wanted = {numbers[n] for n in names}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                first = f.read().split()[0]
        except (OSError, IndexError):
            first = ""
        if first.isdigit() and int(first) in wanted:
            time.sleep(0.01)
            return
        time.sleep(0.002)
    pytest.fail(f"thread {tid} never blocked in {names}")


class Background:
    """Run fn in a thread; keep its result or exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()
        self.tid = self.thread.native_id
        assert self.tid is not None

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "background call still blocked"


def assert_names(exc: BaseException, syscall: str) -> None:
    """The message names the syscall (a regular expression: a timed semop
    may name semop, its first non-blocking attempt, or semtimedop)."""
    assert re.search(rf"\(originated from {syscall}\)", str(exc)), str(exc)


# --------------------------------------------------------------------------
# FileNotFoundError / FileExistsError
# --------------------------------------------------------------------------

GETTERS: dict[str, Callable[..., int]] = {
    "msgget": lambda key, flags=0: ll.msgget(key, flags),
    "semget": lambda key, flags=0: ll.semget(key, 1, flags),
    "shmget": lambda key, flags=0: ll.shmget(key, 4096, flags),
}
KIND = {"msgget": "msg", "semget": "sem", "shmget": "shm"}


@pytest.mark.parametrize("syscall", sorted(GETTERS))
def test_missing_key_is_file_not_found(syscall: str, key: int) -> None:
    with pytest.raises(FileNotFoundError) as info:
        GETTERS[syscall](key)
    assert info.value.errno == errno.ENOENT
    assert_names(info.value, syscall)


@pytest.mark.parametrize("syscall", sorted(GETTERS))
def test_excl_on_existing_is_file_exists(syscall: str, ipc: Tracker, key: int) -> None:
    ident = ipc.track(KIND[syscall], GETTERS[syscall](key, ll.IPC_CREAT | ll.IPC_EXCL))
    before = existing_ids()
    with pytest.raises(FileExistsError) as info:
        GETTERS[syscall](key, ll.IPC_CREAT | ll.IPC_EXCL)
    assert info.value.errno == errno.EEXIST
    assert_names(info.value, syscall)
    assert existing_ids() == before
    assert GETTERS[syscall](key, ll.IPC_CREAT) == ident


def test_ftok_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as info:
        ll.ftok(missing, 1)
    assert info.value.errno == errno.ENOENT
    assert_names(info.value, "ftok")
    assert info.value.filename == missing


# --------------------------------------------------------------------------
# PermissionError: a child that is not root touches 0o600 objects
# --------------------------------------------------------------------------


def test_permission_errors_for_another_user(ipc: Tracker, key: int) -> None:
    msqid = ipc.msgget(key)
    semid = ipc.semget(1, key)
    shmid = ipc.shmget(4096, key)
    ll.msgsnd(msqid, b"secret", 1)
    proc = run_python(
        f"""
        import json, os
        from sysvipc import lowlevel as ll
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
        calls = {{
            "msgget": lambda: ll.msgget({key}),
            "msgsnd": lambda: ll.msgsnd({msqid}, b"x", 1, ll.IPC_NOWAIT),
            "msgrcv": lambda: ll.msgrcv({msqid}, 100, 0, ll.IPC_NOWAIT),
            "msgrcv_into": lambda: ll.msgrcv_into({msqid}, bytearray(100), 0, ll.IPC_NOWAIT),
            "msgctl IPC_STAT": lambda: ll.msgctl({msqid}, ll.IPC_STAT),
            "msgctl IPC_SET": lambda: ll.msgctl({msqid}, ll.IPC_SET, mode=0o666),
            "msgctl IPC_RMID": lambda: ll.msgctl({msqid}, ll.IPC_RMID),
            "semget": lambda: ll.semget({key}),
            "semop": lambda: ll.semop({semid}, [(0, 1)]),
            "semop1": lambda: ll.semop1({semid}, 0, 1),
            "semtimedop": lambda: ll.semop({semid}, [(0, 1)], timeout=1),
            "semctl GETVAL": lambda: ll.semctl({semid}, 0, ll.GETVAL),
            "semctl SETVAL": lambda: ll.semctl({semid}, 0, ll.SETVAL, 1),
            "semctl GETALL": lambda: ll.semctl({semid}, 0, ll.GETALL),
            "semctl IPC_RMID": lambda: ll.semctl({semid}, 0, ll.IPC_RMID),
            "shmget": lambda: ll.shmget({key}),
            "shmctl IPC_STAT": lambda: ll.shmctl({shmid}, ll.IPC_STAT),
            "shmctl IPC_RMID": lambda: ll.shmctl({shmid}, ll.IPC_RMID),
            "shmat": lambda: ll.shmat({shmid}),
        }}
        out = {{}}
        for name, call in calls.items():
            try:
                call()
                out[name] = None
            except Exception as exc:
                out[name] = [type(exc).__name__, getattr(exc, "errno", None), str(exc)]
        print(json.dumps(out))
        """,
        env=CHILD_ENV,
        timeout=30,
    )
    assert_child_ok(proc)
    results = json.loads(proc.stdout)
    expected = {
        "msgget": (errno.EACCES, "msgget"),
        "msgsnd": (errno.EACCES, "msgsnd"),
        "msgrcv": (errno.EACCES, "msgrcv"),
        "msgrcv_into": (errno.EACCES, "msgrcv"),
        "msgctl IPC_STAT": (errno.EACCES, "msgctl"),
        "msgctl IPC_SET": (errno.EPERM, "msgctl"),
        "msgctl IPC_RMID": (errno.EPERM, "msgctl"),
        "semget": (errno.EACCES, "semget"),
        "semop": (errno.EACCES, "semop"),
        "semop1": (errno.EACCES, "semop"),
        "semtimedop": (errno.EACCES, "sem(timed)?op"),
        "semctl GETVAL": (errno.EACCES, "semctl"),
        "semctl SETVAL": (errno.EACCES, "semctl"),
        "semctl GETALL": (errno.EACCES, "semctl"),
        "semctl IPC_RMID": (errno.EPERM, "semctl"),
        "shmget": (errno.EACCES, "shmget"),
        "shmctl IPC_STAT": (errno.EACCES, "shmctl"),
        "shmctl IPC_RMID": (errno.EPERM, "shmctl"),
        "shmat": (errno.EACCES, "shmat"),
    }
    for name, (err, syscall) in expected.items():
        got = results[name]
        assert got is not None, f"{name} succeeded for another user"
        cls, got_errno, message = got
        assert cls == "PermissionError", (name, got)
        if err is not None:
            assert got_errno == err, (name, got)
        if syscall is not None:
            assert re.search(rf"\(originated from {syscall}\)", message), (name, message)
    # Nothing changed.
    assert ll.msgrcv(msqid, 100, flags=ll.IPC_NOWAIT) == (b"secret", 1)
    assert ll.semctl(semid, 0, ll.GETVAL) == 0
    assert ll.msgctl(msqid, ll.IPC_STAT).msg_perm.mode & 0o777 == 0o600
    assert proc_row("shm", shmid) is not None


def test_readonly_access_allows_only_shm_rdonly(ipc: Tracker) -> None:
    shmid = ipc.shmget(4096, mode=0o604)
    proc = run_python(
        f"""
        import os
        from sysvipc import lowlevel as ll
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
        ro = ll.shmat({shmid}, ll.SHM_RDONLY)
        assert ro.readonly and ro.read(4) == bytes(4)
        ro.detach()
        try:
            ll.shmat({shmid})
        except PermissionError as exc:
            assert exc.errno == 13
            print("ok")
        """,
        env=CHILD_ENV,
        timeout=30,
    )
    assert_child_ok(proc)
    assert proc.stdout.strip() == "ok"


def test_ipc_set_by_another_user_is_eperm(ipc: Tracker) -> None:
    msqid = ipc.msgget()
    semid = ipc.semget(1)
    shmid = ipc.shmget(4096)
    proc = run_python(
        f"""
        import os
        from sysvipc import lowlevel as ll
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
        for call in (
            lambda: ll.msgctl({msqid}, ll.IPC_SET, mode=0o666),
            lambda: ll.semctl({semid}, 0, ll.IPC_SET, mode=0o666),
            lambda: ll.shmctl({shmid}, ll.IPC_SET, mode=0o666),
        ):
            try:
                call()
            except PermissionError as exc:
                print(exc.errno)
        """,
        env=CHILD_ENV,
        timeout=30,
    )
    assert_child_ok(proc)
    assert proc.stdout.split() == [str(errno.EPERM)] * 3


def test_shmat_errors_name_shmat(ipc: Tracker) -> None:
    shmid = ipc.shmget(4096)
    ll.shmctl(shmid, ll.IPC_RMID)  # gone: EINVAL
    with pytest.raises(OSError) as info:
        ll.shmat(shmid)
    assert info.value.errno == errno.EINVAL
    assert_names(info.value, "shmat")


# --------------------------------------------------------------------------
# BlockingIOError: would block
# --------------------------------------------------------------------------


def test_msgrcv_nowait_on_empty_queue(msqid: int) -> None:
    for call in (
        lambda: ll.msgrcv(msqid, 10, 0, ll.IPC_NOWAIT),
        lambda: ll.msgrcv(msqid, None, 5, ll.IPC_NOWAIT, timeout=5),
        lambda: ll.msgrcv_into(msqid, bytearray(10), 0, ll.IPC_NOWAIT),
    ):
        with pytest.raises(BlockingIOError) as info:
            call()
        assert info.value.errno == errno.ENOMSG
        assert_names(info.value, "msgrcv")


def test_msgsnd_nowait_on_full_queue(msqid: int) -> None:
    ll.msgctl(msqid, ll.IPC_SET, qbytes=4)
    ll.msgsnd(msqid, b"full", 1)
    for call in (
        lambda: ll.msgsnd(msqid, b"x", 1, ll.IPC_NOWAIT),
        lambda: ll.msgsnd(msqid, b"x", 1, ll.IPC_NOWAIT, timeout=5),
    ):
        with pytest.raises(BlockingIOError) as info:
            call()
        assert info.value.errno == errno.EAGAIN
        assert_names(info.value, "msgsnd")
    assert int(proc_row("msg", msqid)["qnum"]) == 1  # type: ignore[index]


def test_semop_nowait(semid: int) -> None:
    for call, syscall in (
        (lambda: ll.semop(semid, [(0, -1, ll.IPC_NOWAIT)]), "semop"),
        (lambda: ll.semop(semid, [(0, -1)], flags=ll.IPC_NOWAIT), "semop"),
        (lambda: ll.semop1(semid, 0, -1, ll.IPC_NOWAIT), "semop"),
        (lambda: ll.semop(semid, [(0, -1, ll.IPC_NOWAIT)], timeout=LONG_TIMEOUT), "sem(timed)?op"),
        (lambda: ll.semop1(semid, 0, -1, ll.IPC_NOWAIT, LONG_TIMEOUT), "sem(timed)?op"),
    ):
        t0 = time.monotonic()
        with pytest.raises(BlockingIOError) as info:
            call()
        assert time.monotonic() - t0 < HANG  # not a timeout
        assert info.value.errno == errno.EAGAIN
        assert_names(info.value, syscall)


# --------------------------------------------------------------------------
# TimeoutError
# --------------------------------------------------------------------------


def test_timeouts(ipc: Tracker) -> None:
    empty = ipc.msgget()
    full = ipc.msgget()
    semid = ipc.semget(1)
    ll.msgctl(full, ll.IPC_SET, qbytes=8)
    ll.msgsnd(full, b"x" * 8, 3)
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: ll.msgrcv(empty, 10, timeout=0.05), "msgrcv"),
        (lambda: ll.msgrcv(full, None, 3, ll.MSG_EXCEPT, timeout=0.05), "msgrcv"),
        (lambda: ll.msgrcv(full, None, -2, timeout=0.05), "msgrcv"),
        (lambda: ll.msgrcv_into(empty, bytearray(10), timeout=0.05), "msgrcv"),
        (lambda: ll.msgsnd(full, b"x", 1, timeout=0.05), "msgsnd"),
        (lambda: ll.semop(semid, [(0, -1)], timeout=0.05), "sem(timed)?op"),
        (lambda: ll.semop1(semid, 0, -1, timeout=0.05), "sem(timed)?op"),
    ]
    for call, syscall in cases:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            call()
        assert time.monotonic() - t0 >= 0.05
        assert info.value.errno == errno.ETIMEDOUT
        assert re.search(rf"\(originated from {syscall}\)", str(info.value)), str(info.value)
    assert int(proc_row("msg", full)["qnum"]) == 1  # type: ignore[index]
    assert int(proc_row("msg", empty)["qnum"]) == 0  # type: ignore[index]
    assert ll.semctl(semid, 0, ll.GETVAL) == 0


def test_zero_timeout_is_a_poll(ipc: Tracker) -> None:
    msqid = ipc.msgget()
    semid = ipc.semget(1)
    for call in (
        lambda: ll.msgrcv(msqid, 10, timeout=0),
        lambda: ll.semop(semid, [(0, -1)], timeout=0),
        lambda: ll.semop1(semid, 0, -1, timeout=0.0),
    ):
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            call()
        assert time.monotonic() - t0 < HANG
    ll.msgsnd(msqid, b"here", 1)
    ll.semop1(semid, 0, 1)
    assert ll.msgrcv(msqid, 10, timeout=0) == (b"here", 1)
    ll.semop(semid, [(0, -1)], timeout=0)


# --------------------------------------------------------------------------
# IdentifierRemovedError: the object goes while a caller waits on it
# --------------------------------------------------------------------------


def test_identifier_removed_error_type() -> None:
    assert issubclass(sysvipc.IdentifierRemovedError, OSError)
    assert sysvipc.IdentifierRemovedError is ll.IdentifierRemovedError
    assert sysvipc.IdentifierRemovedError is sysvipc._sysvipc.IdentifierRemovedError


@pytest.mark.parametrize(
    "call, syscalls",
    [
        (lambda q: ll.msgrcv(q, 100), ("msgrcv",)),
        (lambda q: ll.msgrcv(q, 100, timeout=30), ("msgrcv",)),
        (lambda q: ll.msgrcv_into(q, bytearray(100)), ("msgrcv",)),
        (lambda q: ll.msgrcv(q, 100, 5), ("msgrcv",)),
    ],
    ids=["msgrcv", "msgrcv-timed", "msgrcv_into", "msgrcv-type"],
)
def test_receiver_sees_queue_removed(
    ipc: Tracker, call: Callable[[int], Any], syscalls: tuple[str, ...]
) -> None:
    msqid = ipc.msgget()
    waiter = Background(lambda: call(msqid))
    try:
        wait_in_syscall(waiter.tid, *syscalls)
        ll.msgctl(msqid, ll.IPC_RMID)
        waiter.join()
    finally:
        try:
            ll.msgctl(msqid, ll.IPC_RMID)
        except OSError:
            pass
        waiter.join()
    assert isinstance(waiter.error, sysvipc.IdentifierRemovedError), repr(waiter.error)
    assert waiter.error.errno == errno.EIDRM
    assert_names(waiter.error, "msgrcv")


@pytest.mark.parametrize("timeout", [None, 30.0], ids=["msgsnd", "msgsnd-timed"])
def test_sender_sees_queue_removed(ipc: Tracker, timeout: float | None) -> None:
    msqid = ipc.msgget()
    ll.msgctl(msqid, ll.IPC_SET, qbytes=4)
    ll.msgsnd(msqid, b"full", 1)
    waiter = Background(lambda: ll.msgsnd(msqid, b"more", 1, timeout=timeout))
    try:
        wait_in_syscall(waiter.tid, "msgsnd")
        ll.msgctl(msqid, ll.IPC_RMID)
        waiter.join()
    finally:
        try:
            ll.msgctl(msqid, ll.IPC_RMID)
        except OSError:
            pass
        waiter.join()
    assert isinstance(waiter.error, sysvipc.IdentifierRemovedError), repr(waiter.error)
    assert waiter.error.errno == errno.EIDRM
    assert_names(waiter.error, "msgsnd")


@pytest.mark.parametrize(
    "call, syscall",
    [
        (lambda s: ll.semop(s, [(0, -1)]), "semop"),
        (lambda s: ll.semop(s, [(0, -1)], timeout=30), "sem(timed)?op"),
        (lambda s: ll.semop1(s, 0, -1), "semop"),
        (lambda s: ll.semop1(s, 0, -1, timeout=30), "sem(timed)?op"),
    ],
    ids=["semop", "semop-timed", "semop1", "semop1-timed"],
)
def test_semop_sees_set_removed(ipc: Tracker, call: Callable[[int], Any], syscall: str) -> None:
    semid = ipc.semget(1)
    waiter = Background(lambda: call(semid))
    try:
        deadline = time.monotonic() + 5
        while ll.semctl(semid, 0, ll.GETNCNT) != 1:
            assert time.monotonic() < deadline, "semop never blocked"
            time.sleep(0.002)
        ll.semctl(semid, 0, ll.IPC_RMID)
        waiter.join()
    finally:
        try:
            ll.semctl(semid, 0, ll.IPC_RMID)
        except OSError:
            pass
        waiter.join()
    assert isinstance(waiter.error, sysvipc.IdentifierRemovedError), repr(waiter.error)
    assert waiter.error.errno == errno.EIDRM
    assert_names(waiter.error, syscall)


# --------------------------------------------------------------------------
# Other errnos, and the syscall in every message
# --------------------------------------------------------------------------


def test_other_errnos_name_their_syscall(ipc: Tracker) -> None:
    msqid = ipc.msgget()
    semid = ipc.semget(1)
    shmid = ipc.shmget(4096)
    gone_q = ipc.msgget()
    gone_s = ipc.semget(1)
    gone_m = ipc.shmget(4096)
    ll.msgctl(gone_q, ll.IPC_RMID)
    ll.semctl(gone_s, 0, ll.IPC_RMID)
    ll.shmctl(gone_m, ll.IPC_RMID)
    ll.msgsnd(msqid, b"0123456789", 1)
    cases: list[tuple[Callable[[], Any], int, str]] = [
        (lambda: ll.msgrcv(msqid, 2, flags=ll.IPC_NOWAIT), errno.E2BIG, "msgrcv"),
        (lambda: ll.msgrcv_into(msqid, bytearray(2), flags=ll.IPC_NOWAIT), errno.E2BIG, "msgrcv"),
        (lambda: ll.msgsnd(gone_q, b"x", 1, ll.IPC_NOWAIT), errno.EINVAL, "msgsnd"),
        (lambda: ll.msgrcv(gone_q, 1, flags=ll.IPC_NOWAIT), errno.EINVAL, "msgrcv"),
        (lambda: ll.msgctl(gone_q, ll.IPC_STAT), errno.EINVAL, "msgctl"),
        (lambda: ll.msgctl(gone_q, ll.IPC_SET, mode=0o600), errno.EINVAL, "msgctl"),
        (lambda: ll.msgctl(gone_q, ll.IPC_RMID), errno.EINVAL, "msgctl"),
        (lambda: ll.semop(semid, [(1, 1)]), errno.EFBIG, "semop"),
        (lambda: ll.semop(gone_s, [(0, 1)]), errno.EINVAL, "semop"),
        (lambda: ll.semop(gone_s, [(0, 1)], timeout=1), errno.EINVAL, "sem(timed)?op"),
        (lambda: ll.semctl(gone_s, 0, ll.GETVAL), errno.EINVAL, "semctl"),
        (lambda: ll.semctl(gone_s, 0, ll.GETALL), errno.EINVAL, "semctl"),
        (lambda: ll.semctl(gone_s, 0, ll.SETALL, [1]), errno.EINVAL, "semctl"),
        (lambda: ll.semctl(semid, 5, ll.GETVAL), errno.EINVAL, "semctl"),
        (lambda: ll.shmctl(gone_m, ll.IPC_STAT), errno.EINVAL, "shmctl"),
        (lambda: ll.shmctl(gone_m, ll.SHM_LOCK), errno.EINVAL, "shmctl"),
        (lambda: ll.shmget(ll.IPC_PRIVATE, 0, ll.IPC_CREAT), errno.EINVAL, "shmget"),
        (lambda: ll.semget(ll.IPC_PRIVATE, 0, ll.IPC_CREAT), errno.EINVAL, "semget"),
    ]
    before = existing_ids()
    for call, err, syscall in cases:
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == err, (syscall, info.value)
        assert_names(info.value, syscall)
    ll.semctl(semid, 0, ll.SETVAL, ll.SEMVMX)
    with pytest.raises(OSError) as info:
        ll.semop1(semid, 0, 1)
    assert info.value.errno == errno.ERANGE
    assert_names(info.value, "semop")
    assert existing_ids() == before
    assert shmid in {i for k, i in before if k == "shm"}
