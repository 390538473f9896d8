"""SharedMemory (issue 6): construction, key rules, bounds, stat, control,
identity, huge pages, the GIL, and the examples of docs/shared-memory.md.

Every segment a test makes is tracked (``ipc.track``) right after it is
created or made with ``remove_on_close=True``, so it is removed whatever
happens; crash-prone calls run in a child interpreter.
"""

from __future__ import annotations

import array
import errno
import gc
import os
import pickle
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Tracker, assert_child_ok, existing_ids, proc_row, proc_rows, run_python

from sysvipc import IPC_PRIVATE, MessageQueue, SharedMemory, ShmidDs

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "shared-memory.md"
PAGE = os.sysconf("SC_PAGESIZE")


def shm_ids() -> set[int]:
    """Every segment of the namespace (the test is skipped unless it is private)."""
    return {ident for kind, ident in existing_ids() if kind == "shm"}


def row(shm_or_id: SharedMemory | int) -> dict[str, str]:
    ident = shm_or_id if isinstance(shm_or_id, int) else shm_or_id.id
    r = proc_row("shm", ident)
    assert r is not None, f"segment {ident} is not in /proc/sysvipc/shm"
    return r


MakeShm = Callable[..., SharedMemory]


@pytest.fixture
def make(ipc: Tracker) -> Iterator[MakeShm]:
    """SharedMemory(...) whose segment is removed and handle closed at teardown."""
    handles: list[SharedMemory] = []

    def make(*args: Any, **kwargs: Any) -> SharedMemory:
        shm = SharedMemory(*args, **kwargs)
        ipc.track("shm", shm.id)
        handles.append(shm)
        return shm

    yield make
    for shm in handles:
        shm.close()


# --------------------------------------------------------------------------
# Construction and key rules
# --------------------------------------------------------------------------


def test_key_none_creates_under_a_random_key(make: MakeShm) -> None:
    a = make(size=100)
    b = make(size=100)
    assert a.created and b.created
    assert a.key != 0 and b.key != 0 and a.key != b.key and 0 < a.key < 2**31
    assert int(row(a)["key"]) == a.key and int(row(a)["size"]) == 100
    assert a.size == len(a) == 100 and not a.readonly and not a.closed


def test_ipc_private(make: MakeShm) -> None:
    a = make(IPC_PRIVATE, 5000)
    b = make(IPC_PRIVATE, 5000)
    assert a.key == 0 and a.created and a.id != b.id
    assert int(row(a)["key"]) == 0 and int(row(a)["size"]) == 5000


def test_create_then_open(make: MakeShm, key: int) -> None:
    a = make(key, 3000, create=True)
    assert a.created and a.key == key and int(row(a)["key"]) == key
    b = make(key, 3000, create=True)  # exists: opened, not created
    assert not b.created and b.id == a.id
    c = make(key)  # size 0: the existing size
    assert not c.created and c.id == a.id and c.size == 3000
    d = make(key, 100)  # smaller than the segment: opened at its full size
    assert d.size == 3000
    a.write(b"shared")
    assert c.read(6) == b"shared"


def test_exclusive(make: MakeShm, key: int) -> None:
    a = make(key, 4096, exclusive=True)
    assert a.created
    before = shm_ids()
    with pytest.raises(FileExistsError):
        SharedMemory(key, 4096, exclusive=True)
    with pytest.raises(FileExistsError):
        SharedMemory(key, 4096, create=True, exclusive=True)
    assert shm_ids() == before


def test_open_missing_key(key: int) -> None:
    before = shm_ids()
    with pytest.raises(FileNotFoundError):
        SharedMemory(key)
    with pytest.raises(FileNotFoundError):
        SharedMemory(key, 4096)
    assert shm_ids() == before


def test_open_larger_than_existing_fails(make: MakeShm, key: int) -> None:
    a = make(key, 100, create=True)
    with pytest.raises(OSError) as info:
        SharedMemory(key, 200)
    assert info.value.errno == errno.EINVAL
    assert a.size == 100 and int(row(a)["nattch"]) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"size": 0},
        {"key": IPC_PRIVATE},
        {"key": IPC_PRIVATE, "size": 0},
        {"key": "KEY", "exclusive": True},
        {"key": "KEY", "size": 0, "exclusive": True},
    ],
    ids=repr,
)
def test_size_required_to_create(kwargs: dict[str, Any], key: int) -> None:
    if kwargs.get("key") == "KEY":
        kwargs["key"] = key
    before = shm_ids()
    with pytest.raises(ValueError, match="size"):
        SharedMemory(**kwargs)
    assert shm_ids() == before


