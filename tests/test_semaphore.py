"""SemaphoreSet and Semaphore (issue 5).

Every set a test makes is removed at teardown (the ``ipc`` fixture, or
``remove_on_close``), every child process is killed and reaped in a
``finally``, and every blocking call has a timeout.
"""

from __future__ import annotations

import contextlib
import doctest
import multiprocessing
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import (
        HANG,
        LONG_TIMEOUT,
        Tracker,
        assert_child_ok,
        proc_row,
        proc_rows,
        run_python,
        unused_key,
    )
else:
    try:  # tests/ holds plain modules ...
        from conftest import (
            HANG,
            LONG_TIMEOUT,
            Tracker,
            assert_child_ok,
            proc_row,
            proc_rows,
            run_python,
            unused_key,
        )
    except ImportError:  # ... or is a package
        from tests.conftest import (
            HANG,
            LONG_TIMEOUT,
            Tracker,
            assert_child_ok,
            proc_row,
            proc_rows,
            run_python,
            unused_key,
        )

import sysvipc
import sysvipc._semaphore as semaphore_module
from sysvipc import lowlevel as ll
from sysvipc._semaphore import _INITIALISING, Semaphore, SemaphoreSet, SemaphoreSetStat

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "semaphores.md"
SEMVMX = ll.SEMVMX


def kernel_sem() -> list[int]:
    """SEMMSL, SEMMNS, SEMOPM, SEMMNI of this IPC namespace."""
    with open("/proc/sys/kernel/sem") as f:
        return [int(x) for x in f.read().split()]


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

MakeSet = Callable[..., SemaphoreSet]


@pytest.fixture
def make(ipc: Tracker) -> MakeSet:
    """SemaphoreSet(...) whose set is removed at teardown."""

    def make(*args: Any, **kwargs: Any) -> SemaphoreSet:
        s = SemaphoreSet(*args, **kwargs)
        ipc.track("sem", s.id)
        return s

    return make


def ids_with_key(key: int) -> list[int]:
    return [int(r["semid"]) for r in proc_rows("sem") if int(r["key"]) == key]


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


@contextlib.contextmanager
def child(code: str) -> Iterator[subprocess.Popen[str]]:
    """A Python child running ``code``; killed and reaped whatever happens."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def finish(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    """Wait for a child, assert it exited 0, return its stdout."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"child exited {proc.returncode}\n{out}\n{err}"
    return out


# --------------------------------------------------------------------------
# Creating and opening
# --------------------------------------------------------------------------


def test_new_set_with_random_key(make: MakeSet) -> None:
    s = make(nsems=3, initial=[1, 2, 3])
    assert s.created and s.key > 0 and len(s) == 3
    assert s.values == [1, 2, 3]
    assert [sem.value for sem in s] == [1, 2, 3]
    row = proc_row("sem", s.id)
    assert row is not None and int(row["key"]) == s.key and int(row["nsems"]) == 3


def test_private_set_and_defaults(make: MakeSet) -> None:
    s = make(ll.IPC_PRIVATE)
    assert s.key == ll.IPC_PRIVATE and s.created and len(s) == 1 and s.values == [0]
    assert s.stat().sem_perm.mode & 0o777 == 0o600
    s2 = make(ll.IPC_PRIVATE, 4, initial=SEMVMX, mode=0o640)
    assert s2.values == [SEMVMX] * 4 and s2.id != s.id
    assert s2.stat().sem_perm.mode & 0o777 == 0o640
    assert s2.stat().sem_otime != 0  # the creation handshake ran, even at SEMVMX


def test_key_rules(make: MakeSet, key: int) -> None:
    with pytest.raises(FileNotFoundError):
        SemaphoreSet(key)
    a = make(key, 2, exclusive=True, initial=[3, 4])
    assert a.created and a.key == key
    with pytest.raises(FileExistsError):
        SemaphoreSet(key, 2, exclusive=True)
    b = SemaphoreSet(key)  # open: nsems=1 is enough, len() is the real size
    assert not b.created and b == a and len(b) == 2 and b.values == [3, 4]
    with pytest.raises(ValueError, match="fewer than nsems=3"):
        SemaphoreSet(key, 3)


