"""One repetition of one workload family on one Python backend, in a fresh
process: ``python benchmarks/worker.py '<json spec>'``.  run.py starts it;
it is not meant to be run by hand.

It pins itself to the first CPU of the spec, measures the rows, and prints
``@@RESULT {"rows": {...}}`` (raw numbers) on the last line of stdout.
SIGTERM and SIGHUP become KeyboardInterrupt, so every ``finally`` that
removes an IPC object runs when run.py stops the worker.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import PEER_PIDS, Config, pin, run_rows


def _interrupt(signo: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signo}")


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    cfg = Config(**spec["config"])
    pin(cfg.cpus[0])
    from backends import load

    module = load(spec["backend"])
    try:
        rows = run_rows(module.Impl(), spec["rows"], cfg)
    except BaseException as e:
        traceback.print_exc()
        sys.stdout.write("@@ERROR " + json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n")
        sys.stdout.flush()
        return 130 if isinstance(e, KeyboardInterrupt) else 1
    sys.stdout.write("@@RESULT " + json.dumps({"rows": rows, "peer_pids": PEER_PIDS}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
