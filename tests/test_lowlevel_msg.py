"""Message queues through sysvipc.lowlevel, against the real kernel.

Every result is cross-checked with /proc/sysvipc/msg and the limits in
/proc/sys/kernel.  Blocking calls always carry a timeout.
"""

from __future__ import annotations

import array
import errno
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Tracker, assert_child_ok, proc_row, proc_rows, run_python

import sysvipc
from sysvipc import lowlevel as ll

REPO = str(Path(sysvipc.__file__).resolve().parent.parent)
CHILD_ENV = {**os.environ, "PYTHONPATH": REPO}


def sysctl(name: str) -> list[int]:
    with open(f"/proc/sys/kernel/{name}") as f:
        return [int(v) for v in f.read().split()]


def row_int(row: dict[str, str], field: str) -> int:
    return int(row[field], 8) if field == "perms" else int(row[field])


def stable(read: Callable[[], Any], query: Callable[[], Any]) -> tuple[Any, Any]:
    """(read(), query()) with read() unchanged around query(): a consistent
    view even if other processes change the table meanwhile."""
    for _ in range(100):
        before = read()
        result = query()
        if read() == before:
            return before, result
        time.sleep(0.01)
    pytest.fail("/proc/sysvipc/msg never stayed still")


def cap_effective(bit: int) -> bool:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    return False


CAP_SYS_RESOURCE = 24


# --------------------------------------------------------------------------
# msgget
# --------------------------------------------------------------------------


def test_msgget_creates_and_opens(ipc: Tracker, key: int) -> None:
    msqid = ipc.msgget(key, mode=0o640)
    row = proc_row("msg", msqid)
    assert row is not None
    assert int(row["key"]) == key
    assert row_int(row, "perms") == 0o640
    assert int(row["uid"]) == int(row["cuid"]) == os.geteuid()
    assert int(row["gid"]) == int(row["cgid"]) == os.getegid()
    assert int(row["qnum"]) == int(row["cbytes"]) == 0
    # Opening it again, with or without IPC_CREAT, finds the same queue.
    assert ll.msgget(key) == msqid
    assert ll.msgget(key, ll.IPC_CREAT) == msqid
    assert ll.msgget(key, flags=ll.IPC_CREAT, mode=0o600) == msqid
    # ... and IPC_CREAT did not change its mode.
    assert row_int(proc_row("msg", msqid), "perms") == 0o640  # type: ignore[arg-type]


def test_msgget_private_always_creates(ipc: Tracker) -> None:
    a = ipc.track("msg", ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT))
    b = ipc.track("msg", ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT))
    assert a != b
    for msqid in (a, b):
        row = proc_row("msg", msqid)
        assert row is not None and int(row["key"]) == 0
        assert row_int(row, "perms") == 0o600  # the default mode


def test_ipc_stat_fresh_queue(ipc: Tracker, key: int) -> None:
    before = int(time.time())
    msqid = ipc.msgget(key, mode=0o620)
    ds = ll.msgctl(msqid, ll.IPC_STAT)
    assert isinstance(ds, sysvipc.MsqidDs)
    perm = ds.msg_perm
    assert perm.key == key
    assert perm.mode & 0o777 == 0o620 and perm.permissions == 0o620
    assert perm.uid == perm.cuid == os.geteuid()
    assert perm.gid == perm.cgid == os.getegid()
    assert ds.msg_qnum == 0 and ds.msg_cbytes == 0
    assert ds.msg_qbytes == sysctl("msgmnb")[0]
    assert ds.msg_stime == 0 and ds.msg_rtime == 0  # never
    assert before - 1 <= ds.msg_ctime <= time.time() + 1
    assert ds.msg_lspid == 0 and ds.msg_lrpid == 0
    assert sysvipc.to_datetime(ds.msg_stime) is None
    assert sysvipc.to_datetime(ds.msg_ctime) is not None
    row = proc_row("msg", msqid)
    assert row is not None
    assert int(row["ctime"]) == ds.msg_ctime
    assert int(row["stime"]) == int(row["rtime"]) == 0


