"""Load (issue 10): multi-process soaks of each primitive.

- a message queue with several producers and consumers, routed by type
  (each consumer selects one type);
- semaphore mutual exclusion under contention (a non-atomic counter in
  shared memory, three ways of taking the lock);
- a shared-memory ring buffer guarded by a SemaphoreSet ('empty', 'full',
  'mutex'), several producers and consumers.

Every message and record carries (producer, sequence number, crc32): the
test accounts for each one, none lost, duplicated or corrupted.  The bounded
variants run for seconds in the normal run; the ``soak`` variants (marked
``slow``) for minutes with ``--soak`` (``SYSVIPC_SOAK_SECONDS`` overrides
their length).  Totals and durations go to the test report
(``record_property``) and to stdout.

Children are forked (``multiprocessing`` "fork" context: they only run
sysvipc code and leave with ``os._exit``); every one is killed and joined in
a ``finally``, and every blocking call has a timeout.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import struct
import time
import zlib
from array import array
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest
from conftest import Tracker

from sysvipc import MessageQueue, SemaphoreSet, SharedMemory

FORK = multiprocessing.get_context("fork")
SOAK_SECONDS = float(os.environ.get("SYSVIPC_SOAK_SECONDS", "120"))
BOUNDED_SECONDS = 2.5
# How long any single blocking call may wait before the test calls it a hang.
CALL_TIMEOUT = 30.0


def durations() -> Any:
    """Parametrize a test with its bounded and its soak duration."""
    return pytest.mark.parametrize(
        "seconds",
        [
            pytest.param(BOUNDED_SECONDS, id="bounded"),
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

    def join(self, proc: Any, timeout: float) -> int | None:
        proc.join(timeout)
        return proc.exitcode

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


def receive_result(conn: Connection, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise AssertionError(f"no result from a child within {timeout} s")
    return conn.recv()


def report(record_property: Callable[[str, object], None], **figures: object) -> None:
    for name, value in figures.items():
        record_property(name, value)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


# --------------------------------------------------------------------------
# Records: producer, sequence number, type, length, crc32, payload
# --------------------------------------------------------------------------

HEADER = struct.Struct("<IIIHI")
STOP = b"STOP"


def make_record(producer: int, seq: int, mtype: int, rng: random.Random, maxbody: int) -> bytes:
    body = rng.randbytes(rng.randrange(0, maxbody + 1))
    return HEADER.pack(producer, seq, mtype, len(body), zlib.crc32(body)) + body


def parse_record(data: bytes | bytearray | memoryview) -> tuple[int, int, int] | None:
    """(producer, seq, type), or None if the record is corrupt."""
    if len(data) < HEADER.size:
        return None
    producer, seq, mtype, length, crc = HEADER.unpack_from(data)
    body = bytes(data[HEADER.size : HEADER.size + length])
    if len(body) != length or zlib.crc32(body) != crc:
        return None
    return producer, seq, mtype


def check_accounting(sent: dict[int, int], received: list[array[int]]) -> tuple[int, int, int]:
    """Every (producer, seq) sent was received exactly once.  Returns
    (total, lost, duplicated)."""
    seen: set[int] = set()
    duplicated = 0
    for part in received:
        for item in part:
            if item in seen:
                duplicated += 1
            seen.add(item)
    expected = {(p << 32) | s for p, n in sent.items() for s in range(n)}
    lost = len(expected - seen)
    unexpected = len(seen - expected)
    assert unexpected == 0, f"{unexpected} records that were never sent"
    return len(expected), lost, duplicated


# --------------------------------------------------------------------------
# Message queue: producers, consumers selecting by type
# --------------------------------------------------------------------------

Q_PRODUCERS = 3
Q_TYPES = 3  # one consumer per type
Q_MAXBODY = 1500


def queue_producer(msqid: int, producer: int, seconds: float, conn: Connection) -> None:
    q = MessageQueue.from_id(msqid)
    rng = random.Random(producer * 7919 + os.getpid())
    deadline = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < deadline:
        mtype = rng.randrange(1, Q_TYPES + 1)
        data = make_record(producer, seq, mtype, rng, Q_MAXBODY)
        if seq % 3 == 0:
            q.send(memoryview(data), mtype, timeout=CALL_TIMEOUT)
        else:
            q.send(data, type=mtype, timeout=CALL_TIMEOUT)
        seq += 1
    conn.send(seq)
    conn.close()


def queue_consumer(msqid: int, mtype: int, use_into: bool, conn: Connection) -> None:
    q = MessageQueue.from_id(msqid)
    seen = array("Q")
    corrupt = wrong_type = nbytes = 0
    buffer = bytearray(8192)
    while True:
        if use_into:
            n, got = q.receive_into(buffer, mtype, timeout=CALL_TIMEOUT)
            data: bytes | memoryview = memoryview(buffer)[:n]
        else:
            data, got = q.receive(type=mtype, timeout=CALL_TIMEOUT)
        if got != mtype:
            wrong_type += 1
        if bytes(data) == STOP:
            break
        nbytes += len(data)
        rec = parse_record(data)
        if rec is None:
            corrupt += 1
            continue
        producer, seq, rtype = rec
        if rtype != got:
            wrong_type += 1
        seen.append((producer << 32) | seq)
    conn.send((seen, corrupt, wrong_type, nbytes))
    conn.close()


@durations()
def test_queue_producers_consumers_typed_routing(
    ipc: Tracker, children: Children, record_property: Any, seconds: float
) -> None:
    q = MessageQueue()
    ipc.track("msg", q.id)
    consumers = []
    for t in range(1, Q_TYPES + 1):
        mine, theirs = FORK.Pipe(duplex=False)
        consumers.append((children.start(queue_consumer, q.id, t, t % 2 == 0, theirs), mine))
    producers = []
    started = time.monotonic()
    for p in range(1, Q_PRODUCERS + 1):
        mine, theirs = FORK.Pipe(duplex=False)
        producers.append((p, children.start(queue_producer, q.id, p, seconds, theirs), mine))

    sent = {}
    for p, proc, conn in producers:
        sent[p] = receive_result(conn, seconds + CALL_TIMEOUT + 30)
        assert children.join(proc, 30) == 0
    for t in range(1, Q_TYPES + 1):
        q.send(STOP, type=t, timeout=CALL_TIMEOUT)
    results = []
    for proc, conn in consumers:
        results.append(receive_result(conn, CALL_TIMEOUT + 30))
        assert children.join(proc, 30) == 0
    elapsed = time.monotonic() - started

    assert len(q) == 0
    assert sum(r[1] for r in results) == 0, "corrupted messages"
    assert sum(r[2] for r in results) == 0, "messages delivered to the wrong type"
    total, lost, duplicated = check_accounting(sent, [r[0] for r in results])
    assert (lost, duplicated) == (0, 0)
    assert total > 0
    report(
        record_property,
        queue_messages=total,
        queue_bytes=sum(r[3] for r in results),
        queue_seconds=round(elapsed, 2),
        queue_msgs_per_s=int(total / elapsed),
        producers=Q_PRODUCERS,
        consumers=Q_TYPES,
    )


# --------------------------------------------------------------------------
# Semaphore mutual exclusion: a non-atomic counter in shared memory
# --------------------------------------------------------------------------

COUNTER = struct.Struct("<Q")  # offset 0
OWNER = struct.Struct("<I")  # offset 8
M_WORKERS = 4


def mutex_worker(semid: int, shmid: int, style: int, seconds: float, conn: Connection) -> None:
    s = SemaphoreSet.from_id(semid)
    shm = SharedMemory.from_id(shmid)
    buf = shm.buf
    me = os.getpid()
    done = violations = 0

    def critical() -> None:
        nonlocal violations
        if OWNER.unpack_from(buf, 8)[0] != 0:
            violations += 1
        OWNER.pack_into(buf, 8, me)
        value = COUNTER.unpack_from(buf, 0)[0]
        for _ in range(done % 7):  # vary the window between read and write
            pass
        COUNTER.pack_into(buf, 0, value + 1)
        if OWNER.unpack_from(buf, 8)[0] != me:
            violations += 1
        OWNER.pack_into(buf, 8, 0)

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if style == 0:
            with s[0]:  # SEM_UNDO lock
                critical()
        elif style == 1:
            s[0].acquire(timeout=CALL_TIMEOUT)
            try:
                critical()
            finally:
                s[0].release()
        else:
            s.op([(0, -1)], timeout=CALL_TIMEOUT, undo=True)
            try:
                critical()
            finally:
                s.op([(0, +1)], undo=True)
        done += 1
    conn.send((done, violations))
    conn.close()


@durations()
def test_semaphore_mutual_exclusion_under_contention(
    ipc: Tracker, children: Children, record_property: Any, seconds: float
) -> None:
    s = SemaphoreSet(initial=1)
    ipc.track("sem", s.id)
    shm = SharedMemory(size=4096)
    ipc.track("shm", shm.id)
    workers = []
    started = time.monotonic()
    for i in range(M_WORKERS):
        mine, theirs = FORK.Pipe(duplex=False)
        workers.append((children.start(mutex_worker, s.id, shm.id, i % 3, seconds, theirs), mine))
    results = []
    for proc, conn in workers:
        results.append(receive_result(conn, seconds + CALL_TIMEOUT + 30))
        assert children.join(proc, 30) == 0
    elapsed = time.monotonic() - started
    entries = sum(r[0] for r in results)
    assert sum(r[1] for r in results) == 0, "two processes were inside the lock at once"
    assert COUNTER.unpack_from(shm.buf, 0)[0] == entries, "lost counter updates"
    assert s[0].value == 1
    assert all(r[0] > 0 for r in results), "a worker never got the lock"
    report(
        record_property,
        lock_entries=entries,
        lock_seconds=round(elapsed, 2),
        lock_entries_per_s=int(entries / elapsed),
        workers=M_WORKERS,
    )
    shm.close()


# --------------------------------------------------------------------------
# A ring buffer in shared memory, guarded by 'empty', 'full' and 'mutex'
# --------------------------------------------------------------------------

EMPTY, FULL, MUTEX = 0, 1, 2
SLOTS = 16
SLOT_SIZE = 256
RING_MAXBODY = SLOT_SIZE - HEADER.size
INDEX = struct.Struct("<QQ")  # head (next slot to write), tail (next to read)
RING_BASE = 64
STOP_PRODUCER = 0xFFFFFFFF
R_PRODUCERS = 2
R_CONSUMERS = 2


def ring_put(s: SemaphoreSet, buf: memoryview, record: bytes, combined: bool) -> None:
    if combined:  # wait for a free slot and take the mutex in one semop
        s.op([(EMPTY, -1), (MUTEX, -1, 0)], timeout=CALL_TIMEOUT)
    else:
        s[EMPTY].acquire(timeout=CALL_TIMEOUT)
        s[MUTEX].acquire(timeout=CALL_TIMEOUT)
    head, tail = INDEX.unpack_from(buf, 0)
    assert head - tail < SLOTS, "ring overflow: 'empty' let too many writers in"
    start = RING_BASE + (head % SLOTS) * SLOT_SIZE
    buf[start : start + len(record)] = record
    INDEX.pack_into(buf, 0, head + 1, tail)
    if combined:
        s.op([(MUTEX, +1), (FULL, +1)])
    else:
        s[MUTEX].release()
        s[FULL].release()


def ring_get(s: SemaphoreSet, buf: memoryview, combined: bool) -> bytes:
    if combined:
        s.op([(FULL, -1), (MUTEX, -1)], timeout=CALL_TIMEOUT)
    else:
        s[FULL].acquire(timeout=CALL_TIMEOUT)
        s[MUTEX].acquire(timeout=CALL_TIMEOUT)
    head, tail = INDEX.unpack_from(buf, 0)
    assert tail < head, "ring underflow: 'full' let a reader in on an empty ring"
    start = RING_BASE + (tail % SLOTS) * SLOT_SIZE
    record = bytes(buf[start : start + SLOT_SIZE])
    buf[start : start + SLOT_SIZE] = bytes(SLOT_SIZE)  # a stale slot would be caught
    INDEX.pack_into(buf, 0, head, tail + 1)
    if combined:
        s.op([(MUTEX, +1), (EMPTY, +1)])
    else:
        s[MUTEX].release()
        s[EMPTY].release()
    return record


def ring_producer(semid: int, shmid: int, producer: int, seconds: float, conn: Connection) -> None:
    s = SemaphoreSet.from_id(semid)
    shm = SharedMemory.from_id(shmid)
    rng = random.Random(producer)
    deadline = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < deadline:
        ring_put(s, shm.buf, make_record(producer, seq, 0, rng, RING_MAXBODY), producer % 2 == 0)
        seq += 1
    conn.send(seq)
    conn.close()


def ring_consumer(semid: int, shmid: int, combined: bool, conn: Connection) -> None:
    s = SemaphoreSet.from_id(semid)
    shm = SharedMemory.from_id(shmid)
    seen = array("Q")
    corrupt = 0
    while True:
        rec = parse_record(ring_get(s, shm.buf, combined))
        if rec is None:
            corrupt += 1
            continue
        if rec[0] == STOP_PRODUCER:
            break
        seen.append((rec[0] << 32) | rec[1])
    conn.send((seen, corrupt))
    conn.close()


@durations()
def test_ring_buffer_guarded_by_semaphores(
    ipc: Tracker, children: Children, record_property: Any, seconds: float
) -> None:
    s = SemaphoreSet(nsems=3, initial=[SLOTS, 0, 1])
    ipc.track("sem", s.id)
    shm = SharedMemory(size=RING_BASE + SLOTS * SLOT_SIZE)
    ipc.track("shm", shm.id)
    consumers = []
    for i in range(R_CONSUMERS):
        mine, theirs = FORK.Pipe(duplex=False)
        consumers.append((children.start(ring_consumer, s.id, shm.id, i % 2 == 1, theirs), mine))
    producers = []
    started = time.monotonic()
    for p in range(1, R_PRODUCERS + 1):
        mine, theirs = FORK.Pipe(duplex=False)
        producers.append((p, children.start(ring_producer, s.id, shm.id, p, seconds, theirs), mine))
    sent = {}
    for p, proc, conn in producers:
        sent[p] = receive_result(conn, seconds + CALL_TIMEOUT + 30)
        assert children.join(proc, 30) == 0
    rng = random.Random(0)
    for _ in range(R_CONSUMERS):  # after every record: the ring is FIFO
        ring_put(s, shm.buf, make_record(STOP_PRODUCER, 0, 0, rng, 0), True)
    results = []
    for proc, conn in consumers:
        results.append(receive_result(conn, CALL_TIMEOUT + 30))
        assert children.join(proc, 30) == 0
    elapsed = time.monotonic() - started

    assert sum(r[1] for r in results) == 0, "corrupted records"
    total, lost, duplicated = check_accounting(sent, [r[0] for r in results])
    assert (lost, duplicated) == (0, 0)
    head, tail = INDEX.unpack_from(shm.buf, 0)
    assert head == tail == total + R_CONSUMERS
    assert s.values == [SLOTS, 0, 1]
    report(
        record_property,
        ring_records=total,
        ring_seconds=round(elapsed, 2),
        ring_records_per_s=int(total / elapsed),
        producers=R_PRODUCERS,
        consumers=R_CONSUMERS,
    )
    shm.close()
