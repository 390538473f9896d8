"""util-linux's ipcs, ipcrm and ipcmk agree with sysvipc (issue 11).

``ipcs`` lists what sysvipc created with the same key, id, owner, mode,
sizes and counts that sysvipc reports; ``ipcrm`` removes it, by id or by key,
and sysvipc then sees it gone (a blocked caller is woken with
IdentifierRemovedError); objects made by ``ipcmk`` open in sysvipc.
"""

from __future__ import annotations

import errno
import os
import pwd
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
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
    from conftest import Tracker, proc_row
except ImportError:  # pragma: no cover - run as a package
    from tests.conftest import Tracker, proc_row  # type: ignore[no-redef]

for _tool in ("ipcs", "ipcrm"):
    if shutil.which(_tool) is None:
        pytest.skip(f"{_tool} is not installed (it comes with util-linux)", allow_module_level=True)

ENV = {**os.environ, "LC_ALL": "C"}


def run(*args: object) -> str:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=10, env=ENV
    )
    assert proc.returncode == 0, f"{args} exited with {proc.returncode}: {proc.stderr}"
    return proc.stdout


def ipcs_rows(*args: str) -> list[dict[str, str]]:
    """The table of an ``ipcs`` listing, as dicts keyed by its header."""
    lines = run("ipcs", *args).splitlines()
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in lines:
        if not line.strip() or line.startswith("------"):
            continue
        fields = line.split()
        if header is None:
            header = fields
            continue
        rows.append(dict(zip(header, fields, strict=False)))
    assert header is not None, lines
    return rows


def ipcs_row(kind: str, ident: int, *extra: str) -> dict[str, str]:
    id_field = {"q": "msqid", "s": "semid", "m": "shmid"}[kind]
    for row in ipcs_rows(f"-{kind}", *extra):
        if int(row[id_field]) == ident:
            return row
    raise AssertionError(f"ipcs -{kind} {' '.join(extra)} does not list id {ident}")


def ipcs_ids(kind: str) -> set[int]:
    id_field = {"q": "msqid", "s": "semid", "m": "shmid"}[kind]
    return {int(row[id_field]) for row in ipcs_rows(f"-{kind}")}


def ipcs_detail(kind: str, ident: int) -> dict[str, str]:
    """The name=value fields of ``ipcs -KIND -i ID``."""
    out = run("ipcs", f"-{kind}", "-i", ident)
    return dict(re.findall(r"(\w+)\s*=\s*([^\s,]+)", out))


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def key_text(key: int) -> str:
    return f"{key & 0xFFFFFFFF:#010x}"


# --------------------------------------------------------------------------
# ipcs
# --------------------------------------------------------------------------


def test_ipcs_q(ipc: Tracker) -> None:
    q = MessageQueue(mode=0o640)
    ipc.track("msg", q.id)
    q.send(b"abc", 3)
    q.send(b"hello", 1)
    st = q.stat()
    row = ipcs_row("q", q.id)
    assert row == {
        "key": key_text(q.key),
        "msqid": str(q.id),
        "owner": user_name(st.msg_perm.uid),
        "perms": "640",
        "used-bytes": str(st.msg_cbytes),
        "messages": str(len(q)),
    }
    assert (st.msg_cbytes, st.msg_qnum) == (8, 2)

    detail = ipcs_detail("q", q.id)
    assert int(detail["msqid"]) == q.id
    assert int(detail["mode"], 8) == st.msg_perm.mode & 0o777 == 0o640
    assert [int(detail[f]) for f in ("uid", "gid", "cuid", "cgid")] == [
        st.msg_perm.uid,
        st.msg_perm.gid,
        st.msg_perm.cuid,
        st.msg_perm.cgid,
    ]
    assert [int(detail[f]) for f in ("cbytes", "qbytes", "qnum", "lspid", "lrpid")] == [
        st.msg_cbytes,
        st.msg_qbytes,
        st.msg_qnum,
        st.msg_lspid,
        st.msg_lrpid,
    ]
    assert st.msg_lspid == os.getpid()
    assert detail["rcv_time"] == "Not"  # "Not set": msg_rtime is 0

    q.receive(timeout=5)
    pids = ipcs_row("q", q.id, "-p")
    assert (int(pids["lspid"]), int(pids["lrpid"])) == (os.getpid(), os.getpid())
    creators = ipcs_row("q", q.id, "-c")
    assert creators["cuid"] == user_name(st.msg_perm.cuid)
    assert ipcs_row("q", q.id)["messages"] == "1"
    q.close()


