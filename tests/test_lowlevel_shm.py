"""Shared memory through sysvipc.lowlevel, against the real kernel.

Results are cross-checked with /proc/sysvipc/shm and /proc/sys/kernel/shm*.
Anything that could crash the interpreter if the library were wrong (read-only
mappings, use after detach) runs in a child interpreter.
"""

from __future__ import annotations

import errno
import gc
import os
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


def sysctl(name: str) -> int:
    with open(f"/proc/sys/kernel/{name}") as f:
        return int(f.read())


def stable(read: Callable[[], Any], query: Callable[[], Any]) -> tuple[Any, Any]:
    for _ in range(100):
        before = read()
        result = query()
        if read() == before:
            return before, result
        time.sleep(0.01)
    pytest.fail("/proc/sysvipc/shm never stayed still")


def row(shmid: int) -> dict[str, str]:
    r = proc_row("shm", shmid)
    assert r is not None, f"segment {shmid} not in /proc/sysvipc/shm"
    return r


def nattch(shmid: int) -> int:
    return int(row(shmid)["nattch"])


# --------------------------------------------------------------------------
# shmget
# --------------------------------------------------------------------------


def test_shmget_creates_segment(ipc: Tracker, key: int) -> None:
    before = int(time.time())
    shmid = ipc.shmget(10000, key, mode=0o640)
    r = row(shmid)
    assert int(r["key"]) == key
    assert int(r["size"]) == 10000  # not rounded to pages
    assert int(r["perms"], 8) == 0o640
    assert int(r["cpid"]) == os.getpid()
    assert int(r["nattch"]) == 0
    assert int(r["uid"]) == int(r["cuid"]) == os.geteuid()
    ds = ll.shmctl(shmid, ll.IPC_STAT)
    assert isinstance(ds, sysvipc.ShmidDs)
    assert ds.shm_segsz == 10000
    assert ds.shm_perm.key == key and ds.shm_perm.mode & 0o777 == 0o640
    assert ds.shm_perm.uid == ds.shm_perm.cuid == os.geteuid()
    assert ds.shm_perm.gid == ds.shm_perm.cgid == os.getegid()
    assert ds.shm_cpid == os.getpid() and ds.shm_lpid == 0
    assert ds.shm_atime == 0 and ds.shm_dtime == 0 and ds.shm_nattch == 0
    assert before - 1 <= ds.shm_ctime <= time.time() + 1
    assert ds.shm_ctime == int(r["ctime"])
    assert not ds.marked_for_removal and not ds.locked


def test_shmget_opens_existing(ipc: Tracker, key: int) -> None:
    shmid = ipc.shmget(8192, key)
    assert ll.shmget(key) == shmid
    assert ll.shmget(key, 100) == shmid  # smaller is fine
    assert ll.shmget(key=key, size=8192, flags=ll.IPC_CREAT, mode=0o666) == shmid
    assert int(row(shmid)["perms"], 8) == 0o600  # IPC_CREAT changed nothing
    with pytest.raises(OSError) as info:
        ll.shmget(key, 8193)  # larger than the segment
    assert info.value.errno == errno.EINVAL
    assert "shmget" in str(info.value)


def test_shmget_zero_size_creates_nothing(key: int) -> None:
    with pytest.raises(OSError) as info:
        ll.shmget(key, 0, ll.IPC_CREAT)
    assert info.value.errno == errno.EINVAL
    assert all(int(r["key"]) != key for r in proc_rows("shm"))


# --------------------------------------------------------------------------
# shmat / the buffer protocol / shmdt
# --------------------------------------------------------------------------


