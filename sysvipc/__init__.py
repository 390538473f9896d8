"""System V IPC for Python: message queues, semaphore sets and shared memory.

The classes (:class:`MessageQueue`, :class:`SemaphoreSet`,
:class:`SharedMemory`) are the everyday API; :mod:`sysvipc.lowlevel` has one
function per syscall.  Everything runs against the kernel directly, through
the C extension :mod:`sysvipc._sysvipc`.
"""

from __future__ import annotations

try:
    from . import _sysvipc  # noqa: F401  (the check; see _missing.py)
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess
    from ._missing import explain as _explain

    raise ImportError(_explain(_exc)) from _exc

from . import lowlevel
from ._introspect import (
    Entry,
    Limits,
    Usage,
    limits,
    list_message_queues,
    list_semaphore_sets,
    list_shared_memory,
    usage,
)
from ._queue import MessageQueue
from ._semaphore import Semaphore, SemaphoreSet, SemaphoreSetStat
from ._shm import SharedMemory
from ._structs import (
    IpcPerm,
    MsgInfo,
    MsqidDs,
    Sem,
    SemidDs,
    SemInfo,
    ShmidDs,
    ShmInfo,
    ShmUsage,
    to_datetime,
)
from ._sysvipc import (
    IPC_CREAT,
    IPC_EXCL,
    IPC_NOWAIT,
    IPC_PRIVATE,
    SEM_UNDO,
    SEMVMX,
    IdentifierRemovedError,
    Message,
    canonical_key,
    ftok,
)

__version__ = "0.1.0"

__all__ = [
    "IPC_CREAT",
    "IPC_EXCL",
    "IPC_NOWAIT",
    "IPC_PRIVATE",
    "SEM_UNDO",
    "SEMVMX",
    "Entry",
    "IdentifierRemovedError",
    "IpcPerm",
    "Limits",
    "Message",
    "MessageQueue",
    "MsgInfo",
    "MsqidDs",
    "Sem",
    "SemInfo",
    "Semaphore",
    "SemaphoreSet",
    "SemaphoreSetStat",
    "SharedMemory",
    "SemidDs",
    "ShmInfo",
    "ShmUsage",
    "ShmidDs",
    "Usage",
    "canonical_key",
    "ftok",
    "limits",
    "list_message_queues",
    "list_semaphore_sets",
    "list_shared_memory",
    "lowlevel",
    "to_datetime",
    "usage",
    "__version__",
]
