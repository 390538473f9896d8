"""Hostile input, part 2 (issue 10): a fuzzer over every public function and
method.

Hypothesis draws sequences of calls, each to a public function or method
(``sysvipc.lowlevel``, the raw ``*ctl`` of the C core, ``MessageQueue``,
``SemaphoreSet``/``Semaphore``, ``SharedMemory`` and ``Attachment``, the
introspection helpers, the async methods) with arbitrary arguments:
integers of any size, floats (nan, inf), None, strings, bytes, buffers
(read-only, released, non-contiguous numpy), lists and tuples, live and
closed handles, objects whose ``__index__``/``__float__``/``__iter__``
raise, and objects whose ``__index__`` closes, removes or detaches the very
object being called while the call parses its arguments.

Every call must succeed or raise TypeError, ValueError, an OSError subclass,
IndexError or BufferError (or the hostile object's own exception).  Calls
that legitimately block are interrupted by a SIGALRM whose handler raises
(counted, and a test of the "raising handler stops the call" path); a call
that ignores it past a watchdog is a hang.

The fuzzer runs in a child interpreter (conftest.run_python), so a crash is
a failed test, not a dead test run; before each call the child writes the
call to a file, which the failure message shows.  The child moves into a
private IPC namespace (unshare(CLONE_NEWIPC), as root) with a small
``shmmax``, so arbitrary keys and ids can only ever reach its own objects;
after each example it removes every object the example created, and at the
end checks the namespace is empty.  Without the privilege for that, the
test is skipped rather than fuzz other people's objects.
"""

from __future__ import annotations

import array
import asyncio
import ctypes
import faulthandler
import gc
import inspect
import json
import math
import os
import reprlib
import signal
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import run_python

import sysvipc
from sysvipc import _sysvipc as _c
from sysvipc import lowlevel as ll

SOAK_FACTOR = int(os.environ.get("SYSVIPC_SOAK_FACTOR", "20"))
BOUNDED_EXAMPLES = 250
CALLS_PER_EXAMPLE = 4
ALARM = 0.005  # a call still blocked after this is interrupted
WATCHDOG = 60  # a call stuck this long, despite the alarms, is a hang
CLONE_NEWIPC = 0x08000000

ALLOWED: tuple[type[BaseException], ...] = (
    TypeError,
    ValueError,
    OSError,
    IndexError,
    BufferError,
)


class HostileError(Exception):
    """Raised by the fuzzer's own hostile objects: propagating it is right."""


class Interrupted(Exception):
    """Raised by the SIGALRM handler: the call was (legitimately) blocking."""


# --------------------------------------------------------------------------
# The child: isolation, the pool of live objects, hostile values
# --------------------------------------------------------------------------