def test_size_required_to_create_missing_key_with_create(key: int) -> None:
    before = shm_ids()
    with pytest.raises((ValueError, OSError)):
        SharedMemory(key, create=True)
    assert shm_ids() == before


def test_size_required_to_create_with_create_is_a_value_error(key: int) -> None:
    with pytest.raises(ValueError, match="size"):
        SharedMemory(key, create=True)


def test_create_true_size_zero_opens_existing(make: MakeShm, key: int) -> None:
    a = make(key, 4096, create=True)
    b = make(key, create=True)
    assert b.id == a.id and b.size == 4096 and not b.created


BAD_ARGS: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"size": 2**64 + 100}, ValueError),
    ({"size": 2**63}, ValueError),
    ({"size": 2**128}, ValueError),
    ({"size": -1}, ValueError),
    ({"size": -(2**64) + 100}, ValueError),
    ({"size": 1.5}, TypeError),
    ({"size": "100"}, TypeError),
    ({"size": None}, TypeError),
    ({"size": 100, "mode": 0o1000}, ValueError),
    ({"size": 100, "mode": 0o4600}, ValueError),
    ({"size": 100, "mode": -1}, ValueError),
    ({"size": 100, "mode": 2**32 + 0o600}, ValueError),
    ({"size": 100, "mode": True}, TypeError),
    ({"size": 100, "mode": 0.5}, TypeError),
    ({"size": 100, "mode": "600"}, TypeError),
    ({"key": 2**32, "size": 100, "create": True}, ValueError),
    ({"key": 2**32, "size": 100, "create": True}, ValueError),
    ({"key": 2**32 + 5, "size": 100, "create": True}, ValueError),
    ({"key": -(2**31) - 1, "size": 100, "create": True}, ValueError),
    ({"key": "1", "size": 100, "create": True}, TypeError),
    ({"key": 1.0, "size": 100, "create": True}, TypeError),
    ({"key": True, "size": 100, "create": True}, TypeError),
    ({"size": 100, "huge_page_size": 4096}, ValueError),
    ({"size": 100, "huge_page_size": 3 << 20}, ValueError),
    ({"size": 100, "bogus": 1}, TypeError),
]


@pytest.mark.parametrize(("kwargs", "error"), BAD_ARGS, ids=[repr(k) for k, _ in BAD_ARGS])
def test_bad_arguments_create_nothing(kwargs: dict[str, Any], error: type[Exception]) -> None:
    before = shm_ids()
    with pytest.raises(error):
        SharedMemory(**kwargs)
    assert shm_ids() == before


def test_new_segments_are_zero_filled(make: MakeShm, key: int) -> None:
    for shm in (make(size=PAGE * 3 + 5), make(key, 70000, create=True), make(IPC_PRIVATE, 1)):
        data = bytes(shm)
        assert len(data) == shm.size and data == bytes(shm.size)
        assert not np.frombuffer(shm, np.uint8).any()


def test_creation_touches_no_page(make: MakeShm) -> None:
    """The kernel zero-fills lazily: nothing may be written at creation."""
    shm = make(size=64 << 20)
    assert int(row(shm)["rss"]) == 0
    shm.write(b"x", (64 << 20) - 1)
    assert 0 < int(row(shm)["rss"]) <= 64 * PAGE


def test_len_size_bytes_key_id(make: MakeShm) -> None:
    shm = make(size=PAGE + 17)
    r = row(shm)
    assert shm.size == len(shm) == PAGE + 17 == int(r["size"]) == shm.stat().shm_segsz
    assert shm.id == int(r["shmid"]) and shm.key == int(r["key"])
    shm.write(b"abc", PAGE + 14)
    data = bytes(shm)
    assert len(data) == PAGE + 17 and data.endswith(b"abc")
    assert bytes(memoryview(shm)) == data == shm.read() == bytes(shm.buf)
    assert memoryview(shm).nbytes == shm.buf.nbytes == PAGE + 17
    assert memoryview(shm).format == "B" and memoryview(shm).ndim == 1


def test_from_id(make: MakeShm) -> None:
    a = make(size=4096)
    b = SharedMemory.from_id(a.id)
    try:
        assert b == a and b.key == a.key and b.size == 4096 and not b.created
        a.write(b"hi")
        assert b.read(2) == b"hi"
    finally:
        b.close()
    with pytest.raises(ValueError):
        SharedMemory.from_id(-1)
    with pytest.raises(TypeError):
        SharedMemory.from_id("0")  # type: ignore[arg-type]
    unused = max(shm_ids() | {0}) + 1000
    with pytest.raises(OSError):
        SharedMemory.from_id(unused)


# --------------------------------------------------------------------------
# read / write / read_into
# --------------------------------------------------------------------------


