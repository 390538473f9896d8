"""SharedMemory lifetime (issue 6): no view can ever crash the interpreter.

Every scenario that could crash runs in a child interpreter (conftest's
``run_python``): a segfault there is a failed test, not a dead test run.
The parent creates each segment with ``ipc.shmget`` (removed at teardown
whatever happens); children attach it by id and check ``shm_nattch`` in
``/proc/sysvipc/shm`` themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Tracker, assert_child_ok, proc_row, run_python

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
SIZE = 4096


# The children's common start: the segment id and a /proc reader.
PRELUDE = """\
import ctypes, gc, sys
import numpy as np
from sysvipc import SharedMemory
from sysvipc import lowlevel as ll

def nattch(shmid):
    with open("/proc/sysvipc/shm") as f:
        header = f.readline().split()
        for line in f:
            row = dict(zip(header, line.split()))
            if row and int(row["shmid"]) == shmid:
                return int(row["nattch"])
    return None

def pattern(n):
    return bytes((i * 7 + 3) % 251 for i in range(n))
"""


def child(sid: int, body: str, **values: object) -> None:
    """Run PRELUDE + body in a fresh interpreter; it must exit 0."""
    header = f"SID = {sid}\nSIZE = {SIZE}\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
    proc = run_python(PRELUDE + header + body, timeout=60, cwd=ROOT)
    assert_child_ok(proc)
    assert proc.stdout.strip().endswith("ok"), proc.stdout


# --------------------------------------------------------------------------
# Every kind of view outlives close() and `del shm`
# --------------------------------------------------------------------------

# name: (expression over `shm`, segment offset of item 0, bytes between items)
VIEWS: dict[str, tuple[str, int, int]] = {
    "memoryview(shm)": ("memoryview(shm)", 0, 1),
    "shm.buf": ("shm.buf", 0, 1),
    "np.frombuffer(shm)": ("np.frombuffer(shm, dtype=np.uint8)", 0, 1),
    "np.asarray(shm)": ("np.asarray(shm)", 0, 1),
    "np.ndarray(buffer=shm.buf)": ("np.ndarray((SIZE,), np.uint8, buffer=shm.buf)", 0, 1),
    "np.ndarray(buffer=shm.buf, offset)": (
        "np.ndarray((800,), np.uint8, buffer=shm.buf, offset=100)",
        100,
        1,
    ),
    "ctypes from_buffer": ("(ctypes.c_uint8 * SIZE).from_buffer(shm)", 0, 1),
    "ctypes from_buffer offset": ("(ctypes.c_uint8 * 800).from_buffer(shm, 100)", 100, 1),
    "shm.ndarray": ("shm.ndarray(np.uint8)", 0, 1),
    "shm.ndarray 2-D column": ("shm.ndarray(np.uint8, (64, 64))[:, 5]", 5, 64),
    "shm.ndarray F order row": ("shm.ndarray(np.uint8, (64, 64), order='F')[3, :]", 3, 64),
    # slices of each
    "memoryview slice": ("memoryview(shm)[100:900]", 100, 1),
    "memoryview strided slice": ("memoryview(shm)[100:900:3]", 100, 3),
    "shm.buf slice": ("shm.buf[100:900]", 100, 1),
    "shm.buf strided slice": ("shm.buf[100:900:7]", 100, 7),
    "np.frombuffer slice": ("np.frombuffer(shm, np.uint8)[100:900]", 100, 1),
    "np.frombuffer strided slice": ("np.frombuffer(shm, np.uint8)[100:900:3]", 100, 3),
    "np.frombuffer reversed": ("np.frombuffer(shm, np.uint8)[900:99:-1]", 900, -1),
    "np.asarray strided slice": ("np.asarray(shm)[5::9]", 5, 9),
    "np.ndarray(buffer=shm.buf) slice": (
        "np.ndarray((SIZE,), np.uint8, buffer=shm.buf)[100:900]",
        100,
        1,
    ),
    "np.ndarray(buffer=shm.buf) strided slice": (
        "np.ndarray((SIZE,), np.uint8, buffer=shm.buf)[100:900:3]",
        100,
        3,
    ),
    "np.ndarray(buffer=memoryview(shm))": (
        "np.ndarray((SIZE,), np.uint8, buffer=memoryview(shm))",
        0,
        1,
    ),
    "np.ndarray(buffer=memoryview slice)": (
        "np.ndarray((80,), np.uint8, buffer=memoryview(shm)[200:400], strides=(2,))",
        200,
        2,
    ),
    "ctypes memoryview slice": (
        "memoryview((ctypes.c_uint8 * SIZE).from_buffer(shm)).cast('B')[100:900]",
        100,
        1,
    ),
    "ctypes as numpy strided": (
        "np.ctypeslib.as_array((ctypes.c_uint8 * SIZE).from_buffer(shm))[100:900:3]",
        100,
        3,
    ),
    "shm.ndarray slice": ("shm.ndarray(np.uint8)[100:900]", 100, 1),
    "shm.ndarray strided slice": ("shm.ndarray(np.uint8)[100:900:3]", 100, 3),
    "view of a view": ("np.asarray(memoryview(np.frombuffer(shm, np.uint8)[10:20]))", 10, 1),
}

VIEW_BODY = """\
shm = SharedMemory.from_id(SID)
before = pattern(SIZE)
shm.write(before)
if CASE == "export-then-close":
    assert bytes(shm) == before   # a buffer exported by the handle itself, released
