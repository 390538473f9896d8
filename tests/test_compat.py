"""sysvipc.compat where sysv_ipc crashes or silently does the wrong thing (issue 20).

The five segfaults measured in sysv_ipc 1.2.0 (see tests/test_interop_sysv_ipc.py
for the one it still has with views after detach) each run through
``from sysvipc import compat as sysv_ipc`` in a child interpreter, which must
get a clean Python exception and exit normally.  The other differences that
docs/migrating-from-sysv_ipc.md lists are checked in-process.  sysv_ipc's own
suite runs in tests/test_compat_upstream.py.
"""

from __future__ import annotations

import ast
import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

import sysvipc
from sysvipc import _sysvipc
from sysvipc import compat as sysv_ipc
from sysvipc import lowlevel as ll

try:
    from conftest import Tracker, assert_child_ok, run_python
except ImportError:  # pragma: no cover - run as a package
    from tests.conftest import Tracker, assert_child_ok, run_python  # type: ignore[no-redef]

_PKG_ROOT = Path(sysvipc.__file__).resolve().parent.parent
CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(_PKG_ROOT), os.environ.get("PYTHONPATH")])),
}
CREX = sysv_ipc.IPC_CREX


def child(ipc: Tracker, code: str) -> subprocess.CompletedProcess[str]:
    """Run code with ``sysv_ipc`` bound to the compat module; the ids it
    prints on lines ``shm <id>`` / ``msg <id>`` are removed at teardown."""
    proc = run_python(
        "from sysvipc import compat as sysv_ipc\n" + code.strip("\n"),
        timeout=60,
        env=CHILD_ENV,
    )
    for line in proc.stdout.splitlines():
        kind, _, ident = line.partition(" ")
        if kind in ("shm", "msg", "sem") and ident.isdigit():
            ipc.track(kind, int(ident))
    assert_child_ok(proc)
    return proc


# --------------------------------------------------------------------------
# The five sysv_ipc 1.2.0 segfaults
# --------------------------------------------------------------------------


def test_memoryview_write_after_detach(ipc: Tracker) -> None:
    """sysv_ipc: detach() unmaps under a live memoryview, whose next write
    is a SIGSEGV.  compat: detach() raises BufferError while views exist."""
    proc = child(
        ipc,
        """
import sys
mem = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, size=4096)
print("shm", mem.id, flush=True)
view = memoryview(mem)
try:
    mem.detach()
except BufferError as e:
    print("BufferError:", e)
else:
    sys.exit("detach() succeeded under a live view")
assert mem.attached
view[0] = 1                      # still mapped: no crash
assert mem.read(1) == b"\\x01"
view.release()
mem.detach()                     # no view left: detaches
assert not mem.attached and mem.number_attached == 0
mem.remove()
print("survived")
""",
    )
    assert "BufferError: cannot detach: 1 exported view(s)" in proc.stdout
    assert "survived" in proc.stdout


def test_numpy_write_after_detach(ipc: Tracker) -> None:
    """The same with numpy arrays over the segment.  numpy.frombuffer holds
    an export, so detach() refuses; numpy.ndarray(buffer=mem) holds only a
    reference, so detach() goes ahead and the core leaves zero-filled
    private memory at the address: the array never touches unmapped memory."""
    pytest.importorskip("numpy")
    proc = child(
        ipc,
        """
import numpy
mem = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, size=4096)
print("shm", mem.id, flush=True)
array = numpy.frombuffer(mem, dtype=numpy.uint8)
try:
    mem.detach()
except BufferError:
    print("BufferError")
array[:3] = 7                    # still mapped: no crash
assert mem.read(3) == b"\\x07\\x07\\x07"
del array
bare = numpy.ndarray((4096,), dtype=numpy.uint8, buffer=mem)
mem.detach()                     # no export held: detaches
assert mem.number_attached == 0
bare[:3] = 9                     # the placeholder: no crash
assert bytes(bare[:4]) == b"\\x09\\x09\\x09\\x00"
again = sysv_ipc.attach(mem.id)  # the segment did not see that write
assert again.read(4) == b"\\x07\\x07\\x07 "
again.detach()
mem.remove()
print("survived")
""",
    )
    assert proc.stdout.count("BufferError") == 1
    assert "survived" in proc.stdout


