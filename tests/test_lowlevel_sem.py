"""Semaphore sets through sysvipc.lowlevel, against the real kernel.

Results are cross-checked with /proc/sysvipc/sem and /proc/sys/kernel/sem.
Every blocking call has a timeout, and threads are always joined.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import Tracker, assert_child_ok, proc_row, proc_rows, run_python

import sysvipc
from sysvipc import lowlevel as ll

REPO = str(Path(sysvipc.__file__).resolve().parent.parent)
CHILD_ENV = {**os.environ, "PYTHONPATH": REPO}


def sem_limits() -> tuple[int, int, int, int]:
    """SEMMSL, SEMMNS, SEMOPM, SEMMNI from /proc/sys/kernel/sem."""
    with open("/proc/sys/kernel/sem") as f:
        semmsl, semmns, semopm, semmni = (int(v) for v in f.read().split())
    return semmsl, semmns, semopm, semmni


def stable(read: Callable[[], Any], query: Callable[[], Any]) -> tuple[Any, Any]:
    for _ in range(100):
        before = read()
        result = query()
        if read() == before:
            return before, result
        time.sleep(0.01)
    pytest.fail("/proc/sysvipc/sem never stayed still")


class Background:
    """Run fn in a thread; its result or exception is kept for the test."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 10.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "background call still blocked"
        if self.error is not None:
            raise self.error
        return self.result


@contextmanager
def released_on_exit(semid: int) -> Iterator[None]:
    """Remove the set if the block fails, so that no thread stays blocked."""
    try:
        yield
    except BaseException:
        try:
            ll.semctl(semid, 0, ll.IPC_RMID)
        except OSError:
            pass
        raise


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.002)


# --------------------------------------------------------------------------
# semget
# --------------------------------------------------------------------------


def test_semget_creates_set(ipc: Tracker, key: int) -> None:
    before = int(time.time())
    semid = ipc.semget(3, key, mode=0o640)
    row = proc_row("sem", semid)
    assert row is not None
    assert int(row["key"]) == key
    assert int(row["nsems"]) == 3
    assert int(row["perms"], 8) == 0o640
    assert int(row["uid"]) == int(row["cuid"]) == os.geteuid()
    assert int(row["otime"]) == 0
    ds = ll.semctl(semid, 0, ll.IPC_STAT)
    assert isinstance(ds, sysvipc.SemidDs)
    assert ds.sem_nsems == 3
    assert ds.sem_perm.key == key and ds.sem_perm.mode & 0o777 == 0o640
    assert ds.sem_perm.uid == ds.sem_perm.cuid == os.geteuid()
    assert ds.sem_perm.gid == ds.sem_perm.cgid == os.getegid()
    assert ds.sem_otime == 0  # never operated on
    assert before - 1 <= ds.sem_ctime <= time.time() + 1
    assert ds.sem_ctime == int(row["ctime"])
    # Linux creates the values as 0.
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 0, 0]


def test_semget_opens_existing(ipc: Tracker, key: int) -> None:
    semid = ipc.semget(3, key)
    assert ll.semget(key) == semid
    assert ll.semget(key, 0) == semid
    assert ll.semget(key, 2) == semid
    assert ll.semget(key=key, nsems=3, flags=0, mode=0o600) == semid
    with pytest.raises(OSError) as info:
        ll.semget(key, 4)  # more than the set has
    assert info.value.errno == errno.EINVAL
    assert "semget" in str(info.value)


def test_reopening_with_ipc_creat_keeps_values(ipc: Tracker, key: int) -> None:
    semid = ipc.semget(2, key)
    ll.semctl(semid, 0, ll.SETALL, [5, 7])
    assert ll.semget(key, 2, ll.IPC_CREAT) == semid
    assert ll.semget(key, 2, ll.IPC_CREAT, 0o666) == semid
    assert ll.semctl(semid, 0, ll.GETALL) == [5, 7]
    assert int(proc_row("sem", semid)["perms"], 8) == 0o600  # type: ignore[index]


