"""sysvipc and sysv_ipc (PyPI) on the same objects (issue 11).

A queue, a semaphore and a segment created by each library are used by the
other, both ways, and the differences that docs/migrating-from-sysv_ipc.md
states are checked here: its claims are these tests.  sysv_ipc is a test-only
dependency; without it this module is skipped.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import sysvipc
from sysvipc import (
    IdentifierRemovedError,
    MessageQueue,
    SemaphoreSet,
    SharedMemory,
)
from sysvipc import lowlevel as ll

try:
    from conftest import HANG, Tracker, assert_child_ok, run_python, unused_key
except ImportError:  # pragma: no cover - run as a package
    from tests.conftest import (  # type: ignore[no-redef]
        HANG,
        Tracker,
        assert_child_ok,
        run_python,
        unused_key,
    )

sysv_ipc = pytest.importorskip(
    "sysv_ipc", reason="sysv_ipc (pip install sysv_ipc) is not installed"
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "migrating-from-sysv_ipc.md"
_PKG_ROOT = Path(sysvipc.__file__).resolve().parent.parent
CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(_PKG_ROOT), os.environ.get("PYTHONPATH")])),
}
MSGMAX = int(Path("/proc/sys/kernel/msgmax").read_text())
CREX = sysv_ipc.IPC_CREX


def child(code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return run_python(code, timeout=timeout, env=CHILD_ENV)


# --------------------------------------------------------------------------
# Message queues
# --------------------------------------------------------------------------


def test_queue_made_by_sysv_ipc_used_by_sysvipc(ipc: Tracker) -> None:
    sq = sysv_ipc.MessageQueue(None, CREX, max_message_size=MSGMAX)
    ipc.track("msg", sq.id)
    q = MessageQueue(sq.key)
    assert (q.id, q.key, q.created) == (sq.id, sq.key, False)

    sq.send(b"from sysv_ipc", type=3)
    sq.send("text", type=4)  # sysv_ipc encodes a str as UTF-8
    assert len(q) == sq.current_messages == 2
    assert q.receive(4, timeout=5) == (b"text", 4)
    assert q.receive(timeout=5) == (b"from sysv_ipc", 3)

    data = os.urandom(MSGMAX)
    q.send(data, 7, timeout=5)
    q.send(b"", 1, timeout=5)
    assert sq.receive(type=7) == (data, 7)  # (bytes, type) in both libraries
    assert sq.receive() == (b"", 1)

    st = q.stat()
    assert sq.max_size == st.msg_qbytes
    assert sq.mode & 0o777 == st.msg_perm.mode & 0o777 == 0o600
    assert (sq.uid, sq.gid, sq.cuid, sq.cgid) == (
        st.msg_perm.uid,
        st.msg_perm.gid,
        st.msg_perm.cuid,
        st.msg_perm.cgid,
    )
    assert sq.last_send_pid == st.msg_lspid == os.getpid()
    assert sq.last_receive_pid == st.msg_lrpid == os.getpid()
    assert (sq.last_send_time, sq.last_receive_time, sq.last_change_time) == (
        st.msg_stime,
        st.msg_rtime,
        st.msg_ctime,
    )

    # Leaving a with block closes the handle; the queue stays.
    with MessageQueue(sq.key) as other:
        other.send(b"kept", 1)
    assert other.closed and sq.receive() == (b"kept", 1)

    # sysvipc removes what sysv_ipc made; sysv_ipc sees it gone.
    q.remove()
    with pytest.raises(OSError) as raised:  # not ExistentialError, in sysv_ipc too
        sq.send(b"x")
    assert raised.value.errno == errno.EINVAL
    with pytest.raises(sysv_ipc.ExistentialError):
        sysv_ipc.MessageQueue(sq.key)
    with pytest.raises(FileNotFoundError):
        MessageQueue(sq.key)
    q.close()


def test_queue_made_by_sysvipc_used_by_sysv_ipc(ipc: Tracker) -> None:
    q = MessageQueue(mode=0o640)
    ipc.track("msg", q.id)
    sq = sysv_ipc.MessageQueue(q.key)  # sysv_ipc opens by key only
    assert (sq.id, sq.key) == (q.id, q.key)
    assert sq.mode & 0o777 == 0o640

    sq.send(b"one", type=5)
    sq.send(b"two", type=2)
    assert q.receive(-4, timeout=5) == (b"two", 2)
    assert q.receive(timeout=5) == (b"one", 5)

    # sysv_ipc's receive buffer is max_message_size (default 2048) bytes:
    # it refuses to send more, and receiving more is E2BIG (the message
    # stays queued).
    big = os.urandom(3000)
    with pytest.raises(ValueError, match="max_message_size"):
        sq.send(big)
    q.send(big, 9)
    with pytest.raises(OSError) as raised:
        sq.receive()
    assert raised.value.errno == errno.E2BIG
    assert len(q) == 1
    wide = sysv_ipc.MessageQueue(q.key, max_message_size=MSGMAX)
    assert wide.receive() == (big, 9)

    # Non-blocking on an empty queue: BusyError / BlockingIOError.
    with pytest.raises(sysv_ipc.BusyError):
        sq.receive(block=False)
    with pytest.raises(BlockingIOError):
        q.receive(block=False)

    # sysv_ipc removes what sysvipc made; sysvipc sees it gone.
    sysv_ipc.remove_message_queue(q.id)
    with pytest.raises(OSError) as gone:
        q.send(b"x")
    assert gone.value.errno in (errno.EINVAL, errno.EIDRM)
    with pytest.raises(FileNotFoundError):
        MessageQueue(q.key)
    q.close()


def wait_in_kernel(thread: threading.Thread, function: str, timeout: float = 5.0) -> None:
    """Wait until ``thread`` sleeps in the kernel function named (its
    /proc wchan); where wchan is hidden, give the thread a moment instead."""
    path = f"/proc/self/task/{thread.native_id}/wchan"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                wchan = f.read()
        except OSError:
            wchan = "0"
        if function in wchan:
            return
        if wchan in ("", "0"):
            time.sleep(0.2)
            return
        time.sleep(0.005)


def test_queue_blocked_receiver_woken_by_sysv_ipc_remove(ipc: Tracker) -> None:
    q = MessageQueue()
    ipc.track("msg", q.id)
    caught: list[BaseException] = []

    def wait() -> None:
        try:
            q.receive(timeout=10)
        except BaseException as e:
            caught.append(e)

    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        wait_in_kernel(waiter, "msgrcv")
        sysv_ipc.MessageQueue(q.key).remove()
    finally:
        waiter.join(timeout=10)
    assert len(caught) == 1 and isinstance(caught[0], IdentifierRemovedError), caught
    q.close()


def test_queue_positional_arguments_differ(ipc: Tracker) -> None:
    """sysv_ipc: send(message, block, type), receive(block, type).
    sysvipc: send(data, type), receive(type): a bool where a type goes is a
    TypeError, never a silent type 0/1."""
    q = MessageQueue()
    ipc.track("msg", q.id)
    sq = sysv_ipc.MessageQueue(q.key)
    with pytest.raises(sysv_ipc.BusyError):
        sq.receive(False)  # block=False in sysv_ipc
    with pytest.raises(TypeError):
        q.receive(False)
    with pytest.raises(TypeError):
        q.send(b"x", False)
    with pytest.raises(TypeError):
        q.send("text")  # sysvipc sends bytes-like objects only
    with pytest.raises(TypeError):
        q.receive(timeout=0.1, nonsense=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        sq.receive(timeout=1)  # sysv_ipc queues have no timeout
    assert len(q) == 0
    q.close()


# --------------------------------------------------------------------------
# Semaphores
# --------------------------------------------------------------------------


def test_semaphore_made_by_sysv_ipc_used_by_sysvipc(ipc: Tracker) -> None:
    ss = sysv_ipc.Semaphore(None, CREX, initial_value=2)
    ipc.track("sem", ss.id)
    assert ss.o_time == 0  # sysv_ipc sets the value with SETVAL, no semop
    s = SemaphoreSet(ss.key)  # no wait: nobody runs sysvipc's handshake on it
    assert (s.id, len(s), s.values, s.created) == (ss.id, 1, [2], False)
    assert SemaphoreSet.from_id(ss.id) == s

    assert s[0].acquire(timeout=1)
    assert ss.value == 1
    ss.release()
    assert s[0].value == 2
    ss.P()
    ss.V()
    ss.acquire()
    s[0].acquire()
    assert ss.value == s[0].value == 0
    assert ss.last_pid == s[0].pid == os.getpid()
    assert ss.o_time == s.stat().sem_otime != 0
    ss.Z()  # returns at once: the value is 0
    assert s[0].wait_zero(timeout=1)

    ss.block = False
    with pytest.raises(sysv_ipc.BusyError):
        ss.acquire()
    assert s[0].acquire(block=False) is False
    assert s[0].acquire(timeout=0.05) is False

    s.remove()
    with pytest.raises(sysv_ipc.ExistentialError):
        ss.value
    with pytest.raises(FileNotFoundError):
        SemaphoreSet(ss.key)
    s.close()


def test_semaphore_made_by_sysvipc_used_by_sysv_ipc(ipc: Tracker) -> None:
    s = SemaphoreSet(nsems=3, initial=[3, 7, 9], mode=0o640)
    ipc.track("sem", s.id)
    ss = sysv_ipc.Semaphore(s.key)  # semaphore 0 of the set
    assert (ss.id, ss.key, ss.value) == (s.id, s.key, 3)
    assert ss.mode & 0o777 == 0o640
    ss.acquire()
    assert s.values == [2, 7, 9]
    s[0].release(3)
    assert ss.value == 5
    ss.acquire(None, 2)  # delta: the amount, in sysv_ipc of either sign
    ss.acquire(delta=-1)
    assert s[0].value == 2
    s[0].acquire(2)  # sysvipc: n, positive
    ss.release(3)
    ss.V(1)
    assert s[0].value == 4
    ss.value = 0
    assert s[0].value == 0

    # A sysvipc waiter blocked in semtimedop is woken by sysv_ipc's release.
    got: list[object] = []

    def wait() -> None:
        try:
            got.append(s[0].acquire(timeout=5))
        except BaseException as e:
            got.append(e)

    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        deadline = time.monotonic() + 5
        while ss.waiting_for_nonzero == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert ss.waiting_for_nonzero == s[0].ncount == 1
        assert ss.waiting_for_zero == s[0].zcount == 0
        ss.release()
    finally:
        waiter.join(timeout=10)
    assert got == [True]

    sysv_ipc.remove_semaphore(s.id)
    with pytest.raises(IdentifierRemovedError):
        s.values
    with pytest.raises(FileNotFoundError):
        SemaphoreSet(s.key)
    s.close()


def test_reopening_with_create_resets_in_sysv_ipc_never_in_sysvipc(ipc: Tracker) -> None:
    s = SemaphoreSet(initial=5)
    ipc.track("sem", s.id)
    again = SemaphoreSet(s.key, create=True, initial=1)
    assert not again.created and s[0].value == 5  # sysvipc: left alone
    sysv_ipc.Semaphore(s.key, sysv_ipc.IPC_CREAT, initial_value=1)
    assert s[0].value == 1  # sysv_ipc: reset by an opener
    again.close()
    s.close()


HOLD_SYSV_IPC = """
    import sys, time, sysv_ipc
    sem = sysv_ipc.Semaphore(int(sys.argv[1]))
    sem.undo = {undo}
    with sem:
        print("held", flush=True)
        time.sleep(60)
