"""multiprocessing.Queue (fork context): the standard library's message
queue between processes (pickling, a feeder thread, a pipe and a lock).

Message rows only: ``put(data)`` and ``get()``, two queues for ping-pong,
``get(timeout=...)`` for the timed wait.  The semaphore and shared-memory
rows are in the ``multiprocessing`` column.
"""

from __future__ import annotations

import contextlib
import queue
import sys
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Any

from harness import (
    Config,
    Peer,
    calibrate,
    latency_samples,
    measure_pair,
    measure_stream,
    now_ns,
    serve_stamps,
    unpack_stamp,
)

TITLE = "mp.Queue"

NOTES: dict[str, str] = {
    "msg": "mp.Queue: multiprocessing.Queue put/get (two queues for ping-pong); "
    "timed wait is get(timeout)",
}


def probe() -> dict[str, Any]:
    try:
        import multiprocessing  # noqa: F401
    except ImportError as e:
        return {"available": False, "reason": str(e), "version": None}
    return {"available": True, "reason": None, "version": "Python " + sys.version.split()[0]}


def unsupported(row_id: str) -> str | None:
    if row_id.startswith(("msg_", "timed_wait")):
        return None
    return "a message queue only (see the multiprocessing column)"


class Impl:
    def __init__(self) -> None:
        import multiprocessing

        self.ctx = multiprocessing.get_context("fork")

    @contextlib.contextmanager
    def _queues(self, count: int) -> Iterator[list[Any]]:
        qs = [self.ctx.Queue() for _ in range(count)]
        try:
            yield qs
        finally:
            for q in qs:
                q.close()
                q.join_thread()

    def msg_pingpong(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queues(2) as (q1, q2):
            put1, get1, put2, get2 = q1.put, q1.get, q2.put, q2.get

            def child(peer: Peer) -> None:
                while n := peer.next_command():
                    for _ in repeat(None, n):
                        put2(get1())

            data = b"x" * size
            with Peer(child, cfg.peer_cpu) as peer:

                def batch(n: int) -> int:
                    peer.command(n)
                    t0 = now_ns()
                    for _ in repeat(None, n):
                        put1(data)
                        get2()
                    return now_ns() - t0

                return calibrate(batch, cfg)

    def msg_stream(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queues(1) as (q,):
            return measure_stream(q.put, q.get, size, cfg)

    def msg_pair(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queues(1) as (q,):
            return measure_pair(q.put, q.get, size, cfg)

    def timed_wait_latency(self, cfg: Config) -> dict[str, Any]:
        with self._queues(1) as (q,):
            put, get = q.put, q.get

            def child(peer: Peer) -> None:
                serve_stamps(peer, put, cfg)

            timeout = cfg.wait_timeout_s
            with Peer(child, cfg.peer_cpu) as peer:

                def one() -> int:
                    peer.command(1)
                    data = get(timeout=timeout)
                    return now_ns() - unpack_stamp(data)

                return latency_samples(one, cfg)

    @contextlib.contextmanager
    def waiter(self, cfg: Config) -> Iterator[Callable[[float], None]]:
        with self._queues(1) as (q,):
            get = q.get

            def wait(seconds: float) -> None:
                try:
                    get(timeout=seconds)
                except queue.Empty:
                    return
                raise RuntimeError("a message arrived on a private queue")

            yield wait
