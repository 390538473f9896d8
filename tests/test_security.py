"""Security (issue 10): modes, keys, and what another user can do.

- Objects are created with mode 0o600 unless asked, for every class and
  every way of naming them (``key=None``, ``IPC_PRIVATE``, an explicit key);
  with exactly the mode asked, never more (the umask does not apply to
  System V IPC); opening an existing object never changes its mode.
- Random keys come from ``os.urandom``: 1000 of them are distinct, positive
  and spread over the key range; forked processes (which share the parent's
  ``random`` state) still draw distinct keys.
- A child that drops to uid/gid 65534 ("nobody") cannot use, read, attach
  or remove a 0o600 object (PermissionError), can read but not write a
  0o644 one, and a read-only attachment can never be written, by any path.

These tests need root (to create objects for another uid and to drop to
it); without it they are skipped.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import textwrap
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from conftest import Tracker, assert_child_ok, proc_row, run_python

import sysvipc
from sysvipc import IPC_PRIVATE, MessageQueue, SemaphoreSet, SharedMemory
from sysvipc import lowlevel as ll

NOBODY = 65534
FORK = multiprocessing.get_context("fork")
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")

KINDS = {"msg": MessageQueue, "sem": SemaphoreSet, "shm": SharedMemory}


def make(kind: str, key: int | None, mode: int | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = dict(kw)
    if mode is not None:
        args["mode"] = mode
    if kind == "shm":
        args.setdefault("size", 4096)
    return KINDS[kind](key, **args)


def perms(kind: str, ident: int) -> int:
    row = proc_row(kind, ident)
    assert row is not None, f"{kind} {ident} does not exist"
    return int(row["perms"], 8) & 0o777


def untrack(ipc: Tracker, kind: str, ident: int) -> None:
    ipc.created.remove((kind, ident))


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("naming", ["key=None", "IPC_PRIVATE", "create=True", "exclusive=True"])
def test_default_mode_is_0600(ipc: Tracker, key: int, kind: str, naming: str) -> None:
    if naming == "key=None":
        obj = make(kind, None)
    elif naming == "IPC_PRIVATE":
        obj = make(kind, IPC_PRIVATE)
    else:
        obj = make(kind, key, **{naming.split("=")[0]: True})
    ipc.track(kind, obj.id)
    assert obj.created
    assert perms(kind, obj.id) == 0o600
    obj.close()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_lowlevel_default_mode_is_0600(ipc: Tracker, kind: str) -> None:
    if kind == "msg":
        ident = ll.msgget(IPC_PRIVATE, ll.IPC_CREAT)
    elif kind == "sem":
        ident = ll.semget(IPC_PRIVATE, 1, ll.IPC_CREAT)
    else:
        ident = ll.shmget(IPC_PRIVATE, 4096, ll.IPC_CREAT)
    ipc.track(kind, ident)
    assert perms(kind, ident) == 0o600


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_mode_is_exactly_what_was_asked(ipc: Tracker, kind: str) -> None:
    old_umask = os.umask(0o077)  # System V IPC ignores the umask: check it
    try:
        for mode in range(0o1000):
            obj = make(kind, IPC_PRIVATE, mode)
            ipc.track(kind, obj.id)
            try:
                assert perms(kind, obj.id) == mode, f"asked {mode:#o}"
            finally:
                obj.remove()
                obj.close()
                untrack(ipc, kind, obj.id)
    finally:
        os.umask(old_umask)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    "mode", [0o1000, 0o1777, 0o4600, ll.IPC_CREAT | 0o600, -1, 2**32, 0o600 + 0.0, "0o600"]
)
def test_mode_bits_never_leak_into_flags(ipc: Tracker, kind: str, mode: Any) -> None:
    before = {int(r[{"msg": "msqid", "sem": "semid", "shm": "shmid"}[kind]]) for r in _rows(kind)}
    with pytest.raises((ValueError, TypeError)):
        make(kind, None, mode)
    after = {int(r[{"msg": "msqid", "sem": "semid", "shm": "shmid"}[kind]]) for r in _rows(kind)}
    assert after == before, "an object was created despite the bad mode"


def _rows(kind: str) -> list[dict[str, str]]:
    from conftest import proc_rows

    return proc_rows(kind)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_opening_never_changes_the_mode(ipc: Tracker, key: int, kind: str) -> None:
    first = make(kind, key, 0o640, exclusive=True)
    ipc.track(kind, first.id)
    again = make(kind, key, 0o666, create=True)
    assert not again.created
    assert again.id == first.id
    assert perms(kind, first.id) == 0o640
    opened = make(kind, key) if kind != "shm" else SharedMemory(key)
    assert perms(kind, opened.id) == 0o640
    for obj in (first, again, opened):
        obj.close()


# --------------------------------------------------------------------------
# Random keys
# --------------------------------------------------------------------------


def test_random_keys_are_distinct_positive_and_spread(ipc: Tracker) -> None:
    keys = []
    for _ in range(1000):
        q = MessageQueue()
        ipc.track("msg", q.id)
        keys.append(q.key)
        q.remove()
        q.close()
        untrack(ipc, "msg", q.id)
    assert len(set(keys)) == 1000
    assert all(0 < k <= 2**31 - 1 for k in keys)
    # Statistical sanity (expected 125 per eighth, 500 per bit; the bounds
    # are more than 5 standard deviations away).
    eighths = [0] * 8
    for k in keys:
        eighths[k >> 28] += 1
    assert all(70 <= n <= 180 for n in eighths), eighths
    for bit in range(31):
        ones = sum(k >> bit & 1 for k in keys)
        assert 380 <= ones <= 620, (bit, ones)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_random_keys_come_from_os_urandom(
    ipc: Tracker, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    draws = iter([b"\x00\x00\x00\x00", b"\x00\x00\x00\x80", b"\x11\x22\x33\xc4"])
    calls = []

    def fake_urandom(n: int) -> bytes:
        calls.append(n)
        return next(draws)

    monkeypatch.setattr(os, "urandom", fake_urandom)
    obj = make(kind, None)
    ipc.track(kind, obj.id)
    monkeypatch.undo()
    # 0 and 0x80000000 & 0x7fffffff (= 0, IPC_PRIVATE) are skipped.
    assert obj.key == 0x44332211
    assert calls == [4, 4, 4]
    obj.close()


def draw_keys(barrier: Any, n: int, conn: Connection) -> None:
    barrier.wait(10)
    keys = []
    for _ in range(n):
        q = MessageQueue()
        keys.append((q.key, q.id))
    conn.send(keys)
    for _, ident in keys:
        ll.msgctl(ident, ll.IPC_RMID)


def test_forked_processes_draw_distinct_keys(ipc: Tracker) -> None:
    """Children of one fork share the parent's `random` state (a library
    seeding from it, or from the time, would collide): os.urandom does not."""
    barrier = FORK.Barrier(8)
    procs, conns = [], []
    try:
        for _ in range(8):
            mine, theirs = FORK.Pipe(duplex=False)
            procs.append(FORK.Process(target=draw_keys, args=(barrier, 25, theirs), daemon=True))
            procs[-1].start()
            conns.append(mine)
        keys = []
        for conn in conns:
            assert conn.poll(30)
            got = conn.recv()
            for _, ident in got:
                ipc.track("msg", ident)
            keys += [k for k, _ in got]
        for proc in procs:
            proc.join(30)
            assert proc.exitcode == 0
    finally:
        for proc in procs:
            if proc.exitcode is None:
                proc.kill()
            proc.join(10)
    assert len(keys) == 200 and len(set(keys)) == 200


# --------------------------------------------------------------------------
# Another user
# --------------------------------------------------------------------------

CHILD_PRELUDE = """
    import ctypes, io, json, os, socket, struct, sys
    import numpy as np
    import sysvipc
    from sysvipc import MessageQueue, SemaphoreSet, SharedMemory
    from sysvipc import lowlevel as ll

    UID = {uid}
    if UID != os.getuid():
        os.setgroups([])
        os.setgid(UID)
        os.setuid(UID)
        assert (os.getuid(), os.geteuid(), os.getgid()) == (UID, UID, UID)
    results = {{}}

    def attempt(name, fn):
        try:
            value = fn()
        except PermissionError:
            results[name] = "PermissionError"
        except Exception as e:
            results[name] = type(e).__name__ + ": " + str(e)
        else:
            results[name] = "ok" if value is None or value is True else repr(value)
