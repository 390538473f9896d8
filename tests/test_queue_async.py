"""MessageQueue.send_async / receive_async: they do not block the event loop,
they time out, and cancelling a pending receive_async never loses a message
(it is either returned to the caller or left on the queue).

The tests drive their own event loop with asyncio.run (no plugin needed);
every queue is tracked with ``ipc.track`` and every child is killed in a
``finally``.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import os
import random
import statistics
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

try:
    from conftest import HANG, LONG_TIMEOUT, Tracker, proc_row
except ImportError:  # run from the repository root with tests as a package
    from tests.conftest import (  # type: ignore[assignment, no-redef, unused-ignore]
        HANG,
        LONG_TIMEOUT,
        Tracker,
        proc_row,
    )

from sysvipc import IdentifierRemovedError, Message, MessageQueue

ROOT = Path(__file__).resolve().parent.parent
LATE = HANG  # a timeout never ends early; how late is benchmarks/'s business
# receive_async's background waits are sliced; after this long every
# waiter of a cancelled call has finished (and re-queued what it took).
SETTLE = 0.6

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], limit: float = 60) -> T:
    """Run a coroutine on a fresh loop, with a watchdog."""

    async def guarded() -> T:
        return await asyncio.wait_for(coro, limit)

    return asyncio.run(guarded())


@pytest.fixture
def q(ipc: Tracker) -> Iterator[MessageQueue]:
    queue = MessageQueue()
    ipc.track("msg", queue.id)
    try:
        yield queue
    finally:
        queue.close()


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def drain(q: MessageQueue) -> list[Message]:
    out = []
    while True:
        try:
            out.append(q.receive(block=False))
        except BlockingIOError:
            return out


# --------------------------------------------------------------------------
# Basics
# --------------------------------------------------------------------------


def test_send_async_and_receive_async(q: MessageQueue) -> None:
    async def main() -> None:
        await q.send_async(b"hello", type=3)
        await q.send_async(bytearray(b"world"))
        await q.send_async(memoryview(b"!!"), 2)
        assert await q.receive_async(timeout=5) == (b"hello", 3)
        assert await q.receive_async(2, timeout=5) == (b"!!", 2)
        assert await q.receive_async(-5, timeout=5) == (b"world", 1)

    run(main())
    assert len(q) == 0


def test_receive_async_selection_and_sizes(q: MessageQueue) -> None:
    async def main() -> None:
        for data, mtype in [(b"a", 1), (b"b", 2), (b"c", 3)]:
            q.send(data, type=mtype)
        assert await q.receive_async(1, except_type=True, timeout=5) == (b"b", 2)
        with pytest.raises(OSError) as info:
            q.send(b"0123456789", type=4)
            await q.receive_async(4, max_size=4, timeout=5)
        assert info.value.errno == errno.E2BIG
        assert await q.receive_async(4, max_size=4, truncate=True, timeout=5) == (b"0123", 4)
        assert await q.receive_async(-3, timeout=5) == (b"a", 1)
        assert await q.receive_async(timeout=5) == (b"c", 3)
        q.send(b"", type=5)
        assert await q.receive_async(timeout=5) == (b"", 5)

    run(main())
    assert len(q) == 0


def test_receive_async_waits_for_a_message(q: MessageQueue) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, q.send, b"later", 7)
        start = time.monotonic()
        assert await q.receive_async(timeout=LONG_TIMEOUT) == (b"later", 7)
        assert 0.09 <= time.monotonic() - start < HANG

    run(main())


def test_receive_async_waits_for_its_type(q: MessageQueue) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, q.send, b"other", 1)
        loop.call_later(0.15, q.send, b"mine", 2)
        assert await q.receive_async(2, timeout=5) == (b"mine", 2)

    run(main())
    assert drain(q) == [(b"other", 1)]


def test_receive_async_does_not_block_the_loop(q: MessageQueue) -> None:
    async def main() -> None:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        threading.Timer(0.3, q.send, (b"late", 1)).start()
        tick_task = asyncio.create_task(ticker())
        try:
            assert await q.receive_async(timeout=5) == (b"late", 1)
            with pytest.raises(TimeoutError):
                await q.receive_async(timeout=0.2)
        finally:
            stop.set()
            await tick_task
        # A loop blocked by the waits would tick once or twice; a free one
        # ticks every ~5 ms of the 0.5 s (fewer on a loaded machine).
        assert ticks >= 5, ticks

    run(main())


def test_many_concurrent_receive_async(q: MessageQueue) -> None:
    async def main() -> None:
        tasks = [asyncio.create_task(q.receive_async(timeout=10)) for _ in range(200)]
        await asyncio.sleep(0.05)
        for i in range(200):
            q.send(struct.pack("<I", i), type=1 + i % 3)
        results = await asyncio.gather(*tasks)
        got = sorted(struct.unpack("<I", m.data)[0] for m in results)
        assert got == list(range(200))

    run(main())
    assert len(q) == 0


def test_send_async_does_not_block_the_loop_on_a_full_queue(q: MessageQueue) -> None:
    q.set(max_bytes=16)
    q.send(b"f" * 16)

    async def main() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        tick_task = asyncio.create_task(ticker())
        asyncio.get_running_loop().call_later(0.3, q.receive, 0)
        try:
            start = time.monotonic()
            await q.send_async(b"y", timeout=LONG_TIMEOUT)
            assert 0.29 <= time.monotonic() - start < HANG
        finally:
            tick_task.cancel()
        assert ticks >= 5, ticks  # a blocked loop ticks once or twice

    run(main())
    assert drain(q) == [(b"y", 1)]


async def _delivery_latencies(q: MessageQueue, trials: int) -> list[float]:
    """Send from the loop 50 ms into each receive_async; time to its return."""
    loop = asyncio.get_running_loop()
    latencies = []
    for i in range(trials):
        sent_at: list[float] = []

        def send(i: int = i, sent_at: list[float] = sent_at) -> None:
            sent_at.append(time.monotonic())
            q.send(struct.pack("<I", i), type=1)

        loop.call_later(0.05, send)
        message = await q.receive_async(1, timeout=LONG_TIMEOUT)
        latencies.append(time.monotonic() - sent_at[0])
        assert message == (struct.pack("<I", i), 1)
    return latencies


def test_receive_async_delivers_at_once(q: MessageQueue) -> None:
    latencies = run(_delivery_latencies(q, 10))
    # Delivered, and never by waiting out the timeout; how fast is measured
    # by benchmarks/ (timed_wait_latency), not asserted here.
    print(f"median delivery {statistics.median(latencies) * 1e3:.2f} ms")
    assert max(latencies) < HANG, latencies


def test_receive_async_delivers_at_once_beside_many_idle_waiters(q: MessageQueue) -> None:
    async def main() -> list[float]:
        idle = [asyncio.create_task(q.receive_async(type=999)) for _ in range(100)]
        try:
            await asyncio.sleep(0.1)
            return await _delivery_latencies(q, 10)
        finally:
            for task in idle:
                task.cancel()
            await asyncio.wait(idle)

    latencies = run(main())
    time.sleep(SETTLE)
    print(f"median delivery {statistics.median(latencies) * 1e3:.2f} ms")
    assert max(latencies) < HANG, latencies


# --------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0.05, 0.2, 0.6])
def test_receive_async_timeout(q: MessageQueue, timeout: float) -> None:
    async def main() -> float:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await q.receive_async(timeout=timeout)
        return time.monotonic() - start

    elapsed = run(main())
    assert timeout <= elapsed <= timeout + LATE, elapsed


@pytest.mark.parametrize("timeout", [0.05, 0.2])
def test_send_async_timeout(q: MessageQueue, timeout: float) -> None:
    q.set(max_bytes=16)
    q.send(b"f" * 16)

    async def main() -> float:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await q.send_async(b"y", timeout=timeout)
        return time.monotonic() - start

    elapsed = run(main())
    assert timeout <= elapsed <= timeout + LATE, elapsed
    assert drain(q) == [(b"f" * 16, 1)]


def test_send_async_of_a_message_that_can_never_fit_is_value_error(q: MessageQueue) -> None:
    q.set(max_bytes=100)

    async def main() -> None:
        with pytest.raises(ValueError, match="msg_qbytes"):
            await q.send_async(bytes(200), timeout=1.0)

    run(main())


def test_async_timeout_zero(q: MessageQueue) -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError):
            await q.receive_async(timeout=0)
        q.send(b"there")
        assert await q.receive_async(timeout=0) == (b"there", 1)

    run(main())


def test_receive_async_after_close_is_value_error(q: MessageQueue) -> None:
    q.close()

    async def main() -> None:
        with pytest.raises(ValueError, match="closed"):
            await q.receive_async(timeout=1)
        with pytest.raises(ValueError, match="closed"):
            await q.send_async(b"x", timeout=1)

    run(main())


def test_removal_wakes_a_pending_receive_async(q: MessageQueue) -> None:
    async def main() -> None:
        task = asyncio.create_task(q.receive_async())
        await asyncio.sleep(0.1)
        removed_at = time.monotonic()
        q.remove()
        with pytest.raises(IdentifierRemovedError):
            await asyncio.wait_for(task, LONG_TIMEOUT)
        assert time.monotonic() - removed_at < HANG

    run(main())


def test_removal_ends_a_pending_send_async(q: MessageQueue) -> None:
    q.set(max_bytes=16)
    q.send(b"f" * 16)

    async def main() -> None:
        task = asyncio.create_task(q.send_async(b"y"))
        await asyncio.sleep(0.1)
        removed_at = time.monotonic()
        q.remove()
        with pytest.raises(OSError):
            await asyncio.wait_for(task, LONG_TIMEOUT)
        assert time.monotonic() - removed_at < HANG

    run(main())


# --------------------------------------------------------------------------
# Cancellation never loses a message
# --------------------------------------------------------------------------


def test_cancelled_receive_async_leaves_the_message_queued(q: MessageQueue) -> None:
    async def main() -> None:
        task = asyncio.create_task(q.receive_async())
        await asyncio.sleep(0.05)  # waiting in the background now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        q.send(b"not for the cancelled one", type=4)
        await asyncio.sleep(SETTLE)
        assert len(q) == 1
        assert await q.receive_async(timeout=5) == (b"not for the cancelled one", 4)

    run(main())


def test_cancelled_receive_async_requeues_a_zero_length_message(q: MessageQueue) -> None:
    # The documented caveat: the background waiter does take a zero-length
    # message; a cancelled call sends it back (to the end of the queue).
    async def main() -> None:
        task = asyncio.create_task(q.receive_async())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        q.send(b"", type=9)
        deadline = time.monotonic() + 5
        while len(q) == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert await q.receive_async(timeout=5) == (b"", 9)

    run(main())


def test_cancelled_wait_for_leaves_the_message_queued(q: MessageQueue) -> None:
    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(q.receive_async(), 0.05)
        q.send(b"kept", type=2)
        q.send(b"", type=3)
        await asyncio.sleep(SETTLE)
        assert drain(q) == [(b"kept", 2), (b"", 3)]

    run(main())


def test_cancelling_many_pending_receive_async(q: MessageQueue) -> None:
    async def main() -> None:
        tasks = [asyncio.create_task(q.receive_async()) for _ in range(100)]
        await asyncio.sleep(0.05)
        for i in range(50):
            q.send(struct.pack("<I", i) if i % 2 else b"", type=i + 1)
        for t in tasks:
            t.cancel()
        done, pending = await asyncio.wait(tasks, timeout=10)
        assert not pending
        got = [t.result() for t in done if not t.cancelled()]
        await asyncio.sleep(SETTLE)
        got += drain(q)
        assert sorted(m.type for m in got) == list(range(1, 51))
        for m in got:
            i = m.type - 1
            assert m.data == (struct.pack("<I", i) if i % 2 else b"")

    run(main())


def test_cancelled_send_async_sends_nothing(q: MessageQueue) -> None:
    q.set(max_bytes=16)
    q.send(b"f" * 16)

    async def main() -> None:
        task = asyncio.create_task(q.send_async(b"never"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        q.receive(block=False)  # room now
        await asyncio.sleep(0.05)
        assert len(q) == 0

    run(main())


PRODUCER = """
    import random, struct, sys, time
    from sysvipc import MessageQueue
    q = MessageQueue.from_id(int(sys.argv[1]))
    total, seed = int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    print("ready", flush=True)
    seq = 0
    while seq < total:
        # Short bursts and short pauses, so that receivers are usually
        # waiting when a message arrives (and cancellations hit waits).
        for _ in range(rng.randint(1, 3)):
            if seq == total:
                break
            if seq % 4 == 1:
                data = b""                               # identified by its type
            else:
                data = struct.pack("<I", seq) + bytes([seq % 251]) * (seq % 40)
            q.send(data, type=seq + 1, timeout=30)
            seq += 1
        time.sleep(rng.uniform(0.0002, 0.0012))
    print("done", flush=True)