def test_read_write_correctness(make: MakeShm) -> None:
    shm = make(size=1000)
    assert shm.write(b"hello") == 5
    assert shm.write(b"world", 995) == 5
    assert shm.write(data=bytearray(b"kw"), offset=100) == 2
    assert shm.write(b"", 1000) == 0
    assert shm.read(5) == b"hello"
    assert shm.read(5, 995) == b"world" == shm.read(offset=995)
    assert shm.read(size=2, offset=100) == b"kw"
    assert shm.read(None, 998) == b"ld"
    assert shm.read(0, 1000) == b"" == shm.read(offset=1000)
    assert len(shm.read()) == 1000
    # any bytes-like object
    assert shm.write(memoryview(b"xyz")[1:], 200) == 2
    assert shm.write(array.array("I", [1, 2]), 300) == 8
    assert shm.write(np.arange(3, dtype=np.uint16), 400) == 6
    assert shm.read(2, 200) == b"yz"
    assert shm.read(8, 300) == array.array("I", [1, 2]).tobytes()
    assert np.frombuffer(shm.read(6, 400), np.uint16).tolist() == [0, 1, 2]


def test_write_from_the_segment_itself_overlapping(make: MakeShm) -> None:
    shm = make(size=4 << 20)
    pattern = (np.arange(4 << 20, dtype=np.uint32) % 251).astype(np.uint8).tobytes()
    for n in (100, 2 << 20):  # below and above the GIL-releasing size
        shm.write(pattern)
        shm.write(shm.buf[0:n], 50)  # memmove semantics
        assert shm.read(n, 50) == pattern[:n]
        shm.write(pattern)
        shm.write(shm.buf[50 : 50 + n], 0)
        assert shm.read(n) == pattern[50 : 50 + n]


def test_read_into_correctness(make: MakeShm) -> None:
    shm = make(size=1000)
    shm.write(bytes(range(200)), 800)
    buf = bytearray(10)
    assert shm.read_into(buf, 800) == 10 and buf == bytes(range(10))
    assert shm.read_into(buffer=buf, offset=990) == 10 and buf == bytes(range(190, 200))
    arr = np.zeros(5, np.uint16)
    assert shm.read_into(arr, 800) == 10
    assert arr.tobytes() == bytes(range(10))
    assert shm.read_into(bytearray(), 1000) == 0
    mv = memoryview(bytearray(20))
    assert shm.read_into(mv[5:10], 805) == 5 and bytes(mv[5:10]) == bytes(range(5, 10))


OUT_OF_BOUNDS = [
    {"offset": 1001},
    {"offset": -1},
    {"offset": 2**63},
    {"offset": 2**63 - 1},
    {"offset": 2**64},
    {"offset": 2**64 + 1},
    {"offset": -(2**63)},
    {"offset": 999, "n": 2},
    {"offset": 1000, "n": 1},
    {"offset": 0, "n": 1001},
]


@pytest.mark.parametrize("case", OUT_OF_BOUNDS, ids=repr)
def test_read_bounds(make: MakeShm, case: dict[str, int]) -> None:
    shm = make(size=1000)
    with pytest.raises(ValueError):
        shm.read(case.get("n", 1), case["offset"])
    if "n" not in case:
        with pytest.raises(ValueError):
            shm.read(offset=case["offset"])


@pytest.mark.parametrize("size", [1001, 2**63, 2**63 - 1, 2**64, -1, -(2**63)])
def test_read_size_bounds(make: MakeShm, size: int) -> None:
    shm = make(size=1000)
    with pytest.raises(ValueError):
        shm.read(size)
    with pytest.raises(ValueError):
        shm.read(size, 10)


@pytest.mark.parametrize("case", OUT_OF_BOUNDS, ids=repr)
def test_write_bounds_write_nothing(make: MakeShm, case: dict[str, int]) -> None:
    shm = make(size=1000)
    with pytest.raises(ValueError):
        shm.write(b"\xff" * case.get("n", 1), case["offset"])
    assert shm.read() == bytes(1000)


@pytest.mark.parametrize("case", OUT_OF_BOUNDS, ids=repr)
def test_read_into_bounds_fill_nothing(make: MakeShm, case: dict[str, int]) -> None:
    shm = make(size=1000)
    shm.write(b"\xff" * 1000)
    dest = bytearray(case.get("n", 1))
    with pytest.raises(ValueError):
        shm.read_into(dest, case["offset"])
    assert dest == bytes(len(dest))


