"""MessageQueue between processes: 4 producers and 4 consumers move 100,000
numbered, checksummed messages with none lost, duplicated or corrupted; and
smaller cross-process checks (selection by type as an address, a queue
handed to children by pickling).

Children are `spawn` processes (no fork of a threaded test runner); every one
is joined, or killed, in a ``finally``, and every queue is tracked.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import struct
import time
import zlib
from collections.abc import Iterator
from queue import Empty
from typing import Any

import pytest

try:
    from conftest import Tracker, proc_row
except ImportError:  # run from the repository root with tests as a package
    from tests.conftest import Tracker, proc_row  # type: ignore[assignment, no-redef, unused-ignore]

from sysvipc import MessageQueue

PRODUCERS = 4
CONSUMERS = 4
PER_PRODUCER = 25_000
DATA = 1
SENTINEL = 2
HEADER = struct.Struct("<HII")  # producer id, sequence number, crc32 of the rest
PAIR = struct.Struct("<HI")


@pytest.fixture
def q(ipc: Tracker) -> Iterator[MessageQueue]:
    queue = MessageQueue()
    ipc.track("msg", queue.id)
    try:
        yield queue
    finally:
        queue.close()


def join_all(children: list[Any], timeout: float) -> None:
    """Wait for every child to exit 0; fail at once if one fails."""
    deadline = time.monotonic() + timeout
    while any(c.exitcode is None for c in children):
        failed = [c.exitcode for c in children if c.exitcode not in (None, 0)]
        assert not failed, f"a child failed: exit codes {[c.exitcode for c in children]}"
        assert time.monotonic() < deadline, f"children still running after {timeout} s"
        time.sleep(0.02)
    assert [c.exitcode for c in children] == [0] * len(children)


def get_results(results: Any, children: list[Any], count: int, timeout: float) -> list[Any]:
    """Collect count results from children, failing at once if one dies."""
    collected: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(collected) < count:
        try:
            collected.append(results.get(timeout=0.2))
        except Empty:
            died = [c.exitcode for c in children if c.exitcode not in (None, 0)]
            assert not died, f"a child died: exit codes {died}"
            assert time.monotonic() < deadline, f"no results after {timeout} s"
    return collected


def reap(children: list[Any]) -> None:
    for child in children:
        child.join(0.1)
    for child in children:
        if child.is_alive():
            child.kill()
        child.join(10)


# --------------------------------------------------------------------------
# 4 producers x 4 consumers, 100,000 messages
# --------------------------------------------------------------------------


def _produce(queue: MessageQueue, producer: int, count: int, seed: int) -> None:
    rng = random.Random(seed * 1000 + producer)
    for seq in range(count):
        body = rng.randbytes(rng.randrange(0, 120))
        queue.send(HEADER.pack(producer, seq, zlib.crc32(body)) + body, DATA, timeout=60)
    queue.close()


def _consume(queue: MessageQueue, results: Any, consumer: int) -> None:
    pairs = bytearray()
    corrupt = 0
    error = ""
    try:
        while True:
            data, mtype = queue.receive(timeout=60)
            if mtype == SENTINEL:
                break
            producer, seq, crc = HEADER.unpack_from(data)
            if mtype != DATA or zlib.crc32(data[HEADER.size :]) != crc:
                corrupt += 1
            pairs += PAIR.pack(producer, seq)
    except BaseException as e:  # reported to the parent
        error = f"{type(e).__name__}: {e}"
    results.put((consumer, bytes(pairs), corrupt, error))
    queue.close()


def test_four_producers_four_consumers_move_100k_messages(q: MessageQueue) -> None:
    ctx = multiprocessing.get_context("spawn")
    seed = int.from_bytes(os.urandom(4), "little")
    results = ctx.Queue()
    consumers = [ctx.Process(target=_consume, args=(q, results, i)) for i in range(CONSUMERS)]
    producers = [
        ctx.Process(target=_produce, args=(q, i, PER_PRODUCER, seed)) for i in range(PRODUCERS)
    ]
    children = consumers + producers
    start = time.monotonic()
    try:
        for child in children:
            child.start()
        join_all(producers, 120)
        # All data is queued ahead of the sentinels: each consumer takes one.
        for _ in consumers:
            q.send(b"", SENTINEL, timeout=60)
        collected = get_results(results, consumers, CONSUMERS, 120)
        join_all(consumers, 60)
    finally:
        reap(children)
        results.close()
        results.join_thread()
    elapsed = time.monotonic() - start

    seen: dict[tuple[int, int], int] = {}
    per_consumer = []
    for consumer, pairs, corrupt, error in sorted(collected):
        assert not error, f"consumer {consumer}: {error}"
        assert corrupt == 0, f"consumer {consumer}: {corrupt} corrupt messages (seed {seed})"
        per_consumer.append(len(pairs) // PAIR.size)
        for producer, seq in PAIR.iter_unpack(pairs):
            seen[producer, seq] = seen.get((producer, seq), 0) + 1
    duplicated = [k for k, n in seen.items() if n > 1]
    expected = {(p, s) for p in range(PRODUCERS) for s in range(PER_PRODUCER)}
    missing = expected - seen.keys()
    unexpected = seen.keys() - expected
    info = f"seed {seed}, per consumer {per_consumer}, {elapsed:.1f} s"
    assert not duplicated, f"{len(duplicated)} duplicated, e.g. {duplicated[:5]}; {info}"
    assert not missing, f"{len(missing)} lost, e.g. {sorted(missing)[:5]}; {info}"
    assert not unexpected, f"unexpected {sorted(unexpected)[:5]}; {info}"
    assert sum(per_consumer) == PRODUCERS * PER_PRODUCER
    assert len(q) == 0
    print(info)


# --------------------------------------------------------------------------
# Request/response between processes, with types as addresses
# --------------------------------------------------------------------------


def _server(queue: MessageQueue, requests: int) -> None:
    # Requests come as type 1 with the client's reply type in front.
    for _ in range(requests):
        data, _ = queue.receive(type=1, timeout=60)
        (reply_to,) = struct.unpack_from("<q", data)
        queue.send(data[8:].upper(), type=reply_to, timeout=60)


def _client(queue: MessageQueue, me: int, rounds: int, errors: Any) -> None:
    try:
        for i in range(rounds):
            word = f"client {me} round {i}".encode()
            queue.send(struct.pack("<q", me) + word, type=1, timeout=60)
            reply = queue.receive(type=me, timeout=60)
            assert reply == (word.upper(), me), reply
    except BaseException as e:
        errors.put(f"client {me}: {type(e).__name__}: {e}")


def test_types_route_replies_to_the_right_process(q: MessageQueue) -> None:
    ctx = multiprocessing.get_context("spawn")
    rounds = 500
    client_types = [2, 3, 2**40, 2**63 - 1]
    errors = ctx.Queue()
    server = ctx.Process(target=_server, args=(q, rounds * len(client_types)))
    clients = [ctx.Process(target=_client, args=(q, t, rounds, errors)) for t in client_types]
    children = [server, *clients]
    try:
        for child in children:
            child.start()
        try:
            join_all(children, 120)
        finally:
            problems = []
            while not errors.empty():
                problems.append(errors.get(timeout=5))
        assert not problems, problems
    finally:
        reap(children)
        errors.close()
        errors.join_thread()
    assert len(q) == 0


# --------------------------------------------------------------------------
# A blocked receiver in another process gets what is sent
# --------------------------------------------------------------------------


def _receive_one(queue: MessageQueue, results: Any) -> None:
    results.put(tuple(queue.receive(type=5, timeout=60)))


def test_blocked_receivers_in_other_processes_each_get_one(q: MessageQueue) -> None:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    children = [ctx.Process(target=_receive_one, args=(q, results)) for _ in range(3)]
    try:
        for child in children:
            child.start()
        time.sleep(0.5)
        q.send(b"not for them", type=4)
        for i in range(3):
            q.send(bytes([i]) * 100, type=5)
        got = sorted(get_results(results, children, len(children), 60))
        join_all(children, 30)
    finally:
        reap(children)
        results.close()
        results.join_thread()
    assert got == [(bytes([i]) * 100, 5) for i in range(3)]
    assert q.receive(block=False) == (b"not for them", 4)
    assert proc_row("msg", q.id) is not None
