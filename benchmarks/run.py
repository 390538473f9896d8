#!/usr/bin/env python3
"""Benchmark sysvipc side by side with raw C, sysv_ipc, posix_ipc and
multiprocessing, in one run.

    python benchmarks/run.py            # full: 5 repetitions, ~200 ms batches
    python benchmarks/run.py --quick    # under a minute: 3 repetitions
    python benchmarks/run.py --list     # the rows and the backends
    python benchmarks/run.py --instructions  # instructions per operation (callgrind)

Every figure comes from a fresh process per repetition (a worker), the
backends' order rotates between repetitions, and both processes of a
two-process workload share one CPU unless ``--spread``.  The report (a
Markdown table, JSON with every raw number and the machine, a PNG chart of
the ratios to raw C) goes to benchmarks/results/ or ``--out DIR``.
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import importlib.util
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from backends import BACKENDS, load  # noqa: E402
from harness import (  # noqa: E402
    GROUPS,
    ROW_BY_ID,
    ROWS,
    Config,
    Row,
    base_id,
    cpu_choice,
    figure,
    median,
    spread_id,
)

SCHEMA = 1
WORKER = os.path.join(HERE, "worker.py")

MODES = {
    # target: timed batch; warm: warm-up and calibration; wait: the timed
    # wait with no message; lat: latency samples per repetition.
    "quick": dict(reps=3, target_ms=30, warm_ms=5, wait_s=0.2, lat_iters=10, lat_delay_ms=2),
    "full": dict(reps=5, target_ms=200, warm_ms=40, wait_s=1.0, lat_iters=30, lat_delay_ms=5),
}


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="3 repetitions of short batches (< 1 min)")
    p.add_argument(
        "--out",
        metavar="DIR",
        default=os.path.join(HERE, "results"),
        help="where the report goes (default: benchmarks/results)",
    )
    p.add_argument(
        "--reps", type=int, metavar="N", help="repetitions per figure (default: 5, --quick: 3)"
    )
    p.add_argument(
        "--only",
        metavar="ROWS",
        help="comma-separated rows, families or prefixes (e.g. msg_pair,sem_ or shm_create_1m)",
    )
    p.add_argument(
        "--backends",
        metavar="LIST",
        help=f"comma-separated subset of {','.join(BACKENDS)} (c is always kept for ratios)",
    )
    p.add_argument(
        "--spread",
        action="store_true",
        help="two-process workloads with one process per CPU (same as --placement spread)",
    )
    p.add_argument(
        "--placement",
        choices=("same", "spread", "both"),
        default=None,
        help="two-process workloads on the same CPU (default), one per CPU, or both",
    )
    p.add_argument(
        "--shm-mib",
        type=int,
        default=256,
        metavar="MIB",
        help="size of the shared-memory copy rows (default 256)",
    )
    p.add_argument("--target-ms", type=float, help="length of each timed batch")
    p.add_argument(
        "--worker-timeout",
        type=float,
        default=None,
        metavar="S",
        help="stop a worker after this many seconds (default 120, --quick 60)",
    )
    p.add_argument("--no-chart", action="store_true", help="do not draw the PNG chart")
    p.add_argument("--list", action="store_true", help="list the rows and backends, then exit")
    p.add_argument(
        "--instructions",
        action="store_true",
        help="print instead the instructions per operation under callgrind "
        "(benchmarks/instructions.py; needs valgrind)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show workers' stderr")
    args = p.parse_args(argv)
    if args.spread:
        if args.placement not in (None, "spread"):
            p.error("--spread contradicts --placement " + args.placement)
        args.placement = "spread"
    args.placement = args.placement or "same"
    if args.reps is not None and args.reps < 1:
        p.error("--reps must be >= 1")
    if args.shm_mib < 1:
        p.error("--shm-mib must be >= 1")
    return args


def select_rows(only: str | None) -> list[Row]:
    if not only:
        return list(ROWS)
    chosen: list[Row] = []
    for token in (t.strip() for t in only.split(",")):
        if not token:
            continue
        hits = [r for r in ROWS if r.id == token or r.family == token or r.id.startswith(token)]
        if not hits:
            raise SystemExit(f"--only: no row matches {token!r} (see --list)")
        chosen.extend(r for r in hits if r not in chosen)
    return [r for r in ROWS if r in chosen]


def select_backends(spec: str | None) -> list[str]:
    if not spec:
        return list(BACKENDS)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        if n not in BACKENDS:
            raise SystemExit(
                f"--backends: unknown backend {n!r} (choose from {', '.join(BACKENDS)})"
            )
    if "c" not in names:
        names.insert(0, "c")
    return [b for b in BACKENDS if b in names]


# --------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _module_version(name: str) -> str | None:
    try:
        from importlib import metadata

        return metadata.version(name)
    except Exception:
        return None


def machine_info(cpus: list[int], compiler_version: str | None) -> dict[str, Any]:
    cpu_model = None
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    os_name = None
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip('"')
    virt = None
    if shutil.which("systemd-detect-virt"):
        try:
            virt = (
                subprocess.run(
                    ["systemd-detect-virt"], capture_output=True, text=True, timeout=5
                ).stdout.strip()
                or None
            )
        except (OSError, subprocess.SubprocessError):
            pass
    if virt is None and " hypervisor" in (_read("/proc/cpuinfo") or ""):
        virt = "hypervisor (cpuinfo flag)"
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:
        allowed = []
    limits = {}
    for name in ("msgmax", "msgmnb", "msgmni", "sem", "shmmax", "shmall", "shmmni"):
        limits[name] = _read(f"/proc/sys/kernel/{name}")
    for name in ("msg_max", "msgsize_max", "queues_max"):
        limits["mqueue." + name] = _read(f"/proc/sys/fs/mqueue/{name}")
    uname = platform.uname()
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_allowed": allowed,
        "cpus_used": cpus,
        "kernel": uname.release,
        "kernel_version": uname.version,
        "machine": uname.machine,
        "os": os_name,
        "virtualization": virt,
        "clocksource": _read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "python_build": " ".join(platform.python_build()),
        "libc": " ".join(platform.libc_ver()),
        "compiler": compiler_version,
        "ipc_limits": limits,
        "memory_total_kib": _meminfo_total(),
    }


def _meminfo_total() -> int | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return None


def loadavg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


# --------------------------------------------------------------------------
# Leftovers: whatever a dead worker did not remove
# --------------------------------------------------------------------------

_RMID = {"msg": "msgctl", "sem": "semctl", "shm": "shmctl"}
_ID_FIELD = {"msg": "msqid", "sem": "semid", "shm": "shmid"}


def proc_rows(kind: str) -> list[dict[str, str]]:
    try:
        with open(f"/proc/sysvipc/{kind}") as f:
            header = f.readline().split()
            return [dict(zip(header, line.split(), strict=False)) for line in f if line.strip()]
    except OSError:
        return []


def remove_sysv(kind: str, ident: int) -> bool:
    """IPC_RMID through ctypes (no dependency on any backend)."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    IPC_RMID = 0
    if kind == "msg":
        rc = libc.msgctl(ctypes.c_int(ident), IPC_RMID, None)
    elif kind == "sem":
        rc = libc.semctl(ctypes.c_int(ident), 0, IPC_RMID)
    else:
        rc = libc.shmctl(ctypes.c_int(ident), IPC_RMID, None)
    return bool(rc == 0)