"""
CHILD_EPILOGUE = """
    print(json.dumps(results))
"""


def as_user(code: str, uid: int = NOBODY, **fmt: Any) -> dict[str, str]:
    source = textwrap.dedent(CHILD_PRELUDE.format(uid=uid)) + textwrap.dedent(code).format(**fmt)
    proc = run_python(source + textwrap.dedent(CHILD_EPILOGUE), timeout=60)
    assert_child_ok(proc)
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture
def objects(ipc: Tracker, key: int) -> Iterator[dict[str, Any]]:
    """A queue with one message, a 2-semaphore set at [1, 0], a segment
    holding b'secret', all owned by root, under one key."""
    q = MessageQueue(key, exclusive=True)
    ipc.track("msg", q.id)
    s = SemaphoreSet(key, nsems=2, exclusive=True, initial=[1, 0])
    ipc.track("sem", s.id)
    shm = SharedMemory(key, size=4096, exclusive=True)
    ipc.track("shm", shm.id)
    shm.write(b"secret")
    q.send(b"message", type=3)
    yield {"key": key, "q": q, "s": s, "shm": shm}
    for obj in (q, s, shm):
        obj.close()


def set_modes(objects: dict[str, Any], mode: int) -> None:
    for name in ("q", "s", "shm"):
        objects[name].set(mode=mode)


def assert_untouched(objects: dict[str, Any]) -> None:
    q, s, shm = objects["q"], objects["s"], objects["shm"]
    assert q.peek(0) == (b"message", 3) and len(q) == 1
    assert s.values == [1, 0]
    assert shm.read(6) == b"secret"
    assert perms("msg", q.id) == perms("sem", s.id) == perms("shm", shm.id)


@root_only
def test_other_user_cannot_touch_a_0600_object(objects: dict[str, Any]) -> None:
    set_modes(objects, 0o600)
    r = as_user(
        """
        q = MessageQueue({key})            # opening by key asks for nothing
        attempt("queue send", lambda: q.send(b"x"))
        attempt("queue receive", lambda: q.receive(block=False))
        attempt("queue peek", lambda: q.peek(0))
        attempt("queue stat", q.stat)
        attempt("queue set", lambda: q.set(mode=0o666))
        attempt("queue remove", q.remove)
        attempt("queue from_id", lambda: MessageQueue.from_id({qid}))
        attempt("msgctl IPC_STAT", lambda: ll.msgctl({qid}, ll.IPC_STAT))
        attempt("msgctl IPC_RMID", lambda: ll.msgctl({qid}, ll.IPC_RMID))
        attempt("shm attach", lambda: SharedMemory({key}))
        attempt("shm attach readonly", lambda: SharedMemory({key}, readonly=True))
        attempt("shm from_id", lambda: SharedMemory.from_id({shmid}, readonly=True))
        attempt("shmat SHM_RDONLY", lambda: ll.shmat({shmid}, ll.SHM_RDONLY))
        attempt("shmctl IPC_STAT", lambda: ll.shmctl({shmid}, ll.IPC_STAT))
        attempt("shmctl IPC_RMID", lambda: ll.shmctl({shmid}, ll.IPC_RMID))
        attempt("shmctl SHM_LOCK", lambda: ll.shmctl({shmid}, ll.SHM_LOCK))
        attempt("sem open (waits for init)", lambda: SemaphoreSet({key}, nsems=2))
        s = SemaphoreSet({key}, nsems=2, init_timeout=0)
        attempt("sem value", lambda: s[0].value)
        attempt("sem values", lambda: s.values)
        attempt("sem acquire", lambda: s[0].acquire(block=False))
        attempt("sem release", lambda: s[0].release())
        attempt("sem wait_zero", lambda: s[1].wait_zero(block=False))
        attempt("sem set value", lambda: setattr(s[0], "value", 5))
        attempt("sem stat", s.stat)
        attempt("sem set", lambda: s.set(mode=0o666))
        attempt("sem remove", s.remove)
        attempt("semctl IPC_RMID", lambda: ll.semctl({semid}, 0, ll.IPC_RMID))
        """,
        key=objects["key"],
        qid=objects["q"].id,
        shmid=objects["shm"].id,
        semid=objects["s"].id,
    )
    denied = {name: outcome for name, outcome in r.items() if outcome != "PermissionError"}
    assert denied == {}, f"allowed or wrong error: {denied}"
    assert_untouched(objects)


@root_only
def test_other_user_can_read_but_not_write_a_0644_object(objects: dict[str, Any]) -> None:
    set_modes(objects, 0o644)
    r = as_user(
        """
        q = MessageQueue({key})
        attempt("queue peek", lambda: q.peek(0))
        attempt("queue stat", lambda: q.stat().msg_qnum)
        attempt("queue send", lambda: q.send(b"x"))
        attempt("queue set", lambda: q.set(mode=0o666))
        attempt("queue remove", q.remove)
        attempt("queue receive", lambda: q.receive(block=False))
        attempt("shm attach readonly", lambda: SharedMemory({key}, readonly=True).read(6))
        attempt("shm attach", lambda: SharedMemory({key}))
        attempt("shm from_id rw", lambda: SharedMemory.from_id({shmid}))
        attempt("shm remove", lambda: ll.shmctl({shmid}, ll.IPC_RMID))
        attempt("shm set", lambda: ll.shmctl({shmid}, ll.IPC_SET, mode=0o666))
        s = SemaphoreSet({key}, nsems=2)
        attempt("sem values", lambda: s.values)
        attempt("sem stat", lambda: s.stat().sem_nsems)
        attempt("sem wait_zero", lambda: s[1].wait_zero(block=False))
        attempt("sem acquire", lambda: s[0].acquire(block=False))
        attempt("sem release", lambda: s[0].release())
        attempt("sem op", lambda: s.op([(1, 1), (1, -1)], block=False))
        attempt("sem set value", lambda: setattr(s[0], "value", 5))
        attempt("sem remove", s.remove)
        """,
        key=objects["key"],
        shmid=objects["shm"].id,
    )
    assert r == {
        "queue peek": "sysvipc.Message(data=b'message', type=3)",
        "queue stat": "1",
        "queue send": "PermissionError",
        "queue set": "PermissionError",
        "queue remove": "PermissionError",
        "queue receive": "sysvipc.Message(data=b'message', type=3)",
        "shm attach readonly": "b'secret'",
        "shm attach": "PermissionError",
        "shm from_id rw": "PermissionError",
        "shm remove": "PermissionError",
        "shm set": "PermissionError",
        "sem values": "[1, 0]",
        "sem stat": "2",
        "sem wait_zero": "ok",  # waiting for zero only needs read permission
        "sem acquire": "PermissionError",
        "sem release": "PermissionError",
        "sem op": "PermissionError",
        "sem set value": "PermissionError",
        "sem remove": "PermissionError",
    }
    # Receiving is reading: the message is gone, nothing else changed.
    q = objects["q"]
    assert len(q) == 0
    q.send(b"message", type=3)
    assert_untouched(objects)


@root_only
def test_owner_rights_follow_ipc_set(objects: dict[str, Any]) -> None:
    """Giving a 0o600 queue to nobody (IPC_SET uid) gives nobody full
    control, and no one else (uid 65533) any."""
    q = objects["q"]
    q.set(uid=NOBODY, gid=NOBODY, mode=0o600)
    code = """
        q = MessageQueue({key})
        attempt("stat", lambda: q.stat().msg_perm.uid)
        attempt("send", lambda: q.send(b"x", type=9))
        attempt("receive", lambda: q.receive(9, block=False).data)
        attempt("set", lambda: q.set(mode=0o600))
        """
    other = as_user(code, uid=NOBODY - 1, key=objects["key"])
    assert set(other.values()) == {"PermissionError"}
    owner = as_user(code, uid=NOBODY, key=objects["key"])
    assert owner == {"stat": str(NOBODY), "send": "ok", "receive": "b'x'", "set": "ok"}


def test_root_bypasses_the_mode(ipc: Tracker) -> None:
    """What the docs say about CAP_IPC_OWNER: mode 0 stops nobody who has it."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    q = MessageQueue(mode=0)
    ipc.track("msg", q.id)
    q.send(b"root", type=1)
    assert q.receive(block=False) == (b"root", 1)
    assert perms("msg", q.id) == 0
    q.close()


