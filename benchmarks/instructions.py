#!/usr/bin/env python3
"""Count the user-space instructions each binding spends per operation,
under valgrind's callgrind: the figure that does not drift with load.

    python benchmarks/instructions.py            # the table, N = 2000
    python benchmarks/instructions.py -n 500     # quicker, a little noisier
    python benchmarks/run.py --instructions      # the same

Each cell runs one workload twice in a fresh interpreter under
``valgrind --tool=callgrind --trace-children=yes`` (every process it starts
is counted, forked peers included): once with N iterations and once with
6N.  The difference of the two totals divided by 5N is the cost of one
iteration; interpreter start-up, imports and set-up cancel out.  The loops
run inside functions with the bound methods in locals, as real code has
them.  See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import repeat
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))

# (row id, title, floor applies); the floor is two bare C calls.
ROWS = [
    ("pair_16", "`send(16 B)` + `receive()` in one process", True),
    ("sem", "`acquire()` + `release()`", True),
    ("sem_undo", "`acquire(undo=True)` + `release(undo=True)`", False),
    ("pingpong_64", "ping-pong round trip, 64 B, two processes, one queue (types 1 and 2)", False),
]
LIBS = ["sysvipc", "sysv_ipc", "floor"]
LIB_TITLES = {
    "sysvipc": "sysvipc",
    "sysv_ipc": "sysv_ipc",
    "floor": "two bare C calls (`os.getppid()` twice)",
}
DEFAULT_N = 2000


# --------------------------------------------------------------------------
# The workloads (run in the child, under valgrind)
# --------------------------------------------------------------------------


def _pair(send: Callable[..., Any], recv: Callable[..., Any], data: bytes, n: int) -> None:
    for _ in repeat(None, n):
        send(data)
        recv()


def _acquire_release(acq: Callable[..., Any], rel: Callable[..., Any], n: int) -> None:
    for _ in repeat(None, n):
        acq()
        rel()


def _acquire_release_undo(acq: Callable[..., Any], rel: Callable[..., Any], n: int) -> None:
    for _ in repeat(None, n):
        acq(undo=True)
        rel(undo=True)


def _floor(call: Callable[[], Any], n: int) -> None:
    for _ in repeat(None, n):
        call()
        call()


def _sysvipc_ping(send: Callable[..., Any], recv: Callable[..., Any], data: bytes, n: int) -> None:
    for _ in repeat(None, n):
        send(data, 1)
        recv(2)


def _sysvipc_pong(send: Callable[..., Any], recv: Callable[..., Any], n: int) -> None:
    for _ in repeat(None, n):
        send(recv(1).data, 2)


def _sysv_ipc_ping(send: Callable[..., Any], recv: Callable[..., Any], data: bytes, n: int) -> None:
    for _ in repeat(None, n):
        send(data, type=1)
        recv(type=2)


def _sysv_ipc_pong(send: Callable[..., Any], recv: Callable[..., Any], n: int) -> None:
    for _ in repeat(None, n):
        send(recv(type=1)[0], type=2)


def _ping_pong(send: Any, recv: Any, ping: Any, pong: Any, n: int) -> None:
    """The peer is forked (callgrind follows it) and answers n pings."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            pong(send, recv, n)
            code = 0
        finally:
            os._exit(code)
    ping(send, recv, b"x" * 64, n)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise SystemExit(f"the ping-pong peer failed (status {status})")


def _import_sysvipc() -> Any:
    try:
        import sysvipc
    except ImportError:
        sys.path.append(os.path.dirname(HERE))  # not installed: this checkout
        import sysvipc
    return sysvipc


@contextmanager
def _sysvipc_queue() -> Iterator[Any]:
    sysvipc = _import_sysvipc()
    with sysvipc.MessageQueue(sysvipc.IPC_PRIVATE, remove_on_close=True) as q:
        yield q


@contextmanager
def _sysvipc_semaphore() -> Iterator[Any]:
    sysvipc = _import_sysvipc()
    with sysvipc.SemaphoreSet(sysvipc.IPC_PRIVATE, 1, initial=1, remove_on_close=True) as s:
        yield s[0]


@contextmanager
def _sysv_ipc_queue(size: int) -> Iterator[Any]:
    import sysv_ipc

    # max_message_size at the message size: its fastest setting (it
    # allocates that much on every receive).
    q = sysv_ipc.MessageQueue(sysv_ipc.IPC_PRIVATE, sysv_ipc.IPC_CREX, 0o600, size)
    try:
        yield q
    finally:
        q.remove()


@contextmanager
def _sysv_ipc_semaphore(undo: bool) -> Iterator[Any]:
    import sysv_ipc

    s = sysv_ipc.Semaphore(sysv_ipc.IPC_PRIVATE, sysv_ipc.IPC_CREX, 0o600, 1)
    try:
        s.undo = undo  # its API for SEM_UNDO: an attribute, not an argument
        yield s
    finally:
        s.remove()


