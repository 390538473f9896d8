"""The ipc(5) structures as small immutable objects.

Field names are the kernel's (``msg_qnum``, ``shm_nattch``, ...) so that the
man pages read directly.  Times are seconds since the epoch as ints, and 0
means "never" (for example ``msg_rtime`` of a queue nobody received from).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from . import _sysvipc

__all__ = [
    "IpcPerm",
    "MsqidDs",
    "SemidDs",
    "Sem",
    "ShmidDs",
    "MsgInfo",
    "SemInfo",
    "ShmInfo",
    "ShmUsage",
    "SemaphoreSetStat",
    "to_datetime",
]


def to_datetime(timestamp: int) -> datetime.datetime | None:
    """Convert a structure's time field to an aware UTC datetime; 0 is None."""
    if timestamp == 0:
        return None
    try:
        return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    except (OverflowError, OSError) as e:
        raise ValueError(f"timestamp {timestamp!r} is out of range: {e}") from None


@dataclass(frozen=True, slots=True)
class IpcPerm:
    """``struct ipc_perm``: ownership and permissions of an IPC object."""

    key: int
    """The key the object was created with (``IPC_PRIVATE`` is 0)."""
    uid: int
    """Owner's user id."""
    gid: int
    """Owner's group id."""
    cuid: int
    """Creator's user id."""
    cgid: int
    """Creator's group id."""
    mode: int
    """Permission bits, plus ``SHM_DEST``/``SHM_LOCKED`` for segments."""
    seq: int
    """Slot usage sequence number."""

    @property
    def permissions(self) -> int:
        """The low nine bits of :attr:`mode` (0o600 and so on)."""
        return self.mode & 0o777


def _perm(values: tuple[int, ...]) -> IpcPerm:
    return IpcPerm(*values)


@dataclass(frozen=True, slots=True)
class MsqidDs:
    """``struct msqid_ds``: the state of a message queue."""

    msg_perm: IpcPerm
    msg_stime: int
    """Time of the last msgsnd (0: never)."""
    msg_rtime: int
    """Time of the last msgrcv (0: never)."""
    msg_ctime: int
    """Time of creation or of the last IPC_SET."""
    msg_cbytes: int
    """Bytes of message data currently on the queue (Linux)."""
    msg_qnum: int
    """Messages currently on the queue."""
    msg_qbytes: int
    """Maximum bytes of message data allowed on the queue."""
    msg_lspid: int
    """Pid of the last msgsnd (0: none)."""
    msg_lrpid: int
    """Pid of the last msgrcv (0: none)."""

    @classmethod
    def _make(cls, raw: tuple[Any, ...]) -> MsqidDs:
        return cls(_perm(raw[0]), *raw[1:])


@dataclass(frozen=True, slots=True)
class SemidDs:
    """``struct semid_ds``: the state of a semaphore set."""

    sem_perm: IpcPerm
    sem_otime: int
    """Time of the last semop (0: never, e.g. not yet initialised)."""
    sem_ctime: int
    """Time of creation or of the last change by semctl."""
    sem_nsems: int
    """Number of semaphores in the set."""

    @classmethod
    def _make(cls, raw: tuple[Any, ...]) -> SemidDs:
        return cls(_perm(raw[0]), *raw[1:])


@dataclass(frozen=True, slots=True)
class Sem:
    """``struct sem``: one semaphore of a set."""

    semval: int
    """The semaphore's value."""
    sempid: int
    """Pid of the last operation on it."""
    semncnt: int
    """Processes waiting for semval to increase."""
    semzcnt: int
    """Processes waiting for semval to become zero."""


@dataclass(frozen=True, slots=True)
class ShmidDs:
    """``struct shmid_ds``: the state of a shared memory segment."""

    shm_perm: IpcPerm
    shm_segsz: int
    """Size of the segment in bytes."""
    shm_atime: int
    """Time of the last shmat (0: never)."""
    shm_dtime: int
    """Time of the last shmdt (0: never)."""
    shm_ctime: int
    """Time of creation or of the last change by shmctl."""
    shm_cpid: int
    """Pid of the creator."""
    shm_lpid: int
    """Pid of the last shmat/shmdt."""
    shm_nattch: int
    """Number of current attachments."""

    @property
    def marked_for_removal(self) -> bool:
        """``SHM_DEST``: destroyed when the last process detaches."""
        return bool(self.shm_perm.mode & _sysvipc.SHM_DEST)

    @property
    def locked(self) -> bool:
        """``SHM_LOCKED``: locked in memory by SHM_LOCK."""
        return bool(self.shm_perm.mode & _sysvipc.SHM_LOCKED)

    @classmethod
    def _make(cls, raw: tuple[Any, ...]) -> ShmidDs:
        return cls(_perm(raw[0]), *raw[1:])


@dataclass(frozen=True, slots=True)
class MsgInfo:
    """``struct msginfo``.  From IPC_INFO: the limits.  From MSG_INFO,
    ``msgpool`` is the number of queues, ``msgmap`` the messages and
    ``msgtql`` the bytes of messages on all queues."""

    msgpool: int
    msgmap: int
    msgmax: int
    """Maximum size of one message."""
    msgmnb: int
    """Default maximum bytes on a queue."""
    msgmni: int
    """Maximum number of queues."""
    msgssz: int
    msgtql: int
    msgseg: int


@dataclass(frozen=True, slots=True)
class SemInfo:
    """``struct seminfo``.  From IPC_INFO: the limits.  From SEM_INFO,
    ``semusz`` is the number of sets and ``semaem`` of semaphores."""

    semmap: int
    semmni: int
    """Maximum number of sets."""
    semmns: int
    """Maximum semaphores on the system."""
    semmnu: int
    semmsl: int
    """Maximum semaphores in one set."""
    semopm: int
    """Maximum operations in one semop call."""
    semume: int
    semusz: int
    semvmx: int
    """Maximum semaphore value."""
    semaem: int


@dataclass(frozen=True, slots=True)
class ShmInfo:
    """``struct shminfo`` (IPC_INFO): the shared memory limits."""

    shmmax: int
    """Maximum segment size in bytes."""
    shmmin: int
    """Minimum segment size in bytes."""
    shmmni: int
    """Maximum number of segments."""
    shmseg: int
    shmall: int
    """Maximum pages of shared memory on the system."""


@dataclass(frozen=True, slots=True)
class ShmUsage:
    """``struct shm_info`` (SHM_INFO): shared memory in use."""

    used_ids: int
    """Segments that exist."""
    shm_tot: int
    """Pages allocated to segments."""
    shm_rss: int
    """Resident pages."""
    shm_swp: int
    """Swapped pages."""
    swap_attempts: int
    swap_successes: int


@dataclass(frozen=True, slots=True)
class SemaphoreSetStat:
    """What :meth:`~sysvipc.SemaphoreSet.stat` returns: ``struct semid_ds`` (same
    field names as :class:`~sysvipc.SemidDs`) plus one
    :class:`~sysvipc.Sem` per semaphore.

    The set-wide fields come from one ``IPC_STAT`` and the values from one
    ``GETALL``; the per-semaphore pid and wait counts are read one by one,
    so under concurrent use this is not a single atomic snapshot.
    """

    sem_perm: IpcPerm
    """Ownership and permissions."""
    sem_otime: int
    """Time of the last semop (0: never, i.e. not initialised)."""
    sem_ctime: int
    """Time of creation or of the last change by semctl."""
    sem_nsems: int
    """Number of semaphores in the set."""
    semaphores: tuple[Sem, ...]
    """``Sem(semval, sempid, semncnt, semzcnt)`` for each semaphore, by index."""