def test_initial_not_applied_on_reopen(make: MakeSet, key: int) -> None:
    a = make(key, 2, create=True, initial=[3, 4])
    assert a.created
    a.values = [7, 8]
    b = SemaphoreSet(key, 2, create=True, initial=[1, 1])
    assert not b.created and b.id == a.id
    assert b.values == [7, 8]
    c = SemaphoreSet(key, 2, create=True, initial=0, init_timeout=0)
    assert c.values == [7, 8]


def test_from_id(make: MakeSet) -> None:
    s = make(nsems=2, initial=[5, 6])
    t = SemaphoreSet.from_id(s.id)
    assert t == s and t.key == s.key and len(t) == 2 and t.values == [5, 6]
    assert not t.created
    t.close()  # never removes
    assert s.values == [5, 6]
    with pytest.raises(OSError):
        SemaphoreSet.from_id(s.id + 10_000_000)


def test_validation_before_creating_anything(key: int) -> None:
    semmsl = kernel_sem()[0]
    bad: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"initial": -1}, ValueError, "SEMVMX"),
        ({"initial": SEMVMX + 1}, ValueError, "32767"),
        ({"initial": [1, 2]}, ValueError, "exactly 3"),
        ({"initial": [1, 2, SEMVMX + 1]}, ValueError, "SEMVMX"),
        ({"initial": [1, 2, -5]}, ValueError, "SEMVMX"),
        ({"initial": "abc"}, TypeError, "sequence"),
        ({"initial": True}, TypeError, "bool"),
        ({"initial": 1.5}, TypeError, "float"),
        ({"initial": [1, 2, 1.0]}, TypeError, "float"),
        ({"mode": 0o1000}, ValueError, "mode"),
        ({"init_timeout": -1}, ValueError, "init_timeout"),
        ({"init_timeout": "1"}, TypeError, "init_timeout"),
    ]
    for kwargs, exc, msg in bad:
        with pytest.raises(exc, match=msg):
            SemaphoreSet(key, 3, create=True, **kwargs)
    for nsems, exc in [(0, ValueError), (-1, ValueError), (True, TypeError), (2.0, TypeError)]:
        with pytest.raises(exc, match="nsems"):
            SemaphoreSet(key, nsems, create=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"SEMMSL={semmsl}"):
        SemaphoreSet(key, semmsl + 1, create=True)
    with pytest.raises(ValueError, match="key"):
        SemaphoreSet(2**32, create=True)
    assert ids_with_key(key) == []