def isolate() -> bool:
    """Move into a private IPC namespace with a 16 MiB shmmax."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWIPC) != 0:
        return False
    with open("/proc/sys/kernel/shmmax", "w") as f:
        f.write(str(16 << 20))
    return True


def all_ids(marked: bool = True) -> set[tuple[str, int]]:
    """Every object; without the segments already marked for removal (they
    go at their last detach) unless ``marked``."""
    ids = set()
    for kind, field in (("msg", "msqid"), ("sem", "semid"), ("shm", "shmid")):
        with open(f"/proc/sysvipc/{kind}") as f:
            header = f.readline().split()
            col, perms = header.index(field), header.index("perms")
            for line in f:
                row = line.split()
                if row and (marked or not int(row[perms], 8) & 0o1000):
                    ids.add((kind, int(row[col])))
    return ids


def remove_id(kind: str, ident: int) -> None:
    try:
        if kind == "msg":
            _c.msgctl(ident, ll.IPC_RMID)
        elif kind == "sem":
            _c.semctl(ident, 0, ll.IPC_RMID)
        else:
            _c.shmctl(ident, ll.IPC_RMID)
    except OSError:
        pass


class Pool:
    """The live objects calls aim at, recreated when a call destroys them."""

    def __init__(self) -> None:
        self.q: sysvipc.MessageQueue | None = None
        self.s: sysvipc.SemaphoreSet | None = None
        self.shm: sysvipc.SharedMemory | None = None
        self.ro: sysvipc.SharedMemory | None = None
        self.att: Any = None
        self.sem: Any = None
        self.closed_q = sysvipc.MessageQueue()
        self.closed_q.remove()
        self.closed_q.close()
        self.views: list[memoryview] = []

    def ids(self) -> set[tuple[str, int]]:
        out = set()
        for kind, obj in (("msg", self.q), ("sem", self.s), ("shm", self.shm)):
            if obj is not None:
                out.add((kind, obj.id))
        return out

    def reset(self) -> None:
        """Fresh state for an example: objects alive, queue and set filled."""
        live = all_ids()
        if self.q is None or self.q.closed or ("msg", self.q.id) not in live:
            if self.q is not None:
                remove_id("msg", self.q.id)  # a closed handle's queue: not the fuzzer's
            self.q = sysvipc.MessageQueue()
        if self.s is None or self.s.closed or ("sem", self.s.id) not in live:
            if self.s is not None:
                remove_id("sem", self.s.id)
            self.s = sysvipc.SemaphoreSet(nsems=3)
        if self.shm is None or self.shm.closed or ("shm", self.shm.id) not in live:
            if self.shm is not None:
                remove_id("shm", self.shm.id)
                self.shm.close()
            if self.ro is not None:
                self.ro.close()
            self.shm = sysvipc.SharedMemory(size=8192)
            self.ro = None
        if self.ro is None or self.ro.closed:
            self.ro = sysvipc.SharedMemory.from_id(self.shm.id, readonly=True)
        if self.att is None or self.att.detached:
            self.att = ll.shmat(self.shm.id)
        try:
            self.q.set(mode=0o600, max_bytes=16384)
            while len(self.q) < 3:
                self.q.send(b"pool message %d" % len(self.q), type=len(self.q) + 1, block=False)
            self.s.set(mode=0o600)
            self.s.values = [3, 0, 5]
        except OSError:
            pass
        for view in self.views:
            view.release()
        self.views = [memoryview(self.shm), self.ro.buf]
        self.sem = self.s[0]  # stays usable (or fails cleanly) if the set closes

    def objects(self) -> list[Any]:
        assert self.q is not None and self.s is not None and self.shm is not None
        return [
            self.q,
            self.closed_q,
            self.s,
            self.sem,
            self.shm,
            self.ro,
            self.att,
            self.views[0],
            self.views[1],
        ]

    def mischief(self, kind: str) -> None:
        """Something a hostile __index__ does in the middle of a call."""
        try:
            if kind == "close-queue" and self.q is not None:
                self.q.close()
            elif kind == "remove-queue" and self.q is not None:
                remove_id("msg", self.q.id)
            elif kind == "remove-set" and self.s is not None:
                remove_id("sem", self.s.id)
            elif kind == "close-shm" and self.shm is not None:
                self.shm.close()
            elif kind == "remove-shm" and self.shm is not None:
                remove_id("shm", self.shm.id)
            elif kind == "detach":
                self.att.detach()
            elif kind == "release-views":
                for view in self.views:
                    view.release()
        except (BufferError, ValueError, OSError):
            pass


POOL: Pool | None = None


class Hostile:
    """A value whose conversions misbehave."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"Hostile({self.kind!r})"

    def __index__(self) -> int:
        if self.kind == "index-raises":
            raise HostileError("__index__")
        if self.kind == "index-huge":
            return 2**100
        if self.kind == "index-negative":
            return -(2**70)
        if self.kind == "index-not-int":
            return "3"  # type: ignore[return-value]
        if self.kind.startswith("mischief:") and POOL is not None:
            POOL.mischief(self.kind.split(":", 1)[1])
        return 1

    def __float__(self) -> float:
        if self.kind == "index-raises":
            raise HostileError("__float__")
        if self.kind.startswith("mischief:") and POOL is not None:
            POOL.mischief(self.kind.split(":", 1)[1])
        return math.nan if self.kind == "index-huge" else 0.001

    def __iter__(self) -> Iterator[Any]:
        yield (0, 1)
        if self.kind.startswith("mischief:") and POOL is not None:
            POOL.mischief(self.kind.split(":", 1)[1])
        yield (0, -1)
        raise HostileError("__iter__")

    def __len__(self) -> int:
        raise HostileError("__len__")

    def __getitem__(self, i: int) -> Any:
        raise HostileError("__getitem__")


class Sub(int):
    """An int subclass with a misleading __index__."""

    def __index__(self) -> int:
        return 7


def released_view() -> memoryview:
    view = memoryview(b"released")
    view.release()
    return view


def self_list() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