# --------------------------------------------------------------------------
# msgsnd / msgrcv
# --------------------------------------------------------------------------


def test_send_receive_cross_checked_with_proc(msqid: int) -> None:
    t0 = int(time.time())
    ll.msgsnd(msqid, b"hello", 7)
    row = proc_row("msg", msqid)
    assert row is not None
    assert int(row["qnum"]) == 1 and int(row["cbytes"]) == 5
    assert int(row["lspid"]) == os.getpid()
    ds = ll.msgctl(msqid, ll.IPC_STAT)
    assert (ds.msg_qnum, ds.msg_cbytes, ds.msg_lspid) == (1, 5, os.getpid())
    assert t0 - 1 <= ds.msg_stime <= time.time() + 1
    assert ds.msg_stime == int(row["stime"])

    message = ll.msgrcv(msqid, 100)
    assert isinstance(message, sysvipc.Message)
    assert message == (b"hello", 7)
    assert message.data == b"hello" and message.type == 7
    data, mtype = message
    assert (data, mtype) == (b"hello", 7)
    assert type(message.data) is bytes

    row = proc_row("msg", msqid)
    assert row is not None
    assert int(row["qnum"]) == 0 and int(row["cbytes"]) == 0
    assert int(row["lrpid"]) == os.getpid()
    ds = ll.msgctl(msqid, ll.IPC_STAT)
    assert ds.msg_lrpid == os.getpid() and ds.msg_qnum == 0
    assert t0 - 1 <= ds.msg_rtime <= time.time() + 1
    assert ds.msg_rtime == int(row["rtime"])


def test_keyword_arguments(msqid: int) -> None:
    ll.msgsnd(msqid=msqid, data=b"kw", type=3, flags=ll.IPC_NOWAIT, timeout=1.0)
    assert ll.msgrcv(msqid=msqid, max_size=10, type=3, flags=0, timeout=1.0) == (b"kw", 3)


def test_default_type_is_one(msqid: int) -> None:
    ll.msgsnd(msqid, b"x")
    assert ll.msgrcv(msqid, flags=ll.IPC_NOWAIT) == (b"x", 1)


@pytest.mark.parametrize(
    "data",
    [
        b"bytes",
        bytearray(b"bytearray"),
        memoryview(b"--memoryview--")[2:-2],
        array.array("i", [1, 2, 3]),
        b"",
        bytes(range(256)),
    ],
    ids=["bytes", "bytearray", "memoryview", "array", "empty", "binary"],
)
def test_send_any_bytes_like(msqid: int, data: Any) -> None:
    ll.msgsnd(msqid, data, 2)
    expected = bytes(memoryview(data).cast("B"))
    row = proc_row("msg", msqid)
    assert row is not None and int(row["cbytes"]) == len(expected)
    assert ll.msgrcv(msqid, None, flags=ll.IPC_NOWAIT) == (expected, 2)


def test_send_numpy_array(msqid: int) -> None:
    np = pytest.importorskip("numpy")
    arr = np.arange(10, dtype=np.int32)
    ll.msgsnd(msqid, arr, 4)
    data, mtype = ll.msgrcv(msqid, flags=ll.IPC_NOWAIT)
    assert mtype == 4
    assert (np.frombuffer(data, dtype=np.int32) == arr).all()


def test_message_of_msgmax_bytes(msqid: int) -> None:
    msgmax = sysctl("msgmax")[0]
    payload = os.urandom(msgmax)
    ll.msgsnd(msqid, payload, 9, timeout=5)
    assert ll.msgrcv(msqid, None, flags=ll.IPC_NOWAIT) == (payload, 9)
    ll.msgsnd(msqid, payload, 9, timeout=5)
    assert ll.msgrcv(msqid, msgmax, flags=ll.IPC_NOWAIT) == (payload, 9)