def test_private_sets_are_distinct(ipc: Tracker) -> None:
    a = ipc.track("sem", ll.semget(ll.IPC_PRIVATE, 1, ll.IPC_CREAT))
    b = ipc.track("sem", ll.semget(ll.IPC_PRIVATE, 1, ll.IPC_CREAT))
    assert a != b
    assert int(proc_row("sem", a)["key"]) == 0  # type: ignore[index]


# --------------------------------------------------------------------------
# semctl: values
# --------------------------------------------------------------------------


def test_setval_getval(ipc: Tracker) -> None:
    semid = ipc.semget(2)
    ctime0 = ll.semctl(semid, 0, ll.IPC_STAT).sem_ctime
    for value in (1, 0, 12345, ll.SEMVMX):
        assert ll.semctl(semid, 1, ll.SETVAL, value) is None
        assert ll.semctl(semid, 1, ll.GETVAL) == value
        assert ll.semctl(semid, 0, ll.GETVAL) == 0
    assert ll.SEMVMX == 32767
    assert ll.semctl(semid, 0, ll.IPC_STAT).sem_ctime >= ctime0
    # SETVAL records the caller as the last pid on Linux.
    assert ll.semctl(semid, 1, ll.GETPID) == os.getpid()
    with pytest.raises(OSError) as info:
        ll.semctl(semid, 2, ll.GETVAL)  # no such semaphore
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        ll.semctl(semid, 2, ll.SETVAL, 1)
    assert info.value.errno == errno.EINVAL


def test_setall_getall(ipc: Tracker) -> None:
    semid = ipc.semget(4)
    assert ll.semctl(semid, 0, ll.SETALL, [1, 2, 3, ll.SEMVMX]) is None
    assert ll.semctl(semid, 0, ll.GETALL) == [1, 2, 3, ll.SEMVMX]
    ll.semctl(semid, 0, ll.SETALL, (0, 0, 9, 0))  # any sequence
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 0, 9, 0]
    assert [ll.semctl(semid, i, ll.GETVAL) for i in range(4)] == [0, 0, 9, 0]
    assert [ll.semctl(semid, i, ll.GETPID) for i in range(4)] == [os.getpid()] * 4
    for wrong in ([1, 2, 3], [1, 2, 3, 4, 5], []):
        with pytest.raises(ValueError, match="4"):
            ll.semctl(semid, 0, ll.SETALL, wrong)
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 0, 9, 0]


def test_getall_large_set(ipc: Tracker) -> None:
    n = 250
    semid = ipc.semget(n)
    values = [i * 100 % (ll.SEMVMX + 1) for i in range(n)]
    ll.semctl(semid, 0, ll.SETALL, values)
    assert ll.semctl(semid, 0, ll.GETALL) == values
    assert int(proc_row("sem", semid)["nsems"]) == n  # type: ignore[index]


# --------------------------------------------------------------------------
# semop / semop1
# --------------------------------------------------------------------------


def test_semop_changes_values_and_times(ipc: Tracker) -> None:
    semid = ipc.semget(2)
    t0 = int(time.time())
    assert ll.semop(semid, [(0, 5), (1, 2)]) is None
    assert ll.semctl(semid, 0, ll.GETALL) == [5, 2]
    ll.semop(semid, [(0, -3, 0), (1, -2, ll.IPC_NOWAIT)])
    assert ll.semctl(semid, 0, ll.GETALL) == [2, 0]
    ll.semop(semid, [[1, 0]])  # lists work; 0 waits for zero, which holds
    ds = ll.semctl(semid, 0, ll.IPC_STAT)
    assert t0 - 1 <= ds.sem_otime <= time.time() + 1
    row = proc_row("sem", semid)
    assert row is not None and int(row["otime"]) == ds.sem_otime
    assert ll.semctl(semid, 0, ll.GETPID) == os.getpid()


def test_semop_keywords_and_flags(semid: int) -> None:
    ll.semop(semid=semid, ops=[(0, 1)], timeout=1.0, flags=0)
    # flags is OR-ed into every operation.
    ll.semop(semid, [(0, -1)], flags=ll.IPC_NOWAIT)
    with pytest.raises(BlockingIOError) as info:
        ll.semop(semid, [(0, -1)], flags=ll.IPC_NOWAIT)
    assert info.value.errno == errno.EAGAIN
    assert ll.semctl(semid, 0, ll.GETVAL) == 0