v = VIEW(shm)
offsets = [BASE + i * STEP for i in range(len(v))]
assert len(v) > 0 and all(0 <= o < SIZE for o in offsets), offsets[:3]
assert [int(v[i]) for i in range(len(v))] == [before[o] for o in offsets]
assert nattch(SID) == 1

if CASE != "del":
    shm.close()
    assert shm.closed
else:
    del shm
    gc.collect()

# The view still reaches the segment itself (not a stand-in):
assert nattch(SID) == 1, nattch(SID)
# data written before close is visible ...
assert [int(v[i]) for i in range(len(v))] == [before[o] for o in offsets]
# ... and writing works and reads back.
after = bytearray(before)
for i, o in enumerate(offsets):
    after[o] = (before[o] + 1) % 256
    v[i] = after[o]
assert [int(v[i]) for i in range(len(v))] == [after[o] for o in offsets]
assert nattch(SID) == 1

# The last view gone (and the closed handle: one that exported a buffer
# itself keeps its mapping while it lives, issue 16), the mapping goes.
del v
if CASE != "del":
    del shm
gc.collect()
assert nattch(SID) == 0, nattch(SID)

# What the view wrote is in the segment.
check = SharedMemory.from_id(SID)
assert check.read() == bytes(after)
check.close()
assert nattch(SID) == 0
print("ok")
"""


# numpy's ndarray(buffer=X) keeps no export, only a reference to the object
# that exported X's memory: for buffer=shm.buf, buffer=memoryview(shm) and
# shm.ndarray() that is the Attachment, which such an array keeps alive; the
# segment is detached when the last of them goes, exported or not.
VIEW_CASES = [
    pytest.param(name, case, id=f"{name}-{case}", marks=[])
    for name in VIEWS
    for case in ("close", "export-then-close", "del")
]


@pytest.mark.parametrize(("name", "case"), VIEW_CASES)
def test_view_outlives_handle(ipc: Tracker, name: str, case: str) -> None:
    expr, base, step = VIEWS[name]
    sid = ipc.shmget(SIZE)
    child(sid, VIEW_BODY, VIEW=f"lambda shm: {expr}", BASE=base, STEP=step, CASE=repr(case))
    assert int(proc_row("shm", sid)["nattch"]) == 0  # type: ignore[index]


def test_view_outlives_with_block(ipc: Tracker) -> None:
    sid = ipc.shmget(SIZE)
    child(
        sid,
        """\
with SharedMemory.from_id(SID) as shm:
    a = np.frombuffer(shm, np.uint32)
    m = shm.buf[8:16]
    a[0] = 12345
assert shm.closed and nattch(SID) == 1
a[1] = 7
m[0] = 9
assert a[0] == 12345 and a[1] == 7 and a[2] == 9
del a
gc.collect()
assert nattch(SID) == 1   # m still holds the mapping
del m, shm   # the handle exported (np.frombuffer): it holds the mapping too
gc.collect()
assert nattch(SID) == 0
print("ok")
""",
    )


def test_many_views_one_mapping(ipc: Tracker) -> None:
    """Several views of one handle: the mapping goes with the last one only."""
    sid = ipc.shmget(SIZE)
    child(
        sid,
        """\
shm = SharedMemory.from_id(SID)
views = [memoryview(shm), shm.buf[:100], np.frombuffer(shm, np.uint8),
         (ctypes.c_uint8 * 10).from_buffer(shm), shm.ndarray(np.uint16)]
shm.close()
for k in range(len(views)):
    assert nattch(SID) == 1
    views[-1][0] = k + 1
    assert views[0][0] == k + 1
    views.pop()
    gc.collect()
