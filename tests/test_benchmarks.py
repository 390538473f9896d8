"""The benchmark harness runs and produces a well-formed report.

Nothing here looks at the numbers: benchmarks are never timed assertions.
One ``--quick`` run over one row of every workload family (a 16 MiB segment
instead of 256 MiB) checks the exit status, the JSON's structure, the
Markdown table and that nothing is left behind; the peers that are not
installed are reported as skipped, not failed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"

ONLY = [
    "msg_pingpong_64",
    "msg_stream_16",
    "msg_pair_16",
    "sem_pingpong",
    "sem_uncontended",
    "sem_uncontended_undo",
    "shm_write_numpy",
    "shm_read_numpy",
    "shm_write_call",
    "shm_read_call",
    "shm_create_1m",
    "timed_wait_latency",
    "timed_wait_cpu",
]
BACKENDS = ["c", "sysvipc", "sysv_ipc", "posix_ipc", "multiprocessing", "mp_queue"]
PEER_MODULES = {"sysv_ipc": "sysv_ipc", "posix_ipc": "posix_ipc"}
STATUSES = {"ok", "n/a", "skipped"}

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="System V IPC benchmarks are Linux-only"
)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("numpy")  # the shared-memory rows need it
    out = tmp_path_factory.mktemp("bench")
    cmd = [
        sys.executable,
        str(RUN),
        "--quick",
        "--out",
        str(out),
        "--only",
        ",".join(ONLY),
        "--shm-mib",
        "16",
        "--worker-timeout",
        "60",
    ]
    sems_before = {int(r["semid"]) for r in _proc_rows("sem")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    sems_after = {int(r["semid"]): int(r["nsems"]) for r in _proc_rows("sem")}
    new_sems = {i: n for i, n in sems_after.items() if i not in sems_before}
    return {"proc": proc, "out": out, "new_sems": new_sems}


def _proc_rows(kind: str) -> list[dict[str, str]]:
    with open(f"/proc/sysvipc/{kind}") as f:
        header = f.readline().split()
        return [dict(zip(header, line.split(), strict=False)) for line in f if line.strip()]


def test_quick_run_exits_cleanly(quick_run: dict[str, Any]) -> None:
    proc = quick_run["proc"]
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def _report(quick_run: dict[str, Any]) -> dict[str, Any]:
    path = quick_run["out"] / "results.json"
    assert path.is_file(), quick_run["proc"].stderr
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def test_json_structure(quick_run: dict[str, Any]) -> None:
    report = _report(quick_run)
    for key in (
        "schema",
        "mode",
        "repetitions",
        "placement",
        "settings",
        "machine",
        "versions",
        "backends_run",
        "backends",
        "rows",
        "row_order",
        "results",
        "ratios",
        "notes",
        "errors",
        "leaks",
        "worker_pids",
        "files",
    ):
        assert key in report, key
    assert report["schema"] == 1
    assert report["mode"] == "quick"
    assert report["repetitions"] == 3
    assert report["placement"] == "same"
    assert report["interrupted"] is False
    assert report["errors"] == [] and report["leaks"] == []
    machine = report["machine"]
    for key in ("cpu_model", "cpu_count", "kernel", "python", "ipc_limits"):
        assert key in machine, key
    for lib in ("sysvipc", "sysv_ipc", "posix_ipc", "numpy"):
        assert lib in report["versions"]

    assert report["backends_run"] == BACKENDS
    for name in BACKENDS:
        info = report["backends"][name]
        assert isinstance(info["available"], bool)
        assert isinstance(info["title"], str)
        if name in PEER_MODULES:
            assert info["available"] == _installed(PEER_MODULES[name])
    assert report["backends"]["sysvipc"]["available"]

    assert report["row_order"] == ONLY
    assert set(report["results"]) == set(ONLY)
    for row in ONLY:
        meta = report["rows"][row]
        for key in ("family", "title", "unit", "kind", "description"):
            assert key in meta
        for name in BACKENDS:
            cell = report["results"][row][name]
            assert cell["status"] in STATUSES, (row, name, cell)
            if cell["status"] == "ok":
                samples = cell["samples"]
                assert len(samples) == report["repetitions"]
                assert len(cell["raw"]) == len(samples)
                assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in samples)
                assert cell["min"] <= cell["median"] <= cell["max"]
            elif cell["status"] == "skipped":
                assert not report["backends"][name]["available"]
            else:
                assert cell["reason"]
        # This library measures every row; so does raw C when it was built.
        assert report["results"][row]["sysvipc"]["status"] == "ok", row
        if report["backends"]["c"]["available"]:
            assert report["results"][row]["c"]["status"] == "ok", row
            if meta["kind"] != "cpu":
                assert report["ratios"][row]["sysvipc"]["to_c"] > 0
                assert report["ratios"][row]["c"]["to_c"] == pytest.approx(1.0)


def test_markdown_has_a_row_per_workload(quick_run: dict[str, Any]) -> None:
    report = _report(quick_run)
    md = (quick_run["out"] / "results.md").read_text()
    assert quick_run["proc"].stdout.strip().endswith(md.strip().splitlines()[-1].strip())
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    header = table[0]
    for name in BACKENDS:
        assert report["backends"][name]["title"] in header
    assert "sysvipc ÷ C" in header
    for row in ONLY:
        meta = report["rows"][row]
        label = f"| {meta['title']} ({meta['unit']}) |"
        assert sum(ln.startswith(label) for ln in table) >= 1, label


def test_chart_when_matplotlib_is_installed(quick_run: dict[str, Any]) -> None:
    chart = quick_run["out"] / "ratios.png"
    if not _installed("matplotlib"):
        assert not chart.exists()
        assert "matplotlib" in quick_run["proc"].stderr
        return
    if not _report(quick_run)["backends"]["c"]["available"]:
        pytest.skip("no C compiler: no ratios to raw C")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_left_behind(quick_run: dict[str, Any]) -> None:
    report = _report(quick_run)
    pids = {str(p) for p in report["worker_pids"]}
    assert pids
    # System V: no segment created by a worker or its peer, no queue one of
    # them used last, no new semaphore set one of them operated on last.
    for row in _proc_rows("shm"):
        assert row["cpid"] not in pids, row
    for row in _proc_rows("msg"):
        assert row["lspid"] not in pids and row["lrpid"] not in pids, row
    from sysvipc import lowlevel as ll

    for semid, nsems in quick_run["new_sems"].items():
        try:
            last = {str(ll.semctl(semid, i, ll.GETPID)) for i in range(nsems)}
        except OSError:
            continue  # removed since, or not ours to read
        assert not last & pids, f"semaphore set {semid} left behind"
    # POSIX: no shared memory or semaphore under the run's private prefix.
    prefix = report["posix_prefix"].lstrip("/")
    if os.path.isdir("/dev/shm"):
        left = [n for n in os.listdir("/dev/shm") if n.startswith((prefix, "sem." + prefix))]
        assert left == []
    # Worker processes (and their peers) are all gone.
    for pid in report["worker_pids"]:
        assert not os.path.exists(f"/proc/{pid}") or _is_other_process(pid)


def _is_other_process(pid: int) -> bool:
    """A pid reused by an unrelated process since the run."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"worker.py" not in cmdline and b"bench_c" not in cmdline


