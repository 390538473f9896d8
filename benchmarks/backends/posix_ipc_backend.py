"""posix_ipc (PyPI): POSIX message queues, semaphores and shared memory.

The closest equivalents, object by object:

- messages: ``MessageQueue`` (mq_send/mq_receive).  No message types, so
  ping-pong uses two queues (one per direction).  ``max_message_size`` is
  the message size; ``max_messages`` holds about as much as a System V
  queue (``msgmnb`` bytes), capped by ``/proc/sys/fs/mqueue/msg_max`` (what
  an unprivileged user may ask for).
- semaphores: named ``Semaphore`` objects (sem_open); POSIX semaphores have
  no undo, so the undo row is n/a.
- shared memory: ``SharedMemory`` (shm_open + ftruncate) mapped with
  ``mmap``; numpy views over the mmap; ``os.pwrite``/``os.preadv`` on the
  descriptor for the write/read_into rows.
- timed wait: ``receive(timeout=...)`` (mq_timedreceive).

Every name starts with the worker's private prefix and is unlinked in a
``finally``; the orchestrator unlinks the same names again after the worker.
"""

from __future__ import annotations

import contextlib
import mmap
import os
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

TITLE = "posix_ipc"

NOTES: dict[str, str] = {
    "msg": "posix_ipc: POSIX message queues (two queues for ping-pong; no types); "
    "capacity min(msgmnb/size, fs.mqueue.msg_max) messages",
    "shm_copy": "posix_ipc: numpy over an mmap of the shm_open descriptor; "
    "write/read_into rows are os.pwrite/os.preadv on it",
}

# Every name a worker may create (the orchestrator unlinks them after it).
MQ_NAMES = ("mq0", "mq1")
SEM_NAMES = ("sem0", "sem1")
SHM_NAMES = ("shm",)


def probe() -> dict[str, Any]:
    try:
        import posix_ipc
    except ImportError as e:
        return {
            "available": False,
            "reason": f"not installed ({e}); pip install posix_ipc",
            "version": None,
        }
    return {
        "available": True,
        "reason": None,
        "version": getattr(posix_ipc, "VERSION", "?"),
        "details": {
            "message_queues": bool(posix_ipc.MESSAGE_QUEUES_SUPPORTED),
            "semaphore_timeout": bool(posix_ipc.SEMAPHORE_TIMEOUT_SUPPORTED),
        },
    }


def unsupported(row_id: str) -> str | None:
    if row_id == "sem_uncontended_undo":
        return "POSIX semaphores have no undo"
    if row_id.startswith(("msg_", "timed_wait")):
        try:
            import posix_ipc

            if not posix_ipc.MESSAGE_QUEUES_SUPPORTED:
                return "no POSIX message queues on this system"
        except ImportError:
            pass
    return None


def cleanup_names(prefix: str) -> list[str]:
    """Unlink whatever a worker with this prefix may have left; return the
    names that were still there."""
    import posix_ipc

    left = []
    for what, unlink in (
        (MQ_NAMES, posix_ipc.unlink_message_queue),
        (SEM_NAMES, posix_ipc.unlink_semaphore),
        (SHM_NAMES, posix_ipc.unlink_shared_memory),
    ):
        for n in what:
            name = f"{prefix}_{n}"
            try:
                unlink(name)
                left.append(name)
            except posix_ipc.ExistentialError:
                pass
            except Exception:
                pass
    return left


def _read_int(path: str, default: int) -> int:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