def test_message_over_msgmax_is_refused(msqid: int) -> None:
    msgmax = sysctl("msgmax")[0]
    with pytest.raises(ValueError, match="msgmax"):
        ll.msgsnd(msqid, b"\0" * (msgmax + 1), 1, ll.IPC_NOWAIT)
    row = proc_row("msg", msqid)
    assert row is not None and int(row["qnum"]) == 0


def test_largest_type_is_not_truncated(msqid: int) -> None:
    biggest = 2**63 - 1  # LONG_MAX on LP64
    ll.msgsnd(msqid, b"big", biggest)
    assert ll.msgrcv(msqid, 10, biggest, ll.IPC_NOWAIT) == (b"big", biggest)


def _fill(msqid: int, types: list[int]) -> None:
    for i, t in enumerate(types):
        ll.msgsnd(msqid, f"m{i}".encode(), t, ll.IPC_NOWAIT)


def test_type_zero_is_fifo(msqid: int) -> None:
    _fill(msqid, [5, 1, 3])
    got = [ll.msgrcv(msqid, 10, 0, ll.IPC_NOWAIT) for _ in range(3)]
    assert got == [(b"m0", 5), (b"m1", 1), (b"m2", 3)]


def test_positive_type_selects(msqid: int) -> None:
    _fill(msqid, [5, 1, 3, 1])
    assert ll.msgrcv(msqid, 10, 1, ll.IPC_NOWAIT) == (b"m1", 1)
    assert ll.msgrcv(msqid, 10, 1, ll.IPC_NOWAIT) == (b"m3", 1)
    with pytest.raises(BlockingIOError) as info:
        ll.msgrcv(msqid, 10, 1, ll.IPC_NOWAIT)
    assert info.value.errno == errno.ENOMSG
    assert ll.msgrcv(msqid, 10, 3, ll.IPC_NOWAIT) == (b"m2", 3)
    assert ll.msgrcv(msqid, 10, 5, ll.IPC_NOWAIT) == (b"m0", 5)


def test_negative_type_takes_lowest_type_first(msqid: int) -> None:
    _fill(msqid, [3, 2, 5, 1, 2])
    # The lowest type <= 3 first (1), then the 2s in order, then 3.
    assert ll.msgrcv(msqid, 10, -3, ll.IPC_NOWAIT) == (b"m3", 1)
    assert ll.msgrcv(msqid, 10, -3, ll.IPC_NOWAIT) == (b"m1", 2)
    assert ll.msgrcv(msqid, 10, -3, ll.IPC_NOWAIT) == (b"m4", 2)
    assert ll.msgrcv(msqid, 10, -3, ll.IPC_NOWAIT) == (b"m0", 3)
    with pytest.raises(BlockingIOError):
        ll.msgrcv(msqid, 10, -3, ll.IPC_NOWAIT)
    assert int(proc_row("msg", msqid)["qnum"]) == 1  # type: ignore[index]
    assert ll.msgrcv(msqid, 10, -(2**63), ll.IPC_NOWAIT) == (b"m2", 5)


def test_msg_except(msqid: int) -> None:
    _fill(msqid, [1, 1, 2, 3])
    assert ll.msgrcv(msqid, 10, 1, ll.MSG_EXCEPT | ll.IPC_NOWAIT) == (b"m2", 2)
    assert ll.msgrcv(msqid, 10, 1, ll.MSG_EXCEPT | ll.IPC_NOWAIT) == (b"m3", 3)
    with pytest.raises(BlockingIOError):
        ll.msgrcv(msqid, 10, 1, ll.MSG_EXCEPT | ll.IPC_NOWAIT)
    assert int(proc_row("msg", msqid)["qnum"]) == 2  # type: ignore[index]


def test_too_small_buffer_e2big_leaves_message_queued(msqid: int) -> None:
    ll.msgsnd(msqid, b"0123456789" * 10, 4)
    with pytest.raises(OSError) as info:
        ll.msgrcv(msqid, 10, flags=ll.IPC_NOWAIT)
    assert info.value.errno == errno.E2BIG
    assert "msgrcv" in str(info.value)
    row = proc_row("msg", msqid)
    assert row is not None and int(row["qnum"]) == 1 and int(row["cbytes"]) == 100
    # max_size=0 accepts only empty messages.
    with pytest.raises(OSError) as info:
        ll.msgrcv(msqid, 0, flags=ll.IPC_NOWAIT)
    assert info.value.errno == errno.E2BIG


