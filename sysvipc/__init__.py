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

from typing import TYPE_CHECKING, Any

from ._queue import MessageQueue
from ._semaphore import Semaphore, SemaphoreSet
from ._shm import SharedMemory
from ._sysvipc import (
    IPC_CREAT,
    IPC_EXCL,
    IPC_NOWAIT,
    IPC_PRIVATE,
    KEY_MAX,
    KEY_MIN,
    SEM_UNDO,
    SEMVMX,
    IdentifierRemovedError,
    Message,
    canonical_key,
    ftok,
)

__version__ = "0.1.0"

# Loaded on first use (PEP 562), so that `import sysvipc` stays cheap: the
# structures are dataclasses, and lowlevel and the listings need them.
_LAZY = {
    "lowlevel": "",
    **dict.fromkeys(
        ["Entry", "Limits", "Usage", "limits", "usage", "list_message_queues",
         "list_semaphore_sets", "list_shared_memory"],
        "_introspect",
    ),
    **dict.fromkeys(
        ["IpcPerm", "MsgInfo", "MsqidDs", "Sem", "SemidDs", "SemInfo", "ShmidDs", "ShmInfo",
         "ShmUsage", "SemaphoreSetStat", "to_datetime"],
        "_structs",
    ),
}  # fmt: skip

if TYPE_CHECKING:
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
    from ._structs import (
        IpcPerm,
        MsgInfo,
        MsqidDs,
        Sem,
        SemaphoreSetStat,
        SemidDs,
        SemInfo,
        ShmidDs,
        ShmInfo,
        ShmUsage,
        to_datetime,
    )


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    if where == "":
        value: Any = importlib.import_module(f"{__name__}.{name}")
    else:
        value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "IPC_CREAT",
    "IPC_EXCL",
    "IPC_NOWAIT",
    "IPC_PRIVATE",
    "KEY_MAX",
    "KEY_MIN",
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