def test_views_of_a_read_only_attachment(ipc: Tracker) -> None:
    """sysv_ipc exports a writable buffer over a SHM_RDONLY mapping: a
    write through it is a SIGSEGV.  compat: the views are read-only."""
    pytest.importorskip("numpy")
    proc = child(
        ipc,
        """
import numpy
mem = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, size=4096, init_character=b"a")
print("shm", mem.id, flush=True)
readers = [
    sysv_ipc.attach(mem.id, flags=sysv_ipc.SHM_RDONLY),
    sysv_ipc.SharedMemory(mem.key, mode=0o400),   # no write bit: read-only
]
for ro in readers:
    view = memoryview(ro)
    assert view.readonly
    try:
        view[0] = 1
    except TypeError as e:
        print("TypeError:", e)
    array = numpy.frombuffer(ro, dtype=numpy.uint8)
    try:
        array[0] = 1
    except ValueError as e:
        print("ValueError:", e)
    try:
        ro.write(b"x")
    except sysv_ipc.PermissionsError as e:
        assert isinstance(e, PermissionError) and e.errno == 13
        print("PermissionsError")
    view.release()
    del array
    ro.detach()
assert mem.read(1) == b"a"
mem.detach()
mem.remove()
print("survived")
""",
    )
    assert proc.stdout.count("TypeError: cannot modify read-only memory") == 2
    assert proc.stdout.count("ValueError: assignment destination is read-only") == 2
    assert proc.stdout.count("PermissionsError") == 2
    assert "survived" in proc.stdout


def test_unknown_keyword_to_write(ipc: Tracker) -> None:
    """sysv_ipc released an uninitialised Py_buffer on this error path."""
    proc = child(
        ipc,
        """
mem = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, size=4096)
print("shm", mem.id, flush=True)
for call in (
    lambda: mem.write(b"x", bogus=1),
    lambda: mem.write(s=b"x", offset=0, bogus=1),
    lambda: mem.write(bogus=1),
):
    try:
        call()
    except TypeError as e:
        print("TypeError:", e)
assert mem.read(1) == b" "
mem.detach()
mem.remove()
print("survived")
""",
    )
    assert proc.stdout.count("TypeError:") == 3
    assert "unexpected keyword argument 'bogus'" in proc.stdout
    assert "survived" in proc.stdout


def test_unknown_keyword_to_send(ipc: Tracker) -> None:
    proc = child(
        ipc,
        """
mq = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX)
print("msg", mq.id, flush=True)
for call in (
    lambda: mq.send(b"x", bogus=1),
    lambda: mq.send(message=b"x", type=1, bogus=1),
    lambda: mq.send(bogus=1),
):
    try:
        call()
    except TypeError as e:
        print("TypeError:", e)
assert mq.current_messages == 0
mq.remove()
print("survived")
""",
    )
    assert proc.stdout.count("TypeError:") == 3
    assert "unexpected keyword argument 'bogus'" in proc.stdout
    assert "survived" in proc.stdout


# --------------------------------------------------------------------------
# Built on the core
# --------------------------------------------------------------------------