# --------------------------------------------------------------------------
# A read-only attachment can never be written
# --------------------------------------------------------------------------

WRITE_PATHS = """
    shm = SharedMemory({key}, readonly=True)
    att = ll.shmat({shmid}, ll.SHM_RDONLY)
    q = MessageQueue({qkey})
    q.send(b"overwrite!", type=1)
    attempt("write", lambda: shm.write(b"X"))
    attempt("write at offset", lambda: shm.write(b"X", 100))
    attempt("buf[0] =", lambda: shm.buf.__setitem__(0, 88))
    attempt("buf[:1] =", lambda: shm.buf.__setitem__(slice(0, 1), b"X"))
    attempt("memoryview(shm)[0] =", lambda: memoryview(shm).__setitem__(0, 88))
    attempt("memoryview cast", lambda: memoryview(shm).cast("I").__setitem__(0, 1))
    attempt("ndarray[0] =", lambda: shm.ndarray(np.uint8).__setitem__(0, 88))
    attempt("ndarray setflags", lambda: shm.ndarray(np.uint8).setflags(write=True))
    attempt("frombuffer[0] =", lambda: np.frombuffer(shm, np.uint8).__setitem__(0, 88))
    attempt("frombuffer setflags", lambda: np.frombuffer(shm, np.uint8).setflags(write=True))
    attempt("asarray[0] =", lambda: np.asarray(shm.buf).__setitem__(0, 88))
    attempt("ctypes from_buffer", lambda: ctypes.c_char.from_buffer(shm))
    attempt("ctypes from_buffer buf", lambda: (ctypes.c_char * 6).from_buffer(shm.buf))
    attempt("struct.pack_into", lambda: struct.pack_into("B", shm.buf, 0, 88))
    attempt("receive_into", lambda: q.receive_into(shm.buf, block=False))
    attempt("msgrcv_into", lambda: ll.msgrcv_into(q.id, shm, 0, ll.IPC_NOWAIT))
    attempt("readinto", lambda: io.BytesIO(b"XXXXXX").readinto(shm.buf))
    attempt("read_into self", lambda: shm.read_into(shm.buf))
    attempt("attachment write", lambda: att.write(b"X"))
    attempt("memoryview(att)[0] =", lambda: memoryview(att).__setitem__(0, 88))
    attempt("frombuffer(att)[0] =", lambda: np.frombuffer(att, np.uint8).__setitem__(0, 88))
    r, w = socket.socketpair()
    w.send(b"XXXXXX")
    attempt("recv_into", lambda: r.recv_into(shm.buf))
    rfd, wfd = os.pipe()
    os.write(wfd, b"XXXXXX")
    attempt("os.readv", lambda: os.readv(rfd, [shm.buf]))
    results["content"] = shm.read(6).decode()
    results["queue still holds the message"] = str(len(q) == 1)
    q.receive(block=False)
"""