def test_list_and_bad_arguments() -> None:
    proc = subprocess.run(
        [sys.executable, str(RUN), "--list"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for row in ONLY:
        assert row in proc.stdout
    proc = subprocess.run(
        [sys.executable, str(RUN), "--only", "no_such_row", "--out", os.devnull],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "no_such_row" in proc.stderr


def _expand(span: str) -> list[str]:
    """``msg_pair_{16,256}`` -> ``['msg_pair_16', 'msg_pair_256']``."""
    match = re.search(r"\{([^{}]*)\}", span)
    if not match:
        return [span]
    head, tail = span[: match.start()], span[match.end() :]
    return [w for part in match.group(1).split(",") for w in _expand(head + part + tail)]


def test_docs_describe_every_row_and_backend() -> None:
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    doc = re.sub(r"```.*?```", "", doc, flags=re.S)  # code blocks out of the way
    documented = {w for span in re.findall(r"`([^`]+)`", doc) for w in _expand(span)}
    listing = subprocess.run(
        [sys.executable, str(RUN), "--list"], capture_output=True, text=True, timeout=60
    ).stdout
    rows = [ln.split()[0] for ln in listing.splitlines() if ln.startswith("  ")]
    assert rows and set(ONLY) <= set(rows)
    assert [r for r in rows if r not in documented] == []
    for title in ("raw C", "sysvipc", "sysv_ipc", "posix_ipc", "multiprocessing", "mp.Queue"):
        assert f"**{title}**" in doc, title


INSTRUCTIONS = ROOT / "benchmarks" / "instructions.py"


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.skipif(
    "asan" in os.environ.get("LD_PRELOAD", ""), reason="valgrind cannot run AddressSanitizer"
)
def test_instruction_counts_are_numbers(tmp_path: Path) -> None:
    # A tiny N: only that the counting works end to end (the figures
    # themselves are checked by running the benchmark, never here).  Every
    # row for sysvipc and the floor; sysv_ipc on the ping-pong only (its
    # other rows are the same calls), to keep the test short.
    def count(*args: str) -> tuple[dict[str, Any], str]:
        out = tmp_path / "counts.json"
        proc = subprocess.run(
            [sys.executable, str(INSTRUCTIONS), "-n", "10", "--json", str(out), *args],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr
        report: dict[str, Any] = json.loads(out.read_text())
        return report, proc.stdout

    rows = ["pair_16", "sem", "sem_undo", "pingpong_64"]
    report, stdout = count("--libs", "sysvipc,floor")
    assert list(report["results"]) == rows
    for row in rows:
        cells = report["results"][row]
        assert set(cells) == {"sysvipc", "floor"}
        assert isinstance(cells["sysvipc"]["value"], float), (row, cells)
        assert math.isfinite(cells["sysvipc"]["value"])
    assert math.isfinite(report["results"]["pair_16"]["floor"]["value"])
    assert report["results"]["pingpong_64"]["floor"]["value"] is None
    table = [ln for ln in stdout.splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + len(rows)  # the header, then one line per row
    assert "sysvipc" in table[0] and "os.getppid()" in table[0]

    report, _ = count("--libs", "sysv_ipc", "--rows", "pingpong_64")
    cell = report["results"]["pingpong_64"]["sysv_ipc"]
    if _installed("sysv_ipc"):
        assert math.isfinite(cell["value"]), cell
    else:
        assert cell["value"] is None and cell["reason"]
