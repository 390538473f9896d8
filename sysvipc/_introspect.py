"""Introspection: the kernel's limits, its usage, and every object on the
machine.

Listing uses ``MSG_STAT_ANY``/``SEM_STAT_ANY``/``SHM_STAT_ANY`` (Linux 4.17),
which show objects whatever their permissions, and falls back to the
world-readable ``/proc/sysvipc/*`` tables on older kernels.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from . import _sysvipc as _c
from ._structs import IpcPerm, MsgInfo, MsqidDs, SemidDs, SemInfo, ShmidDs, ShmInfo, ShmUsage

__all__ = [
    "Entry",
    "Limits",
    "Usage",
    "limits",
    "usage",
    "list_message_queues",
    "list_semaphore_sets",
    "list_shared_memory",
]

_S = TypeVar("_S", MsqidDs, SemidDs, ShmidDs)


class Entry(NamedTuple, Generic[_S]):
    """One IPC object: its id and its stat structure.  Unpacks as
    ``(id, stat)``."""

    id: int
    stat: _S


@dataclass(frozen=True, slots=True)
class Limits:
    """The kernel's System V IPC limits (IPC_INFO, as set in
    ``/proc/sys/kernel/{msgmax,msgmnb,msgmni,sem,shmmax,shmall,shmmni}``)."""

    msgmax: int
    """Largest message, in bytes."""
    msgmnb: int
    """Default maximum bytes on one queue (``msg_qbytes`` of new queues)."""
    msgmni: int
    """Most message queues on the system."""
    semmsl: int
    """Most semaphores in one set."""
    semmns: int
    """Most semaphores on the system."""
    semopm: int
    """Most operations in one semop call."""
    semmni: int
    """Most semaphore sets on the system."""
    semvmx: int
    """Largest semaphore value."""
    shmmax: int
    """Largest segment, in bytes."""
    shmall: int
    """Most shared memory on the system, in pages."""
    shmmni: int
    """Most segments on the system."""
    shmmin: int
    """Smallest segment, in bytes."""
    page_size: int
    """The page size, in bytes (segments are allocated in pages)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """What is in use now (MSG_INFO, SEM_INFO, SHM_INFO)."""

    message_queues: int
    messages: int
    message_bytes: int
    semaphore_sets: int
    semaphores: int
    shared_memory_segments: int
    shared_memory_pages: int
    """Pages allocated to segments (``shm_tot``)."""
    shared_memory_resident_pages: int
    shared_memory_swapped_pages: int


def limits() -> Limits:
    """The kernel's limits, read now (they can change at run time)."""
    msg = MsgInfo(*_c.msgctl(0, _c.IPC_INFO)[1])
    sem = SemInfo(*_c.semctl(0, 0, _c.IPC_INFO)[1])
    shm = ShmInfo(*_c.shmctl(0, _c.IPC_INFO)[1])
    return Limits(
        msgmax=msg.msgmax,
        msgmnb=msg.msgmnb,
        msgmni=msg.msgmni,
        semmsl=sem.semmsl,
        semmns=sem.semmns,
        semopm=sem.semopm,
        semmni=sem.semmni,
        semvmx=sem.semvmx,
        shmmax=shm.shmmax,
        shmall=shm.shmall,
        shmmni=shm.shmmni,
        shmmin=shm.shmmin,
        page_size=_c.PAGE_SIZE,
    )


def usage() -> Usage:
    """Totals of what exists now."""
    msg = MsgInfo(*_c.msgctl(0, _c.MSG_INFO)[1])
    sem = SemInfo(*_c.semctl(0, 0, _c.SEM_INFO)[1])
    shm = ShmUsage(*_c.shmctl(0, _c.SHM_INFO)[1])
    return Usage(
        message_queues=msg.msgpool,
        messages=msg.msgmap,
        message_bytes=msg.msgtql,
        semaphore_sets=sem.semusz,
        semaphores=sem.semaem,
        shared_memory_segments=shm.used_ids,
        shared_memory_pages=shm.shm_tot,
        shared_memory_resident_pages=shm.shm_rss,
        shared_memory_swapped_pages=shm.shm_swp,
    )