"""


def expected_payload(seq: int) -> bytes:
    if seq % 4 == 1:
        return b""
    return struct.pack("<I", seq) + bytes([seq % 251]) * (seq % 40)


def test_cancelled_receive_async_calls_racing_a_producer_lose_and_duplicate_nothing(
    q: MessageQueue,
) -> None:
    total = 10_000
    cancellations_wanted = 1_000
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    producer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PRODUCER), str(q.id), str(total), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=child_env(),
    )
    received: collections.Counter[int] = collections.Counter()
    bad: list[Message] = []
    stats: collections.Counter[str] = collections.Counter()

    highest = -1

    def record(message: Message) -> None:
        nonlocal highest
        seq = message.type - 1
        received[seq] += 1
        if seq < highest:
            # Only a zero-length message taken by the waiter of a cancelled
            # call (and sent back to the end of the queue) arrives late.
            stats["out_of_order"] += 1
            if message.data:
                stats["out_of_order_nonempty"] += 1
        highest = max(highest, seq)
        if not 0 <= seq < total or message.data != expected_payload(seq):
            bad.append(message)

    async def consume() -> None:
        deadline = time.monotonic() + 40
        while len(received) < total and time.monotonic() < deadline:
            if stats["cancel_requested"] >= cancellations_wanted or rng.random() < 0.5:
                # An ordinary call, taken to completion.
                try:
                    record(await q.receive_async(timeout=2.0))
                except TimeoutError:
                    stats["timeouts"] += 1
                    if producer.poll() is not None:
                        break  # the producer is done and nothing came: stop
                continue
            how = rng.random()
            if how < 0.15:
                # asyncio.timeout with a tiny delay.
                try:
                    async with asyncio.timeout(rng.uniform(0, 0.001)):
                        record(await q.receive_async())
                    stats["timeout_cm_returned"] += 1
                except TimeoutError:
                    stats["timeout_cm_expired"] += 1
                stats["cancel_requested"] += 1
                continue
            if how < 0.3:
                # asyncio.wait_for with a tiny timeout.
                try:
                    record(await asyncio.wait_for(q.receive_async(), rng.uniform(0, 0.001)))
                    stats["wait_for_returned"] += 1
                except TimeoutError:
                    stats["wait_for_timed_out"] += 1
                stats["cancel_requested"] += 1
                continue
            # task.cancel() after a random short moment (sometimes none at all).
            task = asyncio.create_task(q.receive_async())
            if how < 0.5:
                for _ in range(rng.randint(0, 3)):
                    await asyncio.sleep(0)
            else:
                await asyncio.sleep(rng.uniform(0, 0.001))
            if task.cancel():
                stats["cancel_requested"] += 1
            await asyncio.wait([task])
            if task.cancelled():
                stats["cancelled"] += 1
            else:
                record(task.result())  # finished before the cancel took effect
                stats["finished_anyway"] += 1

    try:
        assert producer.stdout is not None
        run(consume(), limit=60)
        assert producer.wait(30) == 0, producer.stderr.read() if producer.stderr else ""
        # Waiters of cancelled calls end within a slice; anything they took
        # is back on the queue by then.  Nothing may be left over.
        time.sleep(SETTLE)
        leftovers = drain(q)
        for message in leftovers:
            record(message)
    finally:
        if producer.poll() is None:
            producer.kill()
        producer.wait(10)
        for stream in (producer.stdout, producer.stderr):
            if stream is not None:
                stream.close()

    info = f"seed={seed} stats={dict(stats)} leftovers={len(leftovers)}"
    print(info)
    assert stats["cancel_requested"] >= cancellations_wanted, info
    assert not bad, f"{len(bad)} corrupt messages, e.g. {bad[:3]}; {info}"
    duplicated = sorted(seq for seq, n in received.items() if n > 1)
    missing = sorted(set(range(total)) - set(received))
    assert not duplicated, f"{len(duplicated)} duplicated, e.g. {duplicated[:10]}; {info}"
    assert not missing, f"{len(missing)} lost, e.g. {missing[:10]}; {info}"
    assert sum(received.values()) == total
    # Messages with data are never taken by a background waiter: they keep
    # their order (only zero-length ones can come back late).
    assert stats["out_of_order_nonempty"] == 0, info


def test_receive_async_on_a_queue_fed_by_a_thread_with_cancellations(q: MessageQueue) -> None:
    # The same guarantee with the producer in a thread of this process.
    total = 2_000
    rng = random.Random(1234)
    received: collections.Counter[int] = collections.Counter()

    def produce() -> None:
        for seq in range(total):
            q.send(b"" if seq % 7 == 0 else struct.pack("<I", seq), type=seq + 1, timeout=30)
            if seq % 20 == 0:
                time.sleep(0.001)

    async def consume() -> None:
        deadline = time.monotonic() + 30
        while len(received) < total and time.monotonic() < deadline:
            task = asyncio.create_task(q.receive_async())
            if rng.random() < 0.3:
                await asyncio.sleep(rng.uniform(0, 0.002))
                task.cancel()
            await asyncio.wait([task], timeout=5)
            if task.done() and not task.cancelled():
                m = task.result()
                received[m.type - 1] += 1
            elif not task.done():  # pragma: no cover - a hang: fail below
                task.cancel()

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        run(consume(), limit=60)
    finally:
        producer.join(60)
    time.sleep(SETTLE)
    for m in drain(q):
        received[m.type - 1] += 1
    assert sorted(received) == list(range(total))
    assert set(received.values()) == {1}


def test_async_queue_survives_after_cancellations(q: MessageQueue) -> None:
    # After the loop that cancelled calls is gone, nothing keeps taking messages.
    async def cancel_some() -> None:
        tasks = [asyncio.create_task(q.receive_async()) for _ in range(20)]
        await asyncio.sleep(0.02)
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks)

    run(cancel_some())
    time.sleep(SETTLE)
    for i in range(10):
        q.send(b"" if i % 2 else b"x", type=i + 1)
    time.sleep(0.1)
    assert sorted(m.type for m in drain(q)) == list(range(1, 11))
    assert proc_row("msg", q.id) is not None