def sweep(worker_pid: int, ledger: str, prefix: str, backend: str) -> list[str]:
    """Remove what a worker left; return descriptions of what was found.

    System V: the ids the worker listed in its ledger that still exist, and
    segments whose creator pid is the worker's.  POSIX: the names made from
    the worker's private prefix.
    """
    left: list[str] = []
    listed: set[tuple[str, int]] = set()
    try:
        with open(ledger) as f:
            for line in f:
                kind, _, number = line.partition(" ")
                if kind in _RMID and number.strip().lstrip("-").isdigit():
                    listed.add((kind, int(number)))
    except OSError:
        pass
    for kind in ("msg", "sem", "shm"):
        for row in proc_rows(kind):
            ident = int(row[_ID_FIELD[kind]])
            mine = (kind, ident) in listed or (kind == "shm" and row.get("cpid") == str(worker_pid))
            if not mine:
                continue
            if (
                kind == "shm"
                and int(row.get("perms", "0"), 8) & 0o1000
                and row.get("nattch") != "0"
            ):
                continue  # marked for removal, goes with its last (dying) attacher
            remove_sysv(kind, ident)
            left.append(f"{kind} id {ident}")
    if backend == "posix_ipc":
        try:
            left += load("posix_ipc").cleanup_names(prefix)
        except Exception:
            pass
    for path in glob.glob("/dev/shm/" + prefix.lstrip("/") + "*") + glob.glob(
        "/dev/shm/sem." + prefix.lstrip("/") + "*"
    ):
        try:
            os.unlink(path)
            left.append(path)
        except OSError:
            pass
    return left