def test_creator_that_fails_to_initialise_removes_the_set(
    key: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(semid: int, values: list[int]) -> None:
        raise RuntimeError("simulated failure between semget and the handshake")

    monkeypatch.setattr(semaphore_module, "_initialise", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        SemaphoreSet(key, create=True, initial=1)
    assert ids_with_key(key) == []


# --------------------------------------------------------------------------
# The creation handshake
# --------------------------------------------------------------------------


def test_marked_set_never_initialised_times_out_with_clear_error(ipc: Tracker, key: int) -> None:
    # What a sysvipc creator killed between semget and SETALL leaves: the
    # "being initialised" mark and sem_otime 0.
    semid = ipc.semget(2, key=key, mode=0o600 | _INITIALISING)
    with pytest.raises(TimeoutError, match=r"never initialised.*init_timeout=0"):
        SemaphoreSet(key, init_timeout=0.2)
    for wait in (0, None):
        s = SemaphoreSet(key, init_timeout=wait)
        assert s.id == semid and len(s) == 2 and s.values == [0, 0]
    # Once anyone has run semop, the set counts as initialised.
    s[0].release()
    assert SemaphoreSet(key, init_timeout=0.2).values == [1, 0]


def test_set_made_by_another_program_opens_at_once(ipc: Tracker, key: int) -> None:
    # A plain semget (ipcmk -S, C, Perl): sem_otime stays 0, and nobody will
    # ever run the handshake.  Even with a huge init_timeout the open is
    # immediate (a wait would hang the child until its timeout).
    semid = ipc.semget(2, key=key)
    ll.semctl(semid, 0, ll.SETALL, [3, 4])
    proc = run_python(
        f"""
        from sysvipc import SemaphoreSet
        s = SemaphoreSet({key}, init_timeout=3600)
        print(s.id, s.values, s.stat().sem_otime)
        """,
        timeout=60,
    )
    assert_child_ok(proc)
    assert proc.stdout.split(maxsplit=1) == [str(semid), "[3, 4] 0\n"]


def test_created_set_loses_the_mark(ipc: Tracker, key: int) -> None:
    s = SemaphoreSet(key, 1, create=True, mode=0o640, initial=2)
    ipc.track("sem", s.id)
    st = s.stat()
    assert st.sem_perm.mode & 0o777 == 0o640 and st.sem_otime != 0
    s.close()


def test_removed_while_waiting_for_initialisation(ipc: Tracker, key: int) -> None:
    semid = ipc.semget(1, key=key, mode=0o600 | _INITIALISING)  # a creator at work
    timer = threading.Timer(0.1, ll.semctl, (semid, 0, ll.IPC_RMID))
    timer.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(sysvipc.IdentifierRemovedError, match="before it was initialised"):
            SemaphoreSet(key, init_timeout=LONG_TIMEOUT)
        assert time.monotonic() - t0 < HANG
    finally:
        timer.cancel()
        timer.join(5)


def test_opener_waits_for_a_slow_creator(ipc: Tracker, key: int) -> None:
    # The creator sleeps between semget and SETALL: an opener must not see
    # the kernel's zeros, and must return as soon as the values are set.
    code = f"""
        import time
        import sysvipc._semaphore as m
        real = m._initialise
        def slow(semid, values):
            time.sleep(0.5)
            real(semid, values)
        m._initialise = slow
        s = m.SemaphoreSet({key}, 1, create=True, initial=5)
        assert s.created
    """
    try:
        with child(code) as proc:
            wait_until(lambda: bool(ids_with_key(key)), "the child's semget")
            t0 = time.monotonic()
            raw = SemaphoreSet(key, init_timeout=0)  # no handshake: sees zeros
            assert raw.values == [0]
            s = SemaphoreSet(key, 1, create=True, initial=1)
            elapsed = time.monotonic() - t0
            assert not s.created
            assert s.values == [5]
            assert 0.2 < elapsed < HANG
            finish(proc)
    finally:
        for semid in ids_with_key(key):
            ipc.track("sem", semid)


def open_gate(gate: Semaphore, waiters: int) -> None:
    """Let ``waiters`` children blocked in ``gate.wait_zero()`` go at once."""
    wait_until(lambda: gate.zcount == waiters, f"{waiters} children at the gate", timeout=30)
    gate.acquire()


def test_creation_race(ipc: Tracker, make: MakeSet) -> None:
    # 8 processes open the same keys with create=True at the same moment:
    # exactly one creates each set, and nobody ever sees a value but 5.
    keys = [unused_key() for _ in range(60)]
    gate = make(initial=1)[0]
    code = f"""
        from sysvipc._semaphore import SemaphoreSet
        SemaphoreSet.from_id({gate.set.id})[0].wait_zero(timeout=30)
        for key in {keys}:
            s = SemaphoreSet(key, 2, create=True, initial=5, init_timeout=10)
            print(key, int(s.created), *s.values, flush=True)
    """
    try:
        with contextlib.ExitStack() as stack:
            procs = [stack.enter_context(child(code)) for _ in range(8)]
            open_gate(gate, 8)
            outputs = [finish(p, timeout=30) for p in procs]
        rows = [line.split() for out in outputs for line in out.splitlines()]
        assert len(rows) == 8 * len(keys)
        assert all(row[2:] == ["5", "5"] for row in rows), [r for r in rows if r[2:] != ["5", "5"]]
        for key in keys:
            assert sum(int(r[1]) for r in rows if int(r[0]) == key) == 1
    finally:
        for key in keys:
            for semid in ids_with_key(key):
                ipc.track("sem", semid)


# --------------------------------------------------------------------------
# Semaphore: acquire, release, wait_zero, value
# --------------------------------------------------------------------------


def test_acquire_release(make: MakeSet) -> None:
    s = make(nsems=2, initial=[3, 0])
    sem = s[0]
    assert sem.acquire() is True
    assert sem.acquire(2) is True
    assert sem.value == 0
    assert sem.acquire(block=False) is False
    sem.release()
    sem.release(4)
    assert sem.value == 5
    assert s[1].wait_zero() is True
    assert s[1].wait_zero(block=False) is True
    assert s[0].wait_zero(block=False) is False
    assert sem.pid == os.getpid()
    assert sem.ncount == 0 and sem.zcount == 0
    sem.value = 9
    assert s.values == [9, 0]
    sem.acquire(9, undo=True)
    sem.release(9, undo=True)
    assert sem.value == 9


def test_acquire_release_validation(make: MakeSet) -> None:
    s = make(initial=1)
    sem = s[0]
    for bad_n in (0, -1, 32768, 2**64):
        with pytest.raises(ValueError, match="1..32767"):
            sem.acquire(bad_n)
        with pytest.raises(ValueError, match="1..32767"):
            sem.release(bad_n)
    for bad_type in (True, 1.0, "1", None):
        with pytest.raises(TypeError):
            sem.acquire(bad_type)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            sem.release(bad_type)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block=False"):
        sem.acquire(block=False, timeout=1)
    with pytest.raises(ValueError, match="block=False"):
        sem.wait_zero(block=False, timeout=1)
    with pytest.raises(ValueError, match="negative"):
        sem.acquire(timeout=-1)
    with pytest.raises(ValueError, match="NaN"):
        sem.acquire(timeout=float("nan"))
    assert sem.value == 1


def test_values_beyond_semvmx_are_refused(make: MakeSet) -> None:
    s = make(nsems=2, initial=[SEMVMX - 1, 0])
    with pytest.raises(ValueError, match="SEMVMX"):
        s[0].release(2)
    with pytest.raises(ValueError, match="SEMVMX"):
        s.op([(1, +1), (0, +2)])
    assert s.values == [SEMVMX - 1, 0]  # nothing changed
    s[0].release()
    assert s[0].value == SEMVMX
    for bad in (-1, SEMVMX + 1):
        with pytest.raises(ValueError, match="SEMVMX"):
            s[0].value = bad
    with pytest.raises(TypeError):
        s[0].value = 1.0  # type: ignore[assignment]
    with pytest.raises(ValueError, match="exactly 2"):
        s.values = [1]
    with pytest.raises(ValueError, match="SEMVMX"):
        s.values = [1, SEMVMX + 1]
    with pytest.raises(TypeError):
        s.values = 3  # type: ignore[assignment]
    assert s.values == [SEMVMX, 0]
    s.values = (4, 5)
    assert s.values == [4, 5]


def test_undo_adjustment_limit_is_a_value_error(make: MakeSet) -> None:
    # SEM_UNDO keeps -semadj within -SEMVMX..SEMVMX ("SEMAEM").
    s = make(initial=0)
    s[0].release(SEMVMX, undo=True)
    s[0].acquire(SEMVMX)
    s[0].release(1, undo=True)  # the adjustment is now -32768: the limit
    with pytest.raises(ValueError, match="undo adjustment"):
        s[0].release(1, undo=True)
    assert s[0].value == 1


def test_indexing_and_iteration(make: MakeSet) -> None:
    s = make(nsems=3, initial=[10, 11, 12])
    assert [sem.index for sem in s] == [0, 1, 2]
    assert s[-1].index == 2 and s[-3].index == 0 and s[-1].value == 12
    assert s[-1] == s[2] and s[0] != s[1]
    assert s[1].set is s
    for bad in (3, -4, 2**70):
        with pytest.raises(IndexError):
            s[bad]
    with pytest.raises(TypeError):
        s["0"]  # type: ignore[index]
    assert Semaphore(s, -2) == s[1]
    with pytest.raises(IndexError):
        Semaphore(s, 3)


# --------------------------------------------------------------------------
# Atomic multi-operations
# --------------------------------------------------------------------------


def test_op_is_all_or_nothing(make: MakeSet) -> None:
    s = make(nsems=2, initial=[1, 0])
    # The first operation could be done; the second would block.
    with pytest.raises(BlockingIOError):
        s.op([(0, -1), (1, -1)], block=False)
    assert s.values == [1, 0]
    with pytest.raises(BlockingIOError):
        s.op([(1, +1), (0, -2)], block=False)  # an increase is rolled back too
    assert s.values == [1, 0]
    with pytest.raises(BlockingIOError):
        s.op([(0, -1), (1, -1, ll.IPC_NOWAIT)])  # per-operation flag
    assert s.values == [1, 0]
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        s.op([(0, -1), (1, -1)], timeout=0.05)
    assert time.monotonic() - t0 >= 0.05
    assert s.values == [1, 0]
    # Operations apply in order, each seeing the ones before it.
    with pytest.raises(BlockingIOError):
        s.op([(0, 0), (0, -1)], block=False)
    s.op([(0, -1), (0, 0)], block=False)
    assert s.values == [0, 0]
    s.values = [1, 0]
    s.op([(0, -1), (1, +1)])
    assert s.values == [0, 1]
    s.op([(-2, +2), (-1, -1)])  # negative indexes
    assert s.values == [2, 0]
    s.op([(1, 0, 0), (-1, 0)], block=False)  # wait-for-zero, already zero
    s.values = [0, 0]
    s.op([(1, +1, ll.SEM_UNDO), (1, -1, ll.SEM_UNDO)])
    s.op([(0, +3)], undo=True)
    s.op([(0, -3)], undo=True)
    assert s.values == [0, 0]


def test_op_validation(make: MakeSet) -> None:
    s = make(nsems=2, initial=[1, 1])
    for ops, exc, msg in [
        ([(2, 1)], IndexError, "out of range"),
        ([(-3, 1)], IndexError, "out of range"),
        ([(0, 32768)], ValueError, "short"),
        ([(0, -32769)], ValueError, "short"),
        ([(0, 1.0)], TypeError, "delta"),
        ([(0, 1, 0x4000_0000)], ValueError, "IPC_NOWAIT and SEM_UNDO"),
        ([(0, 1, -1)], ValueError, "IPC_NOWAIT and SEM_UNDO"),
        ([(0,)], ValueError, "index, delta"),
        ([(0, 1, 0, 0)], ValueError, "index, delta"),
        ([0], TypeError, "tuple"),
        ([], ValueError, "at least one"),
        ([("0", 1)], TypeError, "str"),
    ]:
        with pytest.raises(exc, match=msg):
            s.op(ops)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block=False"):
        s.op([(0, 1)], block=False, timeout=1)
    assert s.values == [1, 1]


def test_op_limit_is_semopm(make: MakeSet) -> None:
    semopm = kernel_sem()[2]
    s = make(nsems=2)
    s.op([(0, +1)] * semopm)
    assert s.values == [semopm, 0]
    for n in (semopm + 1, 70_000):
        with pytest.raises(ValueError, match=rf"{n} operations.*SEMOPM={semopm}"):
            s.op([(1, +1)] * n)
    assert s.values == [semopm, 0]


# --------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------

TIMEOUT = 0.1


def assert_times_out(call: Callable[[], object], timeout: float = TIMEOUT) -> None:
    """TimeoutError (or False, from acquire and wait_zero), no earlier than
    the timeout (how soon after it is measured by benchmarks/, not asserted:
    see HANG in conftest.py)."""
    t0 = time.monotonic()
    try:
        answer = call()
    except TimeoutError:
        pass
    else:
        assert answer is False, answer
    assert timeout <= time.monotonic() - t0 < timeout + HANG


def test_timeouts_expire_on_time(make: MakeSet) -> None:
    s = make(nsems=2, initial=[0, 1])
    assert_times_out(lambda: s[0].acquire(timeout=TIMEOUT))
    assert_times_out(lambda: s[0].acquire(2, timeout=TIMEOUT, undo=True))
    assert_times_out(lambda: s[1].wait_zero(timeout=TIMEOUT))
    assert_times_out(lambda: s.op([(1, -1), (0, -1)], timeout=TIMEOUT))
    assert s.values == [0, 1]
    assert s[0].acquire(timeout=0) is False
    assert s[1].acquire(timeout=0) is True


def test_timeout_keeps_counting_across_signals(make: MakeSet) -> None:
    # A handler that returns resumes the wait with what is left of the
    # timeout, not a fresh one (PEP 475 + a monotonic deadline).
    s = make(initial=0)
    hits = []
    old = signal.signal(signal.SIGALRM, lambda signum, frame: hits.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
    try:
        assert_times_out(lambda: s[0].acquire(timeout=0.15), timeout=0.15)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert len(hits) >= 5


def test_acquire_succeeds_when_another_process_releases(make: MakeSet) -> None:
    s = make(nsems=2, initial=[0, 0])
    code = f"""
        import time
        from sysvipc._semaphore import SemaphoreSet
        s = SemaphoreSet.from_id({s.id})
        time.sleep(0.2)
        s[0].release()
        time.sleep(0.2)
        s.op([(0, +1), (1, +1)])
    """
    with child(code) as proc:
        t0 = time.monotonic()
        assert s[0].acquire(timeout=10) is True
        assert 0.1 < time.monotonic() - t0 < 9
        s.op([(0, -1), (1, -1)], timeout=10)
        assert 0.3 < time.monotonic() - t0 < 9
        finish(proc)
    assert s.values == [0, 0]


# --------------------------------------------------------------------------
# Locks across processes, and what the kernel does when a holder dies
# --------------------------------------------------------------------------


def test_with_is_a_mutex_across_processes(make: MakeSet, ipc: Tracker) -> None:
    s = make(nsems=2, initial=[1, 1])  # the lock, and a gate to start together
    shmid = ipc.shmget(4096)
    code = f"""
        from sysvipc import lowlevel as ll
        from sysvipc._semaphore import SemaphoreSet
        lock, gate = SemaphoreSet.from_id({s.id})
        att = ll.shmat({shmid})
        counter = memoryview(att).cast("q")
        gate.wait_zero(timeout=30)
        for _ in range(25_000):
            with lock:
                counter[0] += 1   # read, add, write: not atomic without the lock
        counter.release()
        att.detach()
    """
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(child(code)) for _ in range(4)]
        open_gate(s[1], 4)
        for proc in procs:
            finish(proc, timeout=50)
    att = ll.shmat(shmid)
    try:
        view = memoryview(att).cast("q")
        assert view[0] == 100_000
        view.release()
    finally:
        att.detach()
    assert s[0].value == 1


@pytest.mark.parametrize("how", ["with", "acquire(undo=True)", "acquire"])
def test_sigkill_while_holding(make: MakeSet, how: str) -> None:
    s = make(initial=5)
    take = {
        "with": "with s[0]:\n            time.sleep(60)",
        "acquire(undo=True)": "s[0].acquire(3, undo=True)\n        time.sleep(60)",
        "acquire": "s[0].acquire(3)\n        time.sleep(60)",
    }[how]
    code = f"""
        import time
        from sysvipc._semaphore import SemaphoreSet
        s = SemaphoreSet.from_id({s.id})
        {take}
    """
    taken = 1 if how == "with" else 3
    with child(code) as proc:
        wait_until(lambda: s[0].value == 5 - taken, "the child to acquire")
        assert s[0].pid == proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    # SEM_UNDO: the kernel gives back what the dead holder took; without
    # it, the units are lost.
    assert s[0].value == (5 - taken if how == "acquire" else 5)


def test_ctrl_c_interrupts_blocked_acquire(make: MakeSet) -> None:
    s = make(initial=0)
    code = f"""
        import signal, time
        from sysvipc._semaphore import SemaphoreSet
        signal.signal(signal.SIGINT, signal.default_int_handler)
        s = SemaphoreSet.from_id({s.id})
        try:
            s[0].acquire(timeout=30)
        except KeyboardInterrupt:
            print(time.monotonic(), flush=True)
        else:
            raise SystemExit("acquire returned")
    """
    with child(code) as proc:
        wait_until(lambda: s[0].ncount == 1, "the child to block")
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out = finish(proc)
    assert float(out) - sent < HANG  # Ctrl-C, not the 30 s timeout
    assert s[0].ncount == 0 and s[0].value == 0


def test_removal_wakes_blocked_thread(make: MakeSet) -> None:
    s = make(nsems=2, initial=[0, 1])
    errors: list[BaseException] = []

    def wait(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=wait, args=(lambda: s[0].acquire(timeout=10),)),
        threading.Thread(target=wait, args=(lambda: s[1].wait_zero(timeout=10),)),
        threading.Thread(target=wait, args=(lambda: s.op([(0, -1), (1, -1)]),)),
    ]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: s[0].ncount == 2 and s[1].zcount == 1, "threads to block")
        t0 = time.monotonic()
        s.remove()
    finally:
        for t in threads:
            t.join(HANG + 5)
    assert time.monotonic() - t0 < HANG
    assert len(errors) == 3
    assert all(isinstance(e, sysvipc.IdentifierRemovedError) for e in errors), errors
    # After removal every operation says so too.
    with pytest.raises(sysvipc.IdentifierRemovedError):
        s[0].acquire(block=False)
    with pytest.raises(sysvipc.IdentifierRemovedError):
        s[0].release()
    with pytest.raises(sysvipc.IdentifierRemovedError):
        s[0].value
    with pytest.raises(sysvipc.IdentifierRemovedError):
        s.values
    with pytest.raises(sysvipc.IdentifierRemovedError):
        s.stat()
    with pytest.raises(sysvipc.IdentifierRemovedError):
        s.op([(0, 1)])
    with pytest.raises(sysvipc.IdentifierRemovedError):
        s.set(mode=0o600)
    with pytest.raises(sysvipc.IdentifierRemovedError):
        s.remove()