def test_semop1(ipc: Tracker) -> None:
    semid = ipc.semget(2)
    assert ll.semop1(semid, 1, 3) is None
    ll.semop1(semid, 1, -1, ll.IPC_NOWAIT)
    ll.semop1(semid=semid, sem_num=1, sem_op=-1, sem_flg=0, timeout=1.0)
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 1]
    with pytest.raises(BlockingIOError):
        ll.semop1(semid, 0, -1, ll.IPC_NOWAIT)
    with pytest.raises(BlockingIOError):
        ll.semop1(semid, 1, 0, ll.IPC_NOWAIT)  # not zero
    ll.semop1(semid, 0, 0)  # is zero: returns at once
    assert ll.semctl(semid, 1, ll.GETPID) == os.getpid()


def test_semop_is_all_or_nothing(ipc: Tracker) -> None:
    semid = ipc.semget(3)
    ll.semctl(semid, 0, ll.SETALL, [1, 0, 4])
    # The second operation cannot proceed: none of them is applied.
    with pytest.raises(BlockingIOError):
        ll.semop(semid, [(0, -1), (1, -1), (2, -4)], flags=ll.IPC_NOWAIT)
    assert ll.semctl(semid, 0, ll.GETALL) == [1, 0, 4]
    # The operation that cannot proceed (the second -1 on #0) has IPC_NOWAIT.
    with pytest.raises(BlockingIOError):
        ll.semop(semid, [(2, -4), (0, -1), (0, -1, ll.IPC_NOWAIT)], timeout=5)
    assert ll.semctl(semid, 0, ll.GETALL) == [1, 0, 4]

    # Blocking: the whole group waits, and completes at once when possible.
    with released_on_exit(semid):
        waiter = Background(lambda: ll.semop(semid, [(0, -1), (1, -1), (2, -4)], timeout=10))
        wait_for(lambda: ll.semctl(semid, 1, ll.GETNCNT) == 1)
        assert ll.semctl(semid, 0, ll.GETALL) == [1, 0, 4]  # nothing taken yet
        ll.semop1(semid, 1, 1)
        waiter.join()
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 0, 0]


def test_semop_timeout_then_success(semid: int) -> None:
    with pytest.raises(TimeoutError):
        ll.semop(semid, [(0, -1)], timeout=0.05)
    assert ll.semctl(semid, 0, ll.GETNCNT) == 0
    with released_on_exit(semid):
        waiter = Background(lambda: ll.semop(semid, [(0, -1)], timeout=10))
        wait_for(lambda: ll.semctl(semid, 0, ll.GETNCNT) == 1)
        ll.semop1(semid, 0, 1)
        waiter.join()
        waiter = Background(lambda: ll.semop1(semid, 0, -1, timeout=10))
        wait_for(lambda: ll.semctl(semid, 0, ll.GETNCNT) == 1)
        ll.semop1(semid, 0, 1)
        waiter.join()
    assert ll.semctl(semid, 0, ll.GETVAL) == 0


def test_getncnt_getzcnt(ipc: Tracker) -> None:
    semid = ipc.semget(2)
    ll.semctl(semid, 1, ll.SETVAL, 1)
    assert ll.semctl(semid, 0, ll.GETNCNT) == 0
    assert ll.semctl(semid, 1, ll.GETZCNT) == 0
    with released_on_exit(semid):
        takers = [Background(lambda: ll.semop1(semid, 0, -1, timeout=10)) for _ in range(2)]
        zero = Background(lambda: ll.semop1(semid, 1, 0, timeout=10))
        wait_for(lambda: ll.semctl(semid, 0, ll.GETNCNT) == 2)
        wait_for(lambda: ll.semctl(semid, 1, ll.GETZCNT) == 1)
        assert ll.semctl(semid, 1, ll.GETNCNT) == 0
        assert ll.semctl(semid, 0, ll.GETZCNT) == 0
        ll.semop1(semid, 0, 1)
        wait_for(lambda: ll.semctl(semid, 0, ll.GETNCNT) == 1)
        ll.semop1(semid, 0, 1)
        ll.semop1(semid, 1, -1)
        for t in (*takers, zero):
            t.join()
    assert ll.semctl(semid, 0, ll.GETNCNT) == 0
    assert ll.semctl(semid, 1, ll.GETZCNT) == 0
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 0]


