"""Faults (issue 10): SIGKILL at random points, and signal storms.

- Producers and consumers of a queue are SIGKILLed at random moments and
  replaced.  Each consumer acknowledges every message it processed in shared
  memory (one counter per sequence number), each producer records the
  sequence number it is about to send and the last one sent.  Afterwards: no
  message is duplicated or corrupted, and the missing ones number at most
  one per killed consumer (the message it had taken but not acknowledged).
- Lock holders (``with sem:``, SEM_UNDO) are SIGKILLed at random: the kernel
  releases the lock, nobody else is ever inside it at the same time, and
  the survivors keep making progress.
- Attachments of killed processes vanish (``shm_nattch`` falls back), and a
  ``remove_at_last_detach`` segment disappears once all its users are dead.
- Signal storms: a SIGUSR1 handler that returns, fired every millisecond at
  the main thread, while it blocks in receive/send/acquire/semop, with and
  without timeouts: every call completes correctly and no timeout is
  stretched by the storm beyond its bound.

Children are forked (``multiprocessing`` "fork" context); all are killed and
joined in a ``finally``; every blocking call has a timeout.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pytest
from conftest import HANG, Tracker, proc_row

from sysvipc import MessageQueue, SemaphoreSet, SharedMemory

FORK = multiprocessing.get_context("fork")
SOAK_SECONDS = float(os.environ.get("SYSVIPC_SOAK_SECONDS", "120"))
CALL_TIMEOUT = 30.0


def durations(bounded: float) -> Any:
    return pytest.mark.parametrize(
        "seconds",
        [
            pytest.param(bounded, id="bounded"),
            pytest.param(
                SOAK_SECONDS,
                id="soak",
                marks=[pytest.mark.slow, pytest.mark.timeout(int(SOAK_SECONDS * 2 + 300))],
            ),
        ],
    )


class Children:
    """Forked children that are always killed and joined."""

    def __init__(self) -> None:
        self.procs: list[Any] = []

    def start(self, target: Callable[..., None], *args: Any) -> Any:
        proc = FORK.Process(target=target, args=args, daemon=True)
        proc.start()
        self.procs.append(proc)
        return proc

    def kill(self, proc: Any) -> bool:
        """SIGKILL a child: True if it died of it, False if it had already
        exited cleanly (a producer that ran out of sequence numbers)."""
        proc.kill()  # multiprocessing never signals a pid it has reaped
        proc.join(10)
        assert proc.exitcode in (0, -signal.SIGKILL), f"child exit code {proc.exitcode}"
        return proc.exitcode == -signal.SIGKILL

    def close(self) -> None:
        for proc in self.procs:
            if proc.exitcode is None:
                proc.kill()
        for proc in self.procs:
            proc.join(10)


@pytest.fixture
def children() -> Iterator[Children]:
    kids = Children()
    try:
        yield kids
    finally:
        kids.close()


def report(record_property: Callable[[str, object], None], **figures: object) -> None:
    for name, value in figures.items():
        record_property(name, value)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def nattch(shmid: int) -> int | None:
    row = proc_row("shm", shmid)
    return None if row is None else int(row["nattch"])


# --------------------------------------------------------------------------
# A queue whose producers and consumers are killed
# --------------------------------------------------------------------------

PER_ID = 1 << 16  # sequence numbers per producer id (then it retires)
U64 = struct.Struct("<Q")
HEADER = struct.Struct("<IIHI")  # producer id, seq, length, crc32
# Control block: stop producers, producers done; then per producer id
# (attempt, done); per consumer slot (received, corrupt, duplicated);
# then the acknowledgement bytes, PER_ID per producer id.
STOP_PRODUCERS, PRODUCERS_DONE = 0, 8
PROD_BASE = 64


class Layout:
    def __init__(self, max_producers: int, max_consumers: int) -> None:
        self.max_producers = max_producers
        self.cons_base = PROD_BASE + 16 * max_producers
        self.ack_base = self.cons_base + 24 * max_consumers
        self.size = self.ack_base + PER_ID * max_producers

    def attempt(self, p: int) -> int:
        return PROD_BASE + 16 * p

    def done(self, p: int) -> int:
        return PROD_BASE + 16 * p + 8

    def consumer(self, c: int, field: int) -> int:
        return self.cons_base + 24 * c + 8 * field

    def ack(self, p: int, seq: int) -> int:
        return self.ack_base + p * PER_ID + seq


def get(buf: memoryview, offset: int) -> int:
    return U64.unpack_from(buf, offset)[0]


def put(buf: memoryview, offset: int, value: int) -> None:
    U64.pack_into(buf, offset, value)


def killable_producer(msqid: int, shmid: int, layout: Layout, p: int) -> None:
    q = MessageQueue.from_id(msqid)
    buf = SharedMemory.from_id(shmid).buf
    rng = random.Random(p)
    for seq in range(PER_ID):
        if get(buf, STOP_PRODUCERS):
            break
        body = rng.randbytes(rng.randrange(0, 400))
        data = HEADER.pack(p, seq, len(body), zlib.crc32(body)) + body
        put(buf, layout.attempt(p), seq + 1)
        q.send(data, type=rng.randrange(1, 4), timeout=CALL_TIMEOUT)
        put(buf, layout.done(p), seq + 1)


def acknowledge(buf: memoryview, layout: Layout, c: int, data: bytes) -> None:
    """What a consumer does with each message it receives."""
    p, seq, length, crc = HEADER.unpack_from(data)
    body = data[HEADER.size :]
    if len(body) != length or zlib.crc32(body) != crc or p >= layout.max_producers:
        put(buf, layout.consumer(c, 1), get(buf, layout.consumer(c, 1)) + 1)
        return
    at = layout.ack(p, seq)
    if buf[at]:
        put(buf, layout.consumer(c, 2), get(buf, layout.consumer(c, 2)) + 1)
    buf[at] = min(buf[at] + 1, 255)
    put(buf, layout.consumer(c, 0), get(buf, layout.consumer(c, 0)) + 1)


def killable_consumer(msqid: int, shmid: int, layout: Layout, c: int) -> None:
    q = MessageQueue.from_id(msqid)
    buf = SharedMemory.from_id(shmid).buf
    selector = (0, -3, -2)[c % 3]  # any; lowest type first (two ways)
    while True:
        try:
            data, _ = q.receive(selector, timeout=0.05)
        except TimeoutError:
            if get(buf, PRODUCERS_DONE):
                return
            continue
        acknowledge(buf, layout, c, data)


# Once, in a CI run of the whole suite on a machine shared with other work,
# this accounting saw a producer slot with 32453 attempts and 0 done.  The
# suite then ran in the machine's namespace, where any other run's leak check
# removed whatever appeared during its tests (this test's queue and segment
# included); since every run has a private namespace (conftest.py), 40 runs
# beside six concurrent builds and test runs passed.  Should it recur, the
# message names the slot's producer and what became of it.
@durations(4.0)
def test_queue_with_producers_and_consumers_killed(
    ipc: Tracker, children: Children, record_property: Any, seconds: float
) -> None:
    rng = random.Random(os.getpid())
    max_producers = int(seconds * 40) + 64
    max_consumers = int(seconds * 40) + 64
    layout = Layout(max_producers, max_consumers)
    q = MessageQueue()
    ipc.track("msg", q.id)
    shm = SharedMemory(size=layout.size)
    ipc.track("shm", shm.id)
    buf = shm.buf

    producers: dict[int, Any] = {}  # producer id -> process
    fates: dict[int, str] = {}  # producer id -> what ended it
    consumers: dict[int, Any] = {}  # consumer slot -> process
    next_p = next_c = 0
    killed_producers = killed_consumers = retired = 0

    def add_producer() -> None:
        nonlocal next_p
        assert next_p < max_producers, "layout too small"
        producers[next_p] = children.start(killable_producer, q.id, shm.id, layout, next_p)
        next_p += 1

    def add_consumer() -> None:
        nonlocal next_c
        assert next_c < max_consumers, "layout too small"
        consumers[next_c] = children.start(killable_consumer, q.id, shm.id, layout, next_c)
        next_c += 1

    for _ in range(3):
        add_producer()
    for _ in range(3):
        add_consumer()
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.01, 0.12))
        for p, proc in list(producers.items()):  # ran out of sequence numbers
            if proc.exitcode is not None:
                assert proc.exitcode == 0, f"producer {p} failed: {proc.exitcode}"
                del producers[p]
                fates[p] = "retired"
                retired += 1
                add_producer()
        if rng.random() < 0.5:
            p = rng.choice(list(producers))
            if children.kill(producers.pop(p)):
                fates[p] = "killed"
                killed_producers += 1
            else:
                fates[p] = "retired"
                retired += 1
            add_producer()
        else:
            c = rng.choice(list(consumers))
            assert children.kill(consumers.pop(c)), "a consumer exited on its own"
            killed_consumers += 1
            add_consumer()

    put(buf, STOP_PRODUCERS, 1)
    for p, proc in producers.items():
        proc.join(CALL_TIMEOUT + 10)
        assert proc.exitcode == 0, f"producer {p} did not stop cleanly: {proc.exitcode}"
        fates[p] = "stopped"
    put(buf, PRODUCERS_DONE, 1)
    for c, proc in consumers.items():
        proc.join(CALL_TIMEOUT + 10)
        assert proc.exitcode == 0, f"consumer {c} did not stop cleanly: {proc.exitcode}"
    drained = 0
    while True:  # what the last consumers left behind, if anything
        try:
            data, _ = q.receive(block=False)
        except BlockingIOError:
            break
        acknowledge(buf, layout, max_consumers - 1, data)
        drained += 1
    elapsed = time.monotonic() - started

    corrupt = sum(get(buf, layout.consumer(c, 1)) for c in range(max_consumers))
    duplicated_seen = sum(get(buf, layout.consumer(c, 2)) for c in range(max_consumers))
    received = sum(get(buf, layout.consumer(c, 0)) for c in range(max_consumers))
    missing = uncertain_sent = uncertain_lost = duplicated = phantom = acked = 0
    sent = 0
    ack = np.frombuffer(buf, dtype=np.uint8, offset=layout.ack_base)
    for p in range(next_p):
        attempt, done = get(buf, layout.attempt(p)), get(buf, layout.done(p))
        assert done <= attempt <= done + 1, (
            f"producer {p} ({fates.get(p)}): attempt {attempt}, done {done}; "
            f"{next_p} producers, {killed_producers} killed, {retired} retired"
        )
        acks = ack[p * PER_ID : (p + 1) * PER_ID]
        duplicated += int(np.count_nonzero(acks > 1))
        missing += int(np.count_nonzero(acks[:done] == 0))
        phantom += int(np.count_nonzero(acks[attempt:]))
        sent += done
        acked += int(np.count_nonzero(acks))
        if attempt > done:  # killed around msgsnd: sent or not, never both
            if acks[done]:
                uncertain_sent += 1
                sent += 1
            else:
                uncertain_lost += 1
    del ack, acks
    assert corrupt == 0, f"{corrupt} corrupted messages"
    assert duplicated == duplicated_seen == 0, f"{duplicated} messages delivered twice"
    assert phantom == 0, f"{phantom} messages received that were never sent"
    assert missing <= killed_consumers, (
        f"{missing} messages lost, more than the {killed_consumers} killed consumers "
        "could each have taken unacknowledged"
    )
    assert acked == sent - missing
    assert received <= acked  # a consumer may die between the two stores
    assert len(q) == 0
    report(
        record_property,
        fault_seconds=round(elapsed, 2),
        messages_sent=sent,
        messages_acknowledged=acked,
        lost_with_killed_consumers=missing,
        killed_producers=killed_producers,
        killed_consumers=killed_consumers,
        faults_injected=killed_producers + killed_consumers,
        producer_kills_around_send=uncertain_sent + uncertain_lost,
        producers_retired=retired,
        drained_by_parent=drained,
    )
    shm.close()


# --------------------------------------------------------------------------
# Lock holders killed at random
# --------------------------------------------------------------------------

L_COUNTER, L_OWNER, L_STOP, L_STALE_N = 0, 8, 16, 24
L_STALE_BASE = 64  # pids of killed owners found by the next holder
L_WORKERS = 4


def lock_worker(semid: int, shmid: int, style: int) -> None:
    s = SemaphoreSet.from_id(semid)
    buf = SharedMemory.from_id(shmid).buf
    me = os.getpid()
    rng = random.Random(me)
    while not get(buf, L_STOP):
        if style == 0:
            s[0].acquire(timeout=CALL_TIMEOUT, undo=True)
        else:
            s.op([(0, -1)], timeout=CALL_TIMEOUT, undo=True)
        try:
            previous = get(buf, L_OWNER)
            if previous:  # its owner died inside: the kernel released the lock
                n = get(buf, L_STALE_N)
                put(buf, L_STALE_BASE + 8 * n, previous)
                put(buf, L_STALE_N, n + 1)
            put(buf, L_OWNER, me)
            put(buf, L_COUNTER, get(buf, L_COUNTER) + 1)
            until = time.perf_counter() + rng.uniform(0, 0.002)  # hold it a while
            while time.perf_counter() < until:
                if get(buf, L_OWNER) != me:
                    os._exit(17)  # someone else got in: mutual exclusion broken
            put(buf, L_OWNER, 0)
        finally:
            if style == 0:
                s[0].release(undo=True)
            else:
                s.op([(0, +1)], undo=True)


@durations(3.0)
def test_killed_lock_holders_release_the_lock(
    ipc: Tracker, children: Children, record_property: Any, seconds: float
) -> None:
    rng = random.Random(os.getpid())
    s = SemaphoreSet(initial=1)
    ipc.track("sem", s.id)
    shm = SharedMemory(size=L_STALE_BASE + 8 * int(seconds * 200 + 1000))
    ipc.track("shm", shm.id)
    buf = shm.buf
    workers = [children.start(lock_worker, s.id, shm.id, i % 2) for i in range(L_WORKERS)]
    killed: set[int] = set()
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.005, 0.05))
        owner = get(buf, L_OWNER)
        pids = [w.pid for w in workers]
        if owner in pids and rng.random() < 0.5:
            i = pids.index(owner)  # the holder itself, most likely still inside
        else:
            i = rng.randrange(len(workers))
        pid = workers[i].pid
        assert children.kill(workers[i]), "a lock worker exited on its own"
        killed.add(pid)
        workers[i] = children.start(lock_worker, s.id, shm.id, i % 2)
        before = get(buf, L_COUNTER)
        wait_until(lambda b=before: get(buf, L_COUNTER) > b, 10, "progress after a kill")
    put(buf, L_STOP, 1)
    for w in workers:
        w.join(CALL_TIMEOUT + 10)
        assert w.exitcode == 0, f"worker exit code {w.exitcode} (17: two holders at once)"
    elapsed = time.monotonic() - started

    stale = [get(buf, L_STALE_BASE + 8 * i) for i in range(get(buf, L_STALE_N))]
    owner = get(buf, L_OWNER)
    if owner:  # the very last kill landed inside the lock
        stale.append(owner)
    assert set(stale) <= killed, "a live process was found owning the lock"
    assert len(stale) == len(set(stale))
    assert s[0].value == 1, "the lock was not released by the kernel"
    assert s[0].acquire(timeout=1, undo=True)
    s[0].release(undo=True)
    report(
        record_property,
        lock_fault_seconds=round(elapsed, 2),
        lock_holders_killed=len(killed),
        killed_while_holding=len(stale),
        lock_entries=get(buf, L_COUNTER),
    )
    shm.close()


def hold_and_wait(semid: int, how: str, conn: Connection) -> None:
    s = SemaphoreSet.from_id(semid)
    if how == "with":
        s[0].__enter__()
    elif how == "acquire":
        s[0].acquire(3, undo=True)
    else:
        s.op([(0, -2), (1, -1), (2, +5)], undo=True)
    conn.send("held")
    time.sleep(60)


@pytest.mark.parametrize("how", ["with", "acquire", "op"])
def test_undo_lock_released_after_sigkill(ipc: Tracker, children: Children, how: str) -> None:
    s = SemaphoreSet(nsems=3, initial=[3, 1, 0])
    ipc.track("sem", s.id)
    mine, theirs = FORK.Pipe(duplex=False)
    child = children.start(hold_and_wait, s.id, how, theirs)
    assert mine.poll(10) and mine.recv() == "held"
    assert s.values != [3, 1, 0]
    with pytest.raises(TimeoutError):
        s.op([(0, -3)], timeout=0.05)
    children.kill(child)
    assert s.values == [3, 1, 0]
    s.op([(0, -3), (1, -1)], timeout=1)


# --------------------------------------------------------------------------
# Attachments of dead processes
# --------------------------------------------------------------------------


def attach_and_wait(shmid: int, readonly: bool, conn: Connection) -> None:
    shm = SharedMemory.from_id(shmid, readonly=readonly)
    view = memoryview(shm)[100:200]  # live exports when the kill comes
    array = shm.ndarray(np.uint8)
    extra = SharedMemory.from_id(shmid, readonly=True)  # a second attachment
    conn.send((len(view), int(array[0]), extra.size))
    time.sleep(60)


def test_attachments_of_killed_processes_vanish(ipc: Tracker, children: Children) -> None:
    rng = random.Random()
    shm = SharedMemory(size=1 << 20)
    ipc.track("shm", shm.id)
    shm.write(b"\x07")
    baseline = nattch(shm.id)
    assert baseline == 1
    procs = []
    for i in range(6):
        mine, theirs = FORK.Pipe(duplex=False)
        procs.append(children.start(attach_and_wait, shm.id, i % 2 == 1, theirs))
        assert mine.poll(10)
        assert mine.recv() == (100, 7, 1 << 20)
    # Each child: the attachment inherited by fork and its own two.
    assert nattch(shm.id) == baseline + 3 * len(procs)
    rng.shuffle(procs)
    for n, proc in enumerate(procs, 1):
        time.sleep(rng.uniform(0, 0.05))
        children.kill(proc)
        wait_until(lambda n=n: nattch(shm.id) == baseline + 3 * (len(procs) - n), 5, "nattch")
    assert nattch(shm.id) == baseline
    shm.close()
    wait_until(lambda: nattch(shm.id) == 0, 5, "the parent's detach")


def create_marked(conn: Connection) -> None:
    shm = SharedMemory(size=65536, remove_at_last_detach=True)
    shm.write(b"marked")
    conn.send(shm.id)
    time.sleep(60)


def attach_by_id(shmid: int, conn: Connection) -> None:
    shm = SharedMemory.from_id(shmid)
    conn.send(shm.read(6))
    time.sleep(60)


def test_remove_at_last_detach_segment_disappears_when_all_users_die(
    ipc: Tracker, children: Children
) -> None:
    rng = random.Random()
    mine, theirs = FORK.Pipe(duplex=False)
    creator = children.start(create_marked, theirs)
    assert mine.poll(10)
    shmid = ipc.track("shm", mine.recv())
    row = proc_row("shm", shmid)
    assert row is not None and int(row["perms"], 8) & 0o1000  # SHM_DEST: marked
    users = [creator]
    for _ in range(4):
        mine, theirs = FORK.Pipe(duplex=False)
        users.append(children.start(attach_by_id, shmid, theirs))
        assert mine.poll(10) and mine.recv() == b"marked"
    assert nattch(shmid) == len(users)
    rng.shuffle(users)
    for proc in users[:-1]:
        time.sleep(rng.uniform(0, 0.05))
        children.kill(proc)
        assert proc_row("shm", shmid) is not None  # still attached by someone
    children.kill(users[-1])
    wait_until(lambda: proc_row("shm", shmid) is None, 5, "the segment to disappear")


def test_remove_at_last_detach_parent_closes_first(ipc: Tracker, children: Children) -> None:
    shm = SharedMemory(size=8192, remove_at_last_detach=True)
    shmid = ipc.track("shm", shm.id)
    procs = []
    for _ in range(3):
        mine, theirs = FORK.Pipe(duplex=False)
        procs.append(children.start(attach_by_id, shmid, theirs))
        assert mine.poll(10) and mine.recv() == bytes(6)
    shm.close()
    for proc in procs:
        assert proc_row("shm", shmid) is not None
        children.kill(proc)
    wait_until(lambda: proc_row("shm", shmid) is None, 5, "the segment to disappear")


# --------------------------------------------------------------------------
# Signal storms: a returning SIGUSR1 handler every millisecond
# --------------------------------------------------------------------------

STORM_PERIOD = 0.001
DELAY = 0.4  # when a helper child unblocks the call
BOUND = 0.5  # timeouts under test
SLACK = HANG  # a timeout never ends early; how late is benchmarks/'s business
STORM_LIMIT = 5.0  # the storm stops by itself then: a call it stretches forever still ends


@contextmanager
def signal_storm() -> Iterator[list[int]]:
    """SIGUSR1 to the main thread every millisecond; the handler returns."""
    assert threading.current_thread() is threading.main_thread()
    count = [0]

    def handler(signum: int, frame: object) -> None:
        count[0] += 1

    old = signal.signal(signal.SIGUSR1, handler)
    stop = threading.Event()
    target = threading.main_thread().ident
    assert target is not None

    def storm() -> None:
        end = time.monotonic() + STORM_LIMIT
        while not stop.is_set() and time.monotonic() < end:
            signal.pthread_kill(target, signal.SIGUSR1)
            stop.wait(STORM_PERIOD)

    thread = threading.Thread(target=storm, daemon=True)
    thread.start()
    try:
        yield count
    finally:
        stop.set()
        thread.join(5)
        time.sleep(0.01)  # let the last signal be handled
        signal.signal(signal.SIGUSR1, old)


def later(delay: float, action: Callable[[], None]) -> None:
    time.sleep(delay)
    action()


@pytest.fixture
def queue(ipc: Tracker) -> Iterator[MessageQueue]:
    q = MessageQueue()
    ipc.track("msg", q.id)
    yield q
    q.close()


@pytest.fixture
def sems(ipc: Tracker) -> Iterator[SemaphoreSet]:
    s = SemaphoreSet(nsems=2, initial=0)
    ipc.track("sem", s.id)
    yield s
    s.close()


def fill(q: MessageQueue) -> int:
    n = 0
    while True:
        try:
            q.send(b"x" * 1000, block=False)
        except BlockingIOError:
            return n
        n += 1


def check_storm(count: list[int], elapsed: float) -> None:
    # The main thread sat in the syscall the whole time: each signal was an
    # EINTR that the library had to survive.
    assert count[0] >= max(10, int(elapsed * 100)), f"only {count[0]} signals in {elapsed:.2f} s"


@pytest.mark.parametrize("timeout", [None, 10.0])
def test_storm_receive_completes(
    queue: MessageQueue, children: Children, timeout: float | None
) -> None:
    children.start(later, DELAY, lambda: queue.send(b"payload", type=5))
    with signal_storm() as count:
        t0 = time.monotonic()
        message = queue.receive(timeout=timeout)
        elapsed = time.monotonic() - t0
    assert message == (b"payload", 5)
    assert elapsed >= DELAY - 0.1
    check_storm(count, elapsed)


def test_storm_receive_into_and_by_type(queue: MessageQueue, children: Children) -> None:
    def sends() -> None:
        queue.send(b"other", type=1)
        queue.send(b"wanted", type=9)

    children.start(later, DELAY, sends)
    buf = bytearray(100)
    with signal_storm() as count:
        t0 = time.monotonic()
        n, mtype = queue.receive_into(buf, 9, timeout=10)
        elapsed = time.monotonic() - t0
    assert (bytes(buf[:n]), mtype) == (b"wanted", 9)
    assert queue.receive(block=False) == (b"other", 1)
    check_storm(count, elapsed)


@pytest.mark.parametrize("call", ["receive", "receive_into", "receive_type"])
def test_storm_does_not_stretch_receive_timeout(queue: MessageQueue, call: str) -> None:
    queue.send(b"not this type", type=3)
    with signal_storm() as count:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            if call == "receive":
                queue.receive(1, timeout=BOUND)
            elif call == "receive_into":
                queue.receive_into(bytearray(10), 1, timeout=BOUND)
            else:
                queue.receive(3, except_type=True, timeout=BOUND)
        elapsed = time.monotonic() - t0
    assert BOUND - 0.01 <= elapsed <= BOUND + SLACK
    check_storm(count, elapsed)
    assert queue.receive(block=False) == (b"not this type", 3)


@pytest.mark.parametrize("timeout", [None, 10.0])
def test_storm_send_on_full_queue_completes(
    queue: MessageQueue, children: Children, timeout: float | None
) -> None:
    n = fill(queue)
    children.start(later, DELAY, lambda: queue.receive(timeout=5))
    with signal_storm() as count:
        t0 = time.monotonic()
        queue.send(b"L" * 1000, type=2, timeout=timeout)
        elapsed = time.monotonic() - t0
    assert elapsed >= DELAY - 0.1
    check_storm(count, elapsed)
    assert len(queue) == n
    assert queue.receive(2, block=False) == (b"L" * 1000, 2)


def test_storm_does_not_stretch_send_timeout(queue: MessageQueue) -> None:
    n = fill(queue)
    with signal_storm() as count:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            queue.send(b"y" * 1000, timeout=BOUND)
        elapsed = time.monotonic() - t0
    assert BOUND - 0.01 <= elapsed <= BOUND + SLACK
    check_storm(count, elapsed)
    assert len(queue) == n


@pytest.mark.parametrize("timeout", [None, 10.0])
@pytest.mark.parametrize("call", ["acquire", "op", "with"])
def test_storm_semaphore_wait_completes(
    sems: SemaphoreSet, children: Children, call: str, timeout: float | None
) -> None:
    children.start(later, DELAY, lambda: sems.op([(0, +2), (1, +1)]))
    with signal_storm() as count:
        t0 = time.monotonic()
        if call == "acquire":
            sems[0].acquire(2, timeout=timeout)
            sems[1].acquire(timeout=timeout)
        elif call == "op":
            sems.op([(0, -2), (1, -1)], timeout=timeout)
        else:
            with sems[1]:
                pass
            sems[0].acquire(2, timeout=timeout)
            sems[1].acquire(timeout=timeout)
        elapsed = time.monotonic() - t0
    assert elapsed >= DELAY - 0.1
    check_storm(count, elapsed)
    assert sems.values == [0, 0]


@pytest.mark.parametrize("call", ["acquire", "op", "wait_zero"])
def test_storm_does_not_stretch_semaphore_timeout(sems: SemaphoreSet, call: str) -> None:
    sems.values = [1, 1]
    with signal_storm() as count:
        t0 = time.monotonic()
        # acquire and wait_zero answer False (threading's convention), op raises.
        if call == "acquire":
            assert sems[0].acquire(2, timeout=BOUND) is False
        elif call == "op":
            with pytest.raises(TimeoutError):
                sems.op([(0, -1), (1, -2)], timeout=BOUND)
        else:
            assert sems[1].wait_zero(timeout=BOUND) is False
        elapsed = time.monotonic() - t0
    assert BOUND - 0.01 <= elapsed <= BOUND + SLACK
    check_storm(count, elapsed)
    assert sems.values == [1, 1]  # nothing half-applied


def test_storm_wait_zero_completes(sems: SemaphoreSet, children: Children) -> None:
    sems.values = [1, 0]
    children.start(later, DELAY, lambda: sems[0].acquire())
    with signal_storm() as count:
        t0 = time.monotonic()
        sems[0].wait_zero()
        elapsed = time.monotonic() - t0
    assert elapsed >= DELAY - 0.1
    check_storm(count, elapsed)


def echo_server(request_id: int, reply_id: int, n: int) -> None:
    requests, replies = MessageQueue.from_id(request_id), MessageQueue.from_id(reply_id)
    rng = random.Random(n)
    for _ in range(n):
        data, mtype = requests.receive(timeout=CALL_TIMEOUT)
        time.sleep(rng.uniform(0, 0.002))  # the client blocks meanwhile
        replies.send(data[::-1], type=mtype, timeout=CALL_TIMEOUT)


def test_storm_many_round_trips(ipc: Tracker, children: Children, record_property: Any) -> None:
    """Hundreds of blocking calls in a row under the storm: none fails, none
    loses or garbles its message."""
    requests, replies = MessageQueue(), MessageQueue()
    ipc.track("msg", requests.id)
    ipc.track("msg", replies.id)
    n = 300
    children.start(echo_server, requests.id, replies.id, n)
    with signal_storm() as count:
        t0 = time.monotonic()
        for i in range(n):
            payload = os.urandom(i % 200 + 1)
            requests.send(payload, type=i + 1, timeout=CALL_TIMEOUT if i % 2 else None)
            data, mtype = replies.receive(i + 1, timeout=CALL_TIMEOUT if i % 3 else None)
            assert (data, mtype) == (payload[::-1], i + 1)
        elapsed = time.monotonic() - t0
    check_storm(count, elapsed)
    report(
        record_property,
        storm_round_trips=n,
        storm_signals=count[0],
        storm_seconds=round(elapsed, 2),
    )