def test_built_on_the_core() -> None:
    """compat is Python over the core: it imports no way to make a syscall
    of its own (no os, ctypes, mmap, ...), only sysvipc's modules."""
    assert issubclass(sysv_ipc.SharedMemory, _sysvipc.SharedMemoryBase)
    assert sysv_ipc.__file__.endswith("compat.py")
    tree = ast.parse(Path(sysv_ipc.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    allowed = {
        *("__future__", "errno", "operator", "sys", "warnings"),
        *("collections.abc", "types", "typing"),
    }
    assert {m for m in imported if not m.startswith(".")} <= allowed, imported


def test_constants() -> None:
    assert sysv_ipc.PAGE_SIZE == resource.getpagesize()
    assert sysv_ipc.SEMAPHORE_VALUE_MAX == sysvipc.limits().semvmx
    assert sysv_ipc.SEMAPHORE_TIMEOUT_SUPPORTED is True
    assert (sysv_ipc.KEY_MIN, sysv_ipc.KEY_MAX) == (ll.KEY_MIN, ll.KEY_MAX) == (-(2**31), 2**32 - 1)
    assert sysv_ipc.IPC_CREX == ll.IPC_CREAT | ll.IPC_EXCL
    assert sysv_ipc.VERSION == sysv_ipc.__version__ == "1.2.0"
    assert set(sysv_ipc.__all__) <= set(dir(sysv_ipc))


# --------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------


def test_exceptions_are_oserror_subclasses_with_errno(ipc: Tracker) -> None:
    for cls in (
        sysv_ipc.InternalError,
        sysv_ipc.PermissionsError,
        sysv_ipc.ExistentialError,
        sysv_ipc.BusyError,
        sysv_ipc.NotAttachedError,
    ):
        assert issubclass(cls, sysv_ipc.Error)
    assert issubclass(sysv_ipc.Error, OSError)
    assert issubclass(sysv_ipc.PermissionsError, PermissionError)

    mq = sysv_ipc.MessageQueue(None, CREX)
    ipc.track("msg", mq.id)
    with pytest.raises(sysv_ipc.BusyError) as busy:
        mq.receive(block=False)
    assert isinstance(busy.value, BlockingIOError) and busy.value.errno == errno.ENOMSG
    with pytest.raises(sysv_ipc.ExistentialError) as exists:
        sysv_ipc.MessageQueue(mq.key, CREX)
    assert isinstance(exists.value, FileExistsError) and exists.value.errno == errno.EEXIST
    mq.remove()
    with pytest.raises(sysv_ipc.ExistentialError) as removed:
        mq.send(b"x")
    assert isinstance(removed.value, sysvipc.IdentifierRemovedError)
    assert removed.value.errno == errno.EIDRM
    with pytest.raises(sysv_ipc.ExistentialError) as missing:
        sysv_ipc.MessageQueue(mq.key)
    assert isinstance(missing.value, FileNotFoundError) and missing.value.errno == errno.ENOENT

    sem = sysv_ipc.Semaphore(None, CREX)
    ipc.track("sem", sem.id)
    with pytest.raises(sysv_ipc.BusyError) as timed_out:
        sem.acquire(0)
    assert isinstance(timed_out.value, TimeoutError)
    assert timed_out.value.errno == errno.ETIMEDOUT
    sem.remove()

    mem = sysv_ipc.SharedMemory(None, CREX)
    ipc.track("shm", mem.id)
    mem.detach()
    with pytest.raises(sysv_ipc.NotAttachedError) as detached:
        mem.read()
    assert detached.value.errno == errno.EINVAL
    with pytest.raises(sysv_ipc.NotAttachedError):
        mem.detach()
    mem.remove()
    # sysv_ipc raises ValueError for an id shmat refuses, ExistentialError
    # for other calls on an id that names nothing: both, here.
    for call in (mem.attach, lambda: sysv_ipc.attach(mem.id)):
        with pytest.raises(sysv_ipc.ExistentialError) as invalid:
            call()
        assert isinstance(invalid.value, ValueError) and invalid.value.errno == errno.EINVAL
    for remove in (
        sysv_ipc.remove_shared_memory,
        sysv_ipc.remove_semaphore,
        sysv_ipc.remove_message_queue,
    ):
        with pytest.raises(sysv_ipc.ExistentialError):
            remove(mem.id)


# --------------------------------------------------------------------------
# What sysv_ipc silently gets wrong
# --------------------------------------------------------------------------


def test_keys_wider_than_key_t_are_refused() -> None:
    for key in (2**32 + 5, sysv_ipc.KEY_MAX + 1, sysv_ipc.KEY_MIN - 1):
        for cls in (sysv_ipc.MessageQueue, sysv_ipc.Semaphore, sysv_ipc.SharedMemory):
            with pytest.raises(ValueError, match="key must fit a 32-bit key_t"):
                cls(key, CREX)


def test_ipc_creat_keeps_an_existing_semaphores_value(ipc: Tracker) -> None:
    sem = sysv_ipc.Semaphore(None, CREX, initial_value=3)
    ipc.track("sem", sem.id)
    again = sysv_ipc.Semaphore(sem.key, sysv_ipc.IPC_CREAT, initial_value=7)
    assert again.id == sem.id
    assert sem.value == 3
    assert sem.o_time == 0  # as in sysv_ipc: no semop until first use
    sem.remove()


def test_semaphore_created_by_ipc_creat_gets_its_initial_value(ipc: Tracker, key: int) -> None:
    sem = sysv_ipc.Semaphore(key, sysv_ipc.IPC_CREAT, initial_value=5)
    ipc.track("sem", sem.id)
    assert sem.value == 5
    sem.remove()


def test_initial_value_out_of_range_leaves_nothing_behind() -> None:
    # the autouse fixture fails the test if the set made first stays
    with pytest.raises(ValueError, match="between 0 and SEMVMX"):
        sysv_ipc.Semaphore(None, CREX, initial_value=sysv_ipc.SEMAPHORE_VALUE_MAX + 1)


@pytest.mark.parametrize("bound", [2**20, 2**40, sys.maxsize])
def test_receive_allocates_the_message_not_max_message_size(ipc: Tracker, bound: int) -> None:
    """sysv_ipc mallocs max_message_size on every receive: up to 8 EiB here."""
    mq = sysv_ipc.MessageQueue(None, CREX, max_message_size=bound)
    ipc.track("msg", mq.id)
    mq.send(b"small", type=4)
    assert mq.receive() == (b"small", 4)
    mq.remove()
    with pytest.raises(ValueError):
        sysv_ipc.MessageQueue(None, CREX, max_message_size=sys.maxsize + 1)


def test_max_message_size_still_bounds_both_ways(ipc: Tracker) -> None:
    mq = sysv_ipc.MessageQueue(None, CREX, max_message_size=10)
    ipc.track("msg", mq.id)
    with pytest.raises(ValueError, match="max_message_size"):
        mq.send(b"x" * 11)
    big = sysv_ipc.MessageQueue(mq.key, max_message_size=100)
    big.send(b"x" * 50)
    with pytest.raises(OSError) as too_big:
        mq.receive()
    assert too_big.value.errno == errno.E2BIG
    assert big.receive() == (b"x" * 50, 1)  # still queued: nothing lost
    mq.remove()


# --------------------------------------------------------------------------
# What sysv_ipc programs rely on, kept
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 4096, 3 * (1 << 20) + 12345])
def test_new_segments_are_filled_with_init_character(ipc: Tracker, size: int) -> None:
    mem = sysv_ipc.SharedMemory(None, CREX, size=size, init_character=b"@")
    ipc.track("shm", mem.id)
    assert mem.read() == b"@" * size
    mem.detach()
    mem.remove()


