"""Bad arguments: TypeError or ValueError before any syscall, nothing created,
nothing truncated.  /proc/sysvipc is compared before and after each call."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import Tracker, assert_child_ok, existing_ids, proc_row, proc_rows, run_python

import sysvipc
from sysvipc import lowlevel as ll

REPO = str(Path(sysvipc.__file__).resolve().parent.parent)
CHILD_ENV = {**os.environ, "PYTHONPATH": REPO}


@contextmanager
def creates_nothing() -> Iterator[None]:
    before = existing_ids()
    yield
    assert existing_ids() == before, "an object was created by a rejected call"


def rejected(
    call: Callable[[], Any], exc: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException:
    """call() raises exc and creates no IPC object; the exception is returned."""
    with creates_nothing(), pytest.raises(exc) as info:
        call()
    return info.value


CREATORS: dict[str, Callable[..., Any]] = {
    "msgget": lambda key, **kw: ll.msgget(key, ll.IPC_CREAT | ll.IPC_EXCL, **kw),
    "semget": lambda key, **kw: ll.semget(key, 1, ll.IPC_CREAT | ll.IPC_EXCL, **kw),
    "shmget": lambda key, **kw: ll.shmget(key, 4096, ll.IPC_CREAT | ll.IPC_EXCL, **kw),
}
KIND = {"msgget": "msg", "semget": "sem", "shmget": "shm"}


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


@pytest.mark.parametrize("getter", sorted(CREATORS))
@pytest.mark.parametrize("bad_key", [-(2**31) - 1, 2**32, 2**32 + 5, 2**64, -(2**63)])
def test_key_out_of_key_t_range(getter: str, bad_key: int) -> None:
    exc = rejected(lambda: CREATORS[getter](bad_key), ValueError)
    assert "key" in str(exc)
    # In particular 2**32 did not become IPC_PRIVATE, nor 2**32+5 the key 5.
    assert all(int(r["key"]) not in (0, 5, -(2**31)) for r in proc_rows(KIND[getter]))


@pytest.mark.parametrize("getter", sorted(CREATORS))
@pytest.mark.parametrize("edge_key", [2**31 - 1, -(2**31), 2**31, 2**32 - 1, -1])
def test_key_at_the_edges_is_exact(ipc: Tracker, getter: str, edge_key: int) -> None:
    # /proc/sysvipc prints the signed key_t; the API gives the unsigned form.
    signed = edge_key - 2**32 if edge_key >= 2**31 else edge_key
    if any(int(r["key"]) == signed for r in proc_rows(KIND[getter])):
        pytest.skip(f"key {edge_key} already in use on this machine")
    ident = ipc.track(KIND[getter], CREATORS[getter](edge_key))
    row = proc_row(KIND[getter], ident)
    assert row is not None and int(row["key"]) == signed
    stat = {
        "msgget": lambda: ll.msgctl(ident, ll.IPC_STAT).msg_perm,
        "semget": lambda: ll.semctl(ident, 0, ll.IPC_STAT).sem_perm,
        "shmget": lambda: ll.shmctl(ident, ll.IPC_STAT).shm_perm,
    }[getter]()
    assert stat.key == edge_key & 0xFFFFFFFF


@pytest.mark.parametrize("getter", sorted(CREATORS))
@pytest.mark.parametrize("bad_key", [1.0, "1", None, b"1", True, False])
def test_key_wrong_type(getter: str, bad_key: Any) -> None:
    rejected(lambda: CREATORS[getter](bad_key), TypeError)


# --------------------------------------------------------------------------
# Sizes, modes, counts
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2**64 + 100, 2**64, 2**63, -1, -(2**64)])
def test_shm_size_out_of_range(key: int, size: int) -> None:
    exc = rejected(lambda: ll.shmget(key, size, ll.IPC_CREAT), ValueError)
    assert "size" in str(exc)
    assert all(int(r["key"]) != key for r in proc_rows("shm"))
    # 2**64+100 did not become a 100-byte segment.
    assert all(int(r["size"]) != 100 for r in proc_rows("shm"))


@pytest.mark.parametrize("getter", sorted(CREATORS))
@pytest.mark.parametrize("mode", [0o1600, 0o1000, 0o4777, 0o2600, -1, 2**32 + 0o600])
def test_mode_outside_0o777(getter: str, key: int, mode: int) -> None:
    exc = rejected(lambda: CREATORS[getter](key, mode=mode), ValueError)
    assert "mode" in str(exc)
    assert all(int(r["key"]) != key for r in proc_rows(KIND[getter]))


@pytest.mark.parametrize("nsems", [-1, 2**31, 2**32 + 1])
def test_nsems_out_of_range(key: int, nsems: int) -> None:
    rejected(lambda: ll.semget(key, nsems, ll.IPC_CREAT), ValueError)


@pytest.mark.parametrize(
    "call",
    [
        lambda k: ll.msgget(k, True),
        lambda k: ll.msgget(k, ll.IPC_CREAT, True),
        lambda k: ll.semget(k, True, ll.IPC_CREAT),
        lambda k: ll.semget(k, 1, True),
        lambda k: ll.shmget(k, True, ll.IPC_CREAT),
        lambda k: ll.shmget(k, 4096, ll.IPC_CREAT, mode=True),
        lambda k: ll.shmget(k, 4096.0, ll.IPC_CREAT),
        lambda k: ll.semget(k, "1", ll.IPC_CREAT),
    ],
    ids=["msg-flags", "msg-mode", "nsems", "sem-flags", "size", "shm-mode", "float", "str"],
)
def test_bool_or_wrong_type_where_an_int_is_expected(key: int, call: Callable[[int], Any]) -> None:
    rejected(lambda: call(key), TypeError)


# --------------------------------------------------------------------------
# Flags
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda k: ll.msgget(k, ll.IPC_CREAT | 0o600),  # mode bits are not flags
        lambda k: ll.msgget(k, ll.IPC_CREAT | 1 << 20),
        lambda k: ll.msgget(k, ll.IPC_CREAT | ll.IPC_NOWAIT),
        lambda k: ll.msgget(k, -1),
        lambda k: ll.semget(k, 1, ll.IPC_CREAT | 0o666),
        lambda k: ll.semget(k, 1, ll.IPC_CREAT | 1 << 25),
        lambda k: ll.shmget(k, 4096, ll.IPC_CREAT | 0o600),
        lambda k: ll.shmget(k, 4096, ll.IPC_CREAT | 1 << 20),
        lambda k: ll.shmget(k, 4096, ll.IPC_CREAT | ll.SHM_RDONLY | 1 << 24),
        lambda k: ll.msgget(k, ll.IPC_CREAT | 2**40),
    ],
)
def test_unknown_flag_bits_on_get(key: int, call: Callable[[int], Any]) -> None:
    rejected(lambda: call(key), (ValueError,))


def test_hugetlb_with_noreserve_refused(key: int) -> None:
    # Faulting in a page of such a segment with no huge page free is SIGBUS.
    exc = rejected(
        lambda: ll.shmget(key, 2 << 20, ll.IPC_CREAT | ll.SHM_HUGETLB | ll.SHM_NORESERVE),
        ValueError,
    )
    assert "SHM_NORESERVE" in str(exc)


def test_unknown_flag_bits_on_operations(ipc: Tracker) -> None:
    msqid = ipc.msgget()
    semid = ipc.semget(1)
    shmid = ipc.shmget(4096)
    ll.msgsnd(msqid, b"keep", 1)
    for call in (
        lambda: ll.msgsnd(msqid, b"x", 1, ll.MSG_NOERROR),
        lambda: ll.msgsnd(msqid, b"x", 1, 1 << 20),
        lambda: ll.msgsnd(msqid, b"x", 1, ll.IPC_NOWAIT | ll.IPC_CREAT),
        lambda: ll.msgrcv(msqid, 10, 0, 1 << 20),
        lambda: ll.msgrcv(msqid, 10, 0, ll.IPC_CREAT),
        lambda: ll.msgrcv(msqid, 10, 1, ll.MSG_COPY | ll.MSG_EXCEPT),
        lambda: ll.msgrcv_into(msqid, bytearray(10), 0, 1 << 20),
        lambda: ll.semop(semid, [(0, 1, 0o10)]),
        lambda: ll.semop(semid, [(0, 1, 1 << 14)]),
        lambda: ll.semop(semid, [(0, 1)], flags=1 << 20),
        lambda: ll.semop(semid, [(0, 1, -1)]),
        lambda: ll.semop1(semid, 0, 1, 1 << 5),
        lambda: ll.semop1(semid, 0, 1, ll.MSG_EXCEPT),
        lambda: ll.shmat(shmid, ll.SHM_RND),
        lambda: ll.shmat(shmid, 1 << 20),
        lambda: ll.shmat(shmid, ll.SHM_REMAP),
    ):
        rejected(call, ValueError)
    assert ll.msgctl(msqid, ll.IPC_STAT).msg_qnum == 1  # nothing sent or taken
    assert ll.semctl(semid, 0, ll.GETVAL) == 0
    assert ll.shmctl(shmid, ll.IPC_STAT).shm_nattch == 0


def test_unknown_flag_bits_message_says_which(msqid: int) -> None:
    exc = rejected(lambda: ll.msgsnd(msqid, b"x", 1, ll.IPC_NOWAIT | 1 << 20), ValueError)
    assert "%o" not in str(exc)
    assert oct(1 << 20) in str(exc) and oct(ll.IPC_NOWAIT) in str(exc), str(exc)


# --------------------------------------------------------------------------
# Semaphore values
# --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [32768, -1, 65536, 2**32, -(2**63), 2**64])
def test_semaphore_value_out_of_range(ipc: Tracker, value: int) -> None:
    semid = ipc.semget(2)
    ll.semctl(semid, 0, ll.SETALL, [3, 4])
    exc = rejected(lambda: ll.semctl(semid, 0, ll.SETVAL, value), ValueError)
    assert "32767" in str(exc)
    rejected(lambda: ll.semctl(semid, 1, ll.SETALL, [1, value]), ValueError)
    rejected(lambda: ll.semctl(semid, 1, ll.SETALL, [value, 1]), ValueError)
    assert ll.semctl(semid, 0, ll.GETALL) == [3, 4]  # untouched, not truncated


def test_semaphore_value_wrong_type(ipc: Tracker) -> None:
    semid = ipc.semget(2)
    for call in (
        lambda: ll.semctl(semid, 0, ll.SETVAL, True),
        lambda: ll.semctl(semid, 0, ll.SETVAL, 1.0),
        lambda: ll.semctl(semid, 0, ll.SETVAL, "1"),
        lambda: ll.semctl(semid, 0, ll.SETVAL),  # no value
        lambda: ll.semctl(semid, 0, ll.SETALL, [1, True]),
        lambda: ll.semctl(semid, 0, ll.SETALL, 5),
        lambda: ll.semctl(semid, 0, ll.SETALL),
    ):
        rejected(call, TypeError)
    assert ll.semctl(semid, 0, ll.GETALL) == [0, 0]


def test_semop_operations_checked(ipc: Tracker) -> None:
    semid = ipc.semget(1)
    ll.semctl(semid, 0, ll.SETVAL, 1)
    for call, exc in (
        (lambda: ll.semop(semid, []), ValueError),
        (lambda: ll.semop(semid, [(0,)]), ValueError),
        (lambda: ll.semop(semid, [(0, 1, 0, 0)]), ValueError),
        (lambda: ll.semop(semid, [(0, 32768)]), ValueError),
        (lambda: ll.semop(semid, [(0, -32769)]), ValueError),
        (lambda: ll.semop(semid, [(-1, 1)]), ValueError),
        (lambda: ll.semop(semid, [(65536, 1)]), ValueError),
        (lambda: ll.semop(semid, [(0, -1), (0, 2**40)]), ValueError),
        (lambda: ll.semop(semid, [5]), TypeError),
        (lambda: ll.semop(semid, None), TypeError),  # type: ignore[arg-type]
        (lambda: ll.semop(semid, [(0, True)]), TypeError),
        (lambda: ll.semop(semid, [(True, 1)]), TypeError),
        (lambda: ll.semop(semid, [(0, 1.0)]), TypeError),
        (lambda: ll.semop1(semid, 0, True), TypeError),
        (lambda: ll.semop1(semid, 0, 32768), ValueError),
        (lambda: ll.semop1(semid, -1, 1), ValueError),
    ):
        rejected(call, exc)
    assert ll.semctl(semid, 0, ll.GETVAL) == 1  # no operation was applied


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mtype", [0, -1, -(2**63), 2**63, 2**64 + 1])
def test_message_type_on_send(msqid: int, mtype: int) -> None:
    exc = rejected(lambda: ll.msgsnd(msqid, b"x", mtype), ValueError)
    assert "type" in str(exc)
    assert int(proc_row("msg", msqid)["qnum"]) == 0  # type: ignore[index]


@pytest.mark.parametrize("data", ["text", None, 42, [1, 2], object()])
def test_msgsnd_needs_bytes(msqid: int, data: Any) -> None:
    rejected(lambda: ll.msgsnd(msqid, data, 1), TypeError)
    assert int(proc_row("msg", msqid)["qnum"]) == 0  # type: ignore[index]


def test_message_arguments_wrong_type(msqid: int) -> None:
    for call in (
        lambda: ll.msgsnd(msqid, b"x", True),
        lambda: ll.msgsnd(msqid, b"x", 1.0),
        lambda: ll.msgsnd(msqid, b"x", 1, True),
        lambda: ll.msgsnd(True, b"x", 1),
        lambda: ll.msgrcv(msqid, True, flags=ll.IPC_NOWAIT),
        lambda: ll.msgrcv(msqid, 10.0, flags=ll.IPC_NOWAIT),
        lambda: ll.msgrcv(msqid, "10", flags=ll.IPC_NOWAIT),
        lambda: ll.msgrcv(msqid, 10, True, ll.IPC_NOWAIT),
        lambda: ll.msgrcv(msqid, 10, 0, False),
        lambda: ll.msgrcv_into(msqid, 10, 0, ll.IPC_NOWAIT),
        lambda: ll.msgrcv_into(msqid, "text", 0, ll.IPC_NOWAIT),
    ):
        rejected(call, TypeError)
    for call in (
        lambda: ll.msgrcv(msqid, -1, flags=ll.IPC_NOWAIT),
        lambda: ll.msgrcv(msqid, 2**64, flags=ll.IPC_NOWAIT),
        lambda: ll.msgrcv(msqid, 10, 2**63, ll.IPC_NOWAIT),
        lambda: ll.msgrcv(msqid, 10, -(2**63) - 1, ll.IPC_NOWAIT),
        lambda: ll.msgsnd(-1, b"x", 1),
        lambda: ll.msgsnd(2**31, b"x", 1),
        lambda: ll.msgrcv(-1, 10, flags=ll.IPC_NOWAIT),
    ):
        rejected(call, ValueError)


# --------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------


def _timed_calls(msqid: int, semid: int, timeout: Any) -> list[Callable[[], Any]]:
    # IPC_NOWAIT everywhere: an accepted timeout must not make the test wait.
    return [
        lambda: ll.msgrcv(msqid, 10, 0, ll.IPC_NOWAIT, timeout=timeout),
        lambda: ll.msgrcv_into(msqid, bytearray(10), 0, ll.IPC_NOWAIT, timeout=timeout),
        lambda: ll.msgsnd(msqid, b"x", 1, ll.IPC_NOWAIT, timeout=timeout),
        lambda: ll.semop(semid, [(0, -1, ll.IPC_NOWAIT)], timeout=timeout),
        lambda: ll.semop1(semid, 0, -1, ll.IPC_NOWAIT, timeout),
    ]


@pytest.mark.parametrize("timeout", [-1, -0.001, -1e-9, math.nan, -math.inf, -(2**100)], ids=repr)
def test_timeout_negative_or_nan(ipc: Tracker, timeout: float) -> None:
    msqid, semid = ipc.msgget(), ipc.semget(1)
    for call in _timed_calls(msqid, semid, timeout):
        exc = rejected(call, ValueError)
        assert "timeout" in str(exc)
    assert ll.msgctl(msqid, ll.IPC_STAT).msg_qnum == 0


@pytest.mark.parametrize("timeout", ["1", b"1", True, [1], object()], ids=repr)
def test_timeout_wrong_type(ipc: Tracker, timeout: Any) -> None:
    msqid, semid = ipc.msgget(), ipc.semget(1)
    for call in _timed_calls(msqid, semid, timeout):
        rejected(call, TypeError)
    assert ll.msgctl(msqid, ll.IPC_STAT).msg_qnum == 0


@pytest.mark.parametrize("timeout", [None, 0.5, 1, math.inf, 2**100], ids=repr)
def test_timeout_accepted(ipc: Tracker, timeout: Any) -> None:
    msqid, semid = ipc.msgget(), ipc.semget(1)
    calls = _timed_calls(msqid, semid, timeout)
    for call in calls[:2] + calls[3:]:
        with pytest.raises(BlockingIOError):  # IPC_NOWAIT decides
            call()


# --------------------------------------------------------------------------
# ctl calls, ids, ftok, attachments
# --------------------------------------------------------------------------


def test_ctl_arguments(ipc: Tracker) -> None:
    msqid, semid, shmid = ipc.msgget(), ipc.semget(1), ipc.shmget(4096)
    for call, exc in (
        (lambda: ll.msgctl(msqid, 12345), ValueError),
        (lambda: ll.semctl(semid, 0, 12345), ValueError),
        (lambda: ll.shmctl(shmid, 12345), ValueError),
        (lambda: ll.msgctl(-1, ll.IPC_STAT), ValueError),
        (lambda: ll.semctl(semid, -1, ll.GETVAL), ValueError),
        (lambda: ll.shmctl(2**31, ll.IPC_STAT), ValueError),
        (lambda: ll.msgctl(msqid, ll.IPC_SET, mode=0o1000), ValueError),
        (lambda: ll.msgctl(msqid, ll.IPC_SET, mode=-1), ValueError),
        (lambda: ll.msgctl(msqid, ll.IPC_SET, uid=-1), ValueError),
        (lambda: ll.msgctl(msqid, ll.IPC_SET, gid=2**32), ValueError),
        (lambda: ll.msgctl(msqid, ll.IPC_SET, qbytes=-1), ValueError),
        (lambda: ll.msgctl(msqid, ll.IPC_SET, qbytes=2**64), ValueError),
        (lambda: ll.semctl(semid, 0, ll.IPC_SET, mode=0o1600), ValueError),
        (lambda: ll.shmctl(shmid, ll.IPC_SET, mode=0o1600), ValueError),
        (lambda: ll.shmctl(shmid, ll.IPC_SET, uid=True), TypeError),
        (lambda: ll.msgctl(msqid, True), TypeError),
        (lambda: sysvipc._sysvipc.msgctl(msqid, ll.IPC_SET), TypeError),
        (lambda: sysvipc._sysvipc.msgctl(msqid, ll.IPC_SET, (None, None, 0o600)), TypeError),
        (lambda: sysvipc._sysvipc.semctl(semid, 0, ll.IPC_SET, [None, None, 0o600]), TypeError),
        (lambda: sysvipc._sysvipc.shmctl(shmid, ll.IPC_SET, (None,) * 4), TypeError),
    ):
        rejected(call, exc)
    assert ll.msgctl(msqid, ll.IPC_STAT).msg_perm.mode & 0o777 == 0o600
    assert ll.semctl(semid, 0, ll.IPC_STAT).sem_perm.mode & 0o777 == 0o600
    assert ll.shmctl(shmid, ll.IPC_STAT).shm_perm.mode & 0o777 == 0o600


def test_ftok_arguments(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("")
    for proj, exc in (
        (0, ValueError),
        (256, ValueError),
        (-1, ValueError),
        ("", ValueError),
        ("AB", ValueError),
        ("\u20ac", ValueError),
        (1.5, TypeError),
        (True, TypeError),
        (None, TypeError),
    ):
        rejected(lambda proj=proj: ll.ftok(path, proj), exc)
    rejected(lambda: ll.ftok(3, 1), TypeError)  # type: ignore[arg-type]
    rejected(lambda: ll.ftok(str(path)), TypeError)  # type: ignore[call-arg]


def test_ftok_key(tmp_path: Path, ipc: Tracker) -> None:
    path = tmp_path / "f"
    path.write_text("")
    st = os.stat(path)

    def expected(proj: int) -> int:
        key = (st.st_ino & 0xFFFF) | ((st.st_dev & 0xFF) << 16) | ((proj & 0xFF) << 24)
        return key  # the canonical (unsigned) spelling

    for proj in (1, 65, 127, 128, 255):
        assert ll.ftok(path, proj) == expected(proj)
    assert ll.ftok(str(path), "A") == ll.ftok(os.fsencode(path), 65) == expected(65)
    assert ll.ftok(path, "\xff") == expected(255)
    assert sysvipc.ftok is ll.ftok
    # The key works as a key, exactly.
    key = ll.ftok(path, 200)
    if any(ll.canonical_key(int(r["key"])) == key for r in proc_rows("msg")):
        pytest.skip("the ftok key is already in use")
    msqid = ipc.msgget(key)
    # /proc/sysvipc prints the signed key_t: the same key.
    assert ll.canonical_key(int(proc_row("msg", msqid)["key"])) == key  # type: ignore[index]
    assert ll.msgget(ll.ftok(path, 200)) == msqid


def test_attachment_arguments(shmid: int) -> None:
    att = ll.shmat(shmid)
    try:
        for call, exc in (
            (lambda: att.read(True), TypeError),
            (lambda: att.read(1.0), TypeError),
            (lambda: att.read(1, True), TypeError),
            (lambda: att.read(-1), ValueError),
            (lambda: att.read(1, -1), ValueError),
            (lambda: att.read(1, 2**64), ValueError),
            (lambda: att.write("text"), TypeError),
            (lambda: att.write(b"x", -1), ValueError),
            (lambda: att.write(b"x", 4096), ValueError),
            (lambda: att.read_into(b"x"), TypeError),
            (lambda: att.read_into(bytearray(1), 4096), ValueError),
            (lambda: ll.shmat(shmid, True), TypeError),
            (lambda: ll.shmat(-1), ValueError),
        ):
            rejected(call, exc)
        assert att.read(8) == bytes(8)
    finally:
        att.detach()


# --------------------------------------------------------------------------
# An unknown keyword argument to every function and method: TypeError, never
# a crash (a child interpreter, so that a crash fails this test only)
# --------------------------------------------------------------------------


def test_unknown_keyword_everywhere_in_child() -> None:
    proc = run_python(
        """
        import gc, sys, types
        from sysvipc import _sysvipc as C, lowlevel as ll

        def proc_ids():
            ids = set()
            for kind in ("msg", "sem", "shm"):
                with open(f"/proc/sysvipc/{kind}") as f:
                    f.readline()
                    ids |= {(kind, int(line.split()[1])) for line in f if line.strip()}
            return ids

        q = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
        s = ll.semget(ll.IPC_PRIVATE, 1, ll.IPC_CREAT)
        m = ll.shmget(ll.IPC_PRIVATE, 4096, ll.IPC_CREAT)
        att = ll.shmat(m)
        base = C.SharedMemoryBase()
        before = proc_ids()
        try:
            valid = {
                "ftok": ("/", 1),
                "msgget": (ll.IPC_PRIVATE, ll.IPC_CREAT),
                "msgsnd": (q, b"x", 1, ll.IPC_NOWAIT),
                "msgrcv": (q, 10, 0, ll.IPC_NOWAIT),
                "msgrcv_into": (q, bytearray(10), 0, ll.IPC_NOWAIT),
                "msgctl": (q, ll.IPC_STAT),
                "semget": (ll.IPC_PRIVATE, 1, ll.IPC_CREAT),
                "semop": (s, [(0, 1)]),
                "semop1": (s, 0, 1),
                "semctl": (s, 0, ll.SETVAL, 5),
                "shmget": (ll.IPC_PRIVATE, 4096, ll.IPC_CREAT),
                "shmat": (m,),
                "shmdt": (att,),
                "shmctl": (m, ll.IPC_STAT),
            }
            targets = []
            for name in dir(C):
                obj = getattr(C, name)
                if isinstance(obj, types.BuiltinFunctionType):
                    targets.append((name, obj, [(), valid.get(name, ())]))
            missing = set(valid) - {t[0] for t in targets}
            assert not missing, missing
            for name in ("msgctl", "semctl", "shmctl"):
                targets.append(("lowlevel." + name, getattr(ll, name), [(), valid[name]]))
            method_args = {
                "read": (4,), "read_into": (bytearray(4),), "write": (b"x",),
                "__buffer__": (0,), "__release_buffer__": (memoryview(b""),),
            }
            for name, attr in vars(C.Attachment).items():
                if callable(attr) and name != "__new__":
                    bound = getattr(att, name)
                    targets.append(("Attachment." + name, bound, [(), method_args.get(name, ())]))
            for name, attr in vars(C.SharedMemoryBase).items():
                if callable(attr) and name != "__new__":
                    targets.append(("SharedMemoryBase." + name, getattr(base, name), [()]))
            targets.append(("SharedMemoryBase", C.SharedMemoryBase, [()]))
            targets.append(("Message", C.Message, [((b"x", 1),)]))
            targets.append(("IdentifierRemovedError", C.IdentifierRemovedError, [(), (43, "x")]))
            names = {t[0] for t in targets}
            for needed in ("Attachment.detach", "Attachment.read", "Attachment.read_into",
                           "Attachment.write", "SharedMemoryBase._close_mapping"):
                assert needed in names, needed

            for name, fn, arg_sets in targets:
                for args in arg_sets:
                    for kwargs in ({"bogus": 1}, {"bogus": 1, "timeout": 1.0},
                                   {"\\u00e9": None}, {"x" * 200: b"x"}):
                        for _ in range(50):
                            try:
                                fn(*args, **kwargs)
                            except TypeError:
                                pass
                            else:
                                raise AssertionError(f"{name}{args} accepted {kwargs}")
                gc.collect()
            # Duplicate values for one parameter are refused as well.
            for fn, args, kwargs in (
                (C.msgsnd, (q, b"x"), {"data": b"y"}),
                (C.msgrcv, (q,), {"msqid": q}),
                (C.msgrcv_into, (q, bytearray(2)), {"buffer": bytearray(2)}),
                (C.semop, (s, [(0, 1)]), {"ops": [(0, 1)]}),
                (att.write, (b"x",), {"data": b"y"}),
                (att.read_into, (bytearray(1),), {"buffer": bytearray(1)}),
            ):
                try:
                    fn(*args, **kwargs)
                except TypeError:
                    pass
                else:
                    raise AssertionError(f"{fn} accepted a duplicate")
            # None of those calls did anything.
            assert not att.detached and att.exports == 0
            assert ll.msgctl(q, ll.IPC_STAT).msg_qnum == 0
            assert ll.semctl(s, 0, ll.GETVAL) == 0
            assert ll.shmctl(m, ll.IPC_STAT).shm_nattch == 1
            assert att.read(1) == b"\\0"
            assert proc_ids() == before, proc_ids() - before
            print("ok", len(targets))
        finally:
            att.detach()
            ll.msgctl(q, ll.IPC_RMID)
            ll.semctl(s, 0, ll.IPC_RMID)
            ll.shmctl(m, ll.IPC_RMID)
        """,
        env=CHILD_ENV,
        timeout=60,
    )
    assert_child_ok(proc)
    assert proc.stdout.split()[0] == "ok"