def test_msg_noerror_truncates_and_removes(msqid: int) -> None:
    ll.msgsnd(msqid, b"0123456789" * 10, 4)
    assert ll.msgrcv(msqid, 10, 0, ll.MSG_NOERROR | ll.IPC_NOWAIT) == (b"0123456789", 4)
    row = proc_row("msg", msqid)
    assert row is not None and int(row["qnum"]) == 0 and int(row["cbytes"]) == 0


def test_empty_message_with_zero_max_size(msqid: int) -> None:
    ll.msgsnd(msqid, b"", 6)
    assert ll.msgrcv(msqid, 0, flags=ll.IPC_NOWAIT) == (b"", 6)


def test_msg_copy_is_non_destructive(msqid: int) -> None:
    _fill(msqid, [7, 8, 9])
    try:
        first = ll.msgrcv(msqid, 10, 0, ll.MSG_COPY | ll.IPC_NOWAIT)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            pytest.skip("kernel without CONFIG_CHECKPOINT_RESTORE: no MSG_COPY")
        raise
    assert first == (b"m0", 7)
    # The type is a position; MSG_COPY implies IPC_NOWAIT.
    assert ll.msgrcv(msqid, 10, 1, ll.MSG_COPY) == (b"m1", 8)
    assert ll.msgrcv(msqid, 10, 2, ll.MSG_COPY | ll.IPC_NOWAIT) == (b"m2", 9)
    with pytest.raises(BlockingIOError) as info:
        ll.msgrcv(msqid, 10, 3, ll.MSG_COPY, timeout=5)
    assert info.value.errno == errno.ENOMSG
    # Nothing was removed.
    row = proc_row("msg", msqid)
    assert row is not None and int(row["qnum"]) == 3 and int(row["cbytes"]) == 6
    # Into a buffer as well, and with E2BIG / MSG_NOERROR like a normal receive.
    buf = bytearray(8)
    assert ll.msgrcv_into(msqid, buf, 1, ll.MSG_COPY) == (2, 8)
    assert buf[:2] == b"m1"
    with pytest.raises(OSError) as info:
        ll.msgrcv(msqid, 1, 0, ll.MSG_COPY)
    assert info.value.errno == errno.E2BIG
    assert int(proc_row("msg", msqid)["qnum"]) == 3  # type: ignore[index]


# --------------------------------------------------------------------------
# msgrcv_into
# --------------------------------------------------------------------------


def test_msgrcv_into_bytearray(msqid: int) -> None:
    ll.msgsnd(msqid, b"payload", 11)
    buf = bytearray(b"\xff" * 32)
    assert ll.msgrcv_into(msqid, buf, flags=ll.IPC_NOWAIT) == (7, 11)
    assert buf[:7] == b"payload"
    assert buf[7:] == b"\xff" * 25  # the rest untouched
    assert int(proc_row("msg", msqid)["qnum"]) == 0  # type: ignore[index]


def test_msgrcv_into_memoryview_slice_and_type(msqid: int) -> None:
    _fill(msqid, [1, 2])
    backing = bytearray(20)
    view = memoryview(backing)[5:15]
    assert ll.msgrcv_into(msqid, view, 2, ll.IPC_NOWAIT) == (2, 2)
    assert backing[5:7] == b"m1" and backing[:5] == bytes(5)
    assert ll.msgrcv_into(msqid=msqid, buffer=view, type=0, flags=ll.IPC_NOWAIT, timeout=1) == (
        2,
        1,
    )