def test_argument_types(make: MakeShm) -> None:
    shm = make(size=100)
    for call in (
        lambda: shm.read(1.0),
        lambda: shm.read(1, 1.0),
        lambda: shm.read("1"),
        lambda: shm.write("text"),
        lambda: shm.write(None),
        lambda: shm.write(b"x", "0"),
        lambda: shm.write(b"x", 0.0),
        lambda: shm.read_into(b"immutable"),
        lambda: shm.read_into(bytearray(1), None),
    ):
        with pytest.raises((TypeError, BufferError)):
            call()
    # non-contiguous sources and destinations are refused, not mis-copied
    with pytest.raises((BufferError, TypeError, ValueError)):
        shm.write(memoryview(b"abcdef")[::2])
    with pytest.raises((BufferError, TypeError, ValueError)):
        shm.read_into(np.zeros(10, np.uint8)[::2])
    assert shm.read() == bytes(100)


def test_unknown_keywords_do_not_crash() -> None:
    """sysv_ipc crashed on write(foo=1): an uninitialised Py_buffer released."""
    proc = run_python(
        """
        import numpy as np
        from sysvipc import SharedMemory
        with SharedMemory(size=100, remove_on_close=True) as shm:
            calls = [
                lambda: shm.write(b"x", foo=1),
                lambda: shm.write(b"x", 0, 1),
                lambda: shm.write(),
                lambda: shm.write(data=b"x", offset=0, bogus=None),
                lambda: shm.read(foo=1),
                lambda: shm.read(1, 2, 3),
                lambda: shm.read_into(bytearray(1), foo=1),
                lambda: shm.read_into(),
                lambda: shm.ndarray(np.uint8, foo=1),
                lambda: shm._attachment.write(b"x", foo=1),
                lambda: shm._attachment.read_into(bytearray(1), 0, 0),
                lambda: SharedMemory(size=10, foo=1),
                lambda: SharedMemory.from_id(shm.id, foo=1),
            ]
            for call in calls:
                try:
                    call()
                except TypeError:
                    pass
                else:
                    raise AssertionError("accepted a bad argument")
            assert shm.read(1) == b"\\0"
        print("ok")
        """,
        cwd=ROOT,
    )
    assert_child_ok(proc)


def test_large_offsets_are_not_truncated(make: MakeShm) -> None:
    """Offsets past 4 GiB (noreserve: only the touched pages are used)."""
    size = (4 << 30) + 2 * PAGE
    shm = make(size=size, noreserve=True)
    high = (4 << 30) + 10
    shm.write(b"far", high)
    assert shm.read(3, high) == b"far"
    assert shm.read(3, 10) == b"\0\0\0"
    assert shm.read(3, high - (1 << 32)) == b"\0\0\0"
    assert shm.ndarray(np.uint8, 3, offset=high).tobytes() == b"far"
    with pytest.raises(ValueError):
        shm.read(1, size)
    assert int(row(shm)["rss"]) <= 16 * PAGE


# --------------------------------------------------------------------------
# ndarray
# --------------------------------------------------------------------------


def test_ndarray_defaults_and_shapes(make: MakeShm) -> None:
    shm = make(size=4096 + 4)
    a = shm.ndarray(np.float64)
    assert a.shape == (512,) and a.dtype == np.float64 and a.flags.c_contiguous
    assert shm.ndarray(np.uint8).shape == (4100,)
    assert shm.ndarray("u4", offset=8).shape == (1023,)
    assert shm.ndarray(np.int16, 10).shape == (10,)
    assert shm.ndarray(np.int16, (2, 3, 4)).shape == (2, 3, 4)
    assert shm.ndarray(np.uint8, (0,)).shape == (0,)
    assert shm.ndarray(np.uint8, offset=4100).shape == (0,)
    assert shm.ndarray(np.uint8, 4100).shape == (4100,)
    assert shm.ndarray(np.float64, 511, offset=8).shape == (511,)
    # zero-copy and writable
    a[1] = 1.5
    assert np.frombuffer(shm.read(8, 8), np.float64)[0] == 1.5
    assert np.shares_memory(a, np.frombuffer(shm, np.uint8))
    assert a.flags.writeable and not a.flags.owndata
    b = shm.ndarray(np.uint8, 4, offset=8)
    b[:] = 7
    assert shm.read(4, 8) == b"\x07" * 4


