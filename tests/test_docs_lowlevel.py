"""docs/lowlevel.md works as written.

- Every fenced block of the document is a ```python block, and each one runs
  to completion in a fresh interpreter (its own temporary directory).
- Every row of the Go-to-Python table and of the ipc(5) tables is exercised:
  the test reads the Python expressions *from the document*, evaluates them
  against real objects, and checks the values (against /proc/sysvipc where
  that file has the field).
"""

from __future__ import annotations

import array
import errno
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import sysvipc
from sysvipc import lowlevel as ll

try:
    from conftest import (
        HANG,
        Tracker,
        assert_child_ok,
        existing_ids,
        proc_row,
        proc_rows,
        run_python,
        unused_key,
    )
except ImportError:  # pragma: no cover - run as a package
    from tests.conftest import (  # type: ignore[no-redef]
        HANG,
        Tracker,
        assert_child_ok,
        existing_ids,
        proc_row,
        proc_rows,
        run_python,
        unused_key,
    )

DOC = Path(__file__).resolve().parent.parent / "docs" / "lowlevel.md"
TEXT = DOC.read_text(encoding="utf-8")

# The sysvipc this process tests; children import the same one.
_PKG_FILE = getattr(sysvipc, "__file__", None)
PKG_ROOT = Path(_PKG_FILE).resolve().parent.parent if _PKG_FILE else DOC.parent.parent
CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(PKG_ROOT), os.environ.get("PYTHONPATH")])),
}

PAGE = os.sysconf("SC_PAGESIZE")

# --------------------------------------------------------------------------
# Reading the document
# --------------------------------------------------------------------------

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int
    section: str


def _blocks() -> list[Block]:
    blocks = []
    for match in FENCE.finditer(TEXT):
        before = TEXT[: match.start()]
        headings = re.findall(r"^#+ (.+)$", FENCE.sub("", before), re.M)
        blocks.append(
            Block(
                match.group(1).strip(),
                match.group(2),
                before.count("\n") + 1,
                headings[-1] if headings else "top",
            )
        )
    return blocks


BLOCKS = _blocks()


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def _tables() -> list[list[list[str]]]:
    """Every markdown table outside code blocks: header row, then data rows."""
    text = FENCE.sub("", TEXT)
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = _cells(line)
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _table(*header: str) -> list[list[str]]:
    for table in _tables():
        if tuple(table[0]) == header:
            return table[1:]
    raise AssertionError(f"docs/lowlevel.md has no table with header {header}")


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _name(cell: str) -> str:
    codes = _code(cell)
    return codes[0] if codes else cell


def _go_rows() -> dict[str, list[str]]:
    rows = {}
    for go, python, _notes in _table("Go", "Python", "Notes"):
        match = re.match(r"`(\w+)", go)
        assert match, go
        rows[match.group(1)] = _code(python)
    return rows


def _constant_rows() -> dict[str, tuple[int, str]]:
    return {
        _name(go): (int(_name(value), 0), _name(python))
        for go, value, python in _table("Go", "value", "Python")
    }


def _ipc5_rows() -> dict[tuple[str, str], list[str]]:
    return {
        (_name(struct), _name(fld)): _code(python)
        for struct, fld, python, _notes in _table("Structure", "Field", "Python", "Notes")
    }


def _info_rows() -> dict[str, list[str]]:
    return {
        cmd.replace("`", ""): _code(python)
        for cmd, python, _returns in _table("Command", "Python", "Returns")
    }


def ev(snippet: str, **names: Any) -> Any:
    """Evaluate one of the document's expressions with the given names."""
    code = compile(snippet, str(DOC), "eval")
    return eval(code, {"ll": ll, "sysvipc": sysvipc, **names})


def proc(kind: str, ident: int) -> dict[str, str]:
    row = proc_row(kind, ident)
    assert row is not None, f"{kind} {ident} is not in /proc/sysvipc/{kind}"
    return row


def perms(row: dict[str, str]) -> int:
    return int(row["perms"], 8)  # /proc/sysvipc prints the mode in octal


def sysctl(name: str) -> list[int]:
    return [int(v) for v in Path(f"/proc/sys/kernel/{name}").read_text().split()]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def child(code: str) -> str:
    """Run code in a child interpreter; return its stdout."""
    proc_ = run_python(code, env=CHILD_ENV)
    assert_child_ok(proc_)
    return proc_.stdout


# --------------------------------------------------------------------------
# The code blocks
# --------------------------------------------------------------------------


def test_doc_has_code_blocks_and_all_are_python() -> None:
    assert len(BLOCKS) >= 8
    others = [(b.line, b.lang) for b in BLOCKS if b.lang != "python"]
    assert not others, f"non-python fenced blocks at (line, lang): {others}"


BLOCK_IDS = ["line{}-{}".format(b.line, re.sub(r"\W+", "_", b.section).strip("_")) for b in BLOCKS]


@pytest.mark.parametrize("block", BLOCKS, ids=BLOCK_IDS)
def test_doc_block_runs(block: Block, tmp_path: Path) -> None:
    proc_ = run_python(block.code, timeout=120, cwd=tmp_path, env=CHILD_ENV)
    assert proc_.returncode == 0, (
        f"block at docs/lowlevel.md:{block.line} exited with {proc_.returncode}\n"
        f"stdout:\n{proc_.stdout}\nstderr:\n{proc_.stderr}"
    )


# --------------------------------------------------------------------------
# The Go-to-Python table
# --------------------------------------------------------------------------

GO_FUNCTIONS = [
    "Ftok", "Msgget", "Msgsnd", "Msgrcv", "Msgsend", "Msgreceive", "Msgrm",
    "Semget", "Semop", "Semoperate", "Semp", "Semv", "Semgetvalue", "Semsetvalue",
    "Semrm", "Shmget", "Shmat", "Shmdt", "Shmgetattach", "Shmdetach", "Shmrm", "Sembuf",
]  # fmt: skip

GO_CONSTANTS = {
    "IPC_CREAT": 0o1000,
    "IPC_EXCL": 0o2000,
    "IPC_NOWAIT": 0o4000,
    "IPC_PRIVATE": 0,
    "SEM_UNDO": 0o10000,
    "IPC_RMID": 0,
    "IPC_SET": 1,
    "IPC_STAT": 2,
}