def test_msgrcv_into_numpy(msqid: int) -> None:
    np = pytest.importorskip("numpy")
    ll.msgsnd(msqid, np.arange(4, dtype=np.int64), 3)
    out = np.zeros(8, dtype=np.int64)
    assert ll.msgrcv_into(msqid, out, flags=ll.IPC_NOWAIT) == (32, 3)
    assert list(out) == [0, 1, 2, 3, 0, 0, 0, 0]


def test_msgrcv_into_too_small(msqid: int) -> None:
    ll.msgsnd(msqid, b"0123456789", 3)
    buf = bytearray(4)
    with pytest.raises(OSError) as info:
        ll.msgrcv_into(msqid, buf, flags=ll.IPC_NOWAIT)
    assert info.value.errno == errno.E2BIG
    assert buf == bytes(4)
    assert int(proc_row("msg", msqid)["qnum"]) == 1  # type: ignore[index]
    assert ll.msgrcv_into(msqid, buf, 0, ll.MSG_NOERROR | ll.IPC_NOWAIT) == (4, 3)
    assert buf == b"0123"
    assert int(proc_row("msg", msqid)["qnum"]) == 0  # type: ignore[index]


def test_msgrcv_into_readonly_buffer_is_a_type_error(msqid: int) -> None:
    ll.msgsnd(msqid, b"abc", 1)
    for buffer in (b"\0" * 10, memoryview(bytearray(10)).toreadonly()):
        with pytest.raises(TypeError, match="writable"):
            ll.msgrcv_into(msqid, buffer, flags=ll.IPC_NOWAIT)
    assert int(proc_row("msg", msqid)["qnum"]) == 1  # type: ignore[index]


# --------------------------------------------------------------------------
# Queue limits: bytes and message count
# --------------------------------------------------------------------------


def test_queue_full_by_bytes(msqid: int) -> None:
    ll.msgctl(msqid, ll.IPC_SET, qbytes=10)
    ll.msgsnd(msqid, b"x" * 6, 1, ll.IPC_NOWAIT)
    ll.msgsnd(msqid, b"x" * 4, 1, ll.IPC_NOWAIT)
    with pytest.raises(BlockingIOError) as info:
        ll.msgsnd(msqid, b"x", 1, ll.IPC_NOWAIT)
    assert info.value.errno == errno.EAGAIN
    row = proc_row("msg", msqid)
    assert row is not None and int(row["qnum"]) == 2 and int(row["cbytes"]) == 10
    ll.msgrcv(msqid, 10, flags=ll.IPC_NOWAIT)
    ll.msgsnd(msqid, b"x" * 6, 1, ll.IPC_NOWAIT)  # room again


def test_message_that_can_never_fit_is_refused(msqid: int) -> None:
    # Longer than msg_qbytes: it would wait forever, so it is a ValueError.
    ll.msgctl(msqid, ll.IPC_SET, qbytes=10)
    rescue = threading.Timer(5, lambda: ll.msgctl(msqid, ll.IPC_RMID))
    rescue.start()
    try:
        for kwargs in ({}, {"timeout": 5}):
            with pytest.raises(ValueError, match="never fit"):
                ll.msgsnd(msqid, b"x" * 11, 1, **kwargs)  # type: ignore[arg-type]
    finally:
        rescue.cancel()
    # With IPC_NOWAIT it is the kernel's EAGAIN.
    with pytest.raises(BlockingIOError):
        ll.msgsnd(msqid, b"x" * 11, 1, ll.IPC_NOWAIT)
    ll.msgsnd(msqid, b"x" * 10, 1, timeout=5)  # exactly msg_qbytes fits
    assert int(proc_row("msg", msqid)["qnum"]) == 1  # type: ignore[index]


def test_queue_full_by_message_count(msqid: int) -> None:
    # A queue also holds at most msg_qbytes messages (empty ones included).
    ll.msgctl(msqid, ll.IPC_SET, qbytes=3)
    for _ in range(3):
        ll.msgsnd(msqid, b"", 1, ll.IPC_NOWAIT)
    with pytest.raises(BlockingIOError):
        ll.msgsnd(msqid, b"", 1, ll.IPC_NOWAIT)
    assert int(proc_row("msg", msqid)["qnum"]) == 3  # type: ignore[index]