def semaphore_rows(s: SemaphoreSet) -> list[list[int]]:
    """What ``ipcs -s -i`` lists: semnum, value, ncount, zcount, pid."""
    return [
        [i, sem.semval, sem.semncnt, sem.semzcnt, sem.sempid]
        for i, sem in enumerate(s.stat().semaphores)
    ]


def test_ipcs_s(ipc: Tracker) -> None:
    s = SemaphoreSet(nsems=3, initial=[1, 0, 3], mode=0o604)
    ipc.track("sem", s.id)
    st = s.stat()
    assert ipcs_row("s", s.id) == {
        "key": key_text(s.key),
        "semid": str(s.id),
        "owner": user_name(st.sem_perm.uid),
        "perms": "604",
        "nsems": "3",
    }

    # One thread waits for semaphore 1 to rise: ncount 1 in both views.
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            s[1].acquire(timeout=10)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while s[1].ncount == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        # A thread blocked in semop leaves the wait for a moment (EINTR,
        # then sysvipc retries) when the process spawns a child such as
        # ipcs: SIGCHLD can arrive while the spawning thread blocks every
        # signal, and is then delivered to the blocked thread.  So compare
        # ipcs with a state that stayed the same around it.
        for _ in range(50):
            before = semaphore_rows(s)
            out = run("ipcs", "-s", "-i", s.id)
            table = out[out.index("semnum") :].splitlines()
            assert table[0].split() == ["semnum", "value", "ncount", "zcount", "pid"]
            listed = [[int(v) for v in line.split()] for line in table[1:] if line.strip()]
            if listed == before == semaphore_rows(s):
                break
        assert listed == before
        assert [row[1:4] for row in listed] == [[1, 0, 0], [0, 1, 0], [3, 0, 0]]
        st = s.stat()
        detail = ipcs_detail("s", s.id)
        assert int(detail["mode"], 8) == 0o604 and int(detail["uid"]) == st.sem_perm.uid
    finally:
        s[1].release()
        thread.join(timeout=10)
    assert not errors, errors
    s.close()


def test_ipcs_m(ipc: Tracker) -> None:
    shm = SharedMemory(size=5000, mode=0o660)
    ipc.track("shm", shm.id)
    row = ipcs_row("m", shm.id)
    st = shm.stat()
    assert row == {
        "key": key_text(shm.key),
        "shmid": str(shm.id),
        "owner": user_name(st.shm_perm.uid),
        "perms": "660",
        "bytes": "5000",
        "nattch": "1",
    }  # no "status": neither dest nor locked
    second = SharedMemory.from_id(shm.id, readonly=True)
    assert ipcs_row("m", shm.id)["nattch"] == "2" == str(shm.stat().shm_nattch)

    detail = ipcs_detail("m", shm.id)
    st = shm.stat()
    assert [int(detail[f]) for f in ("bytes", "lpid", "cpid", "nattch")] == [
        st.shm_segsz,
        st.shm_lpid,
        st.shm_cpid,
        st.shm_nattch,
    ]
    assert int(detail["mode"], 8) == st.shm_perm.mode == 0o660
    pids = ipcs_row("m", shm.id, "-p")
    assert (int(pids["cpid"]), int(pids["lpid"])) == (os.getpid(), os.getpid())

    second.close()
    shm.remove()  # marked: still attached here
    row = ipcs_row("m", shm.id)
    assert (row["key"], row["nattch"], row["status"]) == ("0x00000000", "1", "dest")
    assert shm.stat().shm_perm.key == 0
    assert shm.stat().shm_perm.mode & ll.SHM_DEST
    assert int(ipcs_detail("m", shm.id)["mode"], 8) == shm.stat().shm_perm.mode == 0o1660
    shm.close()
    assert shm.id not in ipcs_ids("m")