def test_ndarray_order_f(make: MakeShm) -> None:
    shm = make(size=4096)
    f = shm.ndarray(np.int32, (3, 4), order="F")
    c = shm.ndarray(np.int32, (3, 4), order="C")
    assert f.flags.f_contiguous and not f.flags.c_contiguous
    assert f.strides == (4, 12) and c.strides == (16, 4)
    f[...] = np.arange(12).reshape(3, 4)
    flat = np.frombuffer(shm.read(48), np.int32)
    assert flat.tolist() == np.arange(12).reshape(3, 4).T.ravel().tolist()
    assert (c.ravel(order="C") == flat).all()
    with pytest.raises(ValueError):
        shm.ndarray(np.int32, (3, 4), order="A")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        shm.ndarray(np.int32, (3, 4), order="c")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dtype": np.uint8, "offset": 4097},
        {"dtype": np.uint8, "offset": -1},
        {"dtype": np.uint8, "offset": 2**63},
        {"dtype": np.uint8, "offset": 2**64 + 1},
        {"dtype": np.uint8, "shape": 4097},
        {"dtype": np.uint8, "shape": (4097,)},
        {"dtype": np.uint8, "shape": 1, "offset": 4096},
        {"dtype": np.uint8, "shape": (64, 65)},
        {"dtype": np.uint8, "shape": (2**62, 2**62)},
        {"dtype": np.uint8, "shape": (2**63, 0, 2**63)},
        {"dtype": np.uint8, "shape": (-1,)},
        {"dtype": np.uint8, "shape": (4, -1)},
        {"dtype": np.float64, "shape": 513},
        {"dtype": np.float64, "offset": 8, "shape": 512},
        {"dtype": np.float64, "offset": 1},
        {"dtype": np.float64, "offset": 4},
        {"dtype": np.int32, "offset": 2},
        {"dtype": np.uint8, "order": "X"},
        {"dtype": "V0"},
    ],
    ids=repr,
)
def test_ndarray_bounds_and_alignment(make: MakeShm, kwargs: dict[str, Any]) -> None:
    shm = make(size=4096)
    with pytest.raises(ValueError):
        shm.ndarray(**kwargs)