def test_shmat_attachment(ipc: Tracker) -> None:
    shmid = ipc.shmget(10000)
    t0 = int(time.time())
    att = ll.shmat(shmid)
    try:
        assert isinstance(att, ll.Attachment)
        assert att.shmid == shmid
        assert att.size == 10000
        assert not att.readonly and not att.detached
        assert att.address != 0 and att.address % ll.PAGE_SIZE == 0
        assert att.exports == 0
        assert "shmid" in repr(att)
        assert nattch(shmid) == 1
        ds = ll.shmctl(shmid, ll.IPC_STAT)
        assert ds.shm_nattch == 1 and ds.shm_lpid == os.getpid()
        assert t0 - 1 <= ds.shm_atime <= time.time() + 1
        assert ds.shm_atime == int(row(shmid)["atime"])
        # New segments are zero-filled.
        assert bytes(memoryview(att)) == bytes(10000)
        assert att.read() == bytes(10000)
    finally:
        att.detach()
    assert att.detached and att.size == 0 and att.address == 0
    assert nattch(shmid) == 0
    ds = ll.shmctl(shmid, ll.IPC_STAT)
    assert ds.shm_nattch == 0 and ds.shm_dtime >= t0 - 1
    assert int(row(shmid)["dtime"]) == ds.shm_dtime


def test_buffer_protocol_and_sharing(ipc: Tracker) -> None:
    shmid = ipc.shmget(4096)
    a = ll.shmat(shmid)
    b = ll.shmat(shmid, flags=0)
    try:
        assert a.address != b.address and nattch(shmid) == 2
        view = memoryview(a)
        assert not view.readonly and len(view) == 4096
        assert view.format == "B" and view.itemsize == 1 and view.c_contiguous
        assert a.exports == 1
        view[0:5] = b"hello"
        view[-1] = 0xAB
        assert b.read(5) == b"hello"  # the same memory, seen through b
        assert b.read(size=3, offset=1) == b"ell"
        assert b.read(offset=4095) == b"\xab"
        assert b.read(0, 4096) == b""
        with memoryview(b) as view_b:
            assert view_b[:5] == b"hello"
            assert b.exports == 1
        assert b.exports == 0
        view.release()
        assert a.exports == 0
    finally:
        a.detach()
        b.detach()
    assert nattch(shmid) == 0


def test_write_read_read_into(ipc: Tracker) -> None:
    shmid = ipc.shmget(100)
    att = ll.shmat(shmid)
    try:
        assert att.write(b"abcdef") == 6
        assert att.write(bytearray(b"XY"), 2) == 2
        assert att.write(data=memoryview(b"--z--")[2:3], offset=99) == 1
        assert att.read(6) == b"abXYef"
        assert att.read(1, 99) == b"z"
        buf = bytearray(4)
        assert att.read_into(buf) == 4 and buf == b"abXY"
        assert att.read_into(buffer=buf, offset=96) == 4 and buf == b"\0\0\0z"
        # Out of range: refused, nothing written.
        for call in (
            lambda: att.write(b"12", 99),
            lambda: att.write(b"1", 101),
            lambda: att.read(2, 99),
            lambda: att.read(0, 101),
            lambda: att.read_into(bytearray(2), 99),
            lambda: att.write(b"x", -1),
            lambda: att.read(-1),
        ):
            with pytest.raises(ValueError):
                call()
        assert att.read(1, 99) == b"z"
        # A large copy (the GIL-released path) and overlapping memmove.
        big = ll.shmat(ipc.shmget(300000))
        try:
            payload = os.urandom(300000)
            assert big.write(payload) == 300000
            assert big.read() == payload
            out = bytearray(300000)
            assert big.read_into(out) == 300000 and out == payload
            with memoryview(big) as view:
                big.write(view[:200000], 100000)
            assert big.read() == payload[:100000] + payload[:200000]
        finally:
            big.detach()
    finally:
        att.detach()


def test_numpy_zero_copy(ipc: Tracker) -> None:
    np = pytest.importorskip("numpy")
    shmid = ipc.shmget(8 * 100)
    att = ll.shmat(shmid)
    other = ll.shmat(shmid)
    try:
        arr = np.frombuffer(att, dtype=np.float64)
        assert arr.shape == (100,) and arr.flags.writeable
        arr[:] = np.arange(100)
        assert np.frombuffer(other.read(), dtype=np.float64)[99] == 99.0
        assert att.exports >= 1
        with pytest.raises(BufferError):
            att.detach()
        assert not att.detached
        del arr
        gc.collect()
        assert att.exports == 0
    finally:
        att.detach()
        other.detach()