def test_segments_opened_or_made_with_ipc_creat_alone_are_not_filled(
    ipc: Tracker, key: int
) -> None:
    mem = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREAT, size=4096)
    ipc.track("shm", mem.id)
    assert mem.read() == bytes(4096)
    mem.write(b"kept")
    again = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREAT, size=4096, init_character=b"z")
    assert again.read(4) == b"kept"
    again.detach()
    mem.detach()
    mem.remove()


def test_str_is_utf8(ipc: Tracker) -> None:
    mem = sysv_ipc.SharedMemory(None, CREX)
    ipc.track("shm", mem.id)
    mem.write("Göteborg")
    assert mem.read(9) == "Göteborg".encode()
    mq = sysv_ipc.MessageQueue(None, CREX)
    ipc.track("msg", mq.id)
    mq.send("Göteborg")
    assert mq.receive() == ("Göteborg".encode(), 1)
    mq.remove()
    mem.detach()
    mem.remove()


def test_read_only_attributes_fail_like_c_attributes(ipc: Tracker) -> None:
    mem = sysv_ipc.SharedMemory(None, CREX)
    ipc.track("shm", mem.id)
    with pytest.raises(AttributeError, match="^readonly attribute$"):
        mem.id = 1  # type: ignore[assignment]
    with pytest.raises(AttributeError) as e:
        mem.key = 1  # type: ignore[assignment]
    assert (
        str(e.value) == "attribute 'key' of 'sysvipc.compat.SharedMemory' objects is not writable"
    )
    with pytest.raises(AttributeError):
        mem.undeclared = 1  # type: ignore[attr-defined]
    mem.uid = mem.uid  # settable ones stay settable
    mem.detach()
    mem.remove()


def test_with_block_uses_the_semaphores_undo_flag(ipc: Tracker) -> None:
    sem = sysv_ipc.Semaphore(None, CREX, initial_value=1)
    ipc.track("sem", sem.id)
    with sem as held:
        assert held is sem and sem.value == 0
    assert sem.value == 1
    sem.undo = True
    sem.block = False
    with sem:
        with pytest.raises(sysv_ipc.BusyError):
            sem.acquire()
    assert sem.value == 1
    sem.remove()


def test_buffer_after_reattach_is_a_clean_error(ipc: Tracker) -> None:
    """The buffer protocol is the first attachment's (documented)."""
    mem = sysv_ipc.SharedMemory(None, CREX)
    ipc.track("shm", mem.id)
    mem.detach()
    mem.attach()
    mem.write(b"ok")
    assert mem.read(2) == b"ok"
    with pytest.raises(ValueError):
        memoryview(mem)
    other = sysv_ipc.attach(mem.id)
    assert bytes(memoryview(other)[:2]) == b"ok"
    other.detach()
    mem.detach()
    mem.remove()