def test_ndarray_bad_types(make: MakeShm) -> None:
    shm = make(size=4096)
    with pytest.raises(TypeError):
        shm.ndarray(np.uint8, offset=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        shm.ndarray(np.uint8, shape=(2.0,))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        shm.ndarray("not a dtype")


def test_ndarray_unaligned_dtype_allowed(make: MakeShm) -> None:
    shm = make(size=4096)
    packed = np.dtype([("a", "u1"), ("b", "<u4")])  # alignment 1
    a = shm.ndarray(packed, 10, offset=3)
    a["b"][0] = 0xDEADBEEF
    assert shm.read(4, 4) == (0xDEADBEEF).to_bytes(4, "little")


def test_ndarray_without_numpy_is_a_clear_error() -> None:
    proc = run_python(
        """
        import sys
        sys.modules["numpy"] = None   # numpy "not installed"
        from sysvipc import SharedMemory
        with SharedMemory(size=4096, remove_on_close=True) as shm:
            shm.write(b"ok")
            assert bytes(memoryview(shm)[:2]) == b"ok"
            try:
                shm.ndarray("u1")
            except ModuleNotFoundError as e:
                assert "numpy" in str(e), e
            else:
                raise AssertionError("no error")
        print("ok")
        """,
        cwd=ROOT,
    )
    assert_child_ok(proc)


# --------------------------------------------------------------------------
# stat, set, lock, remove, close
# --------------------------------------------------------------------------


def test_stat_matches_proc(make: MakeShm, key: int) -> None:
    shm = make(key, 12345, create=True, mode=0o640)
    st = shm.stat()
    assert isinstance(st, ShmidDs)
    r = row(shm)
    assert st.shm_segsz == int(r["size"]) == 12345
    assert st.shm_cpid == int(r["cpid"]) == os.getpid()
    assert st.shm_lpid == int(r["lpid"]) == os.getpid()
    assert st.shm_nattch == int(r["nattch"]) == 1
    assert st.shm_perm.mode == int(r["perms"], 8) and st.shm_perm.permissions == 0o640
    assert st.shm_perm.key == int(r["key"]) == key
    assert st.shm_perm.uid == int(r["uid"]) == os.geteuid()
    assert st.shm_perm.cuid == int(r["cuid"]) == os.geteuid()
    assert st.shm_perm.gid == int(r["gid"]) and st.shm_perm.cgid == int(r["cgid"])
    assert st.shm_atime == int(r["atime"]) > 0 and st.shm_ctime == int(r["ctime"]) > 0
    assert st.shm_dtime == int(r["dtime"]) == 0
    assert abs(st.shm_ctime - time.time()) < 60
    assert not st.marked_for_removal and not st.locked
    other = SharedMemory(key)
    assert shm.stat().shm_nattch == 2 == int(row(shm)["nattch"])
    other.close()
    st = shm.stat()
    assert st.shm_nattch == 1 and st.shm_dtime > 0 and st.shm_dtime == int(row(shm)["dtime"])


def test_stat_lpid_from_another_process(make: MakeShm) -> None:
    shm = make(size=4096)
    proc = run_python(
        f"""
        import os
        from sysvipc import SharedMemory
        s = SharedMemory.from_id({shm.id})
        s.write(b"child")
        print(s.stat().shm_nattch, os.getpid())
        s.close()
        """,
        cwd=ROOT,
    )
    assert_child_ok(proc)
    nattch, pid = map(int, proc.stdout.split())
    assert nattch == 2
    st = shm.stat()
    assert st.shm_lpid == pid != os.getpid()
    assert st.shm_lpid == int(row(shm)["lpid"]) and st.shm_nattch == 1
    assert shm.read(5) == b"child"


def test_set_mode(make: MakeShm) -> None:
    shm = make(size=4096)
    before = shm.stat()
    shm.set(mode=0o644)
    st = shm.stat()
    assert st.shm_perm.permissions == 0o644 and int(row(shm)["perms"], 8) == 0o644
    assert st.shm_perm.uid == before.shm_perm.uid and st.shm_perm.gid == before.shm_perm.gid
    shm.set(uid=os.geteuid(), gid=os.getegid())
    assert shm.stat().shm_perm.permissions == 0o644
    shm.set()
    assert shm.stat().shm_perm.permissions == 0o644
    with pytest.raises(ValueError):
        shm.set(mode=0o1777)
    with pytest.raises(TypeError):
        shm.set(mode="644")  # type: ignore[arg-type]
    assert shm.stat().shm_perm.permissions == 0o644


def test_lock_unlock(make: MakeShm) -> None:
    shm = make(size=4 * PAGE)
    try:
        shm.lock()
    except OSError as e:
        if e.errno in (errno.EPERM, errno.ENOMEM):
            pytest.skip(
                f"the kernel refuses SHM_LOCK here ({e}): needs CAP_IPC_LOCK or RLIMIT_MEMLOCK"
            )
        raise
    try:
        assert shm.stat().locked and int(row(shm)["perms"], 8) & 0o2000
        shm.write(b"locked")
        assert shm.read(6) == b"locked"
    finally:
        shm.unlock()
    assert not shm.stat().locked and not int(row(shm)["perms"], 8) & 0o2000


def test_remove_marks_and_goes_at_last_detach(ipc: Tracker, key: int) -> None:
    shm = SharedMemory(key, 4096, create=True)
    ipc.track("shm", shm.id)
    other = SharedMemory(key)
    shm.remove()
    st = shm.stat()
    assert st.marked_for_removal and int(row(shm)["perms"], 8) & 0o1000
    assert int(row(shm)["key"]) == 0  # no longer reachable by key
    with pytest.raises(FileNotFoundError):
        SharedMemory(key)
    shm.write(b"still usable")
    assert other.read(12) == b"still usable"
    shm.close()
    assert proc_row("shm", other.id) is not None  # `other` is still attached
    other.close()
    assert proc_row("shm", other.id) is None


def test_remove_waits_for_views(ipc: Tracker) -> None:
    shm = SharedMemory(size=4096)
    sid = ipc.track("shm", shm.id)
    view = np.frombuffer(shm, np.uint8)
    shm.remove()
    shm.close()
    view[0] = 1  # the mapping is still there
    assert proc_row("shm", sid) is not None and int(row(sid)["nattch"]) == 1
    del view
    # The handle exported a buffer itself, so a bare reference to it (numpy's
    # ndarray(buffer=shm)) could still use the address: its mapping stays
    # until the handle goes too (issue 16).
    assert proc_row("shm", sid) is not None
    del shm
    gc.collect()
    assert proc_row("shm", sid) is None


def test_close_is_idempotent_and_never_removes(make: MakeShm, key: int) -> None:
    shm = make(key, 4096, create=True)
    shm.write(b"kept")
    shm.close()
    assert shm.closed
    shm.close()
    r = row(shm)
    assert int(r["nattch"]) == 0 and not int(r["perms"], 8) & 0o1000
    again = make(key)
    assert again.id == shm.id and again.read(4) == b"kept"


def test_remove_on_close(ipc: Tracker) -> None:
    shm = SharedMemory(size=4096, remove_on_close=True)
    ipc.track("shm", shm.id)
    assert proc_row("shm", shm.id) is not None
    shm.close()
    assert proc_row("shm", shm.id) is None
    shm.close()
    with SharedMemory(size=4096, remove_on_close=True) as shm2:
        ipc.track("shm", shm2.id)
        assert proc_row("shm", shm2.id) is not None
    assert proc_row("shm", shm2.id) is None


def test_remove_on_close_with_views_alive(ipc: Tracker) -> None:
    with SharedMemory(size=4096, remove_on_close=True) as shm:
        sid = ipc.track("shm", shm.id)
        view = shm.buf
    assert int(row(sid)["perms"], 8) & 0o1000  # marked, still mapped
    view[0] = 3
    assert view[0] == 3
    del view
    assert proc_row("shm", sid) is None


def test_remove_at_last_detach(ipc: Tracker, key: int) -> None:
    shm = SharedMemory(key, 4096, create=True, remove_at_last_detach=True)
    sid = ipc.track("shm", shm.id)
    assert shm.stat().marked_for_removal and int(row(sid)["key"]) == 0
    again = SharedMemory.from_id(sid)  # attachable by id (Linux)
    again.write(b"x")
    assert shm.read(1) == b"x"
    again.close()
    shm.close()
    assert proc_row("shm", sid) is None


def test_remove_at_last_detach_never_removes_an_opened_segment(make: MakeShm, key: int) -> None:
    owner = make(key, 4096, create=True)
    opened = SharedMemory(key, create=True, remove_at_last_detach=True)
    opened.close()
    assert not owner.stat().marked_for_removal
    opened = SharedMemory(key, remove_at_last_detach=True)
    opened.close()
    assert not owner.stat().marked_for_removal


def test_with_statement(make: MakeShm) -> None:
    shm = make(size=4096)
    with shm as entered:
        assert entered is shm
    assert shm.closed and proc_row("shm", shm.id) is not None
    with pytest.raises(ValueError):
        with shm:
            pass
    other = SharedMemory.from_id(shm.id)
    with pytest.raises(KeyError):
        with other:
            raise KeyError
    assert other.closed


def test_closed_handle_raises_value_error(make: MakeShm) -> None:
    shm = make(size=4096)
    shm.close()
    for call in (
        lambda: shm.read(),
        lambda: shm.write(b"x"),
        lambda: shm.read_into(bytearray(1)),
        lambda: shm.ndarray(np.uint8),
        lambda: shm.buf,
        lambda: shm.stat(),
        lambda: shm.set(mode=0o600),
        lambda: shm.lock(),
        lambda: shm.unlock(),
        lambda: memoryview(shm),
        lambda: bytes(shm),
    ):
        with pytest.raises(ValueError, match="closed"):
            call()
    assert shm.size == len(shm) == 4096  # plain attributes stay readable


def test_repr(make: MakeShm) -> None:
    shm = make(size=100)
    assert repr(shm) == f"<SharedMemory id={shm.id} key={shm.key:#010x} size=100>"
    ro = SharedMemory.from_id(shm.id, readonly=True)
    assert repr(ro) == f"<SharedMemory id={shm.id} key={shm.key:#010x} size=100 readonly>"
    ro.close()
    assert repr(ro) == f"<SharedMemory id={shm.id} key={shm.key:#010x} closed>"
    assert repr(make(IPC_PRIVATE, 1)).startswith("<SharedMemory id=")


def test_equality_and_hash(make: MakeShm, ipc: Tracker) -> None:
    a = make(size=100)
    b = SharedMemory.from_id(a.id)
    c = make(size=100)
    try:
        assert a == b and hash(a) == hash(b) and a != c
        assert len({a, b, c}) == 2
        b.close()
        assert a == b  # identity is the id, open or closed
        assert a != a.id and a != object()
        q = MessageQueue(key=None, remove_on_close=True)
        ipc.track("msg", q.id)
        try:
            assert a != q and c != q  # the same number in another id space
        finally:
            q.close()
    finally:
        b.close()


def test_pickle_in_process(make: MakeShm) -> None:
    shm = make(size=4096)
    copy = pickle.loads(pickle.dumps(shm))
    try:
        assert copy == shm and copy is not shm and not copy.readonly
        assert shm.stat().shm_nattch == 2
        copy.write(b"via copy")
        assert shm.read(8) == b"via copy"
    finally:
        copy.close()
    ro = SharedMemory.from_id(shm.id, readonly=True)
    ro2 = pickle.loads(pickle.dumps(ro))
    try:
        assert ro2.readonly and ro2.buf.readonly
        with pytest.raises(PermissionError):
            ro2.write(b"x")
    finally:
        ro.close()
        ro2.close()


def test_buf_after_user_released_it(make: MakeShm) -> None:
    shm = make(size=4096)
    with shm.buf as b:
        b[0] = 1
    assert shm.buf[0] == 1


# --------------------------------------------------------------------------
# hugetlb, noreserve
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "kwargs"),
    [
        (2 << 20, {"hugetlb": True}),
        (4096, {"hugetlb": True}),
        (2 << 20, {"huge_page_size": 2 << 20}),
        (2 << 20, {"hugetlb": True, "huge_page_size": 2 << 20}),
        (1 << 30, {"hugetlb": True, "huge_page_size": 1 << 30}),
    ],
    ids=repr,
)
def test_hugetlb_works_or_fails_clearly(ipc: Tracker, size: int, kwargs: dict[str, Any]) -> None:
    before = shm_ids()
    try:
        shm = SharedMemory(size=size, **kwargs)
    except OSError as e:
        assert re.search(r"huge.?page", str(e), re.I), e
        assert e.errno is not None
        assert shm_ids() == before  # nothing left behind
        return
    ipc.track("shm", shm.id)
    shm.close()
    # Reserved huge pages cannot fault, but touch them in a child anyway.
    proc = run_python(
        f"""
        from sysvipc import SharedMemory
        with SharedMemory.from_id({shm.id}) as shm:
            shm.write(b"huge", {size} - 4)
            assert shm.read(4, {size} - 4) == b"huge" and shm.size == {size}
        """,
        cwd=ROOT,
    )
    assert_child_ok(proc)


