"""sysvipc: this library, through its everyday API.

Messages: ``MessageQueue.send(data, type)`` and ``receive(type)`` (which
returns a ``Message``); semaphores: ``SemaphoreSet`` items' ``acquire`` and
``release`` (``undo=True`` for the undo row), or ``lowlevel.semop1`` if the
class is not available; shared memory: ``SharedMemory.ndarray``, ``write``
and ``read_into``.
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
    latency_samples,
    measure_pair,
    measure_sem_pingpong,
    measure_sem_uncontended,
    measure_stream,
    now_ns,
    serve_stamps,
    track,
    unpack_stamp,
)

TITLE = "sysvipc"

NOTES: dict[str, str] = {}


def _import() -> Any:
    try:
        import sysvipc
    except ImportError:
        import os
        import sys

        # Not installed: the checkout this file lives in.
        sys.path.append(
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        )
        import sysvipc
    return sysvipc


def _semaphore_set_class() -> Any:
    sysvipc = _import()
    cls = getattr(sysvipc, "SemaphoreSet", None)
    if cls is None:
        try:
            from sysvipc._semaphore import SemaphoreSet as cls
        except ImportError:
            cls = None
    return cls


def probe() -> dict[str, Any]:
    try:
        sysvipc = _import()
    except ImportError as e:
        return {"available": False, "reason": f"cannot import sysvipc: {e}", "version": None}
    cls = _semaphore_set_class()
    return {
        "available": True,
        "reason": None,
        "version": getattr(sysvipc, "__version__", "?"),
        "details": {
            "path": sysvipc.__file__,
            "semaphore_api": "SemaphoreSet" if cls is not None else "lowlevel.semop1",
        },
    }


def unsupported(row_id: str) -> str | None:
    return None


class Impl:
    def __init__(self) -> None:
        self.sysvipc = _import()
        self.MessageQueue = self.sysvipc.MessageQueue
        self.IPC_PRIVATE = self.sysvipc.IPC_PRIVATE

    def _queue(self, cfg: Config) -> Any:
        q = self.MessageQueue(self.IPC_PRIVATE, remove_on_close=True)
        try:
            track(cfg, "msg", q.id)
        except BaseException:
            q.close()
            raise
        return q

    # -- messages -----------------------------------------------------------

    def msg_pingpong(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queue(cfg) as q:
            send, recv = q.send, q.receive

            def child(peer: Peer) -> None:
                while n := peer.next_command():
                    for _ in repeat(None, n):
                        send(recv(1).data, 2)

            data = b"x" * size
            with Peer(child, cfg.peer_cpu) as peer:

                def batch(n: int) -> int:
                    peer.command(n)
                    t0 = now_ns()
                    for _ in repeat(None, n):
                        send(data, 1)
                        recv(2)
                    return now_ns() - t0

                return calibrate(batch, cfg)

    def msg_stream(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queue(cfg) as q:
            return measure_stream(q.send, q.receive, size, cfg)

    def msg_pair(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queue(cfg) as q:
            return measure_pair(q.send, q.receive, size, cfg)

    # -- semaphores ---------------------------------------------------------

    @contextlib.contextmanager
    def _two_semaphores(
        self, cfg: Config, initial: int
    ) -> Iterator[
        tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any], Callable[..., Any]]
    ]:
        """(acquire0, release0, acquire1, release1) of a new 2-semaphore set."""
        cls = _semaphore_set_class()
        if cls is not None:
            s = cls(self.IPC_PRIVATE, 2, initial=initial, remove_on_close=True)
            try:
                track(cfg, "sem", s.id)
                a, b = s[0], s[1]
                yield a.acquire, a.release, b.acquire, b.release
            finally:
                s.close()
            return
        ll = self.sysvipc.lowlevel
        semid = ll.semget(ll.IPC_PRIVATE, 2, ll.IPC_CREAT, 0o600)
        try:
            track(cfg, "sem", semid)
            ll.semctl(semid, 0, ll.SETALL, [initial, initial])
            semop1 = ll.semop1
            UNDO = ll.SEM_UNDO

            def op(num: int, delta: int) -> Callable[..., Any]:
                def call(undo: bool = False) -> None:
                    semop1(semid, num, delta, UNDO if undo else 0)

                return call

            yield op(0, -1), op(0, 1), op(1, -1), op(1, 1)
        finally:
            ll.semctl(semid, 0, ll.IPC_RMID)

    def sem_pingpong(self, cfg: Config) -> dict[str, Any]:
        with self._two_semaphores(cfg, 0) as (acq0, rel0, acq1, rel1):
            return measure_sem_pingpong(acq0, rel0, acq1, rel1, cfg)

    def sem_uncontended(self, undo: bool, cfg: Config) -> dict[str, Any]:
        with self._two_semaphores(cfg, 1) as (acq, rel, _, _):
            return measure_sem_uncontended(acq, rel, cfg, undo_keyword=undo)

    # -- shared memory ------------------------------------------------------

    @contextlib.contextmanager
    def segment(self, cfg: Config) -> Iterator[Any]:
        import numpy as np

        shm = self.sysvipc.SharedMemory(self.IPC_PRIVATE, cfg.shm_bytes, remove_at_last_detach=True)
        seg = _Segment()
        try:
            track(cfg, "shm", shm.id)
            seg.view = shm.ndarray(np.uint8)
            seg.write = shm.write
            seg.read_into = shm.read_into
            yield seg
        finally:
            seg.view = None
            shm.close()

    def shm_create(self, size: int, cfg: Config) -> dict[str, Any]:
        SharedMemory, PRIVATE = self.sysvipc.SharedMemory, self.IPC_PRIVATE

        def batch(n: int) -> int:
            t0 = now_ns()
            for _ in repeat(None, n):
                SharedMemory(PRIVATE, size, remove_on_close=True).close()
            return now_ns() - t0

        return calibrate(batch, cfg)

    # -- timed wait ---------------------------------------------------------

    def timed_wait_latency(self, cfg: Config) -> dict[str, Any]:
        with self._queue(cfg) as q:
            send, recv = q.send, q.receive

            def child(peer: Peer) -> None:
                serve_stamps(peer, send, cfg)

            timeout = cfg.wait_timeout_s
            with Peer(child, cfg.peer_cpu) as peer:

                def one() -> int:
                    peer.command(1)
                    data = recv(timeout=timeout).data
                    return now_ns() - unpack_stamp(data)

                return latency_samples(one, cfg)

    @contextlib.contextmanager
    def waiter(self, cfg: Config) -> Iterator[Callable[[float], None]]:
        with self._queue(cfg) as q:
            recv = q.receive

            def wait(seconds: float) -> None:
                try:
                    recv(timeout=seconds)
                except TimeoutError:
                    return
                raise RuntimeError("a message arrived on a private queue")

            yield wait


class _Segment:
    view: Any = None
    write: Any = None
    read_into: Any = None