def make_object(kind: str) -> Any:
    import numpy as np

    makers: dict[str, Callable[[], Any]] = {
        "bytearray": lambda: bytearray(b"abc" * 5),
        "ro-view": lambda: memoryview(b"read-only bytes"),
        "released-view": released_view,
        "array-d": lambda: array.array("d", [1.5, 2.5]),
        "array-i": lambda: array.array("i", [1, 2, 3]),
        "np-strided": lambda: np.arange(20, dtype=np.uint8)[::2],
        "np-2d": lambda: np.zeros((3, 4), dtype=np.int16),
        "np-fortran": lambda: np.asfortranarray(np.ones((3, 5), dtype=np.uint8)),
        "np-readonly": lambda: np.frombuffer(b"12345678", dtype=np.uint8),
        "np-int": lambda: np.int64(5),
        "np-float": lambda: np.float32(0.002),
        "sub-int": lambda: Sub(3),
        "big-bytes": lambda: b"B" * 9000,
        "str": lambda: "text",
        "nul-str": lambda: "a\0b",
        "complex": lambda: 1j,
        "ellipsis": lambda: ...,
        "type": lambda: int,
        "object": object,
        "dict": lambda: {1: 2},
        "set": lambda: {1, 2},
        "generator": lambda: (i for i in range(3)),
        "self-list": self_list,
        "ops-huge": lambda: [(0, 1)] * 70000,
    }
    if kind in makers:
        return makers[kind]()
    return Hostile(kind)


OBJECT_KINDS = [
    "bytearray", "ro-view", "released-view", "array-d", "array-i", "np-strided",
    "np-2d", "np-fortran", "np-readonly", "np-int", "np-float", "sub-int",
    "big-bytes", "str", "nul-str", "complex", "ellipsis", "type", "object",
    "dict", "set", "generator", "self-list", "ops-huge",
    "index-raises", "index-huge", "index-negative", "index-not-int",
    "mischief:close-queue", "mischief:remove-queue", "mischief:remove-set",
    "mischief:close-shm", "mischief:remove-shm", "mischief:detach",
    "mischief:release-views",
]  # fmt: skip

INTS = [
    0, 1, -1, 2, 3, 255, 256, 4096, 8191, 8192, 8193, 16384, 32767, 32768, 65535,
    65536, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32, 2**32 + 1, 2**63 - 1,
    2**63, -(2**63), -(2**63) - 1, 2**64, 2**64 + 100, 10**30,
    ll.IPC_CREAT, ll.IPC_EXCL, ll.IPC_NOWAIT, ll.IPC_RMID, ll.IPC_SET, ll.IPC_STAT,
    ll.IPC_INFO, ll.MSG_NOERROR, ll.MSG_EXCEPT, ll.MSG_COPY, ll.MSG_STAT, ll.MSG_INFO,
    ll.MSG_STAT_ANY, ll.SEM_UNDO, ll.GETALL, ll.GETVAL, ll.GETPID, ll.GETNCNT,
    ll.GETZCNT, ll.SETALL, ll.SETVAL, ll.SEM_STAT, ll.SEM_INFO, ll.SEM_STAT_ANY,
    ll.SHM_RDONLY, ll.SHM_RND, ll.SHM_REMAP, ll.SHM_EXEC, ll.SHM_LOCK, ll.SHM_UNLOCK,
    ll.SHM_STAT, ll.SHM_INFO, ll.SHM_STAT_ANY, ll.SHM_HUGETLB, ll.SHM_NORESERVE,
    ll.IPC_CREAT | ll.IPC_EXCL, ll.IPC_CREAT | 0o777, ll.IPC_NOWAIT | ll.MSG_NOERROR,
    ll.IPC_NOWAIT | ll.MSG_EXCEPT, ll.IPC_NOWAIT | ll.SEM_UNDO, 0o777, 0o1777,
]  # fmt: skip
FLOATS = [0.0, -0.0, 1e-9, 0.001, 0.004, -0.001, 1e9, 1e10, 1e300, math.inf, -math.inf, math.nan]
DTYPES = ["u1", "i8", "f8", "<u4", ">i2", "O", "V3", "U2", "S4", "c16", "i8,f4", "?", "M8[s]"]


def pool_object(i: int) -> Any:
    assert POOL is not None
    objects = POOL.objects()
    return objects[i % len(objects)]


def pool_id(i: int) -> int:
    assert POOL is not None
    handles = [POOL.q, POOL.s, POOL.shm]
    return handles[i % 3].id  # type: ignore[union-attr]