assert nattch(SID) == 1   # the closed handle exported: it keeps the mapping
del shm
gc.collect()
assert nattch(SID) == 0
print("ok")
""",
    )


# --------------------------------------------------------------------------
# np.ndarray(buffer=shm): a bare reference, the one documented exception
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    ["np.ndarray((SIZE,), np.uint8, buffer=shm)", "np.ndarray((SIZE,), np.uint8, buffer=shm)[::3]"],
)
def test_bare_reference_after_close_keeps_the_segment(ipc: Tracker, expr: str) -> None:
    """numpy keeps a reference to shm but no buffer export: after close()
    the handle keeps its real mapping as long as it lives (issue 16: never a
    zero-filled stand-in under a live array)."""
    sid = ipc.shmget(SIZE)
    child(
        sid,
        f"""\
shm = SharedMemory.from_id(SID)
data = pattern(SIZE)
shm.write(data)
a = {expr}
assert a[1] == np.frombuffer(data, np.uint8)[a.strides[0]]
shm.close()
assert nattch(SID) == 1          # the handle lives (the array holds it)
assert a[1] == np.frombuffer(data, np.uint8)[a.strides[0]]
a[:] = 42                        # writes reach the segment
a.sum(); bytes(a.tobytes())
del a, shm
gc.collect()
assert nattch(SID) == 0          # detached with the handle
check = SharedMemory.from_id(SID)
expected = bytearray(data)
expected[::{3 if "::3" in expr else 1}] = b"\\x2a" * len(expected[::{3 if "::3" in expr else 1}])
assert check.read() == bytes(expected)
check.close()
print("ok")
""",
    )


def test_bare_reference_kept_alive_while_a_real_view_exists(ipc: Tracker) -> None:
    sid = ipc.shmget(SIZE)
    child(
        sid,
        """\
shm = SharedMemory.from_id(SID)
m = memoryview(shm)
a = np.ndarray((SIZE,), np.uint8, buffer=shm)
shm.close()
a[0] = 5
assert m[0] == 5 and nattch(SID) == 1
m.release()
assert nattch(SID) == 1                  # the handle still holds it
assert a[0] == 5                         # the segment, not a stand-in
a[0] = 1
del a
gc.collect()
assert nattch(SID) == 1                  # `shm` is still bound
del shm
gc.collect()
assert nattch(SID) == 0
check = SharedMemory.from_id(SID)
assert check.read(1) == b"\\x01"
check.close()
print("ok")
""",
    )


def test_bare_reference_after_del_keeps_segment(ipc: Tracker) -> None:
    """`del shm` does not close a handle that an array still references."""
    sid = ipc.shmget(SIZE)
    child(
        sid,
        """\
shm = SharedMemory.from_id(SID)
shm.write(b"\\x07" * SIZE)
a = np.ndarray((SIZE,), np.uint8, buffer=shm)
del shm
gc.collect()
assert nattch(SID) == 1 and (a == 7).all()
a[:10] = 3
del a
gc.collect()
assert nattch(SID) == 0
check = SharedMemory.from_id(SID)
assert check.read(11) == b"\\x03" * 10 + b"\\x07"
check.close()
print("ok")
""",
    )


# --------------------------------------------------------------------------
# A closed handle refuses everything; its views do not
# --------------------------------------------------------------------------


def test_closed_handle_refuses_views_keep_working(ipc: Tracker) -> None:
    sid = ipc.shmget(SIZE)
    child(
        sid,
        """\
import pickle
shm = SharedMemory.from_id(SID)
v = np.frombuffer(shm, np.uint8)
m = shm.buf
shm.close()
shm.close()   # idempotent
calls = {
    "read": lambda: shm.read(),
    "read(1, 0)": lambda: shm.read(1, 0),
    "write": lambda: shm.write(b"x"),
    "read_into": lambda: shm.read_into(bytearray(1)),
    "ndarray": lambda: shm.ndarray(np.uint8),
    "buf": lambda: shm.buf,
    "stat": lambda: shm.stat(),
    "set": lambda: shm.set(mode=0o600),
    "lock": lambda: shm.lock(),
    "unlock": lambda: shm.unlock(),
    "memoryview": lambda: memoryview(shm),
    "bytes": lambda: bytes(shm),
    "np.frombuffer": lambda: np.frombuffer(shm, np.uint8),
    "ctypes": lambda: (ctypes.c_uint8 * 4).from_buffer(shm),
    "with": lambda: shm.__enter__(),
}
for name, call in calls.items():
    try:
        call()
    except ValueError:
        pass
    else:
        raise AssertionError(f"{name} worked on a closed handle")