def test_removal_wakes_blocked_process(make: MakeSet) -> None:
    s = make(initial=0)
    code = f"""
        import sysvipc
        from sysvipc._semaphore import SemaphoreSet
        s = SemaphoreSet.from_id({s.id})
        try:
            s[0].acquire(timeout=30)
        except sysvipc.IdentifierRemovedError as exc:
            print("removed", exc.errno)
    """
    with child(code) as proc:
        wait_until(lambda: s[0].ncount == 1, "the child to block")
        s.remove()
        out = finish(proc)
    assert out.split() == ["removed", str(43)]


# --------------------------------------------------------------------------
# Inspection and permissions
# --------------------------------------------------------------------------


def test_stat_matches_proc(make: MakeSet) -> None:
    s = make(nsems=3, initial=[3, 0, 7], mode=0o640)
    threads = [
        threading.Thread(target=lambda: s[1].acquire(timeout=10)),
        threading.Thread(target=lambda: s[0].wait_zero(timeout=10)),
    ]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: s[1].ncount == 1 and s[0].zcount == 1, "threads to block")
        st = s.stat()
        row = proc_row("sem", s.id)
    finally:
        s[1].release()
        s[0].value = 0
        for t in threads:
            t.join(15)
    assert isinstance(st, SemaphoreSetStat)
    assert row is not None
    assert int(row["key"]) == s.key == st.sem_perm.key
    assert int(row["semid"]) == s.id
    assert int(row["perms"], 8) == st.sem_perm.mode and st.sem_perm.mode & 0o777 == 0o640
    assert int(row["nsems"]) == st.sem_nsems == 3
    assert int(row["uid"]) == st.sem_perm.uid == os.geteuid()
    assert int(row["gid"]) == st.sem_perm.gid == os.getegid()
    assert int(row["cuid"]) == st.sem_perm.cuid and int(row["cgid"]) == st.sem_perm.cgid
    assert int(row["otime"]) == st.sem_otime and st.sem_otime > 0
    assert int(row["ctime"]) == st.sem_ctime
    assert st.semaphores == (
        sysvipc.Sem(3, os.getpid(), 0, 1),
        sysvipc.Sem(0, os.getpid(), 1, 0),
        sysvipc.Sem(7, os.getpid(), 0, 0),
    )
    with pytest.raises(AttributeError):
        st.sem_nsems = 4  # type: ignore[misc]