def strategies() -> tuple[Any, dict[str, Any]]:
    """(anything, plausible-by-parameter-name): built once, they reach the
    pool's current objects at draw time."""
    from hypothesis import strategies as st

    ids = st.integers(0, 2).map(pool_id)
    scalar = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-10, 100),
        st.integers(),
        st.integers(-(2**80), 2**80),
        st.sampled_from(INTS),
        ids,
        st.floats(),
        st.sampled_from(FLOATS),
        st.text(max_size=12),
        st.binary(max_size=64),
        st.sampled_from(DTYPES),
        st.sampled_from(OBJECT_KINDS).map(make_object),
        st.integers(0, 8).map(pool_object),
    )
    anything = st.one_of(
        scalar,
        st.lists(scalar, max_size=4),
        st.tuples(scalar, scalar),
        st.tuples(scalar, scalar, scalar),
        st.lists(st.lists(scalar, max_size=3) | st.tuples(scalar, scalar), max_size=3),
    )
    small = st.integers(-2, 12)
    plausible: dict[str, Any] = {
        "msqid": ids,
        "semid": ids,
        "shmid": ids,
        "key": st.none() | st.just(0) | st.integers(-(2**31), 2**31 - 1),
        "data": st.binary(max_size=200),
        "type": small,
        "index": small,
        "n": st.integers(0, 5),
        "flags": st.sampled_from(INTS[29:]),
        "sem_flg": st.sampled_from([0, ll.IPC_NOWAIT, ll.SEM_UNDO, ll.IPC_NOWAIT | ll.SEM_UNDO]),
        "timeout": st.none() | st.floats(0, 0.01),
        "max_size": st.none() | st.integers(0, 100),
        "buffer": st.integers(0, 64).map(bytearray),
        "ops": st.lists(st.tuples(st.integers(-1, 3), st.integers(-3, 3)), max_size=4),
        "size": st.none() | st.integers(0, 9000),
        "offset": st.integers(0, 8200),
        "mode": st.integers(0, 0o777),
        "nsems": st.integers(0, 4),
        "cmd": st.sampled_from(INTS[29:62]),
        "arg": st.none()
        | small
        | st.lists(small, max_size=4)
        | st.tuples(*[st.none() | st.integers(0, 70000)] * 4),
        "values": st.lists(st.integers(-1, 6), max_size=4),
        "initial": small | st.lists(st.integers(0, 6), max_size=4),
        "dtype": st.sampled_from(DTYPES),
        "shape": st.none() | small | st.tuples(small, small),
        "value": small,
        "sem_num": st.integers(-1, 3),
        "sem_op": st.integers(-3, 3),
        "semnum": st.integers(-1, 3),
        "proj_id": st.integers(0, 256) | st.text(max_size=2),
        "path": st.sampled_from(["/", "/tmp", "/nonexistent", "", "/proc/self"]),
        "attachment": st.integers(0, 8).map(pool_object),
        "block": st.booleans(),
        "undo": st.booleans(),
        "truncate": st.booleans(),
        "except_type": st.booleans(),
        "create": st.booleans(),
        "exclusive": st.booleans(),
        "readonly": st.booleans(),
        "remove_on_close": st.booleans(),
        "remove_at_last_detach": st.booleans(),
        "uid": st.none() | st.sampled_from([0, 65534, -1, 2**32]),
        "gid": st.none() | st.sampled_from([0, 65534, -1, 2**32]),
        "qbytes": st.none() | st.integers(0, 20000),
        "max_bytes": st.none() | st.integers(0, 20000),
    }
    return anything, plausible