# numpy finds no buffer either (np.asarray(shm) falls back to a 0-d object
# array holding the handle, which is no view).
for name, call in {
    "np.ndarray(buffer=)": lambda: np.ndarray((4,), np.uint8, buffer=shm),
    "np.asarray(dtype=)": lambda: np.asarray(shm, dtype=np.uint8),
}.items():
    try:
        call()
    except (ValueError, TypeError, BufferError):
        pass
    else:
        raise AssertionError(f"{name} worked on a closed handle")
assert np.asarray(shm).dtype == object
# The existing views do.
v[0] = 1
m[1] = 2
assert bytes(m[:2]) == b"\\x01\\x02" and v[1] == 2
assert nattch(SID) == 1
assert repr(shm).endswith("closed>") and len(shm) == SIZE and shm.id == SID
del v, m, shm
gc.collect()
assert nattch(SID) == 0
print("ok")
""",
    )


def test_views_of_views_made_after_close(ipc: Tracker) -> None:
    sid = ipc.shmget(SIZE)
    child(
        sid,
        """\
shm = SharedMemory.from_id(SID)
v = memoryview(shm)
shm.close()
a = np.frombuffer(v, np.uint32)       # new views from an existing view work
c = (ctypes.c_uint8 * 8).from_buffer(v)
del v
gc.collect()
a[0] = 0x01020304
assert list(c[:4]) == [4, 3, 2, 1]
assert nattch(SID) == 1
del a
gc.collect()
assert nattch(SID) == 1
del c, shm
gc.collect()
assert nattch(SID) == 0
print("ok")
""",
    )


# --------------------------------------------------------------------------
# The Attachment (sysvipc.lowlevel.shmat / shmdt)
# --------------------------------------------------------------------------


def test_attachment_detach_refuses_while_exported(ipc: Tracker) -> None:
    sid = ipc.shmget(SIZE)
    child(
        sid,
        """\
att = ll.shmat(SID)
m = memoryview(att)
a = np.frombuffer(att, np.uint8)
for detach in (att.detach, lambda: ll.shmdt(att)):
    try:
        detach()
    except BufferError:
        pass
    else:
        raise AssertionError("detached under a view")
assert not att.detached and nattch(SID) == 1
m[0] = 1
del a
m.release()
att.detach()
assert att.detached and nattch(SID) == 0
att.detach()          # again: nothing
ll.shmdt(att)
for call in (lambda: memoryview(att), lambda: att.read(), lambda: att.write(b"x"),
             lambda: att.read_into(bytearray(1)), lambda: np.frombuffer(att, np.uint8)):
    try:
        call()
    except ValueError:
        pass
    else:
        raise AssertionError("a detached attachment worked")
check = SharedMemory.from_id(SID)
assert check.read(1) == b"\\x01"
check.close()
print("ok")
""",
    )


def test_attachment_bare_reference_then_detach(ipc: Tracker) -> None:
    sid = ipc.shmget(SIZE)
    child(
        sid,
        """\
att = ll.shmat(SID)
att.write(b"\\x05" * SIZE)
a = np.ndarray((SIZE,), np.uint8, buffer=att)
assert (a == 5).all()
att.detach()                 # no export: allowed
assert nattch(SID) == 0
assert not a.any()           # zeros, not a fault
a[:] = 9
assert (a == 9).all() and int(a.sum()) == 9 * SIZE
del a, att
gc.collect()
check = SharedMemory.from_id(SID)
assert check.read() == b"\\x05" * SIZE
check.close()
print("ok")
""",
    )


def test_attachment_dies_with_last_view(ipc: Tracker) -> None:
    sid = ipc.shmget(SIZE)
    child(
        sid,
        """\
att = ll.shmat(SID)
a = np.frombuffer(att, np.uint8)[::2]
del att
gc.collect()
a[0] = 4
assert nattch(SID) == 1
del a
gc.collect()
assert nattch(SID) == 0
print("ok")
""",
    )


# --------------------------------------------------------------------------
# Read-only attachments: every write path raises, nothing crashes
# --------------------------------------------------------------------------


def test_readonly_every_write_path_raises(ipc: Tracker) -> None:
    sid = ipc.shmget(SIZE)
    child(
        sid,
        """\
import pickle
writer = SharedMemory.from_id(SID)
writer.write(b"\\x11" * SIZE)
ro = SharedMemory.from_id(SID, readonly=True)
assert ro.readonly and ro.buf.readonly and memoryview(ro).readonly

def arr_writeable(a):
    a.flags.writeable = True