# --------------------------------------------------------------------------
# msgctl
# --------------------------------------------------------------------------


def test_ipc_set(msqid: int) -> None:
    ds0 = ll.msgctl(msqid, ll.IPC_STAT)
    ll.msgctl(msqid, ll.IPC_SET, mode=0o604)
    ds = ll.msgctl(msqid, ll.IPC_STAT)
    assert ds.msg_perm.mode & 0o777 == 0o604
    assert ds.msg_qbytes == ds0.msg_qbytes  # unchanged
    assert ds.msg_perm.uid == ds0.msg_perm.uid
    assert ds.msg_ctime >= ds0.msg_ctime
    ll.msgctl(msqid, ll.IPC_SET, qbytes=1000)
    ds = ll.msgctl(msqid, ll.IPC_STAT)
    assert ds.msg_qbytes == 1000 and ds.msg_perm.mode & 0o777 == 0o604
    ll.msgctl(msqid, ll.IPC_SET, uid=65534, gid=65533)
    ds = ll.msgctl(msqid, ll.IPC_STAT)
    assert (ds.msg_perm.uid, ds.msg_perm.gid) == (65534, 65533)
    assert (ds.msg_perm.cuid, ds.msg_perm.cgid) == (ds0.msg_perm.cuid, ds0.msg_perm.cgid)
    row = proc_row("msg", msqid)
    assert row is not None
    assert (int(row["uid"]), int(row["gid"])) == (65534, 65533)
    assert row_int(row, "perms") == 0o604
    # The raw form: a tuple with None for "unchanged".
    sysvipc._sysvipc.msgctl(msqid, ll.IPC_SET, (None, None, 0o600, None))
    assert ll.msgctl(msqid, ll.IPC_STAT).msg_perm.mode & 0o777 == 0o600


def test_ipc_set_qbytes_above_msgmnb(msqid: int) -> None:
    msgmnb = sysctl("msgmnb")[0]
    if cap_effective(CAP_SYS_RESOURCE):
        ll.msgctl(msqid, ll.IPC_SET, qbytes=msgmnb + 1)
        assert ll.msgctl(msqid, ll.IPC_STAT).msg_qbytes == msgmnb + 1
    else:
        with pytest.raises(PermissionError) as info:
            ll.msgctl(msqid, ll.IPC_SET, qbytes=msgmnb + 1)
        assert info.value.errno == errno.EPERM
        assert "msgctl" in str(info.value)
        assert ll.msgctl(msqid, ll.IPC_STAT).msg_qbytes == msgmnb


def test_ipc_rmid(ipc: Tracker) -> None:
    msqid = ipc.msgget()
    ll.msgsnd(msqid, b"lost", 1)
    assert proc_row("msg", msqid) is not None
    assert ll.msgctl(msqid, ll.IPC_RMID) is None
    assert proc_row("msg", msqid) is None
    for call in (
        lambda: ll.msgctl(msqid, ll.IPC_RMID),
        lambda: ll.msgctl(msqid, ll.IPC_STAT),
        lambda: ll.msgsnd(msqid, b"x", 1, ll.IPC_NOWAIT),
        lambda: ll.msgrcv(msqid, 10, 0, ll.IPC_NOWAIT),
    ):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EINVAL


def test_ipc_info_matches_sysctls(msqid: int) -> None:
    maxidx, info = ll.msgctl(0, ll.IPC_INFO)
    assert isinstance(info, sysvipc.MsgInfo)
    assert info.msgmax == sysctl("msgmax")[0]
    assert info.msgmnb == sysctl("msgmnb")[0]
    assert info.msgmni == sysctl("msgmni")[0]
    assert info.msgssz > 0 and info.msgseg > 0
    assert maxidx >= 0
    # The id passed is ignored for IPC_INFO.
    assert ll.msgctl(msqid, ll.IPC_INFO)[1] == info


