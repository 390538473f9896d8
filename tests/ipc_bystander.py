"""A bystander: another program on the machine that uses System V IPC.

It keeps about 30 objects of its own alive (queues, semaphore sets and
segments, each with a random key), creating a new one and removing its
oldest every few milliseconds, and checks before each step that every object
it made still exists.  On SIGTERM or SIGINT it removes what it still has and
prints one JSON line: how many objects it made, and how many of them someone
else removed (``lost``, with the first few named).

Used by ``tests/test_isolation.py`` and by ``.ci/run`` to show that test runs
beside it remove nothing of its objects::

    python tests/ipc_bystander.py &   # prints "ready" once it has objects
    ...                                # anything else, e.g. a test run
    kill -TERM %1                      # prints {"made": ..., "lost": 0, ...}
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time
from typing import Any

from sysvipc import lowlevel as ll

KEEP = 30
KINDS = ("msg", "sem", "shm")
stopping = False


def on_signal(signum: int, frame: Any) -> None:
    global stopping
    stopping = True


def random_key() -> int:
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF or 1


def create(kind: str) -> int:
    flags = ll.IPC_CREAT | ll.IPC_EXCL
    while True:
        try:
            if kind == "msg":
                return ll.msgget(random_key(), flags, 0o600)
            if kind == "sem":
                return ll.semget(random_key(), 1, flags, 0o600)
            return ll.shmget(random_key(), 4096, flags, 0o600)
        except FileExistsError:
            continue  # someone else's key: draw another


def exists(kind: str, ident: int) -> bool:
    try:
        if kind == "msg":
            ll.msgctl(ident, ll.IPC_STAT)
        elif kind == "sem":
            ll.semctl(ident, 0, ll.IPC_STAT)
        else:
            ll.shmctl(ident, ll.IPC_STAT)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.EIDRM):
            return False
        raise
    return True


def remove(kind: str, ident: int) -> bool:
    """Remove one of ours; False if it was already gone."""
    try:
        if kind == "msg":
            ll.msgctl(ident, ll.IPC_RMID)
        elif kind == "sem":
            ll.semctl(ident, 0, ll.IPC_RMID)
        else:
            ll.shmctl(ident, ll.IPC_RMID)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.EIDRM):
            return False
        raise
    return True


def main() -> int:
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    live: list[tuple[str, int]] = []
    lost: list[tuple[str, int]] = []
    made = 0
    started = time.monotonic()
    while len(live) < KEEP:
        live.append((KINDS[made % 3], create(KINDS[made % 3])))
        made += 1
    print("ready", flush=True)
    while not stopping:
        for obj in [o for o in live if not exists(*o)]:
            live.remove(obj)
            lost.append(obj)
        if len(live) >= KEEP:
            obj = live.pop(0)
            if not remove(*obj):
                lost.append(obj)
        live.append((KINDS[made % 3], create(KINDS[made % 3])))
        made += 1
        time.sleep(0.005)
    for obj in live:
        if not remove(*obj):
            lost.append(obj)
    report = {
        "made": made,
        "lost": len(lost),
        "lost_examples": [f"{k} {i}" for k, i in lost[:5]],
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report), flush=True)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
