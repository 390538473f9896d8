"""Blocking calls: signals (PEP 475), the GIL, and timeout precision.

- A handler that returns: the blocked call resumes and completes when data
  arrives or the semaphore is released; a timeout keeps its deadline.
- A handler that raises: the exception propagates at once (< 0.2 s).
- Other threads run while the main thread is blocked (the GIL is released).
- msgrcv(timeout=0.2) ends between 0.2 and 0.25 s; data arriving during a
  timed wait is delivered at once.

Signals go to the main thread with pthread_kill (never SIGALRM, which
pytest-timeout uses).  Every blocking call has a watchdog that removes the
object it waits on, so a failure is an error, never a hang.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import HANG, LONG_TIMEOUT, Tracker

import sysvipc
from sysvipc import lowlevel as ll

REPO = str(Path(sysvipc.__file__).resolve().parent.parent)
CHILD_ENV = {**os.environ, "PYTHONPATH": REPO}

SYSCALL_NUMBERS = {
    "x86_64": {"msgsnd": 69, "msgrcv": 70, "semop": 65, "semtimedop": 220},
    "aarch64": {"msgsnd": 189, "msgrcv": 188, "semop": 193, "semtimedop": 192},
}
SEM_SYSCALLS = ("semop", "semtimedop")


def in_syscall(pid: int, tid: int, names: tuple[str, ...]) -> bool | None:
    """Whether thread tid of process pid sleeps in one of the syscalls (None:
    cannot tell on this machine)."""
    numbers = SYSCALL_NUMBERS.get(platform.machine())
    path = f"/proc/{pid}/task/{tid}/syscall"
    if numbers is None or not os.access(path, os.R_OK):
        return None
    try:
        with open(path) as f:
            first = f.read().split()[0]
    except (OSError, IndexError):
        return False
    return first.isdigit() and int(first) in {numbers[n] for n in names}


def wait_in_syscall(
    tid: int, names: tuple[str, ...], pid: int | None = None, timeout: float = 5.0
) -> None:
    pid = os.getpid() if pid is None else pid
    deadline = time.monotonic() + timeout
    while True:
        state = in_syscall(pid, tid, names)
        if state is None:
            time.sleep(0.3)
            return
        if state:
            time.sleep(0.01)
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"thread {tid} never blocked in {names}")
        time.sleep(0.002)


MAIN_TID = threading.main_thread().native_id
MAIN_IDENT = threading.main_thread().ident


@pytest.fixture(autouse=True)
def in_main_thread() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal tests need the main thread")


@contextmanager
def handler(signum: int, fn: Callable[[int, Any], Any]) -> Iterator[None]:
    old = signal.signal(signum, fn)
    try:
        yield
    finally:
        for _ in range(1000):  # let a signal still flagged run its handler
            pass
        signal.signal(signum, old)


@contextmanager
def storm(signum: int = signal.SIGUSR1, interval: float = 0.003) -> Iterator[list[int]]:
    """Send signum to the main thread every interval seconds meanwhile."""
    sent = [0]
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval):
            signal.pthread_kill(MAIN_IDENT, signum)  # type: ignore[arg-type]
            sent[0] += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive()


@contextmanager
def watchdog(seconds: float, rescue: Callable[[], None]) -> Iterator[None]:
    """After seconds, call rescue() (which unblocks whatever is stuck)."""

    def fire() -> None:
        try:
            rescue()
        except OSError:
            pass

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join(10)


def later(fn: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------
# The blocking calls under test
# --------------------------------------------------------------------------


@dataclass
class Case:
    block: Callable[[], Any]  # blocks until release()
    release: Callable[[], None]  # makes block() complete
    completed: Callable[[Any], bool]  # block()'s result and the effect are right
    untouched: Callable[[], bool]  # block() had no effect (it was interrupted)
    remove: Callable[[], None]  # removes the object (wakes block() with EIDRM)
    syscalls: tuple[str, ...]


def qnum(msqid: int) -> int:
    return int(ll.msgctl(msqid, ll.IPC_STAT).msg_qnum)


def make_case(name: str, ipc: Tracker) -> Case:
    if name.startswith(("msgrcv", "msgsnd")):
        q = ipc.msgget()

        def remove() -> None:
            ll.msgctl(q, ll.IPC_RMID)

        if name.startswith("msgrcv"):
            timeout = 30.0 if name.endswith("timed") else None
            if name.startswith("msgrcv_into"):
                buf = bytearray(100)
                return Case(
                    block=lambda: ll.msgrcv_into(q, buf, timeout=timeout),
                    release=lambda: ll.msgsnd(q, b"data", 5),
                    completed=lambda r: r == (4, 5) and buf[:4] == b"data" and qnum(q) == 0,
                    untouched=lambda: qnum(q) == 0 and buf == bytes(100),
                    remove=remove,
                    syscalls=("msgrcv",),
                )
            return Case(
                block=lambda: ll.msgrcv(q, 100, timeout=timeout),
                release=lambda: ll.msgsnd(q, b"data", 5),
                completed=lambda r: r == (b"data", 5) and qnum(q) == 0,
                untouched=lambda: qnum(q) == 0,
                remove=remove,
                syscalls=("msgrcv",),
            )
        timeout = 30.0 if name.endswith("timed") else None
        ll.msgctl(q, ll.IPC_SET, qbytes=4)
        ll.msgsnd(q, b"full", 1)

        def make_room() -> None:
            assert ll.msgrcv(q, 10, 1, ll.IPC_NOWAIT) == (b"full", 1)

        def untouched() -> bool:
            ds = ll.msgctl(q, ll.IPC_STAT)
            return bool(ds.msg_qnum == 1 and ds.msg_cbytes == 4)

        return Case(
            block=lambda: ll.msgsnd(q, b"more", 2, timeout=timeout),
            release=make_room,
            completed=lambda r: r is None and ll.msgrcv(q, 10, 0, ll.IPC_NOWAIT) == (b"more", 2),
            untouched=untouched,
            remove=remove,
            syscalls=("msgsnd",),
        )
    s = ipc.semget(2)

    def remove_set() -> None:
        ll.semctl(s, 0, ll.IPC_RMID)

    timeout = 30.0 if name.endswith("timed") else None
    if name.startswith("semop1"):
        block: Callable[[], Any] = lambda: ll.semop1(s, 0, -1, 0, timeout)  # noqa: E731
    elif name.startswith("semop-multi"):
        ll.semctl(s, 0, ll.SETALL, [1, 0])
        return Case(
            block=lambda: ll.semop(s, [(0, -1), (1, -1)], timeout=timeout),
            release=lambda: ll.semop1(s, 1, 1),
            completed=lambda r: r is None and ll.semctl(s, 0, ll.GETALL) == [0, 0],
            untouched=lambda: (
                ll.semctl(s, 0, ll.GETALL) == [1, 0] and ll.semctl(s, 1, ll.GETNCNT) == 0
            ),
            remove=remove_set,
            syscalls=SEM_SYSCALLS,
        )
    else:
        block = lambda: ll.semop(s, [(0, -1)], timeout=timeout)  # noqa: E731
    return Case(
        block=block,
        release=lambda: ll.semop1(s, 0, 1),
        completed=lambda r: r is None and ll.semctl(s, 0, ll.GETALL) == [0, 0],
        untouched=lambda: ll.semctl(s, 0, ll.GETALL) == [0, 0] and ll.semctl(s, 0, ll.GETNCNT) == 0,
        remove=remove_set,
        syscalls=SEM_SYSCALLS,
    )


CASES = [
    "msgrcv",
    "msgrcv-timed",
    "msgrcv_into",
    "msgrcv_into-timed",
    "msgsnd",
    "msgsnd-timed",
    "semop",
    "semop-timed",
    "semop1",
    "semop1-timed",
    "semop-multi",
    "semop-multi-timed",
]


# --------------------------------------------------------------------------
# EINTR with a handler that returns: the call resumes, then completes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_returning_handler_call_resumes_and_completes(ipc: Tracker, name: str) -> None:
    case = make_case(name, ipc)
    calls = [0]

    def count(signum: int, frame: Any) -> None:
        calls[0] += 1

    def release_after_signals() -> None:
        wait_in_syscall(MAIN_TID, case.syscalls)
        deadline = time.monotonic() + 5
        while calls[0] < 20 and time.monotonic() < deadline:
            time.sleep(0.005)
        case.release()

    with handler(signal.SIGUSR1, count), watchdog(10, case.remove), storm() as sent:
        releaser = later(release_after_signals)
        result = case.block()
    releaser.join(10)
    assert sent[0] > 0
    # The handler ran while the call was blocked, and the call went on.
    assert calls[0] >= 20, calls[0]
    assert case.completed(result), result


# --------------------------------------------------------------------------
# EINTR with a handler that raises: the exception, at once, and no effect
# --------------------------------------------------------------------------


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("name", CASES)
def test_raising_handler_propagates_at_once(ipc: Tracker, name: str) -> None:
    case = make_case(name, ipc)
    sent_at: list[float] = []

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    def send_once() -> None:
        wait_in_syscall(MAIN_TID, case.syscalls)
        sent_at.append(time.monotonic())
        signal.pthread_kill(MAIN_IDENT, signal.SIGUSR1)  # type: ignore[arg-type]

    with handler(signal.SIGUSR1, interrupt), watchdog(5, case.remove):
        sender = later(send_once)
        with pytest.raises(Interrupted):
            case.block()
        caught_at = time.monotonic()
        sender.join(10)
    assert sent_at
    assert caught_at - sent_at[0] < HANG, caught_at - sent_at[0]
    assert case.untouched()
    # The object still works.
    later(lambda: (time.sleep(0.05), case.release()))
    with watchdog(10, case.remove):
        assert case.completed(case.block())


@pytest.mark.parametrize("syscall", ["msgrcv", "semop"])
def test_keyboard_interrupt_in_child(syscall: str) -> None:
    """Ctrl-C (the default SIGINT handler) ends a blocked call at once."""
    block = {
        "msgrcv": "ident = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)\n"
        "remove = lambda: ll.msgctl(ident, ll.IPC_RMID)\n"
        "call = lambda: ll.msgrcv(ident, 100)\n",
        "semop": "ident = ll.semget(ll.IPC_PRIVATE, 1, ll.IPC_CREAT)\n"
        "remove = lambda: ll.semctl(ident, 0, ll.IPC_RMID)\n"
        "call = lambda: ll.semop(ident, [(0, -1)])\n",
    }[syscall]
    code = (
        "import sys, time\n"
        "from sysvipc import lowlevel as ll\n"
        + block
        + textwrap.dedent(
            """
            try:
                print("ready", flush=True)
                try:
                    call()
                    print("returned", flush=True)
                except KeyboardInterrupt:
                    print(time.monotonic(), flush=True)
            finally:
                remove()
            """
        )
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=CHILD_ENV,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        names = (syscall,) if syscall == "msgrcv" else SEM_SYSCALLS
        wait_in_syscall(child.pid, names, pid=child.pid)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
        assert child.returncode == 0, err
        assert float(out) - sent < HANG
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)


# --------------------------------------------------------------------------
# A timed call under a signal storm keeps its deadline
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["msgrcv", "msgsnd", "semop"])
def test_timeout_kept_under_signal_storm(ipc: Tracker, name: str) -> None:
    q = ipc.msgget()
    s = ipc.semget(1)
    if name == "msgsnd":
        ll.msgctl(q, ll.IPC_SET, qbytes=1)
        ll.msgsnd(q, b"x", 1)
    call = {
        "msgrcv": lambda: ll.msgrcv(q, 10, timeout=1.0),
        "msgsnd": lambda: ll.msgsnd(q, b"y", 1, timeout=1.0),
        "semop": lambda: ll.semop(s, [(0, -1)], timeout=1.0),
    }[name]
    calls = [0]

    def count(signum: int, frame: Any) -> None:
        calls[0] += 1

    def rescue() -> None:
        ll.msgctl(q, ll.IPC_RMID)
        ll.semctl(s, 0, ll.IPC_RMID)

    with handler(signal.SIGUSR1, count), watchdog(3 * HANG, rescue), storm(interval=0.005):
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            call()
        elapsed = time.monotonic() - start
    assert calls[0] >= 20, calls[0]  # the storm did interrupt the wait
    # Not restarted from scratch at each signal (that would never end: the
    # watchdog at 3 * HANG), and not cut short.
    assert 1.0 <= elapsed <= 1.0 + HANG, elapsed


# --------------------------------------------------------------------------
# The GIL is released while blocked
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["msgrcv", "msgrcv-timed", "msgsnd", "semop", "semop-timed"])
def test_other_threads_run_while_blocked(ipc: Tracker, name: str) -> None:
    case = make_case(name, ipc)
    count = [0]
    stop = threading.Event()
    progress: list[int] = []

    def spin() -> None:
        while not stop.is_set():
            count[0] += 1

    def measure_then_release() -> None:
        wait_in_syscall(MAIN_TID, case.syscalls)
        before = count[0]
        time.sleep(0.2)
        progress.append(count[0] - before)
        case.release()

    # If the GIL were held, no thread of this process could rescue the call:
    # the watchdog is another process, which removes the object.
    kind, ident = ipc.created[-1]
    rm = {
        "msg": f"ll.msgctl({ident}, ll.IPC_RMID)",
        "sem": f"ll.semctl({ident}, 0, ll.IPC_RMID)",
    }[kind]
    guard = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time\nfrom sysvipc import lowlevel as ll\ntime.sleep(15)\n{rm}\n",
        ],
        env=CHILD_ENV,
    )
    spinner = later(spin)
    try:
        releaser = later(measure_then_release)
        result = case.block()
        releaser.join(10)
    finally:
        stop.set()
        spinner.join(10)
        guard.kill()
        guard.wait(10)
    assert case.completed(result)
    assert progress and progress[0] > 1000, progress


# --------------------------------------------------------------------------
# Timeout precision
# --------------------------------------------------------------------------


def test_msgrcv_timeout_precision(msqid: int) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        ll.msgrcv(msqid, 100, timeout=0.2)
    elapsed = time.monotonic() - start
    assert 0.2 <= elapsed <= 0.2 + HANG, elapsed


@pytest.mark.parametrize("call", ["msgrcv", "msgrcv_into"])
def test_message_during_timed_wait_arrives_at_once(msqid: int, call: str) -> None:
    sent_at: list[float] = []

    def send() -> None:
        time.sleep(0.1)
        sent_at.append(time.monotonic())
        ll.msgsnd(msqid, b"now", 3)

    start = time.monotonic()
    sender = later(send)
    if call == "msgrcv":
        assert ll.msgrcv(msqid, 100, timeout=LONG_TIMEOUT) == (b"now", 3)
    else:
        assert ll.msgrcv_into(msqid, bytearray(10), timeout=LONG_TIMEOUT) == (3, 3)
    received_at = time.monotonic()
    sender.join(10)
    assert received_at - start >= 0.1
    assert received_at - sent_at[0] < HANG, received_at - sent_at[0]


def test_message_from_another_process_arrives_at_once(msqid: int) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from sysvipc import lowlevel as ll\n"
            "print('ready', flush=True)\n"
            "time.sleep(0.1)\n"
            "t = time.monotonic()\n"
            f"ll.msgsnd({msqid}, b'hi', 9)\n"
            "print(t, flush=True)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=CHILD_ENV,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        assert ll.msgrcv(msqid, 100, timeout=LONG_TIMEOUT) == (b"hi", 9)
        received_at = time.monotonic()
        out, _ = child.communicate(timeout=10)
        assert child.returncode == 0
        assert received_at - float(out) < HANG, received_at - float(out)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)


def test_semaphore_release_during_timed_wait_is_prompt(semid: int) -> None:
    released_at: list[float] = []

    def release() -> None:
        time.sleep(0.1)
        released_at.append(time.monotonic())
        ll.semop1(semid, 0, 1)

    releaser = later(release)
    ll.semop(semid, [(0, -1)], timeout=LONG_TIMEOUT)
    acquired_at = time.monotonic()
    releaser.join(10)
    assert acquired_at - released_at[0] < HANG  # the release, not the timeout


def test_timed_waits_in_threads_end_at_their_own_deadlines(msqid: int) -> None:
    # Each timed wait has its own timer, aimed at its own thread.
    timeouts = [0.1, 0.2, 0.3, 0.4]
    elapsed: dict[float, float] = {}
    errors: list[BaseException] = []

    def wait(timeout: float) -> None:
        start = time.monotonic()
        try:
            ll.msgrcv(msqid, 10, timeout=timeout)
        except TimeoutError:
            elapsed[timeout] = time.monotonic() - start
        except BaseException as exc:
            errors.append(exc)

    with watchdog(10, lambda: ll.msgctl(msqid, ll.IPC_RMID)):
        threads = [later(lambda t=t: wait(t)) for t in timeouts]
        for thread in threads:
            thread.join(10)
    assert not errors, errors
    assert sorted(elapsed) == timeouts
    for timeout, took in elapsed.items():
        assert timeout <= took < timeout + HANG, (timeout, took)


def test_timeouts_when_the_application_owns_the_wakeup_signal() -> None:
    """The library must not take over a signal the application handles; its
    timed waits still end on time and still see messages at once."""
    code = textwrap.dedent(
        """
        import signal, threading, time
        from sysvipc import _sysvipc as C, lowlevel as ll
        seen = []
        signal.signal(C.WAKEUP_SIGNAL, lambda signum, frame: seen.append(signum))
        q = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
        try:
            start = time.monotonic()
            try:
                ll.msgrcv(q, 10, timeout=0.2)
            except TimeoutError:
                timed_out = time.monotonic() - start
            sent = []
            def send():
                time.sleep(0.1)
                sent.append(time.monotonic())
                ll.msgsnd(q, b"x", 1)
            t = threading.Thread(target=send)
            t.start()
            assert ll.msgrcv(q, 10, timeout=1.0) == (b"x", 1)
            latency = time.monotonic() - sent[0]
            t.join()
            assert signal.getsignal(C.WAKEUP_SIGNAL) is not signal.SIG_DFL
            print(timed_out, latency, len(seen))
        finally:
            ll.msgctl(q, ll.IPC_RMID)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=CHILD_ENV
    )
    assert proc.returncode == 0, proc.stderr
    timed_out, latency, handled = proc.stdout.split()
    assert 0.2 <= float(timed_out) <= 0.2 + HANG, timed_out
    assert float(latency) < 1.0 - 0.1, latency  # the message, not the timeout, ended it
    assert int(handled) == 0  # the application's handler was left alone