def test_msg_info_matches_proc(ipc: Tracker) -> None:
    a, b = ipc.msgget(), ipc.msgget()
    ll.msgsnd(a, b"12345", 1)
    ll.msgsnd(a, b"67", 1)
    ll.msgsnd(b, b"890", 1)
    rows, (maxidx, usage) = stable(lambda: proc_rows("msg"), lambda: ll.msgctl(0, ll.MSG_INFO))
    assert isinstance(usage, sysvipc.MsgInfo)
    assert usage.msgpool == len(rows)  # queues in use
    assert usage.msgmap == sum(int(r["qnum"]) for r in rows)  # messages
    assert usage.msgtql == sum(int(r["cbytes"]) for r in rows)  # bytes
    assert usage.msgmax == sysctl("msgmax")[0]
    assert maxidx >= 0


def test_msg_stat_and_stat_any_by_index(ipc: Tracker) -> None:
    mine = {ipc.msgget(), ipc.msgget(mode=0o400)}
    for msqid in mine:
        ll.msgsnd(msqid, b"abc", 1)
    maxidx, _ = ll.msgctl(0, ll.MSG_INFO)
    for cmd in (ll.MSG_STAT, ll.MSG_STAT_ANY):
        found = {}
        for index in range(maxidx + 1):
            try:
                ident, ds = ll.msgctl(index, cmd)
            except OSError as exc:
                assert exc.errno == errno.EINVAL  # an unused slot
                continue
            assert isinstance(ds, sysvipc.MsqidDs)
            found[ident] = ds
        assert mine <= set(found)
        for msqid in mine:
            assert found[msqid] == ll.msgctl(msqid, ll.IPC_STAT)
            assert found[msqid].msg_qnum == 1 and found[msqid].msg_cbytes == 3
        with pytest.raises(OSError) as info:
            ll.msgctl(maxidx + 1, cmd)
        assert info.value.errno == errno.EINVAL


def test_msg_stat_any_ignores_read_permission(ipc: Tracker) -> None:
    msqid = ipc.msgget(mode=0o600)
    maxidx, _ = ll.msgctl(0, ll.MSG_INFO)
    proc = run_python(
        f"""
        import os
        from sysvipc import lowlevel as ll
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
        seen_stat, seen_any = [], []
        for index in range({maxidx} + 1):
            try:
                seen_stat.append(ll.msgctl(index, ll.MSG_STAT)[0])
            except PermissionError:
                pass
            except OSError:
                pass
            try:
                seen_any.append(ll.msgctl(index, ll.MSG_STAT_ANY)[0])
            except OSError:
                pass
        assert {msqid} not in seen_stat, seen_stat
        assert {msqid} in seen_any, seen_any
        try:
            ll.msgctl({msqid}, ll.IPC_STAT)
        except PermissionError:
            print("ok")
        """,
        env=CHILD_ENV,
        timeout=30,
    )
    assert_child_ok(proc)
    assert proc.stdout.strip() == "ok"


# --------------------------------------------------------------------------
# Between processes
# --------------------------------------------------------------------------


def test_other_process_sends_and_receives(msqid: int) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "from sysvipc import lowlevel as ll\n"
            "print(os.getpid(), flush=True)\n"
            f"ll.msgsnd({msqid}, b'from child', 42, timeout=10)\n"
            f"print(ll.msgrcv({msqid}, 100, 43, timeout=10).data.decode(), flush=True)\n",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=CHILD_ENV,
    )
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        assert ll.msgrcv(msqid, 100, 42, timeout=10) == (b"from child", 42)
        assert ll.msgctl(msqid, ll.IPC_STAT).msg_lspid == pid
        ll.msgsnd(msqid, b"reply", 43, timeout=10)
        out, err = child.communicate(timeout=20)
        assert child.returncode == 0, err
        assert out.strip() == "reply"
        ds = ll.msgctl(msqid, ll.IPC_STAT)
        assert ds.msg_lrpid == pid
        assert int(proc_row("msg", msqid)["lrpid"]) == pid  # type: ignore[index]
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)