EXPECTED_ERRORS = {
    "write": "PermissionError",
    "write at offset": "PermissionError",
    "attachment write": "PermissionError",
}


@pytest.mark.parametrize("uid", [0, NOBODY], ids=["root", "nobody"])
def test_read_only_attachment_can_never_be_written(
    objects: dict[str, Any], ipc: Tracker, uid: int
) -> None:
    if os.geteuid() != 0 and uid != os.geteuid():
        pytest.skip("needs root")
    set_modes(objects, 0o644 if uid else 0o600)
    extra = MessageQueue(mode=0o666)  # the child needs to receive from it
    ipc.track("msg", extra.id)
    r = as_user(
        WRITE_PATHS,
        uid=uid,
        key=objects["key"],
        shmid=objects["shm"].id,
        qkey=extra.key,
    )
    assert r.pop("content") == "secret"
    assert r.pop("queue still holds the message") == "True"
    wrote = {
        name: outcome for name, outcome in r.items() if outcome == "ok" or "Error" not in outcome
    }
    assert wrote == {}, f"write paths that did not fail: {wrote}"
    for name, outcome in EXPECTED_ERRORS.items():
        assert r[name] == outcome
    assert objects["shm"].read(6) == b"secret"
    extra.close()


def test_read_only_view_write_attempts_in_process(ipc: Tracker) -> None:
    """The in-process counterpart: every error is a clean exception."""
    shm = SharedMemory(size=4096)
    ipc.track("shm", shm.id)
    shm.write(b"secret")
    ro = SharedMemory.from_id(shm.id, readonly=True)
    assert ro.readonly and ro.buf.readonly
    with pytest.raises(PermissionError):
        ro.write(b"X")
    with pytest.raises(TypeError):
        ro.buf[0] = 1
    with pytest.raises(TypeError):
        memoryview(ro)[0:1] = b"X"
    with pytest.raises((BufferError, TypeError)):
        ctypes.c_char.from_buffer(ro)
    with pytest.raises((BufferError, TypeError)):
        ll.msgrcv_into(0, ro)
    assert shm.read(6) == b"secret"
    ro.close()
    shm.close()