"""

HOLD_SYSVIPC = """
    import sys, time
    from sysvipc import SemaphoreSet
    lock = SemaphoreSet(int(sys.argv[1]))
    with lock[0]:
        print("held", flush=True)
        time.sleep(60)
"""


@pytest.mark.parametrize(
    ("code", "released"),
    [
        (HOLD_SYSV_IPC.format(undo=False), False),  # sysv_ipc's default
        (HOLD_SYSV_IPC.format(undo=True), True),
        (HOLD_SYSVIPC, True),
    ],
    ids=["sysv_ipc-default", "sysv_ipc-undo", "sysvipc"],
)
def test_lock_of_a_killed_holder(code: str, released: bool, ipc: Tracker) -> None:
    """`with sem:` in sysv_ipc uses SEM_UNDO only if sem.undo is set; `with
    s[0]:` in sysvipc always does, so a SIGKILLed holder gives the lock back."""
    s = SemaphoreSet(initial=1)
    ipc.track("sem", s.id)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(s.key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=CHILD_ENV,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "held\n", proc.stderr.read() if proc.stderr else ""
        assert s[0].value == 0
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert s[0].value == (1 if released else 0)
    s.close()


def test_semaphore_timeouts(ipc: Tracker) -> None:
    s = SemaphoreSet(initial=0)
    ipc.track("sem", s.id)
    start = time.monotonic()
    assert s[0].acquire(timeout=0.2) is False
    assert 0.2 <= time.monotonic() - start < 0.2 + HANG

    code = f"""
        import sysv_ipc
        sem = sysv_ipc.Semaphore({s.key})
        try:
            sem.acquire(timeout=0.2)
        except sysv_ipc.BusyError:
            print("BusyError")
    """
    if sysv_ipc.SEMAPHORE_TIMEOUT_SUPPORTED:
        proc = child(code, timeout=10)
        assert_child_ok(proc)
        assert proc.stdout == "BusyError\n"
    else:
        # This build of sysv_ipc ignores the timeout: the call waits for good.
        with pytest.raises(subprocess.TimeoutExpired):
            child(code, timeout=2)
    assert s[0].ncount == 0  # the killed child is no longer waiting
    s.close()


# --------------------------------------------------------------------------
# Shared memory
# --------------------------------------------------------------------------


def test_segment_made_by_sysv_ipc_used_by_sysvipc(ipc: Tracker) -> None:
    sm = sysv_ipc.SharedMemory(None, CREX, size=1000)
    ipc.track("shm", sm.id)
    shm = SharedMemory(sm.key)  # size 0: whatever size it has
    assert (shm.id, shm.size, sm.size) == (sm.id, 1000, 1000)
    assert shm.read() == b" " * 1000  # sysv_ipc filled it with spaces
    assert shm.stat().shm_segsz == 1000

    sm.write(b"hello", 10)
    assert shm.read(5, 10) == b"hello"
    sm.write("é", 0)  # sysv_ipc encodes a str as UTF-8; sysvipc wants bytes
    assert shm.read(2) == "é".encode()
    with pytest.raises(TypeError):
        shm.write("é")  # type: ignore[arg-type]
    shm.write(b"world", 20)
    assert sm.read(5, 20) == b"world"
    assert bytes(memoryview(sm)) == bytes(shm.buf) == shm.read()

    st = shm.stat()
    assert sm.number_attached == st.shm_nattch == 2
    assert (sm.creator_pid, sm.last_pid) == (st.shm_cpid, st.shm_lpid)
    assert (sm.uid, sm.cuid, sm.mode & 0o777) == (
        st.shm_perm.uid,
        st.shm_perm.cuid,
        st.shm_perm.mode & 0o777,
    )
    assert (sm.last_attach_time, sm.last_detach_time, sm.last_change_time) == (
        st.shm_atime,
        st.shm_dtime,
        st.shm_ctime,
    )

    sm.detach()
    assert not sm.attached and shm.stat().shm_nattch == 1
    with pytest.raises(sysv_ipc.NotAttachedError):
        sm.read(1)

    shm.remove()  # marked: gone at the last detach, no longer found by key
    with pytest.raises(sysv_ipc.ExistentialError):
        sysv_ipc.SharedMemory(sm.key)
    assert shm.read(5, 10) == b"hello"  # still attached here
    shm.close()
    with pytest.raises(ValueError):
        shm.read(1)  # sysvipc's NotAttachedError: a closed handle


def test_segment_made_by_sysvipc_used_by_sysv_ipc(ipc: Tracker) -> None:
    shm = SharedMemory(size=5000)
    ipc.track("shm", shm.id)
    sm = sysv_ipc.SharedMemory(shm.key)
    assert (sm.id, sm.size) == (shm.id, 5000)
    assert sm.read() == bytes(5000)  # the kernel's zeros: sysvipc writes nothing
    # Opening with IPC_CREAT does not refill an existing segment.
    reopened = sysv_ipc.SharedMemory(shm.key, sysv_ipc.IPC_CREAT, size=5000)
    assert reopened.read(4) == bytes(4)
    reopened.detach()  # sysv_ipc objects stay attached until detach()

    sm.write(b"abc")
    assert shm.read(3) == b"abc"
    assert shm.write(b"xyz", 4997) == 3  # sysv_ipc's write returns None
    assert sm.read(3, 4997) == b"xyz"
    by_id = sysv_ipc.attach(shm.id)  # sysv_ipc.attach = SharedMemory.from_id
    assert by_id.read(3) == b"abc"

    # read(0): the whole segment in sysv_ipc, no bytes in sysvipc.
    assert len(sm.read(0)) == 5000
    assert shm.read(0) == b""
    assert len(shm.read()) == 5000

    sysv_ipc.remove_shared_memory(shm.id)
    assert shm.stat().shm_perm.mode & ll.SHM_DEST
    with pytest.raises(FileNotFoundError):
        SharedMemory(shm.key)
    assert shm.read(3) == b"abc"
    sm.detach()
    by_id.detach()
    shm.close()


def test_views_after_detach(ipc: Tracker) -> None:
    """A memoryview that outlives sysv_ipc's detach() writes into unmapped
    memory (SIGSEGV); sysvipc keeps the mapping while a view exists."""
    proc = child(
        """
        import sysv_ipc
        sm = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, size=4096)
        print(sm.id, flush=True)
        view = memoryview(sm)
        sm.detach()
        sm.remove()
        view[0] = 1
        print("survived", flush=True)
        """
    )
    if proc.stdout.split():
        ipc.track("shm", int(proc.stdout.split()[0]))
    assert proc.returncode == -signal.SIGSEGV, proc
    assert "survived" not in proc.stdout

    shm = SharedMemory(size=4096)
    ipc.track("shm", shm.id)
    view = shm.buf
    shm.remove()
    shm.close()
    view[0] = 1
    assert view[0] == 1
    view.release()


# --------------------------------------------------------------------------
# Keys, constants, errors
# --------------------------------------------------------------------------


def test_ftok_is_the_same(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.touch()
    with pytest.warns(Warning):
        warned = sysv_ipc.ftok(str(path), 65)
    assert warned == sysv_ipc.ftok(str(path), 65, silence_warning=True)
    assert warned == sysvipc.ftok(path, "A") == sysvipc.ftok(str(path), 65)


def test_keys_beyond_key_t(ipc: Tracker) -> None:
    """sysv_ipc accepts 64-bit keys and the kernel keeps the low 32 bits;
    sysvipc refuses keys outside key_t (both spellings of key_t work)."""
    assert (sysv_ipc.KEY_MIN, sysv_ipc.KEY_MAX) == (-(2**63), 2**63 - 1)
    low = unused_key()
    sq = sysv_ipc.MessageQueue(2**32 + low, CREX)
    ipc.track("msg", sq.id)
    assert sq.key == low
    assert MessageQueue(low).id == sq.id
    with pytest.raises(ValueError, match="key must fit a 32-bit key_t"):
        MessageQueue(2**32 + low)
    with pytest.raises(ValueError):
        MessageQueue(2**32, create=True)
    with pytest.raises(ValueError):
        MessageQueue(-(2**31) - 1)


def test_constants() -> None:
    assert sysv_ipc.IPC_CREAT == sysvipc.IPC_CREAT
    assert sysv_ipc.IPC_EXCL == sysvipc.IPC_EXCL
    assert sysv_ipc.IPC_CREX == sysvipc.IPC_CREAT | sysvipc.IPC_EXCL
    assert sysv_ipc.IPC_PRIVATE == sysvipc.IPC_PRIVATE == 0
    assert sysv_ipc.SEMAPHORE_VALUE_MAX == sysvipc.SEMVMX == sysvipc.limits().semvmx
    assert sysv_ipc.PAGE_SIZE == ll.PAGE_SIZE == sysvipc.limits().page_size
    for name in ("SHM_RDONLY", "SHM_RND", "SHM_REMAP", "SHM_HUGETLB", "SHM_NORESERVE"):
        assert getattr(sysv_ipc, name) == getattr(ll, name), name


def test_private_objects(ipc: Tracker) -> None:
    """IPC_PRIVATE in both; sysv_ipc reaches a private segment by id with
    attach()."""
    shm = SharedMemory(sysvipc.IPC_PRIVATE, 4096)
    ipc.track("shm", shm.id)
    shm.write(b"private")
    by_id = sysv_ipc.attach(shm.id)
    assert by_id.read(7) == b"private"
    by_id.detach()
    sm = sysv_ipc.SharedMemory(sysv_ipc.IPC_PRIVATE, CREX, size=4096)
    ipc.track("shm", sm.id)
    with SharedMemory.from_id(sm.id) as theirs:
        assert sm.key == theirs.key == 0
        assert theirs.read() == b" " * 4096
    sm.detach()
    shm.close()


def test_sysv_ipc_fills_only_segments_it_creates_with_ipc_crex(ipc: Tracker) -> None:
    filled = sysv_ipc.SharedMemory(None, CREX, size=10, init_character=b"x")
    ipc.track("shm", filled.id)
    plain = sysv_ipc.SharedMemory(unused_key(), sysv_ipc.IPC_CREAT, size=10)
    ipc.track("shm", plain.id)
    ours = SharedMemory(size=10)
    ipc.track("shm", ours.id)
    assert filled.read() == b"x" * 10
    assert plain.read() == bytes(10)  # IPC_CREAT alone: cannot tell it created
    assert ours.read() == bytes(10)  # sysvipc never writes: the kernel's zeros
    filled.detach()
    plain.detach()
    ours.close()


def test_errors_map_to_oserror_subclasses(ipc: Tracker) -> None:
    key = unused_key()
    # No object with the key: ExistentialError / FileNotFoundError.
    for theirs, ours in [
        (lambda: sysv_ipc.MessageQueue(key), lambda: MessageQueue(key)),
        (lambda: sysv_ipc.Semaphore(key), lambda: SemaphoreSet(key)),
        (lambda: sysv_ipc.SharedMemory(key), lambda: SharedMemory(key)),
    ]:
        with pytest.raises(sysv_ipc.ExistentialError):
            theirs()
        with pytest.raises(FileNotFoundError):
            ours()

    # Creating exclusively under a used key: ExistentialError / FileExistsError.
    q = MessageQueue(key, exclusive=True)
    ipc.track("msg", q.id)
    with pytest.raises(sysv_ipc.ExistentialError):
        sysv_ipc.MessageQueue(key, CREX)
    with pytest.raises(FileExistsError):
        MessageQueue(key, exclusive=True)

    # Would block: BusyError / BlockingIOError (TimeoutError with a timeout).
    with pytest.raises(sysv_ipc.BusyError):
        sysv_ipc.MessageQueue(key).receive(block=False)
    with pytest.raises(BlockingIOError):
        q.receive(block=False)

    # sysv_ipc's errors are not OSErrors; sysvipc's are, with the errno.
    assert not issubclass(sysv_ipc.Error, OSError)
    for error, number in [
        (FileNotFoundError, errno.ENOENT),
        (FileExistsError, errno.EEXIST),
        (BlockingIOError, errno.EAGAIN),
        (PermissionError, errno.EACCES),
        (TimeoutError, errno.ETIMEDOUT),
    ]:
        assert type(OSError(number, "x")) is error
    assert issubclass(IdentifierRemovedError, OSError)
    q.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_permission_errors(ipc: Tracker) -> None:
    """As another user, on a 0o600 queue: sysv_ipc fails when opening (it asks
    msgget for its mode) with PermissionsError; sysvipc opens (asking for no
    access) and fails at the operation with PermissionError."""
    q = MessageQueue(mode=0o600)
    ipc.track("msg", q.id)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            results = []
            try:
                sysv_ipc.MessageQueue(q.key)
                results.append("opened")
            except sysv_ipc.PermissionsError:
                results.append("PermissionsError")
            ours = MessageQueue(q.key)
            results.append("opened")
            try:
                ours.send(b"x", timeout=1)
                results.append("sent")
            except PermissionError:
                results.append("PermissionError")
            os.write(write_end, " ".join(results).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        _, status = os.waitpid(pid, 0)
        report = os.read(read_end, 1000).decode()
    finally:
        os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == "PermissionsError opened PermissionError"
    assert len(q) == 0
    q.close()


# --------------------------------------------------------------------------
# docs/migrating-from-sysv_ipc.md
# --------------------------------------------------------------------------

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


def doc_text() -> str:
    return DOC.read_text() if DOC.exists() else ""


def doc_table_names() -> set[str]:
    """The sysv_ipc names of the first column of every table."""
    names = set()
    for line in FENCE.sub("", doc_text()).splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            first = line.split("|")[1]
            names.update(re.findall(r"`([\w.]+)", first))
    return names


def public(obj: Any) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def test_doc_table_covers_the_sysv_ipc_api() -> None:
    names = doc_table_names()
    missing = {n for n in public(sysv_ipc) if n not in names and f"sysv_ipc.{n}" not in names}
    assert not missing, f"sysv_ipc names without a row: {sorted(missing)}"
    for cls in ("MessageQueue", "Semaphore", "SharedMemory"):
        members = public(getattr(sysv_ipc, cls))
        lacking = {m for m in members if m not in names and f"{cls}.{m}" not in names}
        assert not lacking, f"{cls} members without a row: {sorted(lacking)}"


def test_doc_names_only_real_sysv_ipc_names() -> None:
    for name in doc_table_names():
        if name.startswith("sysv_ipc."):
            name = name.removeprefix("sysv_ipc.")
        target: Any = sysv_ipc
        parts = name.split(".")
        if len(parts) == 1 and not hasattr(sysv_ipc, name):
            # a member row names the class in its section heading
            assert any(
                hasattr(getattr(sysv_ipc, c), name)
                for c in ("MessageQueue", "Semaphore", "SharedMemory")
            ), name
            continue
        for part in parts:
            assert hasattr(target, part), name
            target = getattr(target, part)


def doc_python_names(column: int) -> list[str]:
    names = []
    for line in FENCE.sub("", doc_text()).splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            cells = line.split("|")
            if len(cells) > column + 1:
                names += re.findall(r"`([^`]+)`", cells[column + 1])
    return names


def test_doc_names_only_real_sysvipc_names() -> None:
    from sysvipc._structs import IpcPerm, MsqidDs, SemidDs, ShmidDs

    owners: dict[str, Any] = {
        "sysvipc": sysvipc,
        "lowlevel": ll,
        "MessageQueue": MessageQueue,
        "SemaphoreSet": SemaphoreSet,
        "SharedMemory": SharedMemory,
        "q": MessageQueue,
        "s": SemaphoreSet,
        "s[0]": sysvipc.Semaphore,
        "Semaphore": sysvipc.Semaphore,
        "sem": sysvipc.Semaphore,
        "shm": SharedMemory,
    }
    fields = {f for cls in (MsqidDs, SemidDs, ShmidDs, IpcPerm) for f in cls.__dataclass_fields__}
    checked = 0
    for code in doc_python_names(1):
        for owner, attr in re.findall(
            r"(?<![\w\]])(sysvipc|lowlevel|MessageQueue|SemaphoreSet|SharedMemory|q|s\[0\]|shm|s)\.(\w+)",
            code,
        ):
            assert hasattr(owners[owner], attr), f"{owner}.{attr} in {code!r}"
            checked += 1
        for field in re.findall(r"stat\(\)\.(\w+)(?:\.(\w+))?", code):
            assert all(f in fields for f in field if f), code
        for field in re.findall(r"^\.(\w+)$", code):
            assert field in fields, code
    assert checked > 50


def _signature_owners() -> dict[str, Any]:
    return {
        "MessageQueue": MessageQueue,
        "SemaphoreSet": SemaphoreSet,
        "SharedMemory": SharedMemory,
        "q": MessageQueue,
        "s": SemaphoreSet,
        "s[0]": sysvipc.Semaphore,
        "Semaphore": sysvipc.Semaphore,
        "sem": sysvipc.Semaphore,
        "shm": SharedMemory,
        "sysvipc": sysvipc,
        "lowlevel": ll,
    }


def test_doc_signatures_are_sysvipc_signatures() -> None:
    """Every call written with its arguments in the sysvipc column has
    those parameter names, and every ``name=value`` shorthand is a real
    keyword of the classes."""
    import inspect

    owners = _signature_owners()
    keywords: set[str] = set()
    for cls in (MessageQueue, SemaphoreSet, sysvipc.Semaphore, SharedMemory):
        for member in [cls, *vars(cls).values()]:
            if callable(member):
                try:
                    keywords.update(inspect.signature(member).parameters)
                except (TypeError, ValueError):
                    pass
    calls = 0
    for code in doc_python_names(1):
        call = re.fullmatch(r"([\w\[\]0]+?)(?:\.(\w+))?\((.*)\)", code)
        if call and "=" in call.group(3):
            owner, method, args = call.groups()
            target = owners[owner] if method is None else getattr(owners[owner], method)
            params = inspect.signature(target).parameters
            for name in re.findall(r"(\w+)=", args):
                assert name in params, f"{name} is not a parameter of {code}"
            calls += 1
        elif re.fullmatch(r"\w+=[\w.]*", code):
            assert code.split("=")[0] in keywords, code
    assert calls >= 8


def test_release_past_semvmx_is_a_value_error(ipc: Tracker) -> None:
    s = SemaphoreSet(initial=sysvipc.SEMVMX)
    ipc.track("sem", s.id)
    with pytest.raises(ValueError):
        s[0].release()
    assert s[0].value == sysvipc.SEMVMX
    s.close()


def python_blocks() -> list[str]:
    return [m.group(2) for m in FENCE.finditer(doc_text()) if m.group(1).strip() == "python"]


def test_doc_has_python_examples() -> None:
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_doc_python_example_runs(index: int, tmp_path: Path) -> None:
    code = python_blocks()[index]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=CHILD_ENV,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, f"example {index}:\n{code}\nstderr:\n{proc.stderr}"