# --------------------------------------------------------------------------
# Messages larger than the C stack buffer (needs a raised msgmax: done in a
# private IPC namespace of a child, so nothing outside it changes)
# --------------------------------------------------------------------------


def test_large_messages_in_private_namespace() -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare(1) not available")
    code = """
        import sys
        from sysvipc import lowlevel as ll
        try:
            with open("/proc/sys/kernel/msgmax", "w") as f:
                f.write("200000")
            with open("/proc/sys/kernel/msgmnb", "w") as f:
                f.write("1000000")
        except OSError as exc:
            print("SKIP", exc)
            sys.exit(0)
        q = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
        assert ll.msgctl(q, ll.IPC_INFO)[1].msgmax == 200000
        big = bytes(range(256)) * 400  # 102400 bytes
        # max_size=None: any size, whatever it is.
        ll.msgsnd(q, big, 5, timeout=5)
        assert ll.msgrcv(q, None, timeout=5) == (big, 5)
        ll.msgsnd(q, big[:20000], 5, timeout=5)
        assert ll.msgrcv(q, timeout=5) == (big[:20000], 5)
        # A limit above the stack buffer but below the message: E2BIG, kept.
        ll.msgsnd(q, big, 6, timeout=5)
        try:
            ll.msgrcv(q, 50000, flags=ll.IPC_NOWAIT)
            raise AssertionError("no E2BIG")
        except OSError as exc:
            assert exc.errno == 7, exc
        assert ll.msgctl(q, ll.IPC_STAT).msg_qnum == 1
        # ... truncated with MSG_NOERROR.
        assert ll.msgrcv(q, 50000, 0, ll.MSG_NOERROR | ll.IPC_NOWAIT) == (big[:50000], 6)
        # A limit above the message.
        ll.msgsnd(q, big, 7, timeout=5)
        assert ll.msgrcv(q, 150000, flags=ll.IPC_NOWAIT) == (big, 7)
        # Into a large buffer, and E2BIG into a mid-sized one.
        ll.msgsnd(q, big, 8, timeout=5)
        buf = bytearray(20000)
        try:
            ll.msgrcv_into(q, buf, flags=ll.IPC_NOWAIT)
            raise AssertionError("no E2BIG")
        except OSError as exc:
            assert exc.errno == 7, exc
        buf = bytearray(200000)
        assert ll.msgrcv_into(q, buf, flags=ll.IPC_NOWAIT) == (len(big), 8)
        assert buf[: len(big)] == big
        # Timed receive of a large message.
        ll.msgsnd(q, big, 9, timeout=5)
        assert ll.msgrcv(q, None, 9, timeout=5) == (big, 9)
        # MSG_COPY of a large message.
        ll.msgsnd(q, big, 10, timeout=5)
        try:
            assert ll.msgrcv(q, None, 0, ll.MSG_COPY) == (big, 10)
        except OSError as exc:
            assert exc.errno == 38, exc  # ENOSYS: no CONFIG_CHECKPOINT_RESTORE
        assert ll.msgrcv(q, None, flags=ll.IPC_NOWAIT) == (big, 10)
        # Over the new msgmax: refused.
        try:
            ll.msgsnd(q, bytes(200001), 1, ll.IPC_NOWAIT)
            raise AssertionError("not refused")
        except ValueError:
            pass
        ll.msgctl(q, ll.IPC_RMID)
        print("ok")
    """
    proc = subprocess.run(
        [unshare, "--ipc", "--", sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=CHILD_ENV,
    )
    if proc.returncode != 0 and "unshare" in proc.stderr and "Traceback" not in proc.stderr:
        pytest.skip(f"cannot create an IPC namespace: {proc.stderr.strip()}")
    assert_child_ok(proc)
    if proc.stdout.startswith("SKIP"):
        pytest.skip(f"cannot raise msgmax in the namespace: {proc.stdout.strip()}")
    assert proc.stdout.strip() == "ok"
