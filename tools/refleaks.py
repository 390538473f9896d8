"""Reference-leak hunt for the C core, on a debug CPython.

Every scenario exercises a family of calls, success and error paths alike.
Each runs a few warm-up rounds, then several measured rounds; a scenario
leaks if the total reference count or the number of allocated memory blocks
grows in every measured round.  Exit status 1 on any leak (unlike
pytest-leaks, whose exit status ignores leaks).

    python-dbg tools/refleaks.py
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable

import sysvipc
from sysvipc import lowlevel as ll

ROUNDS, WARMUP, ITERATIONS = 6, 3, 200


def expect(exc: type[BaseException], f: Callable[[], object]) -> None:
    try:
        f()
    except exc:
        return
    raise AssertionError(f"{f} did not raise {exc.__name__}")


def scenario_messages() -> None:
    q = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
    try:
        ll.msgsnd(q, b"hello", 3)
        ll.msgsnd(q, bytearray(b"y" * 100), 1)
        ll.msgrcv(q, None, -3)
        ll.msgrcv(q, 1000, 0, ll.MSG_NOERROR)
        ll.msgsnd(q, memoryview(b"abc"), 2, timeout=1.0)
        buf = bytearray(10)
        ll.msgrcv_into(q, buf, 0, timeout=0.5)
        ll.msgsnd(q, b"z" * 50, 7)
        expect(OSError, lambda: ll.msgrcv(q, 10))  # E2BIG
        ll.msgrcv(q, 10, 0, ll.MSG_NOERROR)
        expect(BlockingIOError, lambda: ll.msgrcv(q, 10, 0, ll.IPC_NOWAIT))
        expect(TimeoutError, lambda: ll.msgrcv(q, 10, timeout=0.0))
        expect(TypeError, lambda: ll.msgsnd(q, "str"))  # type: ignore[arg-type]
        expect(ValueError, lambda: ll.msgsnd(q, b"x", 0))
        expect(TypeError, lambda: ll.msgrcv(q, 10, bogus=1))  # type: ignore[call-arg]
        ll.msgctl(q, ll.IPC_STAT)
        ll.msgctl(q, ll.IPC_SET, mode=0o640)
        ll.msgctl(q, ll.IPC_INFO)
        ll.msgctl(q, ll.MSG_INFO)
        expect(ValueError, lambda: ll.msgctl(q, 999))
    finally:
        ll.msgctl(q, ll.IPC_RMID)
    expect(FileNotFoundError, lambda: ll.msgget(0x7EADBEEF))
    expect(ValueError, lambda: ll.msgget(2**31))


def scenario_queue_class() -> None:
    with sysvipc.MessageQueue(remove_on_close=True) as q:
        q.send(b"abc", 5)
        q.peek(0)
        len(q)
        q.receive(type=-10)
        q.send(b"abcd")
        q.receive_into(bytearray(100))
        expect(TimeoutError, lambda: q.receive(timeout=0.001))
        repr(q)
        q.stat()


def scenario_semaphore_class() -> None:
    with sysvipc.SemaphoreSet(nsems=2, initial=[1, 0], remove_on_close=True) as s:
        sem = s[0]
        sem.acquire()
        sem.release()
        with sem:
            s[1].release(2, undo=True)
        s[1].acquire(2, undo=True, timeout=1.0)
        assert s[1].acquire(block=False) is False  # EAGAIN: the answer path
        assert s[1].acquire(timeout=0.0) is False  # ETIMEDOUT: the answer path
        expect(BlockingIOError, lambda: s.op([(1, -1)], block=False))
        expect(ValueError, lambda: s[1].acquire(block=False, timeout=1.0))
        expect(ValueError, lambda: sem.release(40000))
        expect(TypeError, lambda: sem.acquire("1"))  # type: ignore[arg-type]
        expect(TypeError, lambda: sem.acquire(bogus=1))  # type: ignore[call-arg]
        s.op([(0, -1), (1, 1)])
        s.values = [1, 0]
        s.stat()
    expect(ValueError, sem.acquire)  # closed set


def scenario_removed_queue() -> None:
    q = sysvipc.MessageQueue()
    q.remove()
    expect(sysvipc.IdentifierRemovedError, lambda: q.send(b"x"))
    expect(sysvipc.IdentifierRemovedError, lambda: q.receive(block=False))
    expect(sysvipc.IdentifierRemovedError, lambda: q.receive_into(bytearray(8)))
    q.close()
    expect(ValueError, lambda: q.send(b"x"))


def scenario_semaphores() -> None:
    s = ll.semget(ll.IPC_PRIVATE, 3, ll.IPC_CREAT)
    try:
        ll.semctl(s, 0, ll.SETALL, [1, 2, 3])
        ll.semctl(s, 0, ll.GETALL)
        ll.semctl(s, 1, ll.SETVAL, 5)
        for cmd in (ll.GETVAL, ll.GETPID, ll.GETNCNT, ll.GETZCNT):
            ll.semctl(s, 1, cmd)
        ll.semop(s, [(0, -1), (1, 1, ll.SEM_UNDO)])
        ll.semop(s, [(0, 1), (1, -1, ll.SEM_UNDO)], timeout=1.0)
        ll.semop1(s, 2, -1)
        ll.semop1(s, 2, 1, 0, 1.0)
        expect(BlockingIOError, lambda: ll.semop(s, [(0, -5)], flags=ll.IPC_NOWAIT))
        expect(TimeoutError, lambda: ll.semop(s, [(0, -5)], timeout=0.0))
        expect(ValueError, lambda: ll.semop(s, [(0, 40000)]))
        expect(TypeError, lambda: ll.semop(s, [("a", 1)]))  # type: ignore[list-item]
        expect(ValueError, lambda: ll.semctl(s, 0, ll.SETVAL, 32768))
        expect(ValueError, lambda: ll.semctl(s, 0, ll.SETALL, [1, 2]))
        ll.semctl(s, 0, ll.IPC_STAT)
        ll.semctl(s, 0, ll.IPC_SET, mode=0o600)
        ll.semctl(s, 0, ll.IPC_INFO)
        ll.semctl(s, 0, ll.SEM_INFO)
    finally:
        ll.semctl(s, 0, ll.IPC_RMID)


def scenario_shared_memory() -> None:
    m = ll.shmget(ll.IPC_PRIVATE, 10000, ll.IPC_CREAT)
    try:
        a = ll.shmat(m)
        view = memoryview(a)
        view[:3] = b"abc"
        a.read(3)
        a.read_into(bytearray(5), 10)
        a.write(b"xyz", 100)
        expect(BufferError, a.detach)
        expect(ValueError, lambda: a.read(1, 20000))
        view.release()
        a.detach()
        expect(ValueError, lambda: a.read(1))
        ro = ll.shmat(m, ll.SHM_RDONLY)
        expect(PermissionError, lambda: ro.write(b"x"))
        expect(TypeError, lambda: memoryview(ro).__setitem__(0, 1))
        ll.shmctl(m, ll.IPC_STAT)
        ll.shmctl(m, ll.IPC_INFO)
        ll.shmctl(m, ll.SHM_INFO)
        ll.shmctl(m, ll.IPC_SET, mode=0o600)
    finally:
        ll.shmctl(m, ll.IPC_RMID)


def scenario_shared_memory_class() -> None:
    shm = sysvipc.SharedMemory(size=8192)
    try:
        view = memoryview(shm)
        shm.write(b"hello")
        shm.read(5)
        bytes(shm)
        shm.buf[0]
        shm.close()
        view[0] = 1
        del view
    finally:
        sysvipc.lowlevel.shmctl(shm.id, ll.IPC_RMID)


def scenario_issue16_memory() -> None:
    # The paths added for issue 16: results allocated before msgrcv, the
    # never-fits check, the removed-object rule, set-once private state,
    # re-validation after argument conversion.
    q = sysvipc.MessageQueue()
    try:
        q.send(b"x" * 700, 300)
        q.receive()  # a type the call did not name, above the cached ints
        q.send(b"y" * 300, 3)
        q.receive(3)
        q.send(b"")
        q.receive(max_size=0)
        q.send(b"z" * 300, 1000)
        q.receive_into(bytearray(1000))
        q.set(max_bytes=0)
        expect(ValueError, lambda: q.send(b"", timeout=1.0))
    finally:
        q.remove()
    expect(sysvipc.IdentifierRemovedError, lambda: len(q))
    expect(sysvipc.IdentifierRemovedError, q.peek)
    expect(sysvipc.IdentifierRemovedError, q.remove)
    expect(sysvipc.IdentifierRemovedError, lambda: q.set(mode=0o600))
    q.close()
    s = sysvipc.SemaphoreSet()
    sem = s[0]
    expect(AttributeError, lambda: delattr(sem, "_set"))
    expect(AttributeError, lambda: setattr(sem, "_index", 0))
    s.remove()
    expect(sysvipc.IdentifierRemovedError, sem.release)
    expect(sysvipc.IdentifierRemovedError, lambda: s.values)
    s.close()
    m = ll.shmget(ll.IPC_PRIVATE, 4096, ll.IPC_CREAT)
    try:
        att = ll.shmat(m)

        class Detach:
            def __index__(self) -> int:
                att.detach()
                return 0

        expect(ValueError, lambda: att.read(1, Detach()))
        shm = sysvipc.SharedMemory.from_id(m)
        expect(AttributeError, lambda: delattr(shm, "_attachment"))
        bytes(shm)
        shm.close()
    finally:
        ll.shmctl(m, ll.IPC_RMID)


def scenario_introspection() -> None:
    sysvipc.limits()
    sysvipc.usage()
    sysvipc.list_message_queues()
    sysvipc.list_semaphore_sets()
    sysvipc.list_shared_memory()
    expect(OSError, lambda: ll.ftok("/nonexistent/path", 1))
    ll.ftok("/", "A")


SCENARIOS = [v for k, v in sorted(globals().items()) if k.startswith("scenario_")]


def measure(scenario: Callable[[], None]) -> tuple[list[int], list[int]]:
    refs, blocks = [], []
    for round_ in range(WARMUP + ROUNDS):
        gc.collect()
        r0, b0 = sys.gettotalrefcount(), sys.getallocatedblocks()  # type: ignore[attr-defined]
        for _ in range(ITERATIONS):
            scenario()
        gc.collect()
        r1, b1 = sys.gettotalrefcount(), sys.getallocatedblocks()  # type: ignore[attr-defined]
        if round_ >= WARMUP:
            refs.append(r1 - r0)
            blocks.append(b1 - b0)
    return refs, blocks


def main() -> int:
    if not hasattr(sys, "gettotalrefcount"):
        print("refleaks.py needs a debug build of CPython (sys.gettotalrefcount)")
        return 2
    leaked = 0
    for scenario in SCENARIOS:
        refs, blocks = measure(scenario)
        leak = all(r > 0 for r in refs) or all(b > 0 for b in blocks)
        leaked += leak
        status = "LEAK" if leak else "ok"
        print(f"{status:4s} {scenario.__name__:32s} refs {refs}  blocks {blocks}")
    print(f"{len(SCENARIOS)} scenarios, {leaked} leaking")
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