def run_workload(lib: str, row: str, n: int) -> None:
    if lib == "floor":
        _floor(os.getppid, n)
    elif lib == "sysvipc":
        if row == "pair_16":
            with _sysvipc_queue() as q:
                _pair(q.send, q.receive, b"x" * 16, n)
        elif row == "pingpong_64":
            with _sysvipc_queue() as q:
                _ping_pong(q.send, q.receive, _sysvipc_ping, _sysvipc_pong, n)
        elif row == "sem":
            with _sysvipc_semaphore() as s:
                _acquire_release(s.acquire, s.release, n)
        else:
            with _sysvipc_semaphore() as s:
                _acquire_release_undo(s.acquire, s.release, n)
    elif lib == "sysv_ipc":
        if row == "pair_16":
            with _sysv_ipc_queue(16) as q:
                _pair(q.send, q.receive, b"x" * 16, n)
        elif row == "pingpong_64":
            with _sysv_ipc_queue(64) as q:
                _ping_pong(q.send, q.receive, _sysv_ipc_ping, _sysv_ipc_pong, n)
        else:
            with _sysv_ipc_semaphore(undo=row == "sem_undo") as s:
                _acquire_release(s.acquire, s.release, n)
    else:
        raise SystemExit(f"unknown library {lib!r}")


# --------------------------------------------------------------------------
# Counting (the parent)
# --------------------------------------------------------------------------


def valgrind() -> str | None:
    return shutil.which("valgrind")


def applies(lib: str, row: str) -> str | None:
    """None if the cell is measured, else why not."""
    if lib == "floor":
        return None if dict((r, f) for r, _, f in ROWS)[row] else "no floor for this row"
    if lib == "sysv_ipc" and importlib.util.find_spec("sysv_ipc") is None:
        return "sysv_ipc is not installed"
    return None


def count(lib: str, row: str, n: int, workdir: str) -> int:
    """Instructions of every process of one run of n iterations."""
    out = tempfile.mkdtemp(prefix=f"{lib}-{row}-{n}-", dir=workdir)
    cmd = [
        valgrind() or "valgrind",
        "--tool=callgrind",
        "--trace-children=yes",
        "--quiet",
        f"--callgrind-out-file={out}/callgrind.out.%p",
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        lib,
        row,
        str(n),
    ]
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{lib} {row} n={n}: exit status {proc.returncode}\n{proc.stderr[-2000:]}"
        )
    total = 0
    files = glob.glob(os.path.join(out, "callgrind.out.*"))
    for path in files:
        with open(path) as f:
            for line in f:
                m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                if m:
                    total += int(m.group(1))
                    break
    if not files or total == 0:
        raise RuntimeError(f"{lib} {row} n={n}: no callgrind totals in {out}")
    return total


def per_iteration(lib: str, row: str, n: int, workdir: str) -> float:
    small = count(lib, row, n, workdir)
    large = count(lib, row, 6 * n, workdir)
    return (large - small) / (5 * n)


def measure(
    rows: list[str], libs: list[str], n: int, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    floor: float | None = None  # the same loop for every row it applies to
    with tempfile.TemporaryDirectory(prefix="sysvipc-callgrind-") as workdir:
        for row in rows:
            results[row] = {}
            for lib in libs:
                why = applies(lib, row)
                if why is not None:
                    results[row][lib] = {"value": None, "reason": why}
                    continue
                if lib == "floor" and floor is not None:
                    results[row][lib] = {"value": floor}
                    continue
                if log:
                    log(f"counting {lib} {row} (N = {n}) ...")
                value = per_iteration(lib, row, n, workdir)
                if lib == "floor":
                    floor = value
                results[row][lib] = {"value": value}
    return {
        "n": n,
        "python": sys.version.split()[0],
        "versions": {lib: _version(lib) for lib in libs},
        "rows": {r: t for r, t, _ in ROWS},
        "results": results,
    }


def _version(lib: str) -> str | None:
    if lib == "sysvipc":
        return str(getattr(_import_sysvipc(), "__version__", "?"))
    if lib == "sysv_ipc":
        try:
            import sysv_ipc
        except ImportError:
            return None
        return str(getattr(sysv_ipc, "VERSION", "?"))
    return None


def markdown(report: dict[str, Any]) -> str:
    libs = [lib for lib in LIBS if lib in next(iter(report["results"].values()), {})]
    heads = []
    for lib in libs:
        version = report["versions"].get(lib)
        title = LIB_TITLES[lib]
        heads.append(f"{title} {version}" if version and lib != "sysvipc" else title)
    lines = [
        f"Instructions per iteration (callgrind, all processes, (6N - N runs) / 5N, "
        f"N = {report['n']}, CPython {report['python']})",
        "",
        "| per iteration | " + " | ".join(heads) + " |",
        "|---|" + "---:|" * len(libs),
    ]
    for row, cells in report["results"].items():
        texts = []
        for lib in libs:
            value = cells[lib]["value"]
            texts.append("" if value is None else f"{value:,.0f}")
        lines.append(f"| {report['rows'][row]} | " + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/instructions.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-n", type=int, default=DEFAULT_N, help=f"N (default {DEFAULT_N})")
    p.add_argument("--rows", help="comma-separated subset of " + ",".join(r for r, _, _ in ROWS))
    p.add_argument("--libs", help="comma-separated subset of " + ",".join(LIBS))
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--child", nargs=3, metavar=("LIB", "ROW", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("-n must be >= 1")
    return args


def _subset(spec: str | None, allowed: list[str], what: str) -> list[str]:
    if not spec:
        return list(allowed)
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    for s in chosen:
        if s not in allowed:
            raise SystemExit(f"--{what}: unknown {s!r} (choose from {', '.join(allowed)})")
    return [a for a in allowed if a in chosen]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.child:
        lib, row, n = args.child
        run_workload(lib, row, int(n))
        return 0
    rows = _subset(args.rows, [r for r, _, _ in ROWS], "rows")
    libs = _subset(args.libs, LIBS, "libs")
    if valgrind() is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    report = measure(rows, libs, args.n, log=lambda s: print(s, file=sys.stderr, flush=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    print(markdown(report), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