def test_set_permissions(make: MakeSet) -> None:
    s = make()
    s.set(mode=0o604)
    assert s.stat().sem_perm.mode & 0o777 == 0o604
    s.set(uid=os.geteuid(), gid=os.getegid())
    assert s.stat().sem_perm.mode & 0o777 == 0o604
    with pytest.raises(ValueError, match="mode"):
        s.set(mode=0o7777)
    with pytest.raises(ValueError, match="uid"):
        s.set(uid=2**32 - 1)  # (uid_t)-1 means "no change" to the kernel
    assert s.values == [0]


# --------------------------------------------------------------------------
# Identity, pickling, repr, closing
# --------------------------------------------------------------------------


def test_equality_and_hash(make: MakeSet) -> None:
    a = make(nsems=2)
    b = make(nsems=2)
    a2 = SemaphoreSet.from_id(a.id)
    assert a == a2 and hash(a) == hash(a2) and a is not a2
    assert a != b and len({a, a2, b}) == 2
    assert a[1] == a2[-1] and hash(a[1]) == hash(a2[1]) and a[1] != b[1]
    assert a != a.id and a[0] != a
    assert {a[0]: 1}[a2[0]] == 1


def test_pickling(make: MakeSet) -> None:
    s = make(nsems=2, initial=[2, 0])
    t = pickle.loads(pickle.dumps(s))
    assert t == s and t is not s and len(t) == 2 and t.values == [2, 0]
    sem = pickle.loads(pickle.dumps(s[-1]))
    assert sem == s[1] and sem.index == 1