def test_go_table_has_one_row_per_go_function() -> None:
    rows = _go_rows()
    assert sorted(rows) == sorted(GO_FUNCTIONS)
    for name, snippets in rows.items():
        assert snippets, f"{name}: no Python expression"
        for snippet in snippets:
            compile(snippet, str(DOC), "eval")


def test_go_constants_table_has_every_go_constant() -> None:
    assert _constant_rows().keys() == GO_CONSTANTS.keys()


# One function per Go row: go_case(ipc, snippet, tmp_path) runs one of the
# row's Python expressions against real objects and checks what it did.
GO_CASES: dict[str, Callable[[Tracker, str, Path], None]] = {}


def go_case(name: str) -> Callable[[Callable[[Tracker, str, Path], None]], Any]:
    def register(fn: Callable[[Tracker, str, Path], None]) -> Any:
        GO_CASES[name] = fn
        return fn

    return register


def glibc_ftok(path: Path, proj: int) -> int:
    st = os.stat(path)
    key = ((proj & 0xFF) << 24) | ((st.st_dev & 0xFF) << 16) | (st.st_ino & 0xFFFF)
    return key  # canonical: unsigned


@go_case("Ftok")
def _ftok(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    path = tmp_path / "keyfile"
    path.write_bytes(b"")
    for proj, number in ((ord("A"), 65), ("A", 65), (200, 200), (1, 1)):
        for pathname in (str(path), os.fsencode(path), path):
            assert ev(snip, pathname=pathname, projectid=proj) == glibc_ftok(path, number)
    key = ev(snip, pathname=str(path), projectid="A")
    msqid = ipc.msgget(key)  # the key works as a key
    assert int(proc("msg", msqid)["key"]) == key
    with pytest.raises(FileNotFoundError, match="ftok"):
        ev(snip, pathname=str(tmp_path / "missing"), projectid=1)
    with pytest.raises(ValueError):
        ev(snip, pathname=str(path), projectid=0)


@go_case("Msgget")
def _msgget(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    key = unused_key()
    msqid = ipc.track("msg", ev(snip, key=key, flags=ll.IPC_CREAT | ll.IPC_EXCL, mode=0o640))
    row = proc("msg", msqid)
    assert (int(row["key"]), perms(row)) == (key, 0o640)
    assert ev(snip, key=key, flags=0, mode=0) == msqid
    with pytest.raises(FileExistsError, match="msgget"):
        ev(snip, key=key, flags=ll.IPC_CREAT | ll.IPC_EXCL, mode=0o600)
    with pytest.raises(ValueError):  # Go's IPC_CREAT|0600 style is refused
        ev(snip, key=unused_key(), flags=ll.IPC_CREAT | 0o600, mode=0o600)


def _check_send(snip: str, msqid: int, **names: Any) -> None:
    for data, expected in (
        (b"payload", b"payload"),
        (bytearray(b"bytearray"), b"bytearray"),
        (memoryview(b"xxview")[2:], b"view"),
        (array.array("B", [1, 2, 3]), b"\x01\x02\x03"),
        (b"", b""),
    ):
        assert ev(snip, msqid=msqid, **{names["data"]: data, names["type"]: 7}, flags=0) is None
        row = proc("msg", msqid)
        assert (int(row["qnum"]), int(row["cbytes"])) == (1, len(expected))
        assert int(row["lspid"]) == os.getpid()
        assert ll.msgrcv(msqid) == (expected, 7)
    with pytest.raises(ValueError):  # type 0 is refused, nothing is sent
        ev(snip, msqid=msqid, **{names["data"]: b"x", names["type"]: 0}, flags=0)
    assert int(proc("msg", msqid)["qnum"]) == 0
    ll.msgctl(msqid, ll.IPC_SET, qbytes=4)
    ll.msgsnd(msqid, b"full")
    with pytest.raises(BlockingIOError, match="msgsnd"):
        ev(snip, msqid=msqid, **{names["data"]: b"x", names["type"]: 1}, flags=ll.IPC_NOWAIT)


@go_case("Msgsnd")
def _msgsnd(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    _check_send(snip, ipc.msgget(), data="data", type="msgtyp")


@go_case("Msgsend")
def _msgsend(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    _check_send(snip, ipc.msgget(), data="msgText", type="msgType")


@go_case("Msgrcv")
def _msgrcv(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    msqid = ipc.msgget()
    into = "msgrcv_into" in snip
    for mtype, text in ((4, b"other"), (5, b"wanted"), (2, b"two")):
        ll.msgsnd(msqid, text, mtype)

    def receive(msgtyp: int, flags: int = 0, size: int = 64) -> tuple[bytes, int]:
        buf = bytearray(size)
        result = ev(snip, msqid=msqid, buf=buf, msgsz=size, msgtyp=msgtyp, flags=flags)
        if into:
            n, got_type = result
            assert isinstance(n, int)
            return bytes(buf[:n]), got_type
        assert isinstance(result, ll.Message)
        return result.data, result.type

    assert receive(5) == (b"wanted", 5)
    row = proc("msg", msqid)
    assert int(row["qnum"]) == 2 and int(row["lrpid"]) == os.getpid()
    assert receive(-4) == (b"two", 2)  # negative types: not possible in Go
    with pytest.raises(OSError) as info:  # too small, and stays queued
        receive(0, size=3)
    assert info.value.errno == errno.E2BIG
    assert receive(0, ll.MSG_NOERROR, size=3) == (b"oth", 4)
    with pytest.raises(BlockingIOError, match="msgrcv") as info:
        receive(0, ll.IPC_NOWAIT)
    assert info.value.errno == errno.ENOMSG


@go_case("Msgreceive")
def _msgreceive(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    msqid = ipc.msgget()
    msgmax = sysctl("msgmax")[0]
    big = os.urandom(msgmax)
    ll.msgsnd(msqid, b"small", 1)
    ll.msgsnd(msqid, big, 2)
    assert ev(snip, msqid=msqid, msgType=2, flags=0) == big
    assert ev(snip, msqid=msqid, msgType=0, flags=0) == b"small"
    with pytest.raises(BlockingIOError):
        ev(snip, msqid=msqid, msgType=0, flags=ll.IPC_NOWAIT)


@go_case("Msgrm")
def _msgrm(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    msqid = ipc.msgget()
    assert ev(snip, msqid=msqid) is None
    assert proc_row("msg", msqid) is None
    with pytest.raises(OSError) as info:
        ll.msgctl(msqid, ll.IPC_STAT)
    assert info.value.errno == errno.EINVAL


@go_case("Semget")
def _semget(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    key = unused_key()
    semid = ipc.track(
        "sem", ev(snip, key=key, nsems=3, flags=ll.IPC_CREAT | ll.IPC_EXCL, mode=0o640)
    )
    row = proc("sem", semid)
    assert (int(row["key"]), int(row["nsems"]), perms(row)) == (key, 3, 0o640)
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 0, 0]
    assert ev(snip, key=key, nsems=0, flags=0, mode=0) == semid
    with pytest.raises(FileExistsError, match="semget"):
        ev(snip, key=key, nsems=3, flags=ll.IPC_CREAT | ll.IPC_EXCL, mode=0o600)


@go_case("Semop")
def _semop(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    semid = ipc.semget(2)
    assert ev(snip, semid=semid, ops=[(0, 2), (1, 1, ll.IPC_NOWAIT)]) is None
    assert ll.semctl(semid, 0, ll.GETALL) == [2, 1]
    with pytest.raises(BlockingIOError, match="semop"):  # all or nothing
        ev(snip, semid=semid, ops=[(0, -1), (1, -2, ll.IPC_NOWAIT)])
    assert ll.semctl(semid, 0, ll.GETALL) == [2, 1]
    row = proc("sem", semid)
    assert int(row["otime"]) == ll.semctl(semid, 0, ll.IPC_STAT).sem_otime != 0


@go_case("Semoperate")
def _semoperate(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    semid = ipc.semget(2)
    timed = "timeout" in snip
    assert ev(snip, semid=semid, sops=[(0, 1, 0), (1, 3, 0)], seconds=1.0) is None
    assert ll.semctl(semid, 0, ll.GETALL) == [1, 3]
    if timed:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="semtimedop"):
            ev(snip, semid=semid, sops=[(0, -1, 0), (1, -5, 0)], seconds=0.1)
        assert time.monotonic() - start >= 0.1
    else:
        with pytest.raises(BlockingIOError):
            ev(snip, semid=semid, sops=[(0, -1, 0), (1, -5, ll.IPC_NOWAIT)], seconds=None)
    assert ll.semctl(semid, 0, ll.GETALL) == [1, 3]


@go_case("Semp")
def _semp(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    semid = ipc.semget(2)
    ll.semctl(semid, 1, ll.SETVAL, 2)
    assert ev(snip, semid=semid, semnum=1, semflg=0) is None
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 1]
    assert ev(snip, semid=semid, semnum=1, semflg=ll.IPC_NOWAIT) is None
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 0]
    with pytest.raises(BlockingIOError):
        ev(snip, semid=semid, semnum=1, semflg=ll.IPC_NOWAIT)
    assert ll.semctl(semid, 1, ll.GETPID) == os.getpid()


@go_case("Semv")
def _semv(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    semid = ipc.semget(2)
    assert ev(snip, semid=semid, semnum=1, semflg=0) is None
    assert ev(snip, semid=semid, semnum=1, semflg=ll.IPC_NOWAIT) is None
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 2]
    assert ll.semctl(semid, 1, ll.GETPID) == os.getpid()
    # SEM_UNDO: a child's V is undone when it exits.
    out = child(
        "from sysvipc import lowlevel as ll\n"
        f"semid, semnum, semflg = {semid}, 1, ll.SEM_UNDO\n"
        f"{snip}\n"
        "print(ll.semctl(semid, semnum, ll.GETVAL))\n"
    )
    assert out.split()[-1] == "3"
    assert ll.semctl(semid, 1, ll.GETVAL) == 2


@go_case("Semgetvalue")
def _semgetvalue(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    semid = ipc.semget(2)
    ll.semctl(semid, 0, ll.SETALL, [3, 5])
    assert ev(snip, semid=semid, semnum=0) == 3
    assert ev(snip, semid=semid, semnum=1) == 5
    with pytest.raises(OSError) as info:
        ev(snip, semid=semid, semnum=2)
    assert info.value.errno == errno.EINVAL


@go_case("Semsetvalue")
def _semsetvalue(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    semid = ipc.semget(2)
    assert ev(snip, semid=semid, semnum=1, value=ll.SEMVMX) is None
    assert ll.semctl(semid, 0, ll.GETALL) == [0, ll.SEMVMX] == [0, 32767]
    for bad in (ll.SEMVMX + 1, -1):
        with pytest.raises(ValueError):
            ev(snip, semid=semid, semnum=1, value=bad)
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 32767]


@go_case("Semrm")
def _semrm(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    semid = ipc.semget(1)
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            ll.semop1(semid, 0, -1, 0, 10.0)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    try:
        assert wait_until(lambda: ll.semctl(semid, 0, ll.GETNCNT) == 1)
        assert ev(snip, semid=semid) is None
    finally:
        t.join(10)
    assert proc_row("sem", semid) is None
    assert len(errors) == 1 and isinstance(errors[0], sysvipc.IdentifierRemovedError)
    assert errors[0].errno == errno.EIDRM


@go_case("Shmget")
def _shmget(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    key = unused_key()
    shmid = ipc.track(
        "shm", ev(snip, key=key, size=10000, flags=ll.IPC_CREAT | ll.IPC_EXCL, mode=0o640)
    )
    row = proc("shm", shmid)
    assert (int(row["key"]), int(row["size"]), perms(row)) == (key, 10000, 0o640)
    assert ev(snip, key=key, size=0, flags=0, mode=0) == shmid
    with pytest.raises(FileExistsError, match="shmget"):
        ev(snip, key=key, size=10000, flags=ll.IPC_CREAT | ll.IPC_EXCL, mode=0o600)


def _mapped(address: int) -> bool:
    """A System V segment is mapped at address (freed space may be reused)."""
    with open("/proc/self/maps") as f:
        return any(line.startswith(f"{address:x}-") and "/SYSV" in line for line in f)


@go_case("Shmat")
def _shmat(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    shmid = ipc.shmget(8192)
    a = ev(snip, shmid=shmid, flags=0)
    address = a.address
    ro = None
    try:
        assert isinstance(a, ll.Attachment)
        assert (a.shmid, a.size, a.readonly) == (shmid, 8192, False)
        assert a.address != 0 and _mapped(a.address)
        assert int(proc("shm", shmid)["nattch"]) == 1
        with memoryview(a) as view:
            view[8000:8005] = b"hello"
        ro = ev(snip, shmid=shmid, flags=ll.SHM_RDONLY)
        assert ro.readonly and ro.read(5, offset=8000) == b"hello"
        assert int(proc("shm", shmid)["nattch"]) == 2
    finally:
        a.detach()
        if ro is not None:
            ro.detach()
    assert not _mapped(address)


@go_case("Shmdt")
def _shmdt(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    shmid = ipc.shmget()
    attachment = ll.shmat(shmid)
    address = attachment.address
    try:
        view = memoryview(attachment)
        with pytest.raises(BufferError):
            ev(snip, attachment=attachment)
        view.release()
        assert int(proc("shm", shmid)["nattch"]) == 1
        assert ev(snip, attachment=attachment) is None
        assert attachment.detached and not _mapped(address)
        row = proc("shm", shmid)
        assert int(row["nattch"]) == 0 and int(row["dtime"]) != 0
        assert int(row["lpid"]) == os.getpid()
        assert ev(snip, attachment=attachment) is None  # twice: nothing
    finally:
        attachment.detach()


@go_case("Shmgetattach")
def _shmgetattach(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    if "memoryview" in snip:
        attachment = ll.shmat(ipc.shmget(4096))
        try:
            view = ev(snip, attachment=attachment)
            with view:
                assert (len(view), view.readonly) == (4096, False)
                view[:3] = b"abc"
            assert attachment.read(3) == b"abc"
        finally:
            attachment.detach()
        return
    key = unused_key()
    attachment = ev(snip, key=key, size=4096, flags=ll.IPC_CREAT | ll.IPC_EXCL)
    try:
        ipc.track("shm", attachment.shmid)
        row = proc("shm", attachment.shmid)
        assert (int(row["key"]), int(row["size"]), int(row["nattch"])) == (key, 4096, 1)
        assert attachment.size == 4096 and bytes(memoryview(attachment)) == bytes(4096)
    finally:
        attachment.detach()


@go_case("Shmdetach")
def _shmdetach(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    shmid = ipc.shmget()
    attachment = ll.shmat(shmid)
    try:
        b = memoryview(attachment)  # Go's []byte
        with pytest.raises(BufferError):
            ev(snip, attachment=attachment)
        assert not attachment.detached
        b.release()
        assert ev(snip, attachment=attachment) is None
        assert attachment.detached and int(proc("shm", shmid)["nattch"]) == 0
    finally:
        attachment.detach()


@go_case("Shmrm")
def _shmrm(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    shmid = ipc.shmget()
    attachment = ll.shmat(shmid)
    try:
        assert ev(snip, shmid=shmid) is None
        row = proc("shm", shmid)  # only marked while attached
        assert perms(row) & ll.SHM_DEST and int(row["nattch"]) == 1
        attachment.write(b"usable")
        assert attachment.read(6) == b"usable"
    finally:
        attachment.detach()
    assert proc_row("shm", shmid) is None
    unattached = ipc.shmget()
    assert ev(snip, shmid=unattached) is None
    assert proc_row("shm", unattached) is None


@go_case("Sembuf")
def _sembuf(ipc: Tracker, snip: str, tmp_path: Path) -> None:
    semid = ipc.semget(2)
    op = ev(snip, sem_num=1, sem_op=3, sem_flg=ll.IPC_NOWAIT)
    assert op == (1, 3, ll.IPC_NOWAIT)
    ll.semop(semid, [op])
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 3]
    with pytest.raises(BlockingIOError):
        ll.semop(semid, [ev(snip, sem_num=0, sem_op=-1, sem_flg=ll.IPC_NOWAIT)])


def test_every_go_function_has_a_case() -> None:
    assert sorted(GO_CASES) == sorted(GO_FUNCTIONS)


@pytest.mark.parametrize("name", GO_FUNCTIONS)
def test_go_row(name: str, ipc: Tracker, tmp_path: Path) -> None:
    rows = _go_rows()
    assert name in rows, f"docs/lowlevel.md has no row for Go's {name}"
    for snippet in rows[name]:
        GO_CASES[name](ipc, snippet, tmp_path)
        ipc.cleanup()


@pytest.mark.parametrize("name", list(GO_CONSTANTS))
def test_go_constant_row(name: str, ipc: Tracker) -> None:
    value, snippet = _constant_rows()[name]
    assert value == GO_CONSTANTS[name]
    assert ev(snippet) == value == getattr(ll, name)
    key = unused_key()
    if name == "IPC_CREAT":
        msqid = ipc.track("msg", ll.msgget(key, ev(snippet)))
        assert int(proc("msg", msqid)["key"]) == key
    elif name == "IPC_EXCL":
        ipc.track("msg", ll.msgget(key, ll.IPC_CREAT | ev(snippet)))
        with pytest.raises(FileExistsError):
            ll.msgget(key, ll.IPC_CREAT | ev(snippet))
    elif name == "IPC_NOWAIT":
        msqid = ipc.msgget()
        start = time.monotonic()
        with pytest.raises(BlockingIOError):
            ll.msgrcv(msqid, flags=ev(snippet))
        assert time.monotonic() - start < HANG
    elif name == "IPC_PRIVATE":
        first = ipc.track("msg", ll.msgget(ev(snippet), ll.IPC_CREAT))
        second = ipc.track("msg", ll.msgget(ev(snippet), ll.IPC_CREAT))
        assert first != second
        assert int(proc("msg", first)["key"]) == 0
    elif name == "SEM_UNDO":
        semid = ipc.semget(1)
        out = child(
            f"from sysvipc import lowlevel as ll\n"
            f"ll.semop({semid}, [(0, 1, {snippet})])\n"
            f"print(ll.semctl({semid}, 0, ll.GETVAL))\n"
        )
        assert out.split() == ["1"]
        assert ll.semctl(semid, 0, ll.GETVAL) == 0  # undone at the child's exit
    elif name == "IPC_RMID":
        msqid = ipc.msgget()
        ll.msgctl(msqid, ev(snippet))
        assert proc_row("msg", msqid) is None
    elif name == "IPC_SET":
        msqid = ipc.msgget()
        ll.msgctl(msqid, ev(snippet), mode=0o604)
        assert perms(proc("msg", msqid)) == 0o604
    elif name == "IPC_STAT":
        msqid = ipc.msgget()
        ll.msgsnd(msqid, b"abc")
        ds = ll.msgctl(msqid, ev(snippet))
        assert isinstance(ds, ll.MsqidDs) and ds.msg_qnum == 1 and ds.msg_cbytes == 3
    else:  # pragma: no cover
        raise AssertionError(name)


# --------------------------------------------------------------------------
# The ipc(5) table
# --------------------------------------------------------------------------

IPC5_FIELDS = [
    *(("ipc_perm", f) for f in ("key", "uid", "gid", "cuid", "cgid", "mode", "seq")),
    *(
        ("msqid_ds", f)
        for f in (
            "msg_perm", "msg_qnum", "msg_qbytes", "msg_lspid", "msg_lrpid",
            "msg_stime", "msg_rtime", "msg_ctime", "msg_cbytes",
        )
    ),
    *(("semid_ds", f) for f in ("sem_perm", "sem_otime", "sem_ctime", "sem_nsems")),
    *(("sem", f) for f in ("semval", "sempid", "semncnt", "semzcnt", "(all four)")),
    *(
        ("shmid_ds", f)
        for f in (
            "shm_perm", "shm_segsz", "shm_cpid", "shm_lpid", "shm_nattch",
            "shm_atime", "shm_dtime", "shm_ctime", "SHM_DEST", "SHM_LOCKED",
        )
    ),
]  # fmt: skip

INFO_COMMANDS = [
    "msgctl IPC_INFO", "msgctl MSG_INFO", "msgctl MSG_STAT, MSG_STAT_ANY",
    "semctl IPC_INFO", "semctl SEM_INFO", "semctl SEM_STAT, SEM_STAT_ANY",
    "shmctl IPC_INFO", "shmctl SHM_INFO", "shmctl SHM_STAT, SHM_STAT_ANY",
]  # fmt: skip

# When running as root, IPC_SET gives the objects an owner different from
# their creator, so that uid/cuid and gid/cgid cannot be confused.
OWNER_UID, OWNER_GID = 4321, 8765


def test_ipc5_table_has_every_structure_and_field() -> None:
    rows = _ipc5_rows()
    assert sorted(rows) == sorted(IPC5_FIELDS)
    for snippets in rows.values():
        assert snippets
        for snippet in snippets:
            compile(snippet, str(DOC), "eval")


def test_info_table_has_every_command() -> None:
    rows = _info_rows()
    assert sorted(rows) == sorted(INFO_COMMANDS)
    for snippets in rows.values():
        for snippet in snippets:
            compile(snippet, str(DOC), "eval")


@dataclass
class Objects:
    """One of each kind, in a known state (see the objs fixture)."""

    q: int
    s: int
    m: int
    keys: dict[str, int]
    uid: int
    gid: int
    attachments: list[ll.Attachment] = field(default_factory=list)
    i: int = 1

    @property
    def names(self) -> dict[str, int]:
        return {"q": self.q, "s": self.s, "m": self.m, "i": self.i}

    def ident(self, kind: str) -> int:
        return {"msg": self.q, "sem": self.s, "shm": self.m}[kind]


@pytest.fixture
def objs(ipc: Tracker) -> Iterator[Objects]:
    """
    q: created with a key and mode 0o640; b"first" (type 1) and b"second!"
       (type 2) sent, b"first" received: qnum 1, cbytes 7.
    s: 3 semaphores, SETALL [1, 2, 3], then semop (1, -1): values [1, 1, 3].
    m: 10000 bytes; attached and detached once, then attached (nattch 1).
    """
    keys = {kind: unused_key() for kind in ("msg", "sem", "shm")}
    q = ipc.msgget(keys["msg"], 0o640)
    ll.msgsnd(q, b"first", 1)
    ll.msgsnd(q, b"second!", 2)
    assert ll.msgrcv(q, type=1) == (b"first", 1)
    s = ipc.semget(3, keys["sem"], 0o640)
    ll.semctl(s, 0, ll.SETALL, [1, 2, 3])
    ll.semop(s, [(1, -1)])
    m = ipc.shmget(10000, keys["shm"], 0o640)
    ll.shmat(m).detach()
    o = Objects(q, s, m, keys, os.geteuid(), os.getegid())
    o.attachments.append(ll.shmat(m))
    try:
        if os.geteuid() == 0:
            ll.msgctl(q, ll.IPC_SET, uid=OWNER_UID, gid=OWNER_GID)
            ll.semctl(s, 0, ll.IPC_SET, uid=OWNER_UID, gid=OWNER_GID)
            ll.shmctl(m, ll.IPC_SET, uid=OWNER_UID, gid=OWNER_GID)
            o.uid, o.gid = OWNER_UID, OWNER_GID
        yield o
    finally:
        for attachment in o.attachments:
            attachment.detach()


def _kind(snippet: str) -> str:
    for name, kind in (("msgctl", "msg"), ("semctl", "sem"), ("shmctl", "shm")):
        if name in snippet:
            return kind
    raise AssertionError(snippet)


def _check_time(value: Any, proc_value: str) -> None:
    assert isinstance(value, int) and value == int(proc_value)
    assert value != 0 and abs(value - time.time()) < 600
    converted = sysvipc.to_datetime(value)
    assert converted is not None and converted.tzinfo is not None
    assert int(converted.timestamp()) == value


def _check_never(snippet: str, ipc: Tracker) -> None:
    """The same expression on a fresh object reads 0 (never), to_datetime None."""
    fresh = {"q": ipc.msgget(), "s": ipc.semget(1), "m": ipc.shmget(), "i": 0}
    value = ev(snippet, **fresh)
    assert value == 0 and sysvipc.to_datetime(value) is None


PERM_PROC = {"key": "key", "uid": "uid", "gid": "gid", "cuid": "cuid", "cgid": "cgid"}


def _check_ipc_perm(fld: str, snippets: list[str], o: Objects) -> None:
    assert len(snippets) >= 3 and {_kind(s) for s in snippets} == {"msg", "sem", "shm"}
    for snippet in snippets:
        kind = _kind(snippet)
        ident = o.ident(kind)
        value = ev(snippet, **o.names)
        row = proc(kind, ident)
        if fld in PERM_PROC:
            assert value == int(row[PERM_PROC[fld]])
        expected = {
            "key": o.keys[kind],
            "uid": o.uid,
            "gid": o.gid,
            "cuid": os.geteuid(),
            "cgid": os.getegid(),
        }
        if fld in expected:
            assert value == expected[fld]
        elif fld == "mode":
            if snippet.endswith(".permissions"):
                assert value == 0o640
            else:
                assert value == perms(row) and value & 0o777 == 0o640
        elif fld == "seq":
            assert isinstance(value, int) and value >= 0
            assert ident >> 15 == value or ident >> 24 == value
        else:  # pragma: no cover
            raise AssertionError(fld)


def _check_msqid_ds(fld: str, snippets: list[str], o: Objects, ipc: Tracker) -> None:
    (snippet,) = snippets
    value = ev(snippet, **o.names)
    row = proc("msg", o.q)
    if fld == "msg_perm":
        assert isinstance(value, sysvipc.IpcPerm)
        assert (value.key, value.uid, value.cuid) == (o.keys["msg"], o.uid, os.geteuid())
        assert value.mode & 0o777 == perms(row) & 0o777 == 0o640
    elif fld == "msg_qnum":
        assert value == int(row["qnum"]) == 1
    elif fld == "msg_cbytes":
        assert value == int(row["cbytes"]) == len(b"second!")
    elif fld == "msg_qbytes":
        assert value == sysctl("msgmnb")[0] == ll.msgctl(0, ll.IPC_INFO)[1].msgmnb
        ll.msgctl(o.q, ll.IPC_SET, qbytes=value - 1)
        assert ev(snippet, **o.names) == value - 1
    elif fld in ("msg_lspid", "msg_lrpid"):
        assert value == int(row[fld[4:]]) == os.getpid()
        # Done by another process: its pid, in both places.
        action = "ll.msgsnd(q, b'x', 3)" if fld == "msg_lspid" else "ll.msgrcv(q, type=2)"
        pid = int(
            child(
                f"import os\nfrom sysvipc import lowlevel as ll\nq = {o.q}\n{action}\n"
                "print(os.getpid())\n"
            )
        )
        assert pid != os.getpid()
        assert ev(snippet, **o.names) == int(proc("msg", o.q)[fld[4:]]) == pid
        _check_never(snippet, ipc)
    elif fld in ("msg_stime", "msg_rtime", "msg_ctime"):
        _check_time(value, row[fld[4:]])
        if fld != "msg_ctime":
            _check_never(snippet, ipc)
    else:  # pragma: no cover
        raise AssertionError(fld)


def _check_semid_ds(fld: str, snippets: list[str], o: Objects, ipc: Tracker) -> None:
    (snippet,) = snippets
    value = ev(snippet, **o.names)
    row = proc("sem", o.s)
    if fld == "sem_perm":
        assert isinstance(value, sysvipc.IpcPerm)
        assert (value.key, value.uid, value.cuid) == (o.keys["sem"], o.uid, os.geteuid())
        assert value.mode & 0o777 == perms(row) & 0o777 == 0o640
    elif fld == "sem_nsems":
        assert value == int(row["nsems"]) == 3
    elif fld in ("sem_otime", "sem_ctime"):
        _check_time(value, row[fld[4:]])
        if fld == "sem_otime":
            _check_never(snippet, ipc)
    else:  # pragma: no cover
        raise AssertionError(fld)


def _catching(
    errors: list[BaseException], fn: Callable[..., Any], *args: Any
) -> Callable[[], None]:
    def run() -> None:
        try:
            fn(*args)
        except BaseException as e:
            errors.append(e)

    return run


def _check_sem(fld: str, snippets: list[str], o: Objects) -> None:
    s, i = o.s, o.i
    for snippet in snippets:
        value = ev(snippet, **o.names)
        if fld == "semval":
            assert value == 1
            ll.semctl(s, i, ll.SETVAL, 7)
            assert ev(snippet, **o.names) == 7 and ll.semctl(s, 0, ll.GETALL) == [1, 7, 3]
            ll.semctl(s, i, ll.SETVAL, 1)
        elif fld == "sempid":
            assert value == os.getpid()
            pid = int(
                child(
                    f"import os\nfrom sysvipc import lowlevel as ll\n"
                    f"ll.semop({s}, [({i}, 1)])\nprint(os.getpid())\n"
                )
            )
            assert ev(snippet, **o.names) == pid != os.getpid()
            assert ll.semctl(s, 0, ll.GETPID) == os.getpid()  # others untouched
            ll.semop(s, [(i, -1)])
        elif fld == "semncnt":
            assert value == 0
            errors: list[BaseException] = []
            t = threading.Thread(target=_catching(errors, ll.semop1, s, i, -2, 0, 10.0))
            t.start()
            try:
                assert wait_until(lambda snippet=snippet: ev(snippet, **o.names) == 1)
                assert ll.semctl(s, 0, ll.GETNCNT) == ll.semctl(s, i, ll.GETZCNT) == 0
            finally:
                ll.semop(s, [(i, 2)])  # 1 + 2 - 2: the waiter gets through
                t.join(10)
            assert not errors and ev(snippet, **o.names) == 0
            assert ll.semctl(s, i, ll.GETVAL) == 1
        elif fld == "semzcnt":
            assert value == 0
            errors = []
            t = threading.Thread(target=_catching(errors, ll.semop1, s, i, 0, 0, 10.0))
            t.start()
            try:
                assert wait_until(lambda snippet=snippet: ev(snippet, **o.names) == 1)
                assert ll.semctl(s, 0, ll.GETZCNT) == ll.semctl(s, i, ll.GETNCNT) == 0
            finally:
                ll.semop(s, [(i, -1)])  # 0: the waiter gets through
                t.join(10)
            ll.semop(s, [(i, 1)])
            assert not errors and ev(snippet, **o.names) == 0
        elif fld == "(all four)":
            assert isinstance(value, sysvipc.Sem)
            assert value == sysvipc.Sem(semval=1, sempid=os.getpid(), semncnt=0, semzcnt=0)
        else:  # pragma: no cover
            raise AssertionError(fld)


def _check_shmid_ds(fld: str, snippets: list[str], o: Objects, ipc: Tracker) -> None:
    for snippet in snippets:
        value = ev(snippet, **o.names)
        row = proc("shm", o.m)
        if fld == "shm_perm":
            assert isinstance(value, sysvipc.IpcPerm)
            assert (value.key, value.uid, value.cuid) == (o.keys["shm"], o.uid, os.geteuid())
            assert value.mode == perms(row) and value.mode & 0o777 == 0o640
        elif fld == "shm_segsz":
            assert value == int(row["size"]) == 10000
        elif fld == "shm_cpid":
            assert value == int(row["cpid"]) == os.getpid()
        elif fld == "shm_lpid":
            assert value == int(row["lpid"]) == os.getpid()
            pid = int(
                child(
                    f"import os\nfrom sysvipc import lowlevel as ll\n"
                    f"ll.shmat({o.m}).detach()\nprint(os.getpid())\n"
                )
            )
            assert ev(snippet, **o.names) == int(proc("shm", o.m)["lpid"]) == pid
            assert ll.shmctl(o.m, ll.IPC_STAT).shm_cpid == os.getpid()
        elif fld == "shm_nattch":
            assert value == int(row["nattch"]) == 1
            extra = ll.shmat(o.m, ll.SHM_RDONLY)
            try:
                assert ev(snippet, **o.names) == int(proc("shm", o.m)["nattch"]) == 2
            finally:
                extra.detach()
            assert ev(snippet, **o.names) == 1
        elif fld in ("shm_atime", "shm_dtime", "shm_ctime"):
            _check_time(value, row[fld[4:]])
            if fld != "shm_ctime":
                _check_never(snippet, ipc)
        elif fld == "SHM_DEST":
            assert value is False and not perms(row) & 0o1000
            ll.shmctl(o.m, ll.IPC_RMID)
            try:
                assert ev(snippet, **o.names) is True
                assert perms(proc("shm", o.m)) & 0o1000 == ll.SHM_DEST == 0o1000
            finally:
                o.attachments.pop().detach()  # the last detach destroys it
            assert proc_row("shm", o.m) is None
            o.m = ipc.shmget(10000, o.keys["shm"], 0o640)  # for the next snippet
            o.attachments.append(ll.shmat(o.m))
        elif fld == "SHM_LOCKED":
            assert value is False and not perms(row) & 0o2000
            try:
                ll.shmctl(o.m, ll.SHM_LOCK)
            except PermissionError:
                pytest.skip("SHM_LOCK not permitted here (no CAP_IPC_LOCK/RLIMIT_MEMLOCK)")
            try:
                assert ev(snippet, **o.names) is True
                assert perms(proc("shm", o.m)) & 0o2000 == ll.SHM_LOCKED == 0o2000
            finally:
                ll.shmctl(o.m, ll.SHM_UNLOCK)
            assert ev(snippet, **o.names) is False
        else:  # pragma: no cover
            raise AssertionError(fld)


@pytest.mark.parametrize("struct_field", IPC5_FIELDS, ids=[f"{s}.{f}" for s, f in IPC5_FIELDS])
def test_ipc5_row(struct_field: tuple[str, str], objs: Objects, ipc: Tracker) -> None:
    rows = _ipc5_rows()
    assert struct_field in rows, f"docs/lowlevel.md has no row for {struct_field}"
    struct, fld = struct_field
    snippets = rows[struct_field]
    if struct == "ipc_perm":
        _check_ipc_perm(fld, snippets, objs)
    elif struct == "msqid_ds":
        _check_msqid_ds(fld, snippets, objs, ipc)
    elif struct == "semid_ds":
        _check_semid_ds(fld, snippets, objs, ipc)
    elif struct == "sem":
        _check_sem(fld, snippets, objs)
    else:
        _check_shmid_ds(fld, snippets, objs, ipc)


def _index_of(snippet: str, o: Objects, kind: str) -> int:
    """The table index of our object (Linux: the id's low 15 or 24 bits)."""
    ident = o.ident(kind)
    for index in (ident & 0x7FFF, ident & 0xFFFFFF):
        try:
            if ev(snippet, index=index)[0] == ident:
                return index
        except OSError:
            pass
    raise AssertionError(f"no index found for {kind} {ident}")


@pytest.mark.parametrize("command", INFO_COMMANDS)
def test_info_row(command: str, objs: Objects) -> None:
    rows = _info_rows()
    assert command in rows, f"docs/lowlevel.md has no row for {command}"
    snippets = rows[command]
    call, cmd = command.split(" ", 1)
    kind = {"msgctl": "msg", "semctl": "sem", "shmctl": "shm"}[call]
    if "STAT" in cmd:
        assert len(snippets) == 2 and any(s.rstrip(")").endswith("_ANY") for s in snippets)
        for snippet in snippets:
            index = _index_of(snippet, objs, kind)
            ident, ds = ev(snippet, index=index)
            assert ident == objs.ident(kind)
            stat = {
                "msg": lambda: ll.msgctl(objs.q, ll.IPC_STAT),
                "sem": lambda: ll.semctl(objs.s, 0, ll.IPC_STAT),
                "shm": lambda: ll.shmctl(objs.m, ll.IPC_STAT),
            }[kind]()
            assert ds == stat
        return
    (snippet,) = snippets
    for _ in range(50):  # a snapshot that nothing changed while it was taken
        rows_before = proc_rows(kind)
        highest, info = ev(snippet)
        rows_now = proc_rows(kind)
        if rows_now == rows_before:
            break
        time.sleep(0.01)
    assert isinstance(highest, int) and highest >= _index_of_any(objs, kind)
    if command == "msgctl IPC_INFO":
        assert isinstance(info, ll.MsgInfo)
        assert (info.msgmax, info.msgmnb, info.msgmni) == (
            sysctl("msgmax")[0], sysctl("msgmnb")[0], sysctl("msgmni")[0],
        )  # fmt: skip
    elif command == "msgctl MSG_INFO":
        assert isinstance(info, ll.MsgInfo)
        assert info.msgpool == len(rows_now)
        assert info.msgmap == sum(int(r["qnum"]) for r in rows_now)
        assert info.msgtql == sum(int(r["cbytes"]) for r in rows_now)
    elif command == "semctl IPC_INFO":
        assert isinstance(info, ll.SemInfo)
        semmsl, semmns, semopm, semmni = sysctl("sem")
        assert (info.semmsl, info.semmns, info.semopm, info.semmni) == (
            semmsl, semmns, semopm, semmni,
        )  # fmt: skip
        assert info.semvmx == ll.SEMVMX == 32767
    elif command == "semctl SEM_INFO":
        assert isinstance(info, ll.SemInfo)
        assert info.semusz == len(rows_now)
        assert info.semaem == sum(int(r["nsems"]) for r in rows_now)
    elif command == "shmctl IPC_INFO":
        assert isinstance(info, ll.ShmInfo)
        assert (info.shmmax, info.shmall, info.shmmni) == (
            sysctl("shmmax")[0], sysctl("shmall")[0], sysctl("shmmni")[0],
        )  # fmt: skip
    elif command == "shmctl SHM_INFO":
        assert isinstance(info, ll.ShmUsage)
        assert info.used_ids == len(rows_now)
        assert info.shm_tot == sum(math.ceil(int(r["size"]) / PAGE) for r in rows_now)
        assert info.shm_rss * PAGE == sum(int(r["rss"]) for r in rows_now)
        assert info.shm_swp * PAGE == sum(int(r["swap"]) for r in rows_now)
    else:  # pragma: no cover
        raise AssertionError(command)


def _index_of_any(o: Objects, kind: str) -> int:
    snippet = {
        "msg": "ll.msgctl(index, ll.MSG_STAT_ANY)",
        "sem": "ll.semctl(index, 0, ll.SEM_STAT_ANY)",
        "shm": "ll.shmctl(index, ll.SHM_STAT_ANY)",
    }[kind]
    return _index_of(snippet, o, kind)


# --------------------------------------------------------------------------
# The introduction's promises
# --------------------------------------------------------------------------


BAD_CALLS: list[tuple[str, Callable[[], Any], type[Exception]]] = [
    ("key 2**32", lambda: ll.msgget(2**32, ll.IPC_CREAT), ValueError),
    ("key -2**31-1", lambda: ll.semget(-(2**31) - 1, 1, ll.IPC_CREAT), ValueError),
    ("key 2**32", lambda: ll.shmget(2**32, 4096, ll.IPC_CREAT), ValueError),
    ("size 2**64+100", lambda: ll.shmget(ll.IPC_PRIVATE, 2**64 + 100, ll.IPC_CREAT), ValueError),
    ("mode 0o1600", lambda: ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT, 0o1600), ValueError),
    ("mode bits in flags", lambda: ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT | 0o600), ValueError),
    ("key as str", lambda: ll.msgget("1", ll.IPC_CREAT), TypeError),
    ("unknown keyword", lambda: ll.semget(ll.IPC_PRIVATE, 1, ll.IPC_CREAT, bogus=1), TypeError),
]


@pytest.mark.parametrize("label,call,exc", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_arguments_raise_and_create_nothing(
    label: str, call: Callable[[], Any], exc: type[Exception]
) -> None:
    before = existing_ids()
    with pytest.raises(exc):
        call()
    assert existing_ids() == before


@pytest.mark.parametrize(
    "call,fragment",
    [
        (lambda: ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT | 0o600), "0o600"),
        (lambda: ll.semget(ll.IPC_PRIVATE, 1, ll.IPC_CREAT | ll.IPC_NOWAIT), "0o4000"),
        (lambda: ll.shmat(0, ll.IPC_CREAT), "0o1000"),
    ],
    ids=["msgget", "semget", "shmat"],
)
def test_flag_errors_say_which_bits(call: Callable[[], Any], fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert "%o" not in str(info.value) and fragment in str(info.value)


def test_lowlevel_exports_wakeup_signal() -> None:
    import sysvipc._sysvipc as core

    assert ll.WAKEUP_SIGNAL == core.WAKEUP_SIGNAL  # type: ignore[attr-defined]


def test_errors_name_the_syscall_and_map_errno(ipc: Tracker) -> None:
    msqid, semid = ipc.msgget(), ipc.semget(1)
    cases: list[tuple[Callable[[], Any], type[OSError], int, str]] = [
        (lambda: ll.msgget(unused_key()), FileNotFoundError, errno.ENOENT, "msgget"),
        (lambda: ll.msgrcv(msqid, flags=ll.IPC_NOWAIT), BlockingIOError, errno.ENOMSG, "msgrcv"),
        (lambda: ll.semop1(semid, 0, -1, ll.IPC_NOWAIT), BlockingIOError, errno.EAGAIN, "semop"),
        (lambda: ll.msgrcv(msqid, timeout=0.01), TimeoutError, errno.ETIMEDOUT, "msgrcv"),
        (lambda: ll.semop1(semid, 0, -1, 0, 0.01), TimeoutError, errno.ETIMEDOUT, "semtimedop"),
        (lambda: ll.shmctl(2**31 - 1, ll.IPC_STAT), OSError, errno.EINVAL, "shmctl"),
    ]
    if os.geteuid() != 0 or not _has_cap(24):  # CAP_SYS_RESOURCE
        cases.append(
            (
                lambda: ll.msgctl(msqid, ll.IPC_SET, qbytes=sysctl("msgmnb")[0] * 4),
                PermissionError,
                errno.EPERM,
                "msgctl",
            )  # fmt: skip
        )
    for call, exc, code, syscall in cases:
        with pytest.raises(exc) as info:
            call()
        assert info.value.errno == code and f"originated from {syscall}" in str(info.value)


def _has_cap(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False