def free_huge_pages() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
    return 0


def test_hugetlb_noreserve_never_crashes() -> None:
    proc = run_python(
        """
        import sys
        from sysvipc import SharedMemory
        try:
            shm = SharedMemory(size=2 << 20, hugetlb=True, noreserve=True,
                               remove_at_last_detach=True)
        except ValueError as e:    # refused: the combination can SIGBUS
            assert "noreserve" in str(e), e
            sys.exit(0)
        try:
            shm.write(b"x", 0)
            assert shm.read(1) == b"x"
        except OSError:            # so is failing clearly on first use
            pass
        shm.close()
        """,
        cwd=ROOT,
    )
    assert_child_ok(proc)


def test_hugetlb_with_key_leaves_nothing(ipc: Tracker, key: int) -> None:
    def with_key() -> list[int]:
        return [int(r["shmid"]) for r in proc_rows("shm") if int(r["key"]) == key]

    try:
        shm = SharedMemory(key, 2 << 20, create=True, hugetlb=True)
    except OSError as e:
        assert re.search(r"huge.?page", str(e), re.I), e
        assert with_key() == []
        return
    ipc.track("shm", shm.id)
    assert shm.key == key and shm.size == 2 << 20
    assert with_key() == [shm.id]
    shm.remove()
    shm.close()
    assert with_key() == []  # removed at the last detach: now


