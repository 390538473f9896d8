"""The main demonstration: processes talking through a queue, a semaphore
and a shared memory segment, and everything removed at the end."""

from __future__ import annotations

import multiprocessing
import os
import struct

from . import lowlevel as ll

COUNTER = struct.Struct("q")
INCREMENTS = 1000


def _worker(msqid: int, semid: int, shmid: int, number: int) -> None:
    shm = ll.shmat(shmid)
    with memoryview(shm) as view:
        for _ in range(INCREMENTS):
            # A lock that the kernel releases if this process dies (SEM_UNDO).
            ll.semop1(semid, 0, -1, ll.SEM_UNDO)
            (value,) = COUNTER.unpack_from(view)
            COUNTER.pack_into(view, 0, value + 1)
            ll.semop1(semid, 0, 1, ll.SEM_UNDO)
    shm.detach()
    # Type 1 + number: the parent can tell the workers apart.
    ll.msgsnd(msqid, f"worker {number} (pid {os.getpid()}) done".encode(), 1 + number)


def run(workers: int = 3) -> int:
    msqid = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
    semid = ll.semget(ll.IPC_PRIVATE, 1, ll.IPC_CREAT)
    shmid = ll.shmget(ll.IPC_PRIVATE, ll.PAGE_SIZE, ll.IPC_CREAT)
    try:
        ll.semctl(semid, 0, ll.SETVAL, 1)
        print(f"created queue {msqid}, semaphore set {semid}, segment {shmid}")
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(target=_worker, args=(msqid, semid, shmid, n)) for n in range(workers)
        ]
        for p in procs:
            p.start()
        for _ in procs:
            message = ll.msgrcv(msqid, 8192, timeout=60)
            print(f"message of type {message.type}: {message.data.decode()}")
        for p in procs:
            p.join()
        shm = ll.shmat(shmid, ll.SHM_RDONLY)
        (total,) = COUNTER.unpack(shm.read(COUNTER.size))
        shm.detach()
        print(f"shared counter: {total} (expected {workers * INCREMENTS})")
        return 0 if total == workers * INCREMENTS else 1
    finally:
        ll.msgctl(msqid, ll.IPC_RMID)
        ll.semctl(semid, 0, ll.IPC_RMID)
        ll.shmctl(shmid, ll.IPC_RMID)
        print("removed everything it created")