def setflags(a):
    a.setflags(write=True)

attempts = {
    "memoryview assign": lambda: memoryview(ro).__setitem__(0, 1),
    "memoryview slice assign": lambda: memoryview(ro).__setitem__(slice(0, 2), b"ab"),
    "memoryview cast assign": lambda: memoryview(ro).cast("I").__setitem__(0, 1),
    "shm.buf assign": lambda: ro.buf.__setitem__(0, 1),
    "shm.buf slice assign": lambda: ro.buf[4:8].__setitem__(0, 1),
    "write()": lambda: ro.write(b"x"),
    "write(empty)": lambda: ro.write(b""),
    "write(at end)": lambda: ro.write(b"", SIZE),
    "np.frombuffer assign": lambda: np.frombuffer(ro, np.uint8).__setitem__(0, 1),
    "np.frombuffer slice assign": lambda: np.frombuffer(ro, np.uint8)[::2].__setitem__(0, 1),
    "np.asarray assign": lambda: np.asarray(ro).__setitem__(0, 1),
    "np.frombuffer writeable=True": lambda: arr_writeable(np.frombuffer(ro, np.uint8)),
    "np.frombuffer setflags": lambda: setflags(np.frombuffer(ro, np.uint8)),
    "np.ndarray(buffer=ro) assign": lambda: np.ndarray((4,), np.uint8, buffer=ro).__setitem__(0, 1),
    "np.ndarray(buffer=ro) writeable=True": lambda: arr_writeable(np.ndarray((4,), np.uint8, buffer=ro)),
    "np.ndarray(buffer=ro.buf) writeable=True": lambda: arr_writeable(np.ndarray((4,), np.uint8, buffer=ro.buf)),
    "np.copyto": lambda: np.copyto(np.frombuffer(ro, np.uint8), 1),
    "ufunc out=": lambda: np.add(1, 1, out=np.frombuffer(ro, np.uint8)[:1]),
    "shm.ndarray assign": lambda: ro.ndarray(np.uint8).__setitem__(0, 1),
    "shm.ndarray writeable=True": lambda: arr_writeable(ro.ndarray(np.uint32)),
    "shm.ndarray fill": lambda: ro.ndarray(np.uint8).fill(1),
    "ctypes from_buffer": lambda: (ctypes.c_uint8 * 4).from_buffer(ro),
    "ctypes from_buffer(ro.buf)": lambda: (ctypes.c_uint8 * 4).from_buffer(ro.buf),
    "read_into itself": lambda: ro.read_into(ro.buf),
    "other read_into": lambda: writer.read_into(ro.buf),
    "pickled copy assign": lambda: pickle.loads(pickle.dumps(ro)).buf.__setitem__(0, 1),
}
for name, attempt in attempts.items():
    try:
        attempt()
    except (TypeError, ValueError, BufferError, PermissionError):
        pass
    else:
        raise AssertionError(f"{name}: wrote to a read-only attachment")
gc.collect()

# Also after close(), through views that outlive the handle.
views = [memoryview(ro), np.frombuffer(ro, np.uint8), ro.ndarray(np.uint8)[::2], ro.buf[1:]]
ro.close()
for v in views:
    assert v[0] == 0x11
    try:
        v[0] = 1
    except (TypeError, ValueError):
        pass
    else:
        raise AssertionError("wrote through a read-only view after close")
del views, v, ro
gc.collect()

# The low level attachment too.
att = ll.shmat(SID, ll.SHM_RDONLY)
assert att.readonly
for attempt in (lambda: att.write(b"x"), lambda: memoryview(att).__setitem__(0, 1),
                lambda: arr_writeable(np.frombuffer(att, np.uint8)),
                lambda: arr_writeable(np.ndarray((4,), np.uint8, buffer=att)),
                lambda: (ctypes.c_char * 4).from_buffer(att)):
    try:
        attempt()
    except (TypeError, ValueError, BufferError, PermissionError):
        pass
    else:
        raise AssertionError("wrote to a read-only Attachment")
del att, attempt
gc.collect()

assert writer.read() == b"\\x11" * SIZE   # nothing changed
writer.close()
gc.collect()
assert nattch(SID) == 0
print("ok")
""",
    )


def test_readonly_write_raises_permission_error(ipc: Tracker) -> None:
    from sysvipc import SharedMemory

    sid = ipc.shmget(SIZE)
    with SharedMemory.from_id(sid, readonly=True) as ro:
        with pytest.raises(PermissionError):
            ro.write(b"abc")
        assert ro.read(3) == b"\0\0\0"