def test_noreserve(make: MakeShm) -> None:
    shm = make(size=256 << 20, noreserve=True)
    assert int(row(shm)["rss"]) == 0
    shm.write(b"end", (256 << 20) - 3)
    assert shm.read(3, (256 << 20) - 3) == b"end" and shm.read(3) == b"\0\0\0"


# --------------------------------------------------------------------------
# The GIL is released for large copies
# --------------------------------------------------------------------------


def test_gil_released_for_large_copies(make: MakeShm) -> None:
    size = 256 << 20
    shm = make(size=size)
    data = bytearray(b"\x5a") * size
    stamps: list[float] = []
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            stamps.append(time.perf_counter())

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    spans: dict[str, tuple[float, float]] = {}
    try:
        time.sleep(0.01)
        for name, op in (
            ("write", lambda: shm.write(data)),
            ("read_into", lambda: shm.read_into(data)),
            ("read", lambda: shm.read()),
        ):
            t0 = time.perf_counter()
            op()
            spans[name] = (t0, time.perf_counter())
    finally:
        stop.set()
        spinner.join(10)
    assert shm.read(4, size - 4) == b"\x5a" * 4
    for name, (t0, t1) in spans.items():
        margin = (t1 - t0) * 0.15
        inside = sum(1 for s in stamps if t0 + margin < s < t1 - margin)
        assert inside > 0, f"no other thread ran during a {t1 - t0:.3f} s {name}()"


# --------------------------------------------------------------------------
# docs/shared-memory.md: every example runs
# --------------------------------------------------------------------------


def docs_blocks() -> list[str]:
    if not DOCS.exists():
        return []
    return re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), flags=re.M | re.S)


def test_docs_have_examples() -> None:
    assert len(docs_blocks()) >= 10


@pytest.mark.parametrize("number", range(len(docs_blocks())))
def test_docs_example_runs(number: int, tmp_path: Path) -> None:
    """Each block is a standalone script (some use multiprocessing's spawn,
    which needs a real file as __main__)."""
    script = tmp_path / f"example_{number}.py"
    script.write_text(docs_blocks()[number])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=tmp_path,
        env=env,
    )
    assert_child_ok(proc)