def argument_names(func: Callable[..., Any]) -> tuple[list[str], list[str], int]:
    """(positional parameter names, keyword names, required positional count)."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return ["a", "b", "c"], [], 0
    positional, keywords = [], []
    required = 0
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional.append(p.name)
            if p.default is p.empty:
                required += 1
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            keywords.append(p.name)
        if p.kind == p.VAR_POSITIONAL:
            positional += ["a", "b"]
    return positional, keywords, required


def setter(get: Callable[[Pool], Any], name: str) -> Callable[[Pool], Callable[..., Any]]:
    def target(pool: Pool) -> Callable[..., Any]:
        obj = get(pool)

        def set_value(value: Any) -> None:
            setattr(obj, name, value)

        return set_value

    return target


def getter(get: Callable[[Pool], Any], name: str) -> Callable[[Pool], Callable[[], Any]]:
    return lambda pool: lambda: getattr(get(pool), name)


def method(get: Callable[[Pool], Any], name: str) -> Callable[[Pool], Callable[..., Any]]:
    return lambda pool: getattr(get(pool), name)


def const(func: Callable[..., Any]) -> Callable[[Pool], Callable[..., Any]]:
    return lambda pool: func


def message_signature(data: Any, type: Any) -> None:
    """Message(data, type): what its arguments are called."""


Q = lambda pool: pool.q  # noqa: E731
S = lambda pool: pool.s  # noqa: E731
SEM = lambda pool: pool.sem  # noqa: E731
SHM = lambda pool: pool.shm  # noqa: E731
RO = lambda pool: pool.ro  # noqa: E731
ATT = lambda pool: pool.att  # noqa: E731


def assign(view: Any, index: Any, value: Any) -> None:
    """view[index] = value.  Errors of the assignment itself belong to
    memoryview or numpy, not to sysvipc: only a crash matters here."""
    try:
        view[index] = value
    except Exception:
        pass


def buf_setitem(get: Callable[[Pool], Any]) -> Callable[[Pool], Callable[..., Any]]:
    def target(pool: Pool) -> Callable[..., Any]:
        shm = get(pool)

        def setitem(index: Any, value: Any) -> None:
            assign(shm.buf, index, value)

        return setitem

    return target


def mv_setitem(get: Callable[[Pool], Any]) -> Callable[[Pool], Callable[..., Any]]:
    def target(pool: Pool) -> Callable[..., Any]:
        shm = get(pool)

        def setitem(index: Any, value: Any) -> None:
            assign(memoryview(shm), index, value)

        return setitem

    return target


def ndarray_write(get: Callable[[Pool], Any]) -> Callable[[Pool], Callable[..., Any]]:
    def target(pool: Pool) -> Callable[..., Any]:
        shm = get(pool)

        def write(dtype: Any = "u1", index: Any = 0, value: Any = 1) -> None:
            assign(shm.ndarray(dtype), index, value)

        return write

    return target


# name -> (target factory, the function whose signature names the arguments)
FAMILIES: dict[str, dict[str, tuple[Callable[[Pool], Callable[..., Any]], Any]]] = {
    "lowlevel_msg": {
        "ll.msgget": (const(ll.msgget), ll.msgget),
        "ll.msgsnd": (const(ll.msgsnd), ll.msgsnd),
        "ll.msgrcv": (const(ll.msgrcv), ll.msgrcv),
        "ll.msgrcv_into": (const(ll.msgrcv_into), ll.msgrcv_into),
        "ll.msgctl": (const(ll.msgctl), ll.msgctl),
        "_c.msgctl": (const(_c.msgctl), _c.msgctl),
        "Message": (const(sysvipc.Message), message_signature),
    },
    "lowlevel_sem": {
        "ll.semget": (const(ll.semget), ll.semget),
        "ll.semop": (const(ll.semop), ll.semop),
        "ll.semop1": (const(ll.semop1), ll.semop1),
        "ll.semctl": (const(ll.semctl), ll.semctl),
        "_c.semctl": (const(_c.semctl), _c.semctl),
    },
    "lowlevel_shm": {
        "ll.shmget": (const(ll.shmget), ll.shmget),
        "ll.shmat": (const(ll.shmat), ll.shmat),
        "ll.shmdt": (const(ll.shmdt), ll.shmdt),
        "ll.shmctl": (const(ll.shmctl), ll.shmctl),
        "_c.shmctl": (const(_c.shmctl), _c.shmctl),
        "Attachment.read": (method(ATT, "read"), "read"),
        "Attachment.read_into": (method(ATT, "read_into"), "read_into"),
        "Attachment.write": (method(ATT, "write"), "write"),
        "Attachment.detach": (method(ATT, "detach"), "detach"),
        "ll.ftok": (const(ll.ftok), ll.ftok),
    },
    "queue": {
        "MessageQueue": (const(sysvipc.MessageQueue), sysvipc.MessageQueue.__init__),
        "MessageQueue.from_id": (const(sysvipc.MessageQueue.from_id), sysvipc.MessageQueue.from_id),
        "send": (method(Q, "send"), sysvipc.MessageQueue.send),
        "receive": (method(Q, "receive"), sysvipc.MessageQueue.receive),
        "receive_into": (method(Q, "receive_into"), sysvipc.MessageQueue.receive_into),
        "peek": (method(Q, "peek"), sysvipc.MessageQueue.peek),
        "len": (method(Q, "__len__"), sysvipc.MessageQueue.__len__),
        "stat": (method(Q, "stat"), sysvipc.MessageQueue.stat),
        "set": (method(Q, "set"), sysvipc.MessageQueue.set),
        "remove": (method(Q, "remove"), sysvipc.MessageQueue.remove),
        "close": (method(Q, "close"), sysvipc.MessageQueue.close),
        "repr": (method(Q, "__repr__"), None),
        "eq": (method(Q, "__eq__"), None),
        "reduce": (method(Q, "__reduce__"), None),
        "enter": (method(Q, "__enter__"), None),
    },
    "semaphore": {
        "SemaphoreSet": (const(sysvipc.SemaphoreSet), sysvipc.SemaphoreSet.__init__),
        "SemaphoreSet.from_id": (const(sysvipc.SemaphoreSet.from_id), sysvipc.SemaphoreSet.from_id),
        "getitem": (method(S, "__getitem__"), sysvipc.SemaphoreSet.__getitem__),
        "values": (getter(S, "values"), None),
        "values=": (setter(S, "values"), None),
        "op": (method(S, "op"), sysvipc.SemaphoreSet.op),
        "stat": (method(S, "stat"), sysvipc.SemaphoreSet.stat),
        "set": (method(S, "set"), sysvipc.SemaphoreSet.set),
        "remove": (method(S, "remove"), sysvipc.SemaphoreSet.remove),
        "close": (method(S, "close"), sysvipc.SemaphoreSet.close),
        "len": (method(S, "__len__"), None),
        "iter": (lambda pool: lambda: list(pool.s), None),
        "Semaphore": (const(sysvipc.Semaphore), sysvipc.Semaphore.__init__),
        "acquire": (method(SEM, "acquire"), sysvipc.Semaphore.acquire),
        "release": (method(SEM, "release"), sysvipc.Semaphore.release),
        "wait_zero": (method(SEM, "wait_zero"), sysvipc.Semaphore.wait_zero),
        "value": (getter(SEM, "value"), None),
        "value=": (setter(SEM, "value"), None),
        "ncount": (getter(SEM, "ncount"), None),
        "zcount": (getter(SEM, "zcount"), None),
        "pid": (getter(SEM, "pid"), None),
        "sem.enter": (method(SEM, "__enter__"), None),
        "sem.exit": (method(SEM, "__exit__"), None),
    },
    "shm": {
        "SharedMemory": (const(sysvipc.SharedMemory), sysvipc.SharedMemory.__init__),
        "SharedMemory.from_id": (const(sysvipc.SharedMemory.from_id), sysvipc.SharedMemory.from_id),
        "read": (method(SHM, "read"), sysvipc.SharedMemory.read),
        "write": (method(SHM, "write"), sysvipc.SharedMemory.write),
        "read_into": (method(SHM, "read_into"), sysvipc.SharedMemory.read_into),
        "ndarray": (method(SHM, "ndarray"), sysvipc.SharedMemory.ndarray),
        "ndarray[]=": (ndarray_write(SHM), None),
        "buf[]=": (buf_setitem(SHM), None),
        "memoryview[]=": (mv_setitem(SHM), None),
        "stat": (method(SHM, "stat"), sysvipc.SharedMemory.stat),
        "set": (method(SHM, "set"), sysvipc.SharedMemory.set),
        "lock": (method(SHM, "lock"), sysvipc.SharedMemory.lock),
        "unlock": (method(SHM, "unlock"), sysvipc.SharedMemory.unlock),
        "remove": (method(SHM, "remove"), sysvipc.SharedMemory.remove),
        "close": (method(SHM, "close"), sysvipc.SharedMemory.close),
        "ro.write": (method(RO, "write"), sysvipc.SharedMemory.write),
        "ro.read": (method(RO, "read"), sysvipc.SharedMemory.read),
        "ro.ndarray[]=": (ndarray_write(RO), None),
        "ro.buf[]=": (buf_setitem(RO), None),
        "ro.memoryview[]=": (mv_setitem(RO), None),
        "ro.read_into": (method(RO, "read_into"), sysvipc.SharedMemory.read_into),
        "bytes": (lambda pool: lambda: bytes(pool.shm), None),
    },
    "misc": {
        "ftok": (const(sysvipc.ftok), sysvipc.ftok),
        "limits": (const(sysvipc.limits), sysvipc.limits),
        "usage": (const(sysvipc.usage), sysvipc.usage),
        "list_message_queues": (const(sysvipc.list_message_queues), sysvipc.list_message_queues),
        "list_semaphore_sets": (const(sysvipc.list_semaphore_sets), sysvipc.list_semaphore_sets),
        "list_shared_memory": (const(sysvipc.list_shared_memory), sysvipc.list_shared_memory),
        "to_datetime": (const(sysvipc.to_datetime), sysvipc.to_datetime),
        "Message": (const(sysvipc.Message), message_signature),
        "IdentifierRemovedError": (const(sysvipc.IdentifierRemovedError), None),
    },
    "async": {
        "send_async": (method(Q, "send_async"), sysvipc.MessageQueue.send_async),
        "receive_async": (method(Q, "receive_async"), sysvipc.MessageQueue.receive_async),
    },
}


def child_main(family: str, max_examples: int, last_call_path: str) -> None:
    """Runs in the child interpreter; prints a JSON summary on its last line."""
    global POOL
    import numpy  # noqa: F401  (imported now: never half-imported by an alarm)
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    warnings.simplefilter("ignore")
    isolated = isolate()
    if not isolated:
        print(json.dumps({"skipped": "no private IPC namespace (needs root)"}))
        return
    faulthandler.enable()
    pre_existing = all_ids()
    assert not pre_existing, pre_existing
    targets = FAMILIES[family]
    names = sorted(targets)
    POOL = pool = Pool()
    stats: dict[str, int] = {"calls": 0, "examples": 0, "created_and_removed": 0}
    outcomes: dict[str, int] = {}
    last = open(last_call_path, "w")
    is_async = family == "async"
    in_call = [False]

    def on_alarm(signum: int, frame: object) -> None:
        if in_call[0]:
            raise Interrupted

    signal.signal(signal.SIGALRM, on_alarm)
    short = reprlib.Repr()
    short.maxstring = short.maxother = 60
    short.maxlist = short.maxtuple = 6

    def one_call(name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        text = f"{family}: {name}(*{short.repr(args)}, **{short.repr(kwargs)})"
        last.seek(0)
        last.write(text)
        last.truncate()
        last.flush()
        stats["calls"] += 1
        outcome = "ok"
        try:
            func = targets[name][0](pool)
            if is_async:
                coro = func(*args, **kwargs)

                async def bounded() -> Any:
                    return await asyncio.wait_for(coro, 0.02)

                asyncio.run(bounded())
            else:
                in_call[0] = True
                signal.setitimer(signal.ITIMER_REAL, ALARM, ALARM)
                try:
                    func(*args, **kwargs)
                finally:
                    in_call[0] = False
                    signal.setitimer(signal.ITIMER_REAL, 0, 0)
        except Interrupted:
            outcome = "interrupted (blocking)"
        except HostileError:
            outcome = "HostileError"
        except ALLOWED as exc:
            outcome = type(exc).__name__
            if os.environ.get("FUZZ_DEBUG"):
                print(f"{outcome}: {exc} <- {text}", file=sys.stderr)
        except BaseException as exc:
            raise AssertionError(f"{text} raised {type(exc).__name__}: {exc}") from exc
        finally:
            in_call[0] = False
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    anything, plausible = strategies()
    pool.reset()
    signatures = {
        name: argument_names(targets[name][1] or targets[name][0](pool)) for name in names
    }

    def value_for(data: Any, param: str) -> Any:
        if param in plausible and data.draw(st.integers(0, 5), label="plausible?"):
            return data.draw(plausible[param], label=param)
        return data.draw(anything, label=param)

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(st.data())
    def run(data: Any) -> None:
        stats["examples"] += 1
        pool.reset()
        keep = pool.ids()
        faulthandler.dump_traceback_later(WATCHDOG, exit=True)
        try:
            ncalls = data.draw(st.integers(1, CALLS_PER_EXAMPLE), label="ncalls")
            for _ in range(ncalls):
                name = data.draw(st.sampled_from(names), label="target")
                positional, keywords, required = signatures[name]
                if data.draw(st.integers(0, 4), label="arity"):
                    nargs = data.draw(st.integers(required, len(positional)), label="nargs")
                else:
                    nargs = data.draw(st.integers(0, len(positional) + 1), label="nargs")
                args = [
                    value_for(data, positional[i] if i < len(positional) else "?")
                    for i in range(nargs)
                ]
                optional = [k for k in keywords if k not in positional[:nargs]]
                kwnames = data.draw(
                    st.lists(st.sampled_from(optional), max_size=3, unique=True)
                    if optional
                    else st.just([]),
                    label="kwnames",
                )
                if not data.draw(st.integers(0, 9), label="bogus?"):
                    kwnames.append(data.draw(st.sampled_from(["bogus", "self", *positional])))
                kwargs = {k: value_for(data, k) for k in kwnames}
                one_call(name, args, kwargs)
        finally:
            faulthandler.cancel_dump_traceback_later()
            for obj in all_ids() - keep:
                remove_id(*obj)
                stats["created_and_removed"] += 1

    try:
        run()
    finally:
        last.close()
    for view in pool.views:
        view.release()
    if pool.att is not None:
        pool.att.detach()
    for handle in (pool.q, pool.s, pool.shm, pool.ro):
        if handle is not None:
            handle.close()
    POOL = pool = None  # type: ignore[assignment]
    gc.collect()
    for obj in all_ids():
        remove_id(*obj)
    # A closed handle that exported a buffer keeps its mapping while anything
    # (hypothesis's last example, say) still holds the handle: its segment,
    # removed above, goes at this process's exit.
    assert not all_ids(marked=False), f"objects left behind: {all_ids()}"
    print(json.dumps({"stats": stats, "outcomes": outcomes}))


# --------------------------------------------------------------------------
# The tests: one child per family
# --------------------------------------------------------------------------

ROOT = Path(sysvipc.__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def run_family(family: str, max_examples: int, timeout: float) -> dict[str, Any]:
    pytest.importorskip("hypothesis")
    with tempfile.TemporaryDirectory() as tmp:
        last_call = Path(tmp, "last-call")
        code = f"""
            import sys
            sys.path[:0] = [{str(TESTS)!r}, {str(ROOT)!r}]
            import test_fuzz
            test_fuzz.child_main({family!r}, {max_examples}, {str(last_call)!r})
        """
        try:
            proc = run_python(textwrap.dedent(code), timeout=timeout)
        except Exception as exc:  # subprocess.TimeoutExpired: a hang
            raise AssertionError(
                f"fuzzer child hung; last call: {last_call.read_text() if last_call.exists() else '?'}"
            ) from exc
        last = last_call.read_text() if last_call.exists() else "?"
    assert proc.returncode == 0, (
        f"fuzzer child exited with {proc.returncode} "
        f"({'signal ' + signal.Signals(-proc.returncode).name if proc.returncode < 0 else 'error'})\n"
        f"last call: {last}\nstdout:\n{proc.stdout[-5000:]}\nstderr:\n{proc.stderr[-10000:]}"
    )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skipped" in summary:
        pytest.skip(summary["skipped"])
    return summary


class FuzzRunner:
    """Runs the fuzzer children two at a time (this is a 2-core budget): the
    first test of a size starts every family, each test waits for its own."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fuzz")
        self.futures: dict[tuple[str, int], Future[dict[str, Any]]] = {}

    def result(self, family: str, max_examples: int) -> dict[str, Any]:
        wanted = sorted(FAMILIES)
        timeout = 300 if max_examples == BOUNDED_EXAMPLES else 7000
        for name in wanted:
            if (name, max_examples) not in self.futures:
                self.futures[name, max_examples] = self.pool.submit(
                    run_family, name, max_examples, timeout
                )
        return self.futures[family, max_examples].result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def fuzz_runner() -> Iterator[FuzzRunner]:
    pytest.importorskip("hypothesis")
    runner = FuzzRunner()
    try:
        yield runner
    finally:
        runner.close()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize(
    "max_examples",
    [
        pytest.param(BOUNDED_EXAMPLES, id="bounded"),
        pytest.param(
            BOUNDED_EXAMPLES * SOAK_FACTOR,
            id="soak",
            marks=[pytest.mark.slow, pytest.mark.timeout(7200)],
        ),
    ],
)
def test_fuzz_public_api(
    fuzz_runner: FuzzRunner, family: str, max_examples: int, record_property: Any
) -> None:
    summary = fuzz_runner.result(family, max_examples)
    stats, outcomes = summary["stats"], summary["outcomes"]
    assert stats["calls"] >= max_examples
    record_property("family", family)
    record_property("fuzz_examples", stats["examples"])
    record_property("fuzz_calls", stats["calls"])
    record_property("fuzz_objects_created_and_removed", stats["created_and_removed"])
    record_property("fuzz_outcomes", json.dumps(outcomes, sort_keys=True))
    print(f"fuzz {family}: {stats} {json.dumps(outcomes, sort_keys=True)}")


