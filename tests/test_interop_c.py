"""C programs as real peers of sysvipc (issue 11).

The programs in tests/c/ are compiled at test time with the system C
compiler and talk to sysvipc through the kernel only: messages (the
``long mtype`` header and the bytes), a semaphore lock with SEM_UNDO, and an
array of C structs in shared memory read as a numpy structured array.
docs/c-interop.md shows those programs verbatim, and its Python examples run
here against them.
"""

from __future__ import annotations

import array
import errno
import os
import re
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sysvipc
from sysvipc import MessageQueue, SemaphoreSet, SharedMemory

try:
    from conftest import Tracker
except ImportError:  # pragma: no cover - run as a package
    from tests.conftest import Tracker  # type: ignore[no-redef]

CC = shutil.which("cc") or shutil.which("gcc")
if CC is None:
    pytest.skip(
        "no C compiler (cc or gcc) on PATH: the C interoperability tests build "
        "tests/c/*.c at test time (apt-get install gcc)",
        allow_module_level=True,
    )

C_DIR = Path(__file__).resolve().parent / "c"
ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "c-interop.md"

# Children import the sysvipc this process tests.
_PKG_ROOT = Path(sysvipc.__file__).resolve().parent.parent
CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(_PKG_ROOT), os.environ.get("PYTHONPATH")])),
}

MSGMAX = int(Path("/proc/sys/kernel/msgmax").read_text())
LONG_MAX = 2**63 - 1


# --------------------------------------------------------------------------
# Building and running the C peers
# --------------------------------------------------------------------------


