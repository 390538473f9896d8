"""The backends: one module each, imported lazily by name.

Each Python backend module defines:

- ``TITLE``: the column heading;
- ``probe()``: ``{"available": bool, "reason": str | None, "version": str | None,
  "details": {...}}``, importing the library only there;
- ``unsupported(row_id)``: None, or why the backend has no equivalent (n/a);
- ``NOTES``: ``{row_id or family: "what stands for the workload"}``;
- ``Impl``: the workloads (see ``harness.run_rows``).

``c`` is special: the orchestrator compiles and runs ``bench_c.c`` itself.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Column order of the report.
BACKENDS = ["c", "sysvipc", "sysv_ipc", "posix_ipc", "multiprocessing", "mp_queue"]

_MODULES = {
    "c": "backends.c_backend",
    "sysvipc": "backends.sysvipc_backend",
    "sysv_ipc": "backends.sysv_ipc_backend",
    "posix_ipc": "backends.posix_ipc_backend",
    "multiprocessing": "backends.mp_backend",
    "mp_queue": "backends.mp_queue_backend",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(_MODULES[name])
