"""One function per System V IPC syscall, close to the C API.

The send/receive/operate calls are the C functions themselves (no Python
frame in between); the ``*ctl`` calls return the structures of
:mod:`sysvipc._structs` instead of raw tuples.  Every failing syscall raises
an :class:`OSError` subclass whose message names the syscall; bad arguments
raise :class:`TypeError` or :class:`ValueError` before anything is created.

>>> from sysvipc import lowlevel as ll
>>> msqid = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
>>> ll.msgsnd(msqid, b"hello", 7)
>>> ll.msgrcv(msqid, 100)
sysvipc.Message(data=b'hello', type=7)
>>> ll.msgctl(msqid, ll.IPC_STAT).msg_qnum
0
>>> ll.msgctl(msqid, ll.IPC_RMID)
"""

from __future__ import annotations

from . import _sysvipc
from ._structs import (
    MsgInfo,
    MsqidDs,
    SemidDs,
    SemInfo,
    ShmidDs,
    ShmInfo,
    ShmUsage,
)
from ._sysvipc import (
    GETALL,
    GETNCNT,
    GETPID,
    GETVAL,
    GETZCNT,
    IPC_CREAT,
    IPC_EXCL,
    IPC_INFO,
    IPC_NOWAIT,
    IPC_PRIVATE,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    KEY_MAX,
    KEY_MIN,
    MSG_COPY,
    MSG_EXCEPT,
    MSG_INFO,
    MSG_NOERROR,
    MSG_STAT,
    MSG_STAT_ANY,
    PAGE_SIZE,
    SEM_INFO,
    SEM_STAT,
    SEM_STAT_ANY,
    SEM_UNDO,
    SEMVMX,
    SETALL,
    SETVAL,
    SHM_DEST,
    SHM_EXEC,
    SHM_HUGE_1GB,
    SHM_HUGE_2MB,
    SHM_HUGE_SHIFT,
    SHM_HUGETLB,
    SHM_INFO,
    SHM_LOCK,
    SHM_LOCKED,
    SHM_NORESERVE,
    SHM_R,
    SHM_RDONLY,
    SHM_REMAP,
    SHM_RND,
    SHM_STAT,
    SHM_STAT_ANY,
    SHM_UNLOCK,
    SHM_W,
    SHMLBA,
    WAKEUP_SIGNAL,
    Attachment,
    IdentifierRemovedError,
    Message,
    canonical_key,
    ftok,
    msgget,
    msgrcv,
    msgrcv_into,
    msgsnd,
    semget,
    semop,
    semop1,
    shmat,
    shmdt,
    shmget,
)

__all__ = [
    "GETALL",
    "GETNCNT",
    "GETPID",
    "GETVAL",
    "GETZCNT",
    "IPC_CREAT",
    "IPC_EXCL",
    "IPC_INFO",
    "IPC_NOWAIT",
    "IPC_PRIVATE",
    "KEY_MAX",
    "KEY_MIN",
    "IPC_RMID",
    "IPC_SET",
    "IPC_STAT",
    "MSG_COPY",
    "MSG_EXCEPT",
    "MSG_INFO",
    "MSG_NOERROR",
    "MSG_STAT",
    "MSG_STAT_ANY",
    "PAGE_SIZE",
    "SEM_INFO",
    "SEM_STAT",
    "SEM_STAT_ANY",
    "SEM_UNDO",
    "SEMVMX",
    "SETALL",
    "SETVAL",
    "SHM_DEST",
    "SHM_EXEC",
    "SHM_HUGE_1GB",
    "SHM_HUGE_2MB",
    "SHM_HUGE_SHIFT",
    "SHM_HUGETLB",
    "SHM_INFO",
    "SHM_LOCK",
    "SHM_LOCKED",
    "SHM_NORESERVE",
    "SHM_R",
    "SHM_RDONLY",
    "SHM_REMAP",
    "SHM_RND",
    "SHM_STAT",
    "SHM_STAT_ANY",
    "SHM_UNLOCK",
    "SHM_W",
    "SHMLBA",
    "WAKEUP_SIGNAL",
    "Attachment",
    "IdentifierRemovedError",
    "Message",
    "canonical_key",
    "ftok",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgrcv_into",
    "msgctl",
    "semget",
    "semop",
    "semop1",
    "semctl",
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
]


def _changes(
    uid: int | None, gid: int | None, mode: int | None
) -> tuple[int | None, int | None, int | None]:
    return (uid, gid, mode)