def compile_c(source: Path, out: Path) -> Path:
    assert CC is not None
    exe = out / source.stem
    proc = subprocess.run(
        [CC, "-std=gnu11", "-O2", "-Wall", "-pthread", "-o", str(exe), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{CC} failed on {source.name}:\n{proc.stderr}"
    return exe


@pytest.fixture(scope="module")
def cbin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding every tests/c/*.c program, compiled."""
    out = tmp_path_factory.mktemp("cbin")
    for source in sorted(C_DIR.glob("*.c")):
        compile_c(source, out)
    return out


def run_c(cbin: Path, *args: object, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    """Run a C peer to completion (killed if it outlives ``timeout``)."""
    return subprocess.run(
        [str(cbin / str(args[0])), *map(str, args[1:])],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def check(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (
        f"{proc.args} exited with {proc.returncode}\nstdout:\n{proc.stdout[:2000]}\n"
        f"stderr:\n{proc.stderr}"
    )
    return proc.stdout


class Peers:
    """Background processes of one test, killed and reaped at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(argv, text=True, **kwargs)
        self.procs.append(proc)
        return proc

    def c(self, cbin: Path, *args: object, **kwargs: Any) -> subprocess.Popen[str]:
        return self.start([str(cbin / str(args[0])), *map(str, args[1:])], **kwargs)

    def c_printing(self, cbin: Path, out: Path, *args: object) -> subprocess.Popen[str]:
        """A C peer whose stdout goes to the file ``out``: a pipe that
        nobody reads yet would block it once 64 KiB of hex are printed."""
        with open(out, "w") as f:
            return self.c(cbin, *args, stdout=f)

    def python(self, code: str, *args: object) -> subprocess.Popen[str]:
        return self.start(
            [sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=CHILD_ENV
        )

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            try:
                proc.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError):
                pass


@pytest.fixture
def peers() -> Iterator[Peers]:
    p = Peers()
    try:
        yield p
    finally:
        p.cleanup()


def finish(proc: subprocess.Popen[str], timeout: float = 15) -> str:
    """Wait for a peer; return its stdout, failing on a non-zero exit."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{proc.args} exited with {proc.returncode}\n{err}"
    return out


def read_line(proc: subprocess.Popen[str], timeout: float = 10) -> str:
    """One line of a peer's stdout, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"{proc.args} printed nothing in {timeout} s"
    return proc.stdout.readline()


# --------------------------------------------------------------------------
# Message queues
# --------------------------------------------------------------------------


def pattern(type_: int, size: int, n: int = 0) -> bytes:
    """The bytes msg_peer.c sends: byte i is (7 * i + type + n) mod 256."""
    start = (type_ + n) & 0xFF
    return bytes((7 * i + start) & 0xFF for i in range(size))


def parse_messages(out: str) -> list[tuple[int, bytes]]:
    """msg_peer's "TYPE SIZE HEX" lines."""
    messages = []
    for line in out.splitlines():
        type_, size, hexdata = line.split(" ")
        data = bytes.fromhex(hexdata)
        assert len(data) == int(size), line[:80]
        messages.append((int(type_), data))
    return messages


@pytest.fixture
def queue(ipc: Tracker) -> Iterator[MessageQueue]:
    q = MessageQueue()
    ipc.track("msg", q.id)
    yield q
    q.close()


def test_c_sends_python_receives_with_type_selection(cbin: Path, queue: MessageQueue) -> None:
    sent = [(3, 0), (1, 1), (5, 100), (2, 4096), (4, MSGMAX)]
    total = sum(size for _, size in sent)
    if queue.stat().msg_qbytes < total:
        pytest.skip(f"a queue holds {queue.stat().msg_qbytes} bytes, the test needs {total}")

    proc = subprocess.Popen(
        [str(cbin / "msg_peer"), "send", str(queue.id), *(f"{t}:{s}" for t, s in sent)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err

    st = queue.stat()
    assert (st.msg_qnum, st.msg_cbytes, st.msg_lspid) == (len(sent), total, proc.pid)

    def expect(message: sysvipc.Message, type_: int, size: int) -> None:
        assert message.type == type_
        assert len(message.data) == size
        assert message.data == pattern(type_, size)

    expect(queue.receive(2, timeout=5), 2, 4096)  # > 0: that type
    expect(queue.receive(-4, timeout=5), 1, 1)  # < 0: the lowest type <= 4
    expect(queue.receive(3, except_type=True, timeout=5), 5, 100)  # not type 3
    expect(queue.receive(0, timeout=5), 3, 0)  # 0: the first one, here empty
    expect(queue.receive(timeout=5), 4, MSGMAX)  # the largest message there is
    with pytest.raises(BlockingIOError):
        queue.receive(block=False)
    assert queue.stat().msg_lrpid == os.getpid()


def test_python_sends_c_receives(
    cbin: Path, queue: MessageQueue, peers: Peers, tmp_path: Path
) -> None:
    out = tmp_path / "received.txt"
    proc = peers.c_printing(cbin, out, "msg_peer", "recv", queue.id, 7)
    ints = array.array("i", [1, -2, 3])
    payloads: list[tuple[int, Any]] = [
        (1, b""),
        (2, os.urandom(1)),
        (3, b"\x00" + os.urandom(98) + b"\x00"),  # NULs are data, not ends
        (4, bytearray(os.urandom(4096))),
        (5, memoryview(os.urandom(MSGMAX + 10))[5:-5]),  # exactly msgmax
        (LONG_MAX, b"largest type"),  # the whole range of C's long
        (6, ints),  # any bytes-like object
    ]
    for type_, data in payloads:
        queue.send(data, type_, timeout=10)  # C receives meanwhile
    finish(proc)
    received = parse_messages(out.read_text())
    assert received == [(t, bytes(d)) for t, d in payloads]
    # An array's message is its raw bytes, in this machine's byte order.
    assert received[-1][1] == ints.tobytes()
    assert len(received[4][1]) == MSGMAX


def test_long_type_from_c(cbin: Path, queue: MessageQueue) -> None:
    check(run_c(cbin, "msg_peer", "send", queue.id, f"{LONG_MAX}:3", "1:2"))
    assert queue.receive(-LONG_MAX, timeout=5) == (pattern(1, 2), 1)
    assert queue.receive(timeout=5) == (pattern(LONG_MAX, 3), LONG_MAX)


def test_size_bounds_on_messages_from_c(cbin: Path, queue: MessageQueue) -> None:
    check(run_c(cbin, "msg_peer", "send", queue.id, "4:100"))
    with pytest.raises(OSError) as raised:  # msgrcv(..., 10, 0): E2BIG
        queue.receive(max_size=10, timeout=5)
    assert raised.value.errno == errno.E2BIG
    assert len(queue) == 1  # still queued
    # msgrcv(..., 10, MSG_NOERROR): the first 10 bytes, the rest is dropped
    assert queue.receive(max_size=10, truncate=True, timeout=5) == (pattern(4, 10), 4)
    assert len(queue) == 0


def test_both_directions_at_once(
    cbin: Path, queue: MessageQueue, peers: Peers, tmp_path: Path
) -> None:
    """C and Python send and receive at the same time on one queue: C sends
    type 2 and receives type 1, Python the other way round.  The queue
    (msgmnb bytes) is much smaller than the traffic, so both sides block on
    a full queue and on an empty one many times."""
    count, max_size = 300, 2000
    out = tmp_path / "received.txt"
    proc = peers.c_printing(cbin, out, "msg_peer", "duplex", queue.id, count, max_size)
    ours = [os.urandom((n * 13) % (max_size + 1)) for n in range(count)]
    errors: list[BaseException] = []

    def send_all() -> None:
        try:
            for data in ours:
                queue.send(data, 1, timeout=10)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    sender = threading.Thread(target=send_all)
    sender.start()
    try:
        for n in range(count):
            message = queue.receive(2, timeout=10)
            assert message == (pattern(2, n % (max_size + 1), n), 2), f"message {n}"
    finally:
        sender.join(timeout=20)
    assert not sender.is_alive()
    assert not errors, errors
    finish(proc)
    assert parse_messages(out.read_text()) == [(1, data) for data in ours]
    assert len(queue) == 0


# --------------------------------------------------------------------------
# Semaphores: one lock, with undo, for C and Python
# --------------------------------------------------------------------------

PY_COUNTER = """
    import sys
    from sysvipc import SemaphoreSet, SharedMemory

    lock = SemaphoreSet.from_id(int(sys.argv[1]))
    shm = SharedMemory.from_id(int(sys.argv[2]))
    counter = shm.buf.cast("q")      # the int64_t at offset 0
    for _ in range(int(sys.argv[3])):
        with lock[0]:                # semop(-1, SEM_UNDO) ... semop(+1, SEM_UNDO)
            counter[0] += 1
"""


@pytest.fixture
def lock(ipc: Tracker) -> Iterator[SemaphoreSet]:
    s = SemaphoreSet(initial=1)
    ipc.track("sem", s.id)
    yield s
    s.close()


@pytest.fixture
def segment(ipc: Tracker) -> Iterator[SharedMemory]:
    shm = SharedMemory(size=4096)
    ipc.track("shm", shm.id)
    yield shm
    shm.close()


def test_counter_under_one_lock_c_and_python(
    cbin: Path, lock: SemaphoreSet, segment: SharedMemory, peers: Peers
) -> None:
    c_n, py_n = 3000, 1500
    workers = [peers.c(cbin, "sem_counter", "add", lock.id, segment.id, c_n) for _ in range(2)]
    workers += [peers.python(PY_COUNTER, lock.id, segment.id, py_n) for _ in range(2)]
    counter = segment.buf.cast("q")
    for _ in range(py_n):  # and this process too
        with lock[0]:
            counter[0] += 1
    for proc in workers:
        finish(proc, timeout=25)
    assert counter[0] == 2 * c_n + 3 * py_n
    assert lock[0].value == 1  # every lock given back
    counter.release()


def test_c_holder_killed_python_acquires(cbin: Path, lock: SemaphoreSet, peers: Peers) -> None:
    holder = peers.c(cbin, "sem_counter", "hold", lock.id)
    assert read_line(holder) == "held\n"
    assert lock[0].value == 0
    assert lock[0].pid == holder.pid
    assert lock[0].acquire(timeout=0.05, undo=True) is False

    result: list[object] = []

    def waiter() -> None:  # blocked in semtimedop when the holder dies
        start = time.monotonic()
        try:
            lock[0].acquire(timeout=5, undo=True)
            result.append(time.monotonic() - start)
        except BaseException as e:
            result.append(e)

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while lock[0].ncount == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert lock[0].ncount == 1  # the waiter is blocked in the kernel
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=5) == -signal.SIGKILL
    finally:
        thread.join(timeout=10)
    assert len(result) == 1 and isinstance(result[0], float), result
    assert result[0] < 5
    assert lock[0].value == 0  # now held by this process
    lock[0].release(undo=True)
    assert lock[0].value == 1


def test_python_holder_killed_c_acquires(
    cbin: Path, lock: SemaphoreSet, segment: SharedMemory, peers: Peers
) -> None:
    holder = peers.python(
        """
        import sys, time
        from sysvipc import SemaphoreSet
        lock = SemaphoreSet.from_id(int(sys.argv[1]))
        with lock[0]:
            print("held", flush=True)
            time.sleep(60)
        """,
        lock.id,
    )
    assert read_line(holder) == "held\n"
    assert lock[0].value == 0
    holder.kill()
    assert holder.wait(timeout=5) == -signal.SIGKILL
    # The kernel undid the Python holder's -1: C takes the lock at once.
    check(run_c(cbin, "sem_counter", "add", lock.id, segment.id, 1, timeout=10))
    assert segment.buf.cast("q")[0] == 1
    assert lock[0].value == 1


# --------------------------------------------------------------------------
# Shared memory: C structs as a numpy structured array
# --------------------------------------------------------------------------


def rec_dtype() -> Any:
    np = pytest.importorskip("numpy")
    # struct rec { int32_t id; double x; char tag[8]; } as a C compiler lays it out
    return np.dtype([("id", np.int32), ("x", np.float64), ("tag", "S8")], align=True)


def c_layout(cbin: Path) -> dict[str, int]:
    out = check(run_c(cbin, "shm_records", "layout"))
    return {name: int(value) for name, value in re.findall(r"(\w+)=(\d+)", out)}


def parse_records(out: str) -> list[tuple[int, float, bytes]]:
    records = []
    for line in out.splitlines():
        ident, x, tag = line.split(" ", 2)
        records.append((int(ident), float.fromhex(x), tag.encode()))
    return records


def test_struct_layout_matches_aligned_dtype(cbin: Path) -> None:
    rec = rec_dtype()
    layout = c_layout(cbin)
    assert layout == {
        "sizeof": rec.itemsize,
        "id": rec.fields["id"][1],
        "x": rec.fields["x"][1],
        "tag": rec.fields["tag"][1],
    }
    assert (rec.itemsize, rec.fields["x"][1]) == (24, 8)  # the padding after id
    assert struct.calcsize("@id8s") == layout["sizeof"]  # struct's native mode agrees
    np = pytest.importorskip("numpy")
    packed = np.dtype([("id", np.int32), ("x", np.float64), ("tag", "S8")])
    assert (packed.itemsize, packed.fields["x"][1]) == (20, 4)  # not C's layout


def test_c_writes_structs_python_reads_them_zero_copy(cbin: Path, ipc: Tracker) -> None:
    np = pytest.importorskip("numpy")
    rec = rec_dtype()
    n = 1200  # tags up to "rec-1199": 8 bytes, no NUL
    shm = SharedMemory(size=n * rec.itemsize)
    ipc.track("shm", shm.id)
    try:
        with pytest.raises(ValueError, match="not aligned"):
            shm.ndarray(rec, 1, offset=4)
        records = shm.ndarray(rec, n)  # made before C writes anything
        assert not records.flags.owndata and records.flags.writeable
        assert bytes(shm) == bytes(shm.size)  # a new segment is zero-filled
        check(run_c(cbin, "shm_records", "write", shm.id, n))
        # The view shows C's writes: it is the segment, not a copy.
        i = np.arange(n)
        assert (records["id"] == 1000 + i).all()
        assert (records["x"] == i * 1.5 - 3.25).all()
        assert records["tag"].tolist() == [f"rec-{k}".encode()[:8] for k in range(n)]
        assert records["tag"][1000] == b"rec-1000"

        # Python writes in place; C reads it back through SHM_RDONLY.
        records["id"] = -i
        records["x"] = 1 / (i + 3)  # not exact in decimal: C prints it with %a
        records["tag"] = [f"py{k}".encode() for k in range(n)]
        records["tag"][7] = b"eight_ch"
        got = parse_records(check(run_c(cbin, "shm_records", "read", shm.id, n)))
        assert got == [(int(r["id"]), float(r["x"]), bytes(r["tag"])) for r in records]
        assert got[7][2] == b"eight_ch"
        del records
    finally:
        shm.close()


def test_read_only_attachments_on_both_sides(cbin: Path, ipc: Tracker) -> None:
    rec = rec_dtype()
    n = 4
    shm = SharedMemory(size=n * rec.itemsize)
    ipc.track("shm", shm.id)
    ro = SharedMemory.from_id(shm.id, readonly=True)
    try:
        view = ro.ndarray(rec, n)
        assert ro.readonly and not view.flags.writeable
        check(run_c(cbin, "shm_records", "write", shm.id, n))
        assert view["id"].tolist() == [1000, 1001, 1002, 1003]  # sees writers

        # Python: every way of writing through a read-only attachment raises.
        with pytest.raises(ValueError, match="read-only"):
            view["id"][0] = 1
        with pytest.raises(ValueError):
            view.setflags(write=True)
        with pytest.raises(PermissionError):
            ro.write(b"x")
        with pytest.raises(TypeError):
            ro.buf[0] = 1
        assert memoryview(ro).readonly

        # C: SHM_RDONLY reads ...
        got = parse_records(check(run_c(cbin, "shm_records", "read", shm.id, n)))
        assert [r[0] for r in got] == [1000, 1001, 1002, 1003]
        # ... and a write through it is a SIGSEGV from the kernel.
        poke = run_c(cbin, "shm_records", "poke", shm.id)
        assert poke.stdout == "attached read-only\n"
        assert poke.returncode == -signal.SIGSEGV
        assert view["id"][0] == 1000  # nothing changed
        del view
    finally:
        ro.close()
        shm.close()


# --------------------------------------------------------------------------
# Keys and permissions
# --------------------------------------------------------------------------


def parse_key_line(out: str) -> dict[str, int]:
    fields = dict(field.split("=") for field in out.split())
    return {
        "key": int(fields["key"], 16),
        "id": int(fields["id"]),
        "mode": int(fields["mode"], 8),
        "uid": int(fields["uid"]),
    }


def test_ftok_same_key_in_c_and_python(cbin: Path, ipc: Tracker, tmp_path: Path) -> None:
    path = tmp_path / "app.key"
    path.touch()
    key_a = sysvipc.ftok(path, "A")
    assert key_a == sysvipc.ftok(str(path), ord("A"))
    assert key_a != sysvipc.ftok(path, "B")

    # C creates under ftok(path, 'A') with mode 0640; Python opens by the key.
    proc = run_c(cbin, "ipc_key", path, "A", "create")
    if proc.returncode == 0:
        ipc.track("msg", parse_key_line(proc.stdout)["id"])
    made = parse_key_line(check(proc))
    assert made["key"] == key_a
    with MessageQueue(key_a) as q:
        assert q.id == made["id"] and q.key == key_a and not q.created
        perm = q.stat().msg_perm
        assert (perm.mode & 0o777, perm.uid, perm.cuid) == (0o640, os.getuid(), os.getuid())

    # Python creates under ftok(path, 'B'); C opens it by the same key.
    q = MessageQueue(sysvipc.ftok(path, "B"), exclusive=True, mode=0o604)
    ipc.track("msg", q.id)
    opened = parse_key_line(check(run_c(cbin, "ipc_key", path, "B", "open")))
    assert opened == {"key": q.key, "id": q.id, "mode": 0o604, "uid": os.getuid()}
    q.close()


def test_mode_is_not_masked_by_umask(ipc: Tracker) -> None:
    old = os.umask(0o077)
    try:
        q = MessageQueue(mode=0o666)
        ipc.track("msg", q.id)
    finally:
        os.umask(old)
    assert q.stat().msg_perm.mode & 0o777 == 0o666  # as msgget(key, IPC_CREAT | 0666)
    q.close()


@pytest.fixture
def public_bin(cbin: Path) -> Iterator[Path]:
    """msg_peer in a directory that another user can reach."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv(1) to run a C peer as another user")
    d = Path(tempfile.mkdtemp(prefix="sysvipc-interop-"))
    try:
        d.chmod(0o755)
        shutil.copy2(cbin / "msg_peer", d / "msg_peer")
        (d / "msg_peer").chmod(
            stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
        )
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def as_nobody(public_bin: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            str(public_bin / "msg_peer"),
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        timeout=15,
    )


def test_mode_bits_apply_to_c_peers_of_another_user(public_bin: Path, queue: MessageQueue) -> None:
    # mode 0o600: another user can open the queue (msgget asks for no
    # access) but neither send nor receive.
    refused = as_nobody(public_bin, "send", queue.id, "1:5")
    assert refused.returncode == 1
    assert f"msgsnd: {os.strerror(errno.EACCES)}" in refused.stderr
    assert len(queue) == 0

    queue.set(mode=0o622)  # others may write (send) but not read (receive)
    check(as_nobody(public_bin, "send", queue.id, "7:5"))
    message = queue.receive(timeout=5)
    assert message == (pattern(7, 5), 7)
    assert queue.stat().msg_lspid != os.getpid()
    queue.send(b"secret", 1)
    refused = as_nobody(public_bin, "recv", queue.id, 1)
    assert refused.returncode == 1
    assert f"msgrcv: {os.strerror(errno.EACCES)}" in refused.stderr
    assert len(queue) == 1


# --------------------------------------------------------------------------
# docs/c-interop.md: its C programs are these files, its Python runs here
# --------------------------------------------------------------------------

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


def doc_blocks(lang: str) -> list[str]:
    if not DOC.exists():
        return []
    return [m.group(2) for m in FENCE.finditer(DOC.read_text()) if m.group(1).strip() == lang]


def test_doc_shows_every_c_program_verbatim() -> None:
    c_blocks = doc_blocks("c")
    sources = sorted(C_DIR.glob("*.c"))
    assert sources
    for source in sources:
        assert source.read_text() in c_blocks, f"docs/c-interop.md lacks {source.name} verbatim"
    assert len(c_blocks) == len(sources), "a C block of the doc is not a tests/c program"


PY_BLOCKS = doc_blocks("python")


def test_doc_has_python_examples() -> None:
    assert len(PY_BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(PY_BLOCKS)))
def test_doc_python_example_runs(index: int, cbin: Path) -> None:
    """Each example is a complete program, run where the C programs were
    built (the doc says: run it next to them)."""
    code = PY_BLOCKS[index]
    if "import numpy" in code:
        pytest.importorskip("numpy")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cbin,
        env=CHILD_ENV,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, f"example {index}:\n{code}\nstderr:\n{proc.stderr}"