# --------------------------------------------------------------------------
# Regressions: bugs this fuzzer found (fixed in 2f53d6c)
# --------------------------------------------------------------------------


def test_ndarray_rejects_object_dtypes() -> None:
    """An object dtype would read segment bytes as PyObject pointers: any
    process that can write the segment could crash the reader (SIGSEGV)."""
    proc = run_python(
        """
        import sysvipc
        shm = sysvipc.SharedMemory(size=4096, remove_at_last_detach=True)
        shm.write(b"\\x41" * 64)  # what any writer of the segment may put there
        for dtype in ("O", "i8,O", [("a", "O")], [("a", "i4"), ("b", [("c", "O")])]):
            try:
                array = shm.ndarray(dtype, shape=2)
            except (TypeError, ValueError):
                continue
            print("accepted", dtype, flush=True)
            print(array[0])  # dereferences 0x4141414141414141
            raise SystemExit(1)
        """
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stdout} {proc.stderr[-2000:]}"


def test_semaphore_constructor_checks_its_set() -> None:
    """Semaphore(obj, i) with obj not a SemaphoreSet was an AttributeError."""
    for bad in (None, 3, "set", object()):
        with pytest.raises(TypeError):
            sysvipc.Semaphore(bad, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("timestamp", [2**64, -(2**64), 1e300, -1e300])
def test_to_datetime_out_of_range(timestamp: Any) -> None:
    """to_datetime beyond time_t was an OverflowError."""
    with pytest.raises((ValueError, OSError)):
        sysvipc.to_datetime(timestamp)


def test_fuzzer_catches_a_crash() -> None:
    """The harness itself: a child that dies of a signal fails the test."""
    proc = run_python("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert proc.returncode < 0  # SIGSEGV; SIGABRT under AddressSanitizer


if __name__ == "__main__":  # python tests/test_fuzz.py FAMILY N
    child_main(sys.argv[1], int(sys.argv[2]), "/tmp/sysvipc-fuzz-last-call")