def test_getpid_of_another_process(semid: int) -> None:
    proc = run_python(
        f"""
        import os
        from sysvipc import lowlevel as ll
        ll.semop1({semid}, 0, 2)
        print(os.getpid())
        """,
        env=CHILD_ENV,
        timeout=30,
    )
    assert_child_ok(proc)
    assert ll.semctl(semid, 0, ll.GETPID) == int(proc.stdout)
    assert ll.semctl(semid, 0, ll.GETVAL) == 2  # no SEM_UNDO: it stays


def test_sem_undo_applied_at_exit(ipc: Tracker) -> None:
    semid = ipc.semget(2)
    ll.semctl(semid, 1, ll.SETVAL, 5)
    proc = run_python(
        f"""
        from sysvipc import lowlevel as ll
        ll.semop({semid}, [(0, 3, ll.SEM_UNDO), (1, -2, ll.SEM_UNDO)])
        assert ll.semctl({semid}, 0, ll.GETALL) == [3, 3]
        ll.semop1({semid}, 0, 1, ll.SEM_UNDO)
        ll.semop({semid}, [(0, 1)], flags=ll.SEM_UNDO)
        print("ok")
        """,
        env=CHILD_ENV,
        timeout=30,
    )
    assert_child_ok(proc)
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 5]


def test_sem_undo_applied_on_sigkill(semid: int) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from sysvipc import lowlevel as ll\n"
            f"ll.semop1({semid}, 0, 1, ll.SEM_UNDO)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=CHILD_ENV,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        assert ll.semctl(semid, 0, ll.GETVAL) == 1
        child.kill()
        child.wait(timeout=10)
        assert ll.semctl(semid, 0, ll.GETVAL) == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)


def test_too_many_operations(semid: int) -> None:
    semopm = sem_limits()[2]
    with pytest.raises(OSError) as info:
        ll.semop(semid, [(0, 1)] * (semopm + 1))
    assert info.value.errno == errno.E2BIG
    assert "semop" in str(info.value)
    assert ll.semctl(semid, 0, ll.GETVAL) == 0
    ll.semop(semid, [(0, 1)] * min(semopm, 40))  # the heap path for >16 ops
    assert ll.semctl(semid, 0, ll.GETVAL) == min(semopm, 40)


def test_sem_num_out_of_range(semid: int) -> None:
    with pytest.raises(OSError) as info:
        ll.semop(semid, [(1, 1)])
    assert info.value.errno == errno.EFBIG
    with pytest.raises(OSError) as info:
        ll.semop1(semid, 1, 1)
    assert info.value.errno == errno.EFBIG


def test_value_above_semvmx(semid: int) -> None:
    ll.semctl(semid, 0, ll.SETVAL, ll.SEMVMX)
    with pytest.raises(OSError) as info:
        ll.semop1(semid, 0, 1)
    assert info.value.errno == errno.ERANGE
    assert ll.semctl(semid, 0, ll.GETVAL) == ll.SEMVMX


# --------------------------------------------------------------------------
# semctl: the set
# --------------------------------------------------------------------------


