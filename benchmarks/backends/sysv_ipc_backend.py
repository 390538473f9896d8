"""sysv_ipc (PyPI), the incumbent System V binding.

Messages: ``MessageQueue.send(data, type=...)`` and ``receive(type=...)``,
with ``max_message_size`` set to the workload's message size (its best
case: the receive buffer is allocated at that size on every call).
Semaphores: one ``Semaphore`` (a set of one) per semaphore, ``undo = True``
for the undo row.  Shared memory: the object's buffer protocol for numpy,
``write()``; ``read()`` (a new bytes object each call) for the read row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Any

from harness import (
    Config,
    Peer,
    calibrate,
    measure_pair,
    measure_sem_pingpong,
    measure_sem_uncontended,
    measure_stream,
    now_ns,
    track,
)

TITLE = "sysv_ipc"

NOTES: dict[str, str] = {
    "shm_read_call": "sysv_ipc: read() (returns a new bytes object; there is no read_into)",
    "shm_create": "sysv_ipc: SharedMemory() fills every new segment with init_character",
    "msg": "sysv_ipc: max_message_size set to the message size (its fastest setting)",
}


def probe() -> dict[str, Any]:
    try:
        import sysv_ipc
    except ImportError as e:
        return {
            "available": False,
            "reason": f"not installed ({e}); pip install sysv_ipc",
            "version": None,
        }
    return {"available": True, "reason": None, "version": getattr(sysv_ipc, "VERSION", "?")}


def unsupported(row_id: str) -> str | None:
    if row_id == "timed_wait_latency":
        return "MessageQueue.receive() has no timeout"
    if row_id == "timed_wait_cpu":
        return "MessageQueue.receive() has no timeout"
    return None


class Impl:
    def __init__(self) -> None:
        import sysv_ipc

        self.m = sysv_ipc

    @contextlib.contextmanager
    def _queue(self, cfg: Config, size: int) -> Iterator[Any]:
        m = self.m
        q = m.MessageQueue(m.IPC_PRIVATE, m.IPC_CREX, 0o600, max(size, 1))
        try:
            track(cfg, "msg", q.id)
            yield q
        finally:
            q.remove()

    def msg_pingpong(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queue(cfg, size) as q:
            send, recv = q.send, q.receive

            def child(peer: Peer) -> None:
                while n := peer.next_command():
                    for _ in repeat(None, n):
                        send(recv(type=1)[0], type=2)

            data = b"x" * size
            with Peer(child, cfg.peer_cpu) as peer:

                def batch(n: int) -> int:
                    peer.command(n)
                    t0 = now_ns()
                    for _ in repeat(None, n):
                        send(data, type=1)
                        recv(type=2)
                    return now_ns() - t0

                return calibrate(batch, cfg)

    def msg_stream(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queue(cfg, size) as q:
            return measure_stream(q.send, q.receive, size, cfg)

    def msg_pair(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queue(cfg, size) as q:
            return measure_pair(q.send, q.receive, size, cfg)

    @contextlib.contextmanager
    def _semaphores(self, cfg: Config, initial: int, count: int) -> Iterator[list[Any]]:
        m = self.m
        sems: list[Any] = []
        try:
            for _ in range(count):
                sems.append(m.Semaphore(m.IPC_PRIVATE, m.IPC_CREX, 0o600, initial))
                track(cfg, "sem", sems[-1].id)
            yield sems
        finally:
            for s in sems:
                with contextlib.suppress(Exception):
                    s.remove()

    def sem_pingpong(self, cfg: Config) -> dict[str, Any]:
        with self._semaphores(cfg, 0, 2) as (a, b):
            acq0, rel0, acq1, rel1 = a.acquire, a.release, b.acquire, b.release
            return measure_sem_pingpong(acq0, rel0, acq1, rel1, cfg)

    def sem_uncontended(self, undo: bool, cfg: Config) -> dict[str, Any]:
        with self._semaphores(cfg, 1, 1) as (s,):
            s.undo = undo
            return measure_sem_uncontended(s.acquire, s.release, cfg)

    @contextlib.contextmanager
    def segment(self, cfg: Config) -> Iterator[Any]:
        import numpy as np

        m = self.m
        mem = m.SharedMemory(m.IPC_PRIVATE, m.IPC_CREX, 0o600, cfg.shm_bytes)
        seg = _Segment()
        try:
            track(cfg, "shm", mem.id)
            seg.view = np.frombuffer(mem, dtype=np.uint8)
            seg.write = mem.write
            seg.read_into = lambda dst: mem.read()
            yield seg
        finally:
            seg.view = None
            with contextlib.suppress(Exception):
                mem.detach()
            mem.remove()

    def shm_create(self, size: int, cfg: Config) -> dict[str, Any]:
        m = self.m
        SharedMemory, PRIVATE, CREX = m.SharedMemory, m.IPC_PRIVATE, m.IPC_CREX

        def batch(n: int) -> int:
            t0 = now_ns()
            for _ in repeat(None, n):
                mem = SharedMemory(PRIVATE, CREX, 0o600, size)
                try:
                    mem.detach()
                finally:
                    mem.remove()
            return now_ns() - t0

        return calibrate(batch, cfg)

    def timed_wait_latency(self, cfg: Config) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def waiter(self, cfg: Config) -> Callable[[float], None]:  # pragma: no cover
        raise NotImplementedError


class _Segment:
    view: Any = None
    write: Any = None
    read_into: Any = None