def test_detach_refused_while_views_exist(ipc: Tracker) -> None:
    shmid = ipc.shmget(4096)
    att = ll.shmat(shmid)
    view = memoryview(att)
    try:
        with pytest.raises(BufferError):
            att.detach()
        with pytest.raises(BufferError):
            ll.shmdt(att)
        assert not att.detached and nattch(shmid) == 1
        view[0] = 7
    finally:
        view.release()
    ll.shmdt(att)
    assert att.detached and nattch(shmid) == 0
    att.detach()  # again: nothing to do
    ll.shmdt(att)
    with pytest.raises(ValueError):
        memoryview(att)
    for call in (att.read, lambda: att.write(b"x"), lambda: att.read_into(bytearray(1))):
        with pytest.raises(ValueError):
            call()


def test_shmdt_needs_an_attachment() -> None:
    for wrong in (None, 0, b"x", memoryview(b"x")):
        with pytest.raises(TypeError):
            ll.shmdt(wrong)  # type: ignore[arg-type]


def test_garbage_attachment_is_detached(ipc: Tracker) -> None:
    shmid = ipc.shmget(4096)
    att = ll.shmat(shmid)
    assert nattch(shmid) == 1
    del att
    gc.collect()
    assert nattch(shmid) == 0


def test_attachment_cannot_be_created_directly() -> None:
    with pytest.raises(TypeError):
        ll.Attachment()  # type: ignore[call-arg]


def test_readonly_attachment_in_child(ipc: Tracker) -> None:
    shmid = ipc.shmget(4096)
    proc = run_python(
        f"""
        import ctypes, io
        from sysvipc import lowlevel as ll
        w = ll.shmat({shmid})
        w.write(b"data")
        ro = ll.shmat({shmid}, ll.SHM_RDONLY)
        assert ro.readonly and not w.readonly
        mv = memoryview(ro)
        assert mv.readonly and bytes(mv[:4]) == b"data"
        try:
            mv[0] = 1
            raise AssertionError("wrote through a read-only view")
        except TypeError:
            pass
        try:
            ro.write(b"x")
            raise AssertionError("write() on a read-only attachment")
        except PermissionError:
            pass
        for writer in (
            lambda: io.BytesIO(b"zz").readinto(ro),
            lambda: (ctypes.c_char * 4).from_buffer(ro),
        ):
            try:
                writer()
                raise AssertionError("a writable buffer over a read-only mapping")
            except (TypeError, BufferError):
                pass
        try:
            import numpy as np
        except ImportError:
            np = None
        if np is not None:
            arr = np.frombuffer(ro, dtype=np.uint8)
            assert not arr.flags.writeable
            try:
                arr[0] = 1
                raise AssertionError("numpy wrote to a read-only mapping")
            except ValueError:
                pass
            try:
                arr.setflags(write=True)
                raise AssertionError("numpy made a read-only mapping writable")
            except ValueError:
                pass
            del arr
        assert ro.read(4) == b"data"
        buf = bytearray(4)
        assert ro.read_into(buf) == 4 and buf == b"data"
        w.write(b"DATA")
        assert bytes(mv[:4]) == b"DATA"
        mv.release()
        ro.detach()
        w.detach()
        print("ok")
        """,
        env=CHILD_ENV,
        timeout=30,
    )
    assert_child_ok(proc)
    assert proc.stdout.strip() == "ok"


def test_stale_numpy_view_after_detach_does_not_crash(ipc: Tracker) -> None:
    # numpy's ndarray(buffer=...) keeps a reference to the exporter but no
    # export: detach() succeeds under it.  Using the array afterwards must
    # not crash the interpreter, nor touch the segment.
    pytest.importorskip("numpy")
    shmid = ipc.shmget(4096)
    proc = run_python(
        f"""
        import numpy as np
        from sysvipc import lowlevel as ll
        att = ll.shmat({shmid})
        att.write(b"\\x05" * 16)
        arr = np.ndarray(shape=(4096,), dtype=np.uint8, buffer=att)
        assert arr[0] == 5
        try:
            att.detach()
        except BufferError:
            print("refused")  # also safe
        else:
            arr[:] = 9
            int(arr.sum())
        del arr
        print("ok")
        """,
        env=CHILD_ENV,
        timeout=30,
    )
    assert_child_ok(proc)
    assert proc.stdout.split()[-1] == "ok"
    check = ll.shmat(shmid)
    try:
        assert check.read(16) == b"\x05" * 16 and check.read(1, 16) == b"\0"
    finally:
        check.detach()


