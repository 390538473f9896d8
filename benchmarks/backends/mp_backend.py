"""multiprocessing (the standard library), fork context.

- messages: ``Pipe()`` connections, ``send_bytes``/``recv_bytes`` (a duplex
  socketpair for ping-pong, a one-way pipe for stream and single-process
  pairs);
- timed wait: ``Connection.poll(timeout)`` then ``recv_bytes()``;
- semaphores: ``multiprocessing.Semaphore`` (POSIX semaphores in shared
  memory); no undo, so the undo row is n/a;
- shared memory: ``multiprocessing.shared_memory.SharedMemory``; numpy over
  ``.buf``; it has no read/write calls, so those rows use a memoryview slice
  copy (``shm.buf[:] = src``, ``memoryview(dst)[:] = shm.buf``).
"""

from __future__ import annotations

import contextlib
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
    measure_sem_pingpong,
    measure_sem_uncontended,
    measure_stream,
    now_ns,
    serve_stamps,
    unpack_stamp,
)

TITLE = "multiprocessing"

NOTES: dict[str, str] = {
    "msg": "multiprocessing: Pipe() connections, send_bytes/recv_bytes; timed wait is poll(timeout)",
    "shm_copy": "multiprocessing: shared_memory.SharedMemory has no read/write calls; "
    "those rows are memoryview slice copies",
    "shm_create": "multiprocessing: SharedMemory(create=True) then close() and unlink() "
    "(includes the resource tracker's bookkeeping)",
}

SHM_NAMES = ("shm",)


def probe() -> dict[str, Any]:
    try:
        import multiprocessing
        from multiprocessing import shared_memory  # noqa: F401
    except ImportError as e:
        return {"available": False, "reason": str(e), "version": None}
    return {
        "available": True,
        "reason": None,
        "version": "Python " + sys.version.split()[0],
        "details": {"start_method": "fork", "cpu_count": multiprocessing.cpu_count()},
    }


def unsupported(row_id: str) -> str | None:
    if row_id == "sem_uncontended_undo":
        return "multiprocessing semaphores have no undo"
    return None


def cleanup_names(prefix: str) -> list[str]:
    import os

    left = []
    for n in SHM_NAMES:
        path = f"/dev/shm/{prefix.lstrip('/')}_{n}"
        try:
            os.unlink(path)
            left.append(path)
        except OSError:
            pass
    return left


class Impl:
    def __init__(self) -> None:
        import multiprocessing

        self.ctx = multiprocessing.get_context("fork")

    def msg_pingpong(self, size: int, cfg: Config) -> dict[str, Any]:
        a, b = self.ctx.Pipe()
        try:
            a_send, a_recv = a.send_bytes, a.recv_bytes
            b_send, b_recv = b.send_bytes, b.recv_bytes

            def child(peer: Peer) -> None:
                while n := peer.next_command():
                    for _ in repeat(None, n):
                        b_send(b_recv())

            data = b"x" * size
            with Peer(child, cfg.peer_cpu) as peer:

                def batch(n: int) -> int:
                    peer.command(n)
                    t0 = now_ns()
                    for _ in repeat(None, n):
                        a_send(data)
                        a_recv()
                    return now_ns() - t0

                return calibrate(batch, cfg)
        finally:
            a.close()
            b.close()

    def msg_stream(self, size: int, cfg: Config) -> dict[str, Any]:
        r, w = self.ctx.Pipe(duplex=False)
        try:
            return measure_stream(w.send_bytes, r.recv_bytes, size, cfg)
        finally:
            r.close()
            w.close()

    def msg_pair(self, size: int, cfg: Config) -> dict[str, Any]:
        r, w = self.ctx.Pipe(duplex=False)
        try:
            return measure_pair(w.send_bytes, r.recv_bytes, size, cfg)
        finally:
            r.close()
            w.close()

    def sem_pingpong(self, cfg: Config) -> dict[str, Any]:
        a, b = self.ctx.Semaphore(0), self.ctx.Semaphore(0)
        acq0, rel0, acq1, rel1 = a.acquire, a.release, b.acquire, b.release
        return measure_sem_pingpong(acq0, rel0, acq1, rel1, cfg)

    def sem_uncontended(self, undo: bool, cfg: Config) -> dict[str, Any]:
        s = self.ctx.Semaphore(1)
        return measure_sem_uncontended(s.acquire, s.release, cfg)

    @contextlib.contextmanager
    def segment(self, cfg: Config) -> Iterator[Any]:
        from multiprocessing import shared_memory

        import numpy as np

        size = cfg.shm_bytes
        shm = shared_memory.SharedMemory(name=cfg.name("shm").lstrip("/"), create=True, size=size)
        seg = _Segment()
        try:
            buf: Any = shm.buf  # released by shm.close()
            seg.view = np.ndarray((size,), dtype=np.uint8, buffer=buf)

            def write(src: Any) -> None:
                buf[:size] = memoryview(src).cast("B")

            def read_into(dst: Any) -> None:
                memoryview(dst).cast("B")[:] = buf[:size]

            seg.write, seg.read_into = write, read_into
            yield seg
        finally:
            seg.view = seg.write = seg.read_into = None
            with contextlib.suppress(BufferError):
                shm.close()
            shm.unlink()

    def shm_create(self, size: int, cfg: Config) -> dict[str, Any]:
        from multiprocessing import shared_memory

        SharedMemory, name = shared_memory.SharedMemory, cfg.name("shm").lstrip("/")

        def batch(n: int) -> int:
            t0 = now_ns()
            for _ in repeat(None, n):
                shm = SharedMemory(name=name, create=True, size=size)
                try:
                    shm.close()
                finally:
                    shm.unlink()
            return now_ns() - t0

        return calibrate(batch, cfg)

    def timed_wait_latency(self, cfg: Config) -> dict[str, Any]:
        r, w = self.ctx.Pipe(duplex=False)
        try:
            send, poll, recv = w.send_bytes, r.poll, r.recv_bytes

            def child(peer: Peer) -> None:
                serve_stamps(peer, send, cfg)

            timeout = cfg.wait_timeout_s
            with Peer(child, cfg.peer_cpu) as peer:

                def one() -> int:
                    peer.command(1)
                    if not poll(timeout):
                        raise TimeoutError("no message within the timeout")
                    data = recv()
                    return now_ns() - unpack_stamp(data)

                return latency_samples(one, cfg)
        finally:
            r.close()
            w.close()

    @contextlib.contextmanager
    def waiter(self, cfg: Config) -> Iterator[Callable[[float], None]]:
        r, w = self.ctx.Pipe(duplex=False)
        try:
            poll = r.poll

            def wait(seconds: float) -> None:
                if poll(seconds):
                    raise RuntimeError("a message arrived on a private pipe")

            yield wait
        finally:
            r.close()
            w.close()


class _Segment:
    view: Any = None
    write: Any = None
    read_into: Any = None