# --------------------------------------------------------------------------
# Running workers
# --------------------------------------------------------------------------


class Interrupted(Exception):
    pass


def stop_group(proc: subprocess.Popen[str], grace: float = 5.0) -> None:
    """SIGTERM the worker's process group (its finally blocks run), then
    SIGKILL whatever is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def run_worker(
    cmd: list[str], env: dict[str, str], timeout: float
) -> tuple[int | None, str, str, int, float]:
    """(returncode or None on timeout, stdout, stderr, pid, seconds)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
        cwd=HERE,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        stop_group(proc)
        out, err = proc.communicate()
        rc = None
    except KeyboardInterrupt:
        stop_group(proc)
        try:
            proc.communicate(timeout=5)
        except Exception:
            pass
        raise Interrupted(proc.pid) from None
    finally:
        # Peers of a worker are in its process group: none may outlive it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return rc, out, err, proc.pid, time.monotonic() - t0


def parse_worker_output(out: str) -> tuple[dict[str, Any] | None, str | None]:
    result = error = None
    for line in out.splitlines():
        if line.startswith("@@RESULT "):
            result = json.loads(line[len("@@RESULT ") :])
        elif line.startswith("@@ERROR "):
            error = json.loads(line[len("@@ERROR ") :])["error"]
    return result, error