def test_other_process_attaches(ipc: Tracker) -> None:
    shmid = ipc.shmget(4096)
    att = ll.shmat(shmid)
    try:
        att.write(b"first")
        proc = run_python(
            f"""
            import os
            from sysvipc import lowlevel as ll
            a = ll.shmat({shmid})
            assert a.read(5) == b"first", a.read(5)
            a.write(b"second")
            print(os.getpid())
            """,
            env=CHILD_ENV,
            timeout=30,
        )
        assert_child_ok(proc)
        assert att.read(6) == b"second"
        assert nattch(shmid) == 1  # the child's attachment went at its exit
        ds = ll.shmctl(shmid, ll.IPC_STAT)
        assert ds.shm_lpid == int(proc.stdout) == int(row(shmid)["lpid"])
    finally:
        att.detach()


def test_fork_inherits_attachment(ipc: Tracker) -> None:
    shmid = ipc.shmget(4096)
    att = ll.shmat(shmid)
    try:
        pid = os.fork()
        if pid == 0:  # child: write through the inherited mapping, exit at once
            code = 1
            try:
                att.write(b"forked")
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert att.read(6) == b"forked"
        assert nattch(shmid) == 1
    finally:
        att.detach()


# --------------------------------------------------------------------------
# shmctl
# --------------------------------------------------------------------------


def test_ipc_rmid_marks_until_last_detach(ipc: Tracker, key: int) -> None:
    shmid = ipc.shmget(4096, key)
    att = ll.shmat(shmid)
    try:
        att.write(b"kept")
        assert ll.shmctl(shmid, ll.IPC_RMID) is None
        r = row(shmid)
        assert int(r["perms"], 8) & ll.SHM_DEST
        assert int(r["key"]) == ll.IPC_PRIVATE  # the key is released
        ds = ll.shmctl(shmid, ll.IPC_STAT)
        assert ds.marked_for_removal and ds.shm_perm.mode & ll.SHM_DEST
        assert ds.shm_perm.key == 0
        with pytest.raises(FileNotFoundError):
            ll.shmget(key)
        # Linux still attaches a marked segment by id.
        again = ll.shmat(shmid)
        assert again.read(4) == b"kept" and nattch(shmid) == 2
        again.detach()
    finally:
        att.detach()
    assert proc_row("shm", shmid) is None
    with pytest.raises(OSError) as info:
        ll.shmctl(shmid, ll.IPC_STAT)
    assert info.value.errno == errno.EINVAL


def test_ipc_rmid_unattached(ipc: Tracker) -> None:
    shmid = ipc.shmget(4096)
    ll.shmctl(shmid, ll.IPC_RMID)
    assert proc_row("shm", shmid) is None
    with pytest.raises(OSError) as info:
        ll.shmctl(shmid, ll.IPC_RMID)
    assert info.value.errno == errno.EINVAL


def test_ipc_set(shmid: int) -> None:
    ds0 = ll.shmctl(shmid, ll.IPC_STAT)
    ll.shmctl(shmid, ll.IPC_SET, mode=0o604)
    ds = ll.shmctl(shmid, ll.IPC_STAT)
    assert ds.shm_perm.mode & 0o777 == 0o604 and ds.shm_segsz == ds0.shm_segsz
    ll.shmctl(shmid, ll.IPC_SET, uid=65534, gid=65533)
    ds = ll.shmctl(shmid, ll.IPC_STAT)
    assert (ds.shm_perm.uid, ds.shm_perm.gid) == (65534, 65533)
    assert ds.shm_perm.cuid == ds0.shm_perm.cuid and ds.shm_perm.mode & 0o777 == 0o604
    r = row(shmid)
    assert (int(r["uid"]), int(r["gid"]), int(r["perms"], 8)) == (65534, 65533, 0o604)
    sysvipc._sysvipc.shmctl(shmid, ll.IPC_SET, (None, None, 0o600))
    assert ll.shmctl(shmid, ll.IPC_STAT).shm_perm.mode & 0o777 == 0o600