def _spawned(s: SemaphoreSet, sem: Semaphore) -> None:
    """Runs in a spawned process: both arguments arrived by pickle."""
    if not (isinstance(s, SemaphoreSet) and sem.set == s and s.values == [2, 0]):
        raise SystemExit(3)
    sem.release(5)
    s[0].acquire(timeout=5)


def test_pickling_across_spawn(make: MakeSet) -> None:
    s = make(nsems=2, initial=[2, 0])
    proc = multiprocessing.get_context("spawn").Process(target=_spawned, args=(s, s[1]))
    proc.start()
    try:
        proc.join(30)
        assert proc.exitcode == 0
    finally:
        if proc.exitcode is None:
            proc.kill()
            proc.join(10)
    assert s.values == [1, 5]


def test_repr(make: MakeSet) -> None:
    s = make(nsems=2)
    assert re.fullmatch(rf"<SemaphoreSet id={s.id} key={s.key:#010x} nsems=2>", repr(s))
    assert repr(s[1]) == f"<Semaphore 1 of {s!r}>"
    p = make(ll.IPC_PRIVATE)
    assert repr(p) == f"<SemaphoreSet id={p.id} key=0x00000000 nsems=1>"
    s.close()
    assert repr(s) == f"<SemaphoreSet id={s.id} key={s.key:#010x} closed>"