def test_ipc_set(semid: int) -> None:
    ds0 = ll.semctl(semid, 0, ll.IPC_STAT)
    ll.semctl(semid, 0, ll.IPC_SET, mode=0o604)
    ds = ll.semctl(semid, 0, ll.IPC_STAT)
    assert ds.sem_perm.mode & 0o777 == 0o604
    assert ds.sem_perm.uid == ds0.sem_perm.uid and ds.sem_nsems == 1
    ll.semctl(semid, 0, ll.IPC_SET, uid=65534, gid=65533)
    ds = ll.semctl(semid, 0, ll.IPC_STAT)
    assert (ds.sem_perm.uid, ds.sem_perm.gid) == (65534, 65533)
    assert ds.sem_perm.mode & 0o777 == 0o604
    assert ds.sem_perm.cuid == ds0.sem_perm.cuid
    row = proc_row("sem", semid)
    assert row is not None
    assert (int(row["uid"]), int(row["gid"]), int(row["perms"], 8)) == (65534, 65533, 0o604)
    sysvipc._sysvipc.semctl(semid, 0, ll.IPC_SET, (None, None, 0o600))
    assert ll.semctl(semid, 0, ll.IPC_STAT).sem_perm.mode & 0o777 == 0o600


def test_ipc_rmid(ipc: Tracker) -> None:
    semid = ipc.semget(2)
    assert ll.semctl(semid, 0, ll.IPC_RMID) is None
    assert proc_row("sem", semid) is None
    for call in (
        lambda: ll.semctl(semid, 0, ll.IPC_RMID),
        lambda: ll.semctl(semid, 0, ll.GETVAL),
        lambda: ll.semctl(semid, 0, ll.IPC_STAT),
        lambda: ll.semop(semid, [(0, 1)]),
    ):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EINVAL


def test_ipc_info_matches_sysctl(semid: int) -> None:
    semmsl, semmns, semopm, semmni = sem_limits()
    maxidx, info = ll.semctl(0, 0, ll.IPC_INFO)
    assert isinstance(info, sysvipc.SemInfo)
    assert (info.semmsl, info.semmns, info.semopm, info.semmni) == (
        semmsl,
        semmns,
        semopm,
        semmni,
    )
    assert info.semvmx == ll.SEMVMX == 32767
    assert maxidx >= 0


def test_sem_info_matches_proc(ipc: Tracker) -> None:
    ipc.semget(3)
    ipc.semget(5)
    rows, (maxidx, usage) = stable(lambda: proc_rows("sem"), lambda: ll.semctl(0, 0, ll.SEM_INFO))
    assert isinstance(usage, sysvipc.SemInfo)
    assert usage.semusz == len(rows)  # sets
    assert usage.semaem == sum(int(r["nsems"]) for r in rows)  # semaphores
    assert usage.semmsl == sem_limits()[0]
    assert maxidx >= 0


def test_sem_stat_and_stat_any_by_index(ipc: Tracker) -> None:
    mine = {ipc.semget(2), ipc.semget(3, mode=0o400)}
    maxidx, _ = ll.semctl(0, 0, ll.SEM_INFO)
    for cmd in (ll.SEM_STAT, ll.SEM_STAT_ANY):
        found = {}
        for index in range(maxidx + 1):
            try:
                ident, ds = ll.semctl(index, 0, cmd)
            except OSError as exc:
                assert exc.errno == errno.EINVAL
                continue
            assert isinstance(ds, sysvipc.SemidDs)
            found[ident] = ds
        assert mine <= set(found)
        for semid in mine:
            assert found[semid] == ll.semctl(semid, 0, ll.IPC_STAT)
        with pytest.raises(OSError):
            ll.semctl(maxidx + 1, 0, cmd)


def test_sem_stat_any_ignores_read_permission(semid: int) -> None:
    maxidx, _ = ll.semctl(0, 0, ll.SEM_INFO)
    proc = run_python(
        f"""
        import os
        from sysvipc import lowlevel as ll
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
        seen_stat, seen_any = [], []
        for index in range({maxidx} + 1):
            try:
                seen_stat.append(ll.semctl(index, 0, ll.SEM_STAT)[0])
            except OSError:
                pass
            try:
                seen_any.append(ll.semctl(index, 0, ll.SEM_STAT_ANY)[0])
            except OSError:
                pass
        assert {semid} not in seen_stat, seen_stat
        assert {semid} in seen_any, seen_any
        try:
            ll.semctl({semid}, 0, ll.GETVAL)
        except PermissionError:
            print("ok")
        """,
        env=CHILD_ENV,
        timeout=30,
    )
    assert_child_ok(proc)
    assert proc.stdout.strip() == "ok"