def test_attach_at_an_address_is_refused(ipc: Tracker) -> None:
    mem = sysv_ipc.SharedMemory(None, CREX)
    ipc.track("shm", mem.id)
    with pytest.raises(ValueError, match="address"):
        sysv_ipc.attach(mem.id, address=mem.address)
    with pytest.raises(ValueError, match="address"):
        mem.attach(address=mem.address)
    assert mem.attached
    mem.detach()
    mem.remove()


def test_mode_is_asked_for_when_opening(ipc: Tracker) -> None:
    """As in sysv_ipc: a process without the access that ``mode`` asks for
    (0o600 by default) gets PermissionsError from the constructor, and a
    mode without the owner's write bit attaches read-only."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to drop to another user in the child")
    proc = child(
        ipc,
        """
import errno, os
mq = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX, mode=0o600)
print("msg", mq.id, flush=True)
sem = sysv_ipc.Semaphore(None, sysv_ipc.IPC_CREX, mode=0o600)
print("sem", sem.id, flush=True)
mem = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, mode=0o644, init_character=b"r")
print("shm", mem.id, flush=True)
mem.detach()
os.setgid(65534)
os.setuid(65534)
for cls, key in ((sysv_ipc.MessageQueue, mq.key), (sysv_ipc.Semaphore, sem.key),
                 (sysv_ipc.SharedMemory, mem.key)):
    try:
        cls(key)
    except sysv_ipc.PermissionsError as e:
        assert isinstance(e, PermissionError) and e.errno == errno.EACCES, e
        print("PermissionsError", cls.__name__)
reader = sysv_ipc.SharedMemory(mem.key, mode=0o444)
assert memoryview(reader).readonly and reader.read(2) == b"rr"
print("read-only reader")
""",
    )
    for name in ("MessageQueue", "Semaphore", "SharedMemory"):
        assert f"PermissionsError {name}" in proc.stdout
    assert "read-only reader" in proc.stdout


def test_semaphore_timeout_keeps_counting_across_signals(ipc: Tracker) -> None:
    """sysv_ipc raises Error("Signaled while waiting") when a handler runs;
    here the wait resumes after a handler that returns, and an exception
    from a handler propagates."""
    proc = child(
        ipc,
        """
import signal
sem = sysv_ipc.Semaphore(None, sysv_ipc.IPC_CREX)
print("sem", sem.id, flush=True)
calls = []
signal.signal(signal.SIGALRM, lambda *args: calls.append(1))
signal.setitimer(signal.ITIMER_REAL, 0.05)
try:
    sem.acquire(0.5)
except sysv_ipc.BusyError as e:
    assert isinstance(e, TimeoutError), e
    print("timed out after", len(calls), "handler call")

def stop(*args):
    raise KeyboardInterrupt
signal.signal(signal.SIGALRM, stop)
try:
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    sem.acquire(60)              # the value is 0: waits until the signal
except KeyboardInterrupt:
    print("handler exception propagated")
sem.remove()
""",
    )
    assert "timed out after 1 handler call" in proc.stdout
    assert "handler exception propagated" in proc.stdout


def test_timeouts_are_numbers() -> None:
    sem = sysv_ipc.Semaphore(None, CREX)
    try:
        with pytest.raises(TypeError):
            sem.acquire("1")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            sem.acquire(-1)
    finally:
        sem.remove()


def test_shared_memory_flags_go_to_the_core(ipc: Tracker) -> None:
    with pytest.raises(ValueError, match="SIGBUS"):
        sysv_ipc.SharedMemory(None, CREX | sysv_ipc.SHM_HUGETLB | sysv_ipc.SHM_NORESERVE)
    with pytest.raises(ValueError, match="unsupported flag bits"):
        sysv_ipc.SharedMemory(None, CREX | (1 << 20))
    mem = sysv_ipc.SharedMemory(None, CREX | sysv_ipc.SHM_NORESERVE)
    ipc.track("shm", mem.id)
    assert mem.read(1) == b" "
    mem.detach()
    mem.remove()


def test_dropping_the_object_detaches(ipc: Tracker) -> None:
    mem = sysv_ipc.SharedMemory(None, CREX)
    shmid = ipc.track("shm", mem.id)
    again = sysv_ipc.attach(shmid)
    again.detach()
    again.attach()
    assert mem.number_attached == 2
    del mem, again
    assert ll.shmctl(shmid, ll.IPC_STAT).shm_nattch == 0  # type: ignore[union-attr]