def test_close(make: MakeSet) -> None:
    s = make(nsems=2, initial=1)
    sem = s[0]
    s.close()
    assert s.closed
    s.close()  # twice is fine
    assert s and s.id >= 0  # identity stays readable
    calls: list[Callable[[], object]] = [
        lambda: len(s),
        lambda: s[0],
        lambda: iter(s),
        lambda: s.values,
        lambda: setattr(s, "values", [1, 1]),
        lambda: s.op([(0, 1)]),
        lambda: s.stat(),
        lambda: s.set(mode=0o600),
        lambda: s.remove(),
        lambda: s.__enter__(),
        lambda: pickle.dumps(s),
        lambda: Semaphore(s, 0),
        lambda: sem.acquire(),
        lambda: sem.release(),
        lambda: sem.wait_zero(),
        lambda: sem.value,
        lambda: setattr(sem, "value", 1),
        lambda: sem.ncount,
        lambda: sem.zcount,
        lambda: sem.pid,
        lambda: sem.__enter__(),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="closed semaphore set"):
            call()
    # Closing never removed the set.
    assert SemaphoreSet.from_id(s.id).values == [1, 1]


def test_with_and_remove_on_close(key: int) -> None:
    with SemaphoreSet(key, create=True, initial=2, remove_on_close=True) as s:
        with s[0] as sem:
            assert sem == s[0] and s[0].value == 1
        assert s[0].value == 2
    assert s.closed and ids_with_key(key) == []
    # Without remove_on_close, leaving the block only closes the handle.
    with SemaphoreSet(key, create=True) as s:
        pass
    try:
        assert ids_with_key(key) == [s.id]
    finally:
        SemaphoreSet.from_id(s.id).remove()
    # remove_on_close on a set someone else removed: close stays quiet.
    s = SemaphoreSet(remove_on_close=True)
    ll.semctl(s.id, 0, ll.IPC_RMID)
    s.close()


def test_released_on_exception_in_with(make: MakeSet) -> None:
    s = make(initial=1)
    with pytest.raises(KeyError):
        with s[0]:
            raise KeyError("boom")
    assert s[0].value == 1


# --------------------------------------------------------------------------
# Documentation: docstrings and docs/semaphores.md run
# --------------------------------------------------------------------------


def test_docstring_examples() -> None:
    result = doctest.testmod(semaphore_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10 and result.failed == 0


def docs_blocks() -> list[str]:
    if not DOCS.exists():
        return []
    return re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), flags=re.M | re.S)


def test_docs_have_examples() -> None:
    assert len(docs_blocks()) >= 8


@pytest.mark.parametrize("number", range(len(docs_blocks())))
def test_docs_example_runs(number: int) -> None:
    code = docs_blocks()[number]
    assert_child_ok(run_python(code, timeout=30, cwd=ROOT))