def msgctl(
    msqid: int,
    cmd: int,
    *,
    uid: int | None = None,
    gid: int | None = None,
    mode: int | None = None,
    qbytes: int | None = None,
) -> MsqidDs | tuple[int, MsqidDs] | tuple[int, MsgInfo] | None:
    """msgctl(2).

    - ``IPC_STAT``: the queue's :class:`MsqidDs`.
    - ``MSG_STAT``, ``MSG_STAT_ANY``: ``msqid`` is an index into the kernel's
      table; returns ``(msqid, MsqidDs)``.
    - ``IPC_SET``: change ``uid``, ``gid``, ``mode`` and/or ``qbytes``
      (the others keep their values).
    - ``IPC_RMID``: remove the queue; blocked callers get
      :class:`IdentifierRemovedError`.
    - ``IPC_INFO``, ``MSG_INFO``: ``(highest index in use, MsgInfo)``.
    """
    if cmd == IPC_SET:
        _sysvipc.msgctl(msqid, cmd, (uid, gid, mode, qbytes))
        return None
    raw = _sysvipc.msgctl(msqid, cmd)
    if cmd == IPC_STAT:
        return MsqidDs._make(raw)
    if cmd in (MSG_STAT, MSG_STAT_ANY):
        return raw[0], MsqidDs._make(raw[1])
    if cmd in (IPC_INFO, MSG_INFO):
        return raw[0], MsgInfo(*raw[1])
    return None


def semctl(
    semid: int,
    semnum: int,
    cmd: int,
    arg: int | list[int] | tuple[int, ...] | None = None,
    *,
    uid: int | None = None,
    gid: int | None = None,
    mode: int | None = None,
) -> int | list[int] | SemidDs | tuple[int, SemidDs] | tuple[int, SemInfo] | None:
    """semctl(2).

    - ``GETVAL``, ``GETPID``, ``GETNCNT``, ``GETZCNT``: an int for ``semnum``.
    - ``SETVAL``: set ``semnum`` to ``arg`` (0..SEMVMX).
    - ``GETALL``: every value, as a list; ``SETALL``: ``arg`` holds one value
      per semaphore.
    - ``IPC_STAT``: :class:`SemidDs`; ``SEM_STAT``, ``SEM_STAT_ANY``: ``semid``
      is an index, returns ``(semid, SemidDs)``.
    - ``IPC_SET``: change ``uid``, ``gid`` and/or ``mode``.
    - ``IPC_RMID``: remove the set; blocked callers get
      :class:`IdentifierRemovedError`.
    - ``IPC_INFO``, ``SEM_INFO``: ``(highest index in use, SemInfo)``.
    """
    if cmd == IPC_SET:
        _sysvipc.semctl(semid, semnum, cmd, _changes(uid, gid, mode))
        return None
    raw = _sysvipc.semctl(semid, semnum, cmd, arg)
    if cmd == IPC_STAT:
        return SemidDs._make(raw)
    if cmd in (SEM_STAT, SEM_STAT_ANY):
        return raw[0], SemidDs._make(raw[1])
    if cmd in (IPC_INFO, SEM_INFO):
        return raw[0], SemInfo(*raw[1])
    return raw  # type: ignore[no-any-return]


def shmctl(
    shmid: int,
    cmd: int,
    *,
    uid: int | None = None,
    gid: int | None = None,
    mode: int | None = None,
) -> ShmidDs | tuple[int, ShmidDs] | tuple[int, ShmInfo] | tuple[int, ShmUsage] | None:
    """shmctl(2).

    - ``IPC_STAT``: :class:`ShmidDs`; ``SHM_STAT``, ``SHM_STAT_ANY``: ``shmid``
      is an index, returns ``(shmid, ShmidDs)``.
    - ``IPC_SET``: change ``uid``, ``gid`` and/or ``mode``.
    - ``IPC_RMID``: mark the segment for destruction at its last detach.
    - ``SHM_LOCK``, ``SHM_UNLOCK``: lock it in memory, or not.
    - ``IPC_INFO``: ``(highest index, ShmInfo)``; ``SHM_INFO``:
      ``(highest index, ShmUsage)``.
    """
    if cmd == IPC_SET:
        _sysvipc.shmctl(shmid, cmd, _changes(uid, gid, mode))
        return None
    raw = _sysvipc.shmctl(shmid, cmd)
    if cmd == IPC_STAT:
        return ShmidDs._make(raw)
    if cmd in (SHM_STAT, SHM_STAT_ANY):
        return raw[0], ShmidDs._make(raw[1])
    if cmd == IPC_INFO:
        return raw[0], ShmInfo(*raw[1])
    if cmd == SHM_INFO:
        return raw[0], ShmUsage(*raw[1])
    return None