def test_private_key_is_zero_in_ipcs(ipc: Tracker) -> None:
    q = MessageQueue(sysvipc.IPC_PRIVATE)
    ipc.track("msg", q.id)
    assert q.key == 0
    assert ipcs_row("q", q.id)["key"] == "0x00000000"
    q.close()


def test_ipcs_lists_what_sysvipc_lists(ipc: Tracker) -> None:
    q = MessageQueue()
    ipc.track("msg", q.id)
    s = SemaphoreSet()
    ipc.track("sem", s.id)
    shm = SharedMemory(size=4096)
    ipc.track("shm", shm.id)
    for kind, ours, entries in [
        ("q", q.id, sysvipc.list_message_queues()),
        ("s", s.id, sysvipc.list_semaphore_sets()),
        ("m", shm.id, sysvipc.list_shared_memory()),
    ]:
        perm = {"q": "msg_perm", "s": "sem_perm", "m": "shm_perm"}[kind]
        id_field = {"q": "msqid", "s": "semid", "m": "shmid"}[kind]
        listed = {e.id: getattr(e.stat, perm).key for e in entries}
        rows = {int(row[id_field]): row["key"] for row in ipcs_rows(f"-{kind}")}
        assert ours in listed and ours in rows
        for ident in listed.keys() & rows.keys():  # others may come and go meanwhile
            assert key_text(listed[ident]) == rows[ident], (kind, ident)
    q.close()
    s.close()
    shm.close()


# --------------------------------------------------------------------------
# ipcrm
# --------------------------------------------------------------------------


def wait_blocked(count: Callable[[], int]) -> None:
    deadline = time.monotonic() + 5
    while count() == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert count() > 0, "the waiter never blocked"


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