def _stat_any(
    info: Callable[[], int],
    stat: Callable[[int], tuple[int, _S]],
) -> list[Entry[_S]] | None:
    """Walk the kernel's table with *_STAT_ANY.  None when that finds
    nothing: kernels before 4.17 answer EINVAL for every index, just as for
    empty slots, so the caller then reads /proc instead."""
    entries = []
    for index in range(info() + 1):
        try:
            ident, st = stat(index)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.EIDRM):
                continue  # an empty slot, or removed meanwhile
            if e.errno in (errno.EACCES, errno.EPERM):
                return None  # refused (a security module): use /proc
            raise
        entries.append(Entry(ident, st))
    return entries or None


def _proc_rows(kind: str) -> Iterator[dict[str, int]]:
    """Rows of /proc/sysvipc/<kind>, keyed by its header; ``perms`` is
    printed in octal, every other field in decimal."""
    with open(f"/proc/sysvipc/{kind}") as f:
        header = f.readline().split()
        for line in f:
            fields = line.split()
            if fields:
                yield {
                    name: int(value, 8 if name == "perms" else 10)
                    for name, value in zip(header, fields, strict=False)
                }


def _proc_perm(row: dict[str, int]) -> IpcPerm:
    return IpcPerm(
        _c.canonical_key(row["key"]),
        row["uid"],
        row["gid"],
        row["cuid"],
        row["cgid"],
        row["perms"],
        0,
    )


def list_message_queues() -> list[Entry[MsqidDs]]:
    """Every message queue on the machine, as ``(id, MsqidDs)`` entries."""
    entries = _stat_any(
        lambda: int(_c.msgctl(0, _c.MSG_INFO)[0]),
        lambda i: (lambda r: (r[0], MsqidDs._make(r[1])))(_c.msgctl(i, _c.MSG_STAT_ANY)),
    )
    if entries is not None:
        return entries
    return [
        Entry(
            row["msqid"],
            MsqidDs(
                _proc_perm(row),
                row["stime"],
                row["rtime"],
                row["ctime"],
                row["cbytes"],
                row["qnum"],
                0,  # msg_qbytes is not in /proc
                row["lspid"],
                row["lrpid"],
            ),
        )
        for row in _proc_rows("msg")
    ]


def list_semaphore_sets() -> list[Entry[SemidDs]]:
    """Every semaphore set on the machine, as ``(id, SemidDs)`` entries."""
    entries = _stat_any(
        lambda: int(_c.semctl(0, 0, _c.SEM_INFO)[0]),
        lambda i: (lambda r: (r[0], SemidDs._make(r[1])))(_c.semctl(i, 0, _c.SEM_STAT_ANY)),
    )
    if entries is not None:
        return entries
    return [
        Entry(row["semid"], SemidDs(_proc_perm(row), row["otime"], row["ctime"], row["nsems"]))
        for row in _proc_rows("sem")
    ]


def list_shared_memory() -> list[Entry[ShmidDs]]:
    """Every shared memory segment on the machine, as ``(id, ShmidDs)``
    entries."""
    entries = _stat_any(
        lambda: int(_c.shmctl(0, _c.SHM_INFO)[0]),
        lambda i: (lambda r: (r[0], ShmidDs._make(r[1])))(_c.shmctl(i, _c.SHM_STAT_ANY)),
    )
    if entries is not None:
        return entries
    return [
        Entry(
            row["shmid"],
            ShmidDs(
                _proc_perm(row),
                row["size"],
                row["atime"],
                row["dtime"],
                row["ctime"],
                row["cpid"],
                row["lpid"],
                row["nattch"],
            ),
        )
        for row in _proc_rows("shm")
    ]