class Impl:
    def __init__(self) -> None:
        import posix_ipc

        self.m = posix_ipc

    @contextlib.contextmanager
    def _queues(self, cfg: Config, size: int, count: int) -> Iterator[list[Any]]:
        m = self.m
        msgmnb = _read_int("/proc/sys/kernel/msgmnb", 16384)
        msg_max = _read_int("/proc/sys/fs/mqueue/msg_max", 10)
        depth = max(1, min(msg_max, msgmnb // max(size, 1)))
        queues: list[Any] = []
        try:
            for i in range(count):
                name = cfg.name(MQ_NAMES[i])
                queues.append(
                    m.MessageQueue(
                        name, m.O_CREX, 0o600, max_messages=depth, max_message_size=max(size, 1)
                    )
                )
            yield queues
        finally:
            for q in queues:
                with contextlib.suppress(Exception):
                    q.close()
                with contextlib.suppress(Exception):
                    q.unlink()

    def msg_pingpong(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queues(cfg, size, 2) as (q1, q2):
            send1, recv1, send2, recv2 = q1.send, q1.receive, q2.send, q2.receive

            def child(peer: Peer) -> None:
                while n := peer.next_command():
                    for _ in repeat(None, n):
                        send2(recv1()[0])

            data = b"x" * size
            with Peer(child, cfg.peer_cpu) as peer:

                def batch(n: int) -> int:
                    peer.command(n)
                    t0 = now_ns()
                    for _ in repeat(None, n):
                        send1(data)
                        recv2()
                    return now_ns() - t0

                return calibrate(batch, cfg)

    def msg_stream(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queues(cfg, size, 1) as (q,):
            return measure_stream(q.send, q.receive, size, cfg)

    def msg_pair(self, size: int, cfg: Config) -> dict[str, Any]:
        with self._queues(cfg, size, 1) as (q,):
            return measure_pair(q.send, q.receive, size, cfg)

    @contextlib.contextmanager
    def _semaphores(self, cfg: Config, initial: int, count: int) -> Iterator[list[Any]]:
        m = self.m
        sems: list[Any] = []
        try:
            for i in range(count):
                sems.append(m.Semaphore(cfg.name(SEM_NAMES[i]), m.O_CREX, 0o600, initial))
            yield sems
        finally:
            for s in sems:
                with contextlib.suppress(Exception):
                    s.unlink()
                with contextlib.suppress(Exception):
                    s.close()

    def sem_pingpong(self, cfg: Config) -> dict[str, Any]:
        with self._semaphores(cfg, 0, 2) as (a, b):
            acq0, rel0, acq1, rel1 = a.acquire, a.release, b.acquire, b.release
            return measure_sem_pingpong(acq0, rel0, acq1, rel1, cfg)

    def sem_uncontended(self, undo: bool, cfg: Config) -> dict[str, Any]:
        with self._semaphores(cfg, 1, 1) as (s,):
            return measure_sem_uncontended(s.acquire, s.release, cfg)

    @contextlib.contextmanager
    def segment(self, cfg: Config) -> Iterator[Any]:
        import numpy as np

        m = self.m
        size = cfg.shm_bytes
        shm = m.SharedMemory(cfg.name("shm"), m.O_CREX, 0o600, size)
        seg = _Segment()
        mm = None
        try:
            mm = mmap.mmap(shm.fd, size)
            seg.view = np.frombuffer(mm, dtype=np.uint8)
            fd = shm.fd

            def write(src: Any) -> None:
                mv = memoryview(src).cast("B")
                done = 0
                while done < len(mv):
                    done += os.pwrite(fd, mv[done:], done)

            def read_into(dst: Any) -> None:
                mv = memoryview(dst).cast("B")
                done = 0
                while done < len(mv):
                    got = os.preadv(fd, [mv[done:]], done)
                    if got == 0:
                        raise EOFError("short read")
                    done += got

            seg.write = write
            seg.read_into = read_into
            yield seg
        finally:
            seg.view = None
            if mm is not None:
                with contextlib.suppress(BufferError):
                    mm.close()
            with contextlib.suppress(Exception):
                shm.close_fd()
            shm.unlink()

    def shm_create(self, size: int, cfg: Config) -> dict[str, Any]:
        m = self.m
        SharedMemory, CREX, name = m.SharedMemory, m.O_CREX, cfg.name("shm")
        new_map = mmap.mmap

        def batch(n: int) -> int:
            t0 = now_ns()
            for _ in repeat(None, n):
                shm = SharedMemory(name, CREX, 0o600, size)
                try:
                    mm = new_map(shm.fd, size)
                    shm.close_fd()
                    mm.close()
                finally:
                    shm.unlink()
            return now_ns() - t0

        return calibrate(batch, cfg)

    def timed_wait_latency(self, cfg: Config) -> dict[str, Any]:
        with self._queues(cfg, 64, 1) as (q,):
            send, recv = q.send, q.receive

            def child(peer: Peer) -> None:
                serve_stamps(peer, send, cfg)

            timeout = cfg.wait_timeout_s
            with Peer(child, cfg.peer_cpu) as peer:

                def one() -> int:
                    peer.command(1)
                    data = recv(timeout)[0]
                    return now_ns() - unpack_stamp(data)

                return latency_samples(one, cfg)

    @contextlib.contextmanager
    def waiter(self, cfg: Config) -> Iterator[Callable[[float], None]]:
        BusyError = self.m.BusyError
        with self._queues(cfg, 64, 1) as (q,):
            recv = q.receive

            def wait(seconds: float) -> None:
                try:
                    recv(seconds)
                except BusyError:
                    return
                raise RuntimeError("a message arrived on a private queue")

            yield wait


class _Segment:
    view: Any = None
    write: Any = None
    read_into: Any = None