class Waiter:
    """A thread blocked in a call; records what ended it."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.outcome: list[object] = []

        def target() -> None:
            try:
                self.outcome.append(call())
            except BaseException as e:
                self.outcome.append(e)

        self.thread = threading.Thread(target=target)
        self.thread.start()

    def result(self) -> object:
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        return self.outcome[0]


@pytest.fixture
def waiters() -> Iterator[list[Waiter]]:
    made: list[Waiter] = []
    yield made
    for w in made:
        w.thread.join(timeout=10)


@pytest.mark.parametrize("by", ["id", "key"])
def test_ipcrm_queue(by: str, ipc: Tracker, waiters: list[Waiter]) -> None:
    q = MessageQueue()
    ipc.track("msg", q.id)
    q.send(b"lost", 1)
    blocked = Waiter(lambda: q.receive(5, timeout=10))
    waiters.append(blocked)
    wait_in_kernel(blocked.thread, "msgrcv")  # no count of blocked receivers

    run("ipcrm", *(["-q", q.id] if by == "id" else ["-Q", key_text(q.key)]))

    assert isinstance(blocked.result(), IdentifierRemovedError)
    assert proc_row("msg", q.id) is None
    with pytest.raises(OSError) as raised:
        q.send(b"x")
    assert raised.value.errno in (errno.EINVAL, errno.EIDRM)
    with pytest.raises(OSError):
        q.stat()
    with pytest.raises(OSError):
        MessageQueue.from_id(q.id)
    with pytest.raises(FileNotFoundError):
        MessageQueue(q.key)
    q.close()


@pytest.mark.parametrize("call", ["receive", "send"])
def test_ipcrm_from_a_signal_handler_wakes_with_eidrm(call: str, ipc: Tracker) -> None:
    """The handler of a signal that interrupts the wait removes the queue
    with ipcrm and returns; PEP 475 resumes the wait, which must then end
    as a removal, like any wait whose object is removed."""
    import signal

    q = MessageQueue()
    ipc.track("msg", q.id)
    if call == "send":
        q.set(max_bytes=10)
        q.send(b"x" * 10)  # full: the next send waits

    def handler(signo: int, frame: object) -> None:
        run("ipcrm", "-q", q.id)

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(IdentifierRemovedError):
            if call == "receive":
                q.receive(timeout=5)
            else:
                q.send(b"y", timeout=5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert proc_row("msg", q.id) is None
    q.close()


@pytest.mark.parametrize("by", ["id", "key"])
def test_ipcrm_semaphore_set(by: str, ipc: Tracker, waiters: list[Waiter]) -> None:
    s = SemaphoreSet(initial=0)
    ipc.track("sem", s.id)
    blocked = Waiter(lambda: s[0].acquire(timeout=10))
    waiters.append(blocked)
    wait_blocked(lambda: s[0].ncount)

    run("ipcrm", *(["-s", s.id] if by == "id" else ["-S", key_text(s.key)]))

    assert isinstance(blocked.result(), IdentifierRemovedError)
    assert proc_row("sem", s.id) is None
    with pytest.raises(IdentifierRemovedError):
        s.values
    with pytest.raises(IdentifierRemovedError):
        s[0].release()
    with pytest.raises(FileNotFoundError):
        SemaphoreSet(s.key)
    s.close()


@pytest.mark.parametrize("by", ["id", "key"])
def test_ipcrm_segment(by: str, ipc: Tracker) -> None:
    shm = SharedMemory(size=4096)
    ipc.track("shm", shm.id)
    shm.write(b"still here")

    run("ipcrm", *(["-m", shm.id] if by == "id" else ["-M", key_text(shm.key)]))

    # Marked for removal: attached processes keep the memory, nobody finds
    # it by key any more, and it goes at the last detach.
    assert shm.read(10) == b"still here"
    assert shm.stat().shm_perm.mode & ll.SHM_DEST
    assert ipcs_row("m", shm.id)["status"] == "dest"
    with pytest.raises(FileNotFoundError):
        SharedMemory(shm.key)
    shm.close()
    assert proc_row("shm", shm.id) is None
    assert shm.id not in ipcs_ids("m")
    with pytest.raises(OSError) as raised:
        SharedMemory.from_id(shm.id)
    assert raised.value.errno in (errno.EINVAL, errno.EIDRM)


def test_ipcrm_refuses_what_is_not_there(ipc: Tracker) -> None:
    q = MessageQueue()
    ipc.track("msg", q.id)
    q.remove()
    proc = subprocess.run(
        ["ipcrm", "-q", str(q.id)], capture_output=True, text=True, timeout=10, env=ENV
    )
    assert proc.returncode != 0
    q.close()


# --------------------------------------------------------------------------
# ipcmk: objects made by the tool open in sysvipc
# --------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("ipcmk") is None, reason="ipcmk is not installed")
def test_objects_made_by_ipcmk(ipc: Tracker) -> None:
    def make(*args: str) -> int:
        out = run("ipcmk", *args)
        match = re.search(r"id: (\d+)", out)
        assert match, out
        return int(match.group(1))

    msqid = make("-Q", "-p", "0640")
    ipc.track("msg", msqid)
    semid = make("-S", "3", "-p", "0600")
    ipc.track("sem", semid)
    shmid = make("-M", "8192", "-p", "0600")
    ipc.track("shm", shmid)

    q = MessageQueue.from_id(msqid)
    assert q.stat().msg_perm.mode & 0o777 == 0o640
    assert MessageQueue(q.key).id == msqid
    q.send(b"to ipcmk's queue", 2)
    assert ipcs_row("q", msqid)["messages"] == "1"

    s = SemaphoreSet.from_id(semid)
    assert len(s) == 3 and s.values == [0, 0, 0]
    assert s.stat().sem_otime == 0  # never touched by semop
    assert SemaphoreSet(s.key).id == semid  # opens at once: nobody initialises it

    with SharedMemory.from_id(shmid) as shm:
        assert shm.size == 8192 and shm.read() == bytes(8192)
        assert SharedMemory(shm.key).id == shmid
    q.close()
    s.close()
