"""Raw C: benchmarks/bench_c.c, compiled with the system compiler (``cc -O2``).

The same workloads with the syscalls called directly from a C loop: the
physical limit.  Messages are received into a buffer of exactly the
message's size; the timed wait is a msgrcv ended by a POSIX timer's signal
(the timer created once, armed and disarmed around each wait); the shared
memory rows are all ``memcpy``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

TITLE = "raw C"

NOTES: dict[str, str] = {
    "shm_copy": "raw C: all four shared-memory copy rows are memcpy (the 'vs memcpy' reference)",
    "timed_wait": "raw C: msgrcv interrupted by a POSIX timer's signal (timer_create once, "
    "timer_settime per wait)",
}

SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench_c.c")


def compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def compile_binary(out_dir: str) -> tuple[str | None, str | None, str | None]:
    """Build bench_c into ``out_dir``: ``(path, compiler version, error)``."""
    cc = compiler()
    if cc is None:
        return None, None, "no C compiler (cc, gcc or clang) on PATH"
    try:
        version = subprocess.run(
            [cc, "--version"], capture_output=True, text=True, timeout=30
        ).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        version = cc
    os.makedirs(out_dir, exist_ok=True)
    binary = os.path.join(out_dir, "bench_c")
    cmd = [cc, "-O2", "-std=gnu11", "-o", binary, SOURCE, "-lrt"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        return None, version, f"{' '.join(cmd)}: {e}"
    if proc.returncode != 0:
        return None, version, f"{' '.join(cmd)} failed:\n{proc.stderr.strip()}"
    return binary, version, None


def unsupported(row_id: str) -> str | None:
    return None


def command(binary: str, row_ids: list[str], cfg: Any) -> list[str]:
    return [
        binary,
        ",".join(row_ids),
        cfg.placement,
        str(cfg.cpus[0]),
        str(cfg.cpus[1]),
        str(int(cfg.target_ns)),
        str(int(cfg.warm_ns)),
        str(int(cfg.shm_bytes)),
        str(int(cfg.wait_s * 1e9)),
        str(int(cfg.latency_iters)),
        str(int(cfg.latency_delay_ns)),
    ]