def test_sysvipc_listing_needs_no_permission_but_shows_nothing_secret(ipc: Tracker) -> None:
    """/proc/sysvipc and *_STAT_ANY list every object to everyone: keys,
    ids, owners and modes are public, contents are not.  (Documented in
    docs/security.md; this pins what the listing exposes.)"""
    shm = SharedMemory(size=4096, mode=0o600)
    ipc.track("shm", shm.id)
    shm.write(b"secret")
    entries = {e.id: e for e in sysvipc.list_shared_memory()}
    assert entries[shm.id].stat.shm_perm.key == shm.key
    row = proc_row("shm", shm.id)
    assert row is not None and b"secret" not in json.dumps(row).encode()
    shm.close()


# --------------------------------------------------------------------------
# docs/security.md works as written
# --------------------------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"


def doc_blocks() -> list[tuple[int, str]]:
    blocks, current, start = [], None, 0
    for number, line in enumerate(DOC.read_text().splitlines(), 1):
        if current is None and line.strip() == "```python":
            current, start = [], number
        elif current is not None and line.strip() == "```":
            blocks.append((start, "\n".join(current)))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


@pytest.mark.skipif(not DOC.exists(), reason="docs/security.md is not shipped here")
def test_security_doc_examples_run() -> None:
    blocks = doc_blocks()
    assert len(blocks) >= 3
    for line, code in blocks:
        proc = run_python(code, timeout=60)
        assert proc.returncode == 0, f"docs/security.md:{line}\n{proc.stdout}\n{proc.stderr}"