def posix_timers() -> str | None:
    try:
        with open("/proc/self/timers") as f:
            return f.read()
    except OSError:
        return None


def test_timed_waits_leave_no_timer_behind(ipc: Tracker) -> None:
    """Whatever ends a timed msgrcv/msgsnd (data, timeout, an exception from
    a handler, removal), nothing wakes its thread afterwards: no POSIX timer
    is left (none is used) and no wake-up signal arrives later."""
    baseline = posix_timers()
    q = ipc.msgget()
    full = ipc.msgget()
    ll.msgctl(full, ll.IPC_SET, qbytes=1)
    ll.msgsnd(full, b"x", 1)
    wakeup = {ll.WAKEUP_SIGNAL}

    def nothing_wakes_this_thread() -> None:
        if baseline is not None:
            assert posix_timers() == baseline
        old = signal.pthread_sigmask(signal.SIG_BLOCK, wakeup)
        try:
            assert signal.sigtimedwait(wakeup, 0.05) is None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def look_then(action: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            wait_in_syscall(MAIN_TID, ("msgrcv", "msgsnd"))
            action()

        return later(run)

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    with handler(signal.SIGUSR1, interrupt), watchdog(10, lambda: ll.msgctl(q, ll.IPC_RMID)):
        with pytest.raises(TimeoutError):
            ll.msgrcv(q, 10, timeout=0.05)
        nothing_wakes_this_thread()
        with pytest.raises(TimeoutError):
            ll.msgsnd(full, b"y", 1, timeout=0.05)
        nothing_wakes_this_thread()
        helper = look_then(lambda: ll.msgsnd(q, b"data", 1))
        assert ll.msgrcv(q, 10, timeout=10) == (b"data", 1)
        helper.join(10)
        nothing_wakes_this_thread()
        helper = look_then(lambda: ll.msgrcv(full, 10) and None)
        ll.msgsnd(full, b"z", 1, timeout=10)
        helper.join(10)
        nothing_wakes_this_thread()
        helper = look_then(
            lambda: signal.pthread_kill(MAIN_IDENT, signal.SIGUSR1)  # type: ignore[arg-type]
        )
        with pytest.raises(Interrupted):
            ll.msgrcv(q, 10, timeout=10)
        helper.join(10)
        nothing_wakes_this_thread()
        helper = look_then(lambda: ll.msgctl(q, ll.IPC_RMID))
        with pytest.raises(sysvipc.IdentifierRemovedError):
            ll.msgrcv(q, 10, timeout=10)
        helper.join(10)
        nothing_wakes_this_thread()


@pytest.mark.parametrize("syscall", ["msgrcv", "msgsnd"])
def test_raising_handler_in_polling_fallback(syscall: str) -> None:
    code = textwrap.dedent(
        f"""
        import signal, threading, time
        from sysvipc import _sysvipc as C, lowlevel as ll
        signal.signal(C.WAKEUP_SIGNAL, lambda signum, frame: None)  # forces polling
        class Interrupted(Exception):
            pass
        def interrupt(signum, frame):
            raise Interrupted
        signal.signal(signal.SIGUSR1, interrupt)
        q = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
        try:
            if "{syscall}" == "msgsnd":
                ll.msgctl(q, ll.IPC_SET, qbytes=1)
                ll.msgsnd(q, b"x", 1)
                call = lambda: ll.msgsnd(q, b"y", 1, timeout=1)
            else:
                call = lambda: ll.msgrcv(q, 10, timeout=1)
            sent = []
            def kill():
                time.sleep(0.2)
                sent.append(time.monotonic())
                signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
            threading.Thread(target=kill).start()
            outcome = "timeout"
            try:
                try:
                    call()
                    outcome = "returned"
                except Interrupted:
                    outcome = "interrupted"
                except TimeoutError:
                    pass
                for _ in range(100000):  # a late handler runs here at the latest
                    pass
            except Interrupted:  # raised late, after the TimeoutError
                pass
            print(outcome, time.monotonic() - sent[0])
        finally:
            ll.msgctl(q, ll.IPC_RMID)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=CHILD_ENV
    )
    assert proc.returncode == 0, proc.stderr
    outcome, after = proc.stdout.split()
    assert outcome == "interrupted" and float(after) < HANG, proc.stdout