def test_shm_lock_unlock(shmid: int) -> None:
    try:
        ll.shmctl(shmid, ll.SHM_LOCK)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.ENOMEM):
            pytest.skip(f"SHM_LOCK not allowed here: {exc}")
        raise
    ds = ll.shmctl(shmid, ll.IPC_STAT)
    assert ds.locked and ds.shm_perm.mode & ll.SHM_LOCKED
    assert int(row(shmid)["perms"], 8) & ll.SHM_LOCKED
    assert ds.shm_perm.mode & 0o777 == 0o600
    ll.shmctl(shmid, ll.SHM_UNLOCK)
    ds = ll.shmctl(shmid, ll.IPC_STAT)
    assert not ds.locked
    assert not int(row(shmid)["perms"], 8) & ll.SHM_LOCKED


def test_ipc_info_matches_sysctls(shmid: int) -> None:
    maxidx, info = ll.shmctl(0, ll.IPC_INFO)
    assert isinstance(info, sysvipc.ShmInfo)
    assert info.shmmni == sysctl("shmmni")
    assert info.shmmax == sysctl("shmmax")
    assert info.shmall == sysctl("shmall")
    assert info.shmmin >= 1
    assert maxidx >= 0


def test_shm_info_matches_proc(ipc: Tracker) -> None:
    ipc.shmget(1)
    ipc.shmget(3 * ll.PAGE_SIZE + 1)
    rows, (maxidx, usage) = stable(lambda: proc_rows("shm"), lambda: ll.shmctl(0, ll.SHM_INFO))
    assert isinstance(usage, sysvipc.ShmUsage)
    assert usage.used_ids == len(rows)
    pages = sum(-(-int(r["size"]) // ll.PAGE_SIZE) for r in rows)
    assert usage.shm_tot == pages
    assert maxidx >= 0
    assert ll.PAGE_SIZE == os.sysconf("SC_PAGESIZE")


def test_shm_stat_and_stat_any_by_index(ipc: Tracker) -> None:
    mine = {ipc.shmget(4096), ipc.shmget(100, mode=0o400)}
    maxidx, _ = ll.shmctl(0, ll.SHM_INFO)
    for cmd in (ll.SHM_STAT, ll.SHM_STAT_ANY):
        found = {}
        for index in range(maxidx + 1):
            try:
                ident, ds = ll.shmctl(index, cmd)
            except OSError as exc:
                assert exc.errno == errno.EINVAL
                continue
            assert isinstance(ds, sysvipc.ShmidDs)
            found[ident] = ds
        assert mine <= set(found)
        for shmid in mine:
            assert found[shmid] == ll.shmctl(shmid, ll.IPC_STAT)
        with pytest.raises(OSError):
            ll.shmctl(maxidx + 1, cmd)


def test_shm_stat_any_ignores_read_permission(shmid: int) -> None:
    maxidx, _ = ll.shmctl(0, ll.SHM_INFO)
    proc = run_python(
        f"""
        import os
        from sysvipc import lowlevel as ll
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
        seen_stat, seen_any = [], []
        for index in range({maxidx} + 1):
            try:
                seen_stat.append(ll.shmctl(index, ll.SHM_STAT)[0])
            except OSError:
                pass
            try:
                seen_any.append(ll.shmctl(index, ll.SHM_STAT_ANY)[0])
            except OSError:
                pass
        assert {shmid} not in seen_stat, seen_stat
        assert {shmid} in seen_any, seen_any
        try:
            ll.shmat({shmid})
        except PermissionError:
            print("ok")
        """,
        env=CHILD_ENV,
        timeout=30,
    )
    assert_child_ok(proc)
    assert proc.stdout.strip() == "ok"


def test_shmat_flags(ipc: Tracker) -> None:
    shmid = ipc.shmget(4096)
    att = ll.shmat(shmid, ll.SHM_RDONLY | ll.SHM_EXEC)
    try:
        assert att.readonly and att.size == 4096
    finally:
        att.detach()
    with pytest.raises(ValueError):
        ll.shmat(shmid, ll.SHM_RND)  # no address to round: refused
    assert nattch(shmid) == 0