def last_lines(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    if unit == "msg/s":
        for div, suffix in ((1e6, "M"), (1e3, "k")):
            if v >= div:
                return _sig(v / div) + suffix
        return _sig(v)
    return _sig(v)


def _sig(v: float) -> str:
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    if a >= 0.1:
        return f"{v:.2f}"
    if a == 0:
        return "0"
    return f"{v:.3g}"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "–"
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×"


def row_label(row: Row, placement: str) -> str:
    label = f"{row.title} ({row.unit})"
    return label + ", spread" if placement == "spread" else label


def cell_text(cell: dict[str, Any], unit: str) -> str:
    st = cell.get("status")
    if st == "ok":
        return f"{fmt(cell['median'], unit)} [{fmt(cell['min'], unit)}–{fmt(cell['max'], unit)}]"
    if st == "n/a":
        return "n/a"
    if st == "skipped":
        return "skipped"
    return "error"


def markdown(report: dict[str, Any]) -> str:
    backends = report["backends_run"]
    titles = {b: report["backends"][b]["title"] for b in backends}
    m = report["machine"]
    lines = [
        "# sysvipc benchmarks",
        "",
        f"{report['mode']} run, {report['repetitions']} repetitions in fresh processes, "
        f"median [min–max]; two-process workloads "
        + (
            "on one CPU"
            if report["placement"] == "same"
            else "one process per CPU"
            if report["placement"] == "spread"
            else "on one CPU and (rows marked spread) one per CPU"
        )
        + f"; started {report['started']}, {report['duration_s']:.0f} s.",
        "",
        f"Machine: {m['cpu_model']} ({m['cpu_count']} CPUs{', ' + m['virtualization'] if m.get('virtualization') else ''}), "
        f"Linux {m['kernel']}, Python {m['python']}, {m['compiler'] or 'no C compiler'}. "
        "Versions: "
        + ", ".join(
            f"{titles[b]} {report['backends'][b].get('version') or '?'}"
            for b in backends
            if b != "c" and report["backends"][b]["available"]
        )
        + ".",
        "",
    ]
    has_sysv = "sysv_ipc" in backends and report["backends"]["sysv_ipc"]["available"]
    head = ["workload"] + [titles[b] for b in backends] + ["sysvipc ÷ C"]
    if has_sysv:
        head.append("sysvipc ÷ sysv_ipc")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for key in report["row_order"]:
        rid, placement = base_id(key)
        row = ROW_BY_ID[rid]
        res = report["results"][key]
        cells = [row_label(row, placement)] + [cell_text(res[b], row.unit) for b in backends]
        ratios = report["ratios"][key].get("sysvipc", {})
        cells.append(fmt_ratio(ratios.get("to_c")))
        if has_sysv:
            cells.append(fmt_ratio(ratios.get("to_sysv_ipc")))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Ratios are time per operation (ns per round trip, message, pair, cycle or "
        "pass over the segment) divided by the same for raw C or sysv_ipc, medians "
        "from this run: 1.00× is as fast, above 1 slower.  For GB/s and msg/s rows "
        "that is the inverse of the throughput ratio.  No ratio for the CPU row.",
        "",
        "## Time per operation relative to raw C",
        "",
    ]
    others = [b for b in backends if b != "c"]
    lines.append("| workload | " + " | ".join(titles[b] for b in others) + " |")
    lines.append("|---|" + "|".join("---:" for _ in others) + "|")
    for key in report["row_order"]:
        rid, placement = base_id(key)
        row = ROW_BY_ID[rid]
        if row.kind == "cpu":
            continue
        cells = [row_label(row, placement)]
        for b in others:
            r = report["ratios"][key].get(b, {}).get("to_c")
            cell = report["results"][key][b]
            if r is not None:
                cells.append(fmt_ratio(r))
            elif cell["status"] in ("n/a", "skipped", "error"):
                cells.append(cell_text(cell, row.unit))
            else:
                cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    notes = report.get("notes", [])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    problems = report.get("errors", []) + [
        f"left behind and removed: {x}" for x in report.get("leaks", [])
    ]
    if problems:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Chart
# --------------------------------------------------------------------------


def chart(report: dict[str, Any], path: str) -> str | None:
    """Draw the ratios to raw C; return why not if it cannot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no chart"
    backends = [
        b for b in report["backends_run"] if b != "c" and report["backends"][b]["available"]
    ]
    keys = [k for k in report["row_order"] if ROW_BY_ID[base_id(k)[0]].kind != "cpu"]
    keys = [k for k in keys if any(report["ratios"][k].get(b, {}).get("to_c") for b in backends)]
    if not keys or not backends:
        return "no ratios to raw C to draw"
    n = len(backends)
    height = 0.8 / n
    fig, ax = plt.subplots(figsize=(10, len(keys) * (0.1 * n + 0.15) + 1.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, b in enumerate(backends):
        ys, xs = [], []
        for i, k in enumerate(keys):
            r = report["ratios"][k].get(b, {}).get("to_c")
            if r:
                ys.append(i + (j - (n - 1) / 2) * height)
                xs.append(r)
        ax.barh(
            ys,
            xs,
            height=height,
            label=report["backends"][b]["title"],
            color=colors[j % len(colors)],
        )
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels(
        [row_label(ROW_BY_ID[base_id(k)[0]], base_id(k)[1]) for k in keys], fontsize=8
    )
    ax.set_ylim(len(keys) - 0.5, -0.5)  # first row on top, no empty margins
    ax.set_xlabel("time per operation ÷ raw C (log scale; 1 = raw C, lower is better)")
    ax.set_title(
        f"sysvipc benchmarks: cost relative to raw C ({report['mode']} run, "
        f"{report['machine']['cpu_model']})",
        fontsize=10,
    )
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _interrupt(signo: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signo}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # SIGTERM and SIGHUP stop the run like Ctrl-C: workers stopped, their
    # objects removed, a partial report written.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    mode = "quick" if args.quick else "full"
    settings = dict(MODES[mode])
    if args.reps:
        settings["reps"] = args.reps
    if args.target_ms:
        settings["target_ms"] = args.target_ms
    worker_timeout = args.worker_timeout or (60.0 if args.quick else 120.0)

    if args.instructions:
        import instructions

        return int(instructions.main(["-n", "500"] if args.quick else []))

    if args.list:
        print("rows:")
        for r in ROWS:
            print(f"  {r.id:24} {r.family:16} {r.title} ({r.unit})")
        print("backends: " + ", ".join(BACKENDS))
        return 0

    rows = select_rows(args.only)
    backends = select_backends(args.backends)
    placements = ["same", "spread"] if args.placement == "both" else [args.placement]
    cpus = cpu_choice()
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    started = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    t_start = time.monotonic()
    load_start = loadavg()

    # -- backends --------------------------------------------------------
    info: dict[str, dict[str, Any]] = {}
    modules: dict[str, Any] = {}
    c_binary = None
    compiler_version = None
    for b in backends:
        mod = load(b)
        modules[b] = mod
        if b == "c":
            c_binary, compiler_version, err = mod.compile_binary(out_dir)
            info[b] = {
                "title": mod.TITLE,
                "available": c_binary is not None,
                "reason": err,
                "version": compiler_version,
                "details": {"binary": c_binary},
            }
        else:
            info[b] = dict(mod.probe(), title=mod.TITLE)
        if not info[b]["available"]:
            log(f"backend {b} skipped: {info[b]['reason']}")
    if "spread" in placements and len(set(cpus)) < 2:
        log("--spread: only one CPU is available; spread rows will be n/a")

    # -- the rows of the report -------------------------------------------
    def key_for(rid: str, placement: str) -> str:
        return spread_id(rid) if placement == "spread" and ROW_BY_ID[rid].two_process else rid

    # Single-process rows run once, with the first placement.
    row_order: list[str] = []
    groups: list[tuple[str, str, list[str]]] = []  # (group, placement, row ids)
    for group, fams in GROUPS.items():
        for placement in placements:
            ids = [
                r.id
                for r in rows
                if r.family in fams and (r.two_process or placement == placements[0])
            ]
            if ids:
                groups.append((group, placement, ids))
    for placement in placements:
        row_order += [
            key_for(r.id, placement) for r in rows if r.two_process or placement == placements[0]
        ]

    have_numpy = importlib.util.find_spec("numpy") is not None
    results: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in row_order}
    for key in row_order:
        rid, placement = base_id(key)
        for b in backends:
            if not info[b]["available"]:
                results[key][b] = {"status": "skipped", "reason": info[b]["reason"]}
                continue
            why = modules[b].unsupported(rid)
            if why is None and b != "c" and ROW_BY_ID[rid].family == "shm_copy" and not have_numpy:
                why = "numpy is not installed (pip install numpy)"
            if why is None and placement == "spread" and len(set(cpus)) < 2:
                why = "only one CPU available"
            if why:
                results[key][b] = {"status": "n/a", "reason": why}
            else:
                results[key][b] = {
                    "status": "pending",
                    "samples": [],
                    "costs_ns": [],
                    "raw": [],
                    "errors": [],
                }

    token = secrets.token_hex(4)
    errors: list[str] = []
    leaks: list[str] = []
    worker_pids: list[int] = []
    ledger_dir = tempfile.mkdtemp(prefix="sysvipc-bench-")
    interrupted = False
    base_cfg = dict(
        target_ns=int(settings["target_ms"] * 1e6),
        warm_ns=int(settings["warm_ms"] * 1e6),
        cpus=cpus,
        shm_bytes=args.shm_mib * 1024 * 1024,
        wait_s=float(settings["wait_s"]),
        latency_iters=int(settings["lat_iters"]),
        latency_delay_ns=int(settings["lat_delay_ms"] * 1e6),
    )
    runnable = [b for b in backends if info[b]["available"]]
    reps = int(settings["reps"])
    log(
        f"{mode} run: {len(row_order)} rows x {len(runnable)} backends x {reps} repetitions "
        f"(CPUs {cpus[0]}{'/' + str(cpus[1]) if 'spread' in placements else ''}); report in {out_dir}"
    )

    seq = 0
    try:
        for rep in range(reps):
            k = rep % max(1, len(runnable))
            order = runnable[k:] + runnable[:k]
            for fam, placement, ids in groups:
                keys = {rid: key_for(rid, placement) for rid in ids}
                progress = []
                for b in order:
                    todo = [rid for rid in ids if results[keys[rid]][b]["status"] == "pending"]
                    if not todo:
                        continue
                    seq += 1
                    prefix = f"/sysvipc_bench_{token}_{seq}"
                    ledger = os.path.join(ledger_dir, f"{seq}.ledger")
                    cfg = Config(placement=placement, prefix=prefix, ledger=ledger, **base_cfg)
                    env = dict(os.environ, BENCH_LEDGER=ledger, PYTHONUNBUFFERED="1")
                    if b == "c":
                        cmd = modules["c"].command(c_binary, todo, cfg)
                    else:
                        spec = {"backend": b, "rows": todo, "config": asdict(cfg)}
                        cmd = [sys.executable, WORKER, json.dumps(spec)]
                    try:
                        rc, out, err, pid, secs = run_worker(cmd, env, worker_timeout)
                    except Interrupted as e:
                        left = sweep(int(str(e.args[0])), ledger, prefix, b)
                        leaks.extend(left)
                        raise KeyboardInterrupt from None
                    worker_pids.append(pid)
                    left = sweep(pid, ledger, prefix, b)
                    if left:
                        leaks.extend(f"{b}/{fam} rep {rep + 1}: {x}" for x in left)
                    if args.verbose and err.strip():
                        log(err.rstrip())
                    parsed, werr = parse_worker_output(out) if b != "c" else (None, None)
                    if b == "c" and rc == 0:
                        try:
                            parsed = json.loads(out)
                        except json.JSONDecodeError as e:
                            werr = f"bad output from bench_c: {e}"
                    if rc is None:
                        werr = f"timed out after {worker_timeout:.0f} s"
                    elif rc != 0 and not werr:
                        werr = f"exit status {rc}"
                    if werr or parsed is None:
                        msg = f"{b} / {fam} ({placement}) rep {rep + 1}: {werr or 'no result'}"
                        detail = last_lines(err)
                        errors.append(msg + (f" — {detail.splitlines()[-1]}" if detail else ""))
                        log(
                            "  ERROR "
                            + msg
                            + ("\n    " + detail.replace("\n", "\n    ") if detail else "")
                        )
                        for rid in todo:
                            results[keys[rid]][b]["errors"].append(werr or "no result")
                        progress.append(f"{b} ERROR")
                        continue
                    worker_pids.extend(int(x) for x in parsed.get("peer_pids", []))
                    for rid in todo:
                        raw = parsed["rows"].get(rid)
                        cell = results[keys[rid]][b]
                        if raw is None:
                            cell["errors"].append("row missing from the worker's output")
                            continue
                        value, cost = figure(ROW_BY_ID[rid], raw, base_cfg["shm_bytes"])
                        raw = dict(raw, worker_s=round(secs, 3), rep=rep + 1)
                        cell["samples"].append(value)
                        cell["costs_ns"].append(cost)
                        cell["raw"].append(raw)
                    progress.append(f"{b} {secs:.1f}s")
                log(
                    f"rep {rep + 1}/{reps}  {fam + (' spread' if placement == 'spread' else ''):22} "
                    + "  ".join(progress)
                )
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: workers stopped, their objects removed; writing a partial report")
    finally:
        shutil.rmtree(ledger_dir, ignore_errors=True)

    # -- figures ----------------------------------------------------------
    ratios: dict[str, dict[str, dict[str, float | None]]] = {}
    for key in row_order:
        for cell in results[key].values():
            if cell["status"] != "pending":
                continue
            if cell["samples"]:
                cell["status"] = "ok"
                cell["median"] = median(cell["samples"])
                cell["min"] = min(cell["samples"])
                cell["max"] = max(cell["samples"])
                costs = [c for c in cell["costs_ns"] if c is not None]
                cell["cost_median_ns"] = median(costs) if costs else None
            else:
                cell["status"] = "error" if cell["errors"] else "not run"
        ratios[key] = {}
        ref_c = results[key].get("c", {}).get("cost_median_ns")
        ref_s = results[key].get("sysv_ipc", {}).get("cost_median_ns")
        for b, cell in results[key].items():
            cost = cell.get("cost_median_ns")
            if cost is None:
                continue
            ratios[key][b] = {
                "to_c": cost / ref_c if ref_c else None,
                "to_sysv_ipc": cost / ref_s if ref_s else None,
            }

    notes = []
    for b in backends:
        for text in getattr(modules[b], "NOTES", {}).values():
            notes.append(text)
    na: dict[tuple[str, str], list[str]] = {}
    for key in row_order:
        for b, cell in results[key].items():
            if cell["status"] == "n/a":
                na.setdefault((b, cell["reason"]), []).append(key)
    for (b, reason), keys_ in na.items():
        notes.append(f"{info[b]['title']}: n/a for {', '.join(keys_)}: {reason}")

    duration = time.monotonic() - t_start
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "command": [sys.executable] + [os.path.relpath(__file__)] + argv,
        "mode": mode,
        "interrupted": interrupted,
        "started": started,
        "duration_s": round(duration, 1),
        "repetitions": reps,
        "placement": args.placement,
        "settings": dict(
            settings, shm_bytes=base_cfg["shm_bytes"], worker_timeout_s=worker_timeout
        ),
        "machine": machine_info(cpus, compiler_version),
        "load_average": {"start": load_start, "end": loadavg()},
        "versions": {
            "sysvipc": info.get("sysvipc", {}).get("version") or _module_version("sysvipc"),
            "sysv_ipc": info.get("sysv_ipc", {}).get("version") or _module_version("sysv_ipc"),
            "posix_ipc": info.get("posix_ipc", {}).get("version") or _module_version("posix_ipc"),
            "numpy": _module_version("numpy"),
            "matplotlib": _module_version("matplotlib"),
            "python": sys.version.split()[0],
            "compiler": compiler_version,
        },
        "backends_run": backends,
        "backends": info,
        "rows": {
            r.id: {
                "family": r.family,
                "title": r.title,
                "unit": r.unit,
                "kind": r.kind,
                "param": r.param,
                "two_process": r.two_process,
                "higher_is_better": r.higher_is_better,
                "description": r.description,
            }
            for r in rows
        },
        "row_order": row_order,
        "results": results,
        "ratios": ratios,
        "notes": notes,
        "errors": errors,
        "leaks": leaks,
        "worker_pids": worker_pids,
        "posix_prefix": f"/sysvipc_bench_{token}_",
        "files": {},
    }
    md_path = os.path.join(out_dir, "results.md")
    json_path = os.path.join(out_dir, "results.json")
    png_path = os.path.join(out_dir, "ratios.png")
    report["files"] = {"markdown": md_path, "json": json_path}
    if not args.no_chart:
        why = chart(report, png_path)
        if why:
            log(why)
        else:
            report["files"]["chart"] = png_path
    text = markdown(report)
    with open(md_path, "w") as f:
        f.write(text)
    with open(json_path, "w") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(text)
    log(
        f"wrote {md_path}, {json_path}"
        + (f", {png_path}" if "chart" in report["files"] else "")
        + f" in {duration:.0f} s"
    )
    if interrupted:
        return 130
    if errors or leaks:
        log(f"{len(errors)} error(s), {len(leaks)} object(s) left behind by workers (removed)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
