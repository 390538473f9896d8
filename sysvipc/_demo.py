"""The main demonstration (``python -m sysvipc demo``).

Worker processes
- take jobs from a message queue, choosing them by message type,
- add to a counter in shared memory under a semaphore lock that the kernel
  releases if a worker dies (SEM_UNDO), one of them being killed on purpose
  while it holds the lock,
- fill their rows of an array shared zero-copy through the same segment
  (numpy if installed, a plain buffer otherwise),
- and report back with typed messages.
Everything the demo creates is removed at the end, even on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import struct
import time

from ._queue import MessageQueue
from ._semaphore import SemaphoreSet
from ._shm import SharedMemory

COUNTER = struct.Struct("q")  # the counter, at offset 0
ROW_OFFSET = 64  # the array starts here (aligned)
ROW_LEN = 8  # float64 values per worker row
INCREMENTS = 2000
JOB, REPORT = 1, 2  # message types: jobs for the workers, reports for the parent


def _fill_row(shm: SharedMemory, worker: int) -> None:
    values = [worker + i / 10 for i in range(ROW_LEN)]
    try:
        import numpy as np
    except ImportError:
        struct.pack_into(f"{ROW_LEN}d", shm.buf, ROW_OFFSET + worker * ROW_LEN * 8, *values)
        return
    rows = shm.ndarray(np.float64, (worker + 1, ROW_LEN), offset=ROW_OFFSET)
    rows[worker] = values  # written straight into the shared segment


def _worker(queue: MessageQueue, lock: SemaphoreSet, shm: SharedMemory, worker: int) -> None:
    # The handles arrive pickled: each re-opens the same objects by id.
    with queue, lock, shm:
        job = queue.receive(JOB, timeout=30)
        increments = int(job.data)
        for _ in range(increments):
            with lock[0]:  # SEM_UNDO: released by the kernel if we die
                (value,) = COUNTER.unpack_from(shm.buf)
                COUNTER.pack_into(shm.buf, 0, value + 1)
        _fill_row(shm, worker)
        queue.send(f"worker {worker} (pid {os.getpid()}) did {increments}".encode(), REPORT)


def _doomed(lock: SemaphoreSet, ready: MessageQueue) -> None:
    with lock, ready:
        lock[0].acquire(undo=True)  # taken, never released by us...
        ready.send(b"holding the lock", JOB)
        time.sleep(60)  # ...until the parent kills this process


def _read_rows(shm: SharedMemory, workers: int) -> list[list[float]]:
    try:
        import numpy as np
    except ImportError:
        flat = struct.unpack_from(f"{workers * ROW_LEN}d", shm.buf, ROW_OFFSET)
        return [list(flat[i * ROW_LEN : (i + 1) * ROW_LEN]) for i in range(workers)]
    rows = shm.ndarray(np.float64, (workers, ROW_LEN), offset=ROW_OFFSET)
    return [list(map(float, row)) for row in rows]


def run(workers: int = 3) -> int:
    if not 1 <= workers <= 64:
        print("workers must be 1..64")
        return 2
    # Created under fresh random keys and removed on the way out, whatever
    # happens.  Ctrl-C is held back while they are created: a
    # KeyboardInterrupt between creating an object and owning its removal
    # would leave it behind.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with contextlib.ExitStack() as created:
            queue = created.enter_context(MessageQueue(remove_on_close=True))
            lock = created.enter_context(SemaphoreSet(nsems=1, initial=1, remove_on_close=True))
            shm = created.enter_context(
                SharedMemory(size=ROW_OFFSET + 64 * ROW_LEN * 8, remove_on_close=True)
            )
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # Ctrl-C lands here
                return _show(queue, lock, shm, workers)
            except KeyboardInterrupt:
                print("interrupted")
                return 130
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if "shm" in locals():
            print("removed everything it created")


def _show(queue: MessageQueue, lock: SemaphoreSet, shm: SharedMemory, workers: int) -> int:
    ctx = multiprocessing.get_context("spawn")
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        print(f"created {queue!r}\n        {lock!r}\n        {shm!r}")

        # 1. A process takes the lock and is killed while holding it.
        doomed = ctx.Process(target=_doomed, args=(lock, queue))
        procs.append(doomed)
        doomed.start()
        queue.receive(JOB, timeout=30)
        print(f"pid {doomed.pid} holds the lock (value {lock[0].value}); killing it")
        os.kill(doomed.pid or 0, signal.SIGKILL)
        doomed.join(30)
        print(f"the kernel undid its hold: lock value is {lock[0].value} again")

        # 2. Workers share the counter under the lock and fill the array.
        procs += [ctx.Process(target=_worker, args=(queue, lock, shm, n)) for n in range(workers)]
        for p in procs[1:]:
            p.start()
        for _ in range(workers):
            queue.send(str(INCREMENTS).encode(), JOB)
        for _ in range(workers):
            report = queue.receive(REPORT, timeout=60)  # only reports
            print(f"message of type {report.type}: {report.data.decode()}")
        for p in procs:
            p.join(30)

        (total,) = COUNTER.unpack_from(shm.buf)
        print(f"shared counter: {total} (expected {workers * INCREMENTS})")
        import importlib.util

        if importlib.util.find_spec("numpy") is not None:
            print("the workers wrote their rows into one numpy array in the segment (zero-copy)")
        else:
            print(
                "numpy is not installed: the rows were shared as a plain buffer "
                "(pip install 'sysvipc[numpy]' for the numpy array)"
            )
        for n, row in enumerate(_read_rows(shm, workers)):
            print(f"row {n} written by worker {n}: {[round(v, 1) for v in row[:4]]} ...")
        return 0 if total == workers * INCREMENTS else 1
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
