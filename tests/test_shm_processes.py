"""SharedMemory across processes (issue 6): a 1 GiB array summed zero-copy
by a spawned child, pickling across ``spawn``, and crash-safe cleanup with
``remove_at_last_detach`` when processes are SIGKILLed.

Every child is joined or killed in a ``finally``; every wait has a timeout.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import select
import signal
import subprocess
import sys
import textwrap
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pytest
from conftest import Tracker, proc_row

from sysvipc import SharedMemory

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent
SPAWN = multiprocessing.get_context("spawn")


def finish(proc: multiprocessing.process.BaseProcess, timeout: float = 30) -> int | None:
    """Join, and kill what did not finish in time."""
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join(10)
        return None
    return proc.exitcode


def wait_gone(shmid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while proc_row("shm", shmid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# --------------------------------------------------------------------------
# 1 GiB, written by the parent, summed by a spawned child without a copy
# --------------------------------------------------------------------------

GIB = 1 << 30
N = GIB // 8  # uint64 items


def _sum_in_child(shm: SharedMemory, conn: Connection) -> None:
    """Runs in a spawned process: `shm` arrived by pickle (re-attached by id)."""
    arr = shm.ndarray(np.uint64)
    # zero-copy: the array's data is the mapping that every other view sees
    start = arr.__array_interface__["data"][0]
    mapping = np.frombuffer(shm, np.uint8).__array_interface__["data"][0]
    conn.send(
        {
            "readonly": shm.readonly,
            "writeable": bool(arr.flags.writeable),
            "zero_copy": start == mapping and not arr.flags.owndata,
            "size": shm.size,
            "sum": int(arr.sum(dtype=np.uint64)),
            "last": int(arr[-1]),
        }
    )
    shm.close()
    conn.close()


def test_1gib_array_summed_by_spawned_child(ipc: Tracker) -> None:
    shm = SharedMemory(size=GIB)
    ipc.track("shm", shm.id)
    ro = None
    proc = None
    try:
        arr = shm.ndarray(np.uint64)
        assert arr.shape == (N,)
        chunk = 1 << 24
        for start in range(0, N, chunk):  # np.arange in pieces: no 1 GiB temporary
            arr[start : start + chunk] = np.arange(start, start + chunk, dtype=np.uint64)
        del arr
        ro = SharedMemory.from_id(shm.id, readonly=True)  # the child gets read-only
        parent_conn, child_conn = SPAWN.Pipe(duplex=False)
        proc = SPAWN.Process(target=_sum_in_child, args=(ro, child_conn))
        proc.start()
        child_conn.close()
        assert parent_conn.poll(60), "the child sent nothing"
        result = parent_conn.recv()
        assert finish(proc) == 0
    finally:
        if proc is not None and proc.exitcode is None:
            proc.kill()
            proc.join(10)
        if ro is not None:
            ro.close()
        shm.close()
    assert result["size"] == GIB
    assert result["readonly"] and not result["writeable"]
    assert result["zero_copy"]
    assert result["last"] == N - 1
    assert result["sum"] == N * (N - 1) // 2


# --------------------------------------------------------------------------
# Pickling across spawn
# --------------------------------------------------------------------------


def _echo_in_child(shm: SharedMemory, ro: SharedMemory) -> None:
    if not (isinstance(shm, SharedMemory) and shm.size == 4096 and not shm.readonly):
        raise SystemExit(3)
    if not ro.readonly or ro != shm:
        raise SystemExit(4)
    if shm.read(12) != b"from parent!" or bytes(ro.buf[:12]) != b"from parent!":
        raise SystemExit(5)
    try:
        ro.write(b"no")
    except PermissionError:
        pass
    else:
        raise SystemExit(6)
    if shm.stat().shm_nattch != 3:  # the parent, and the child's two handles
        raise SystemExit(7)
    view = np.frombuffer(shm, np.uint8)
    shm.close()
    view[100:111] = np.frombuffer(b"from child!", np.uint8)  # after close: still works
    ro.close()


def test_pickling_across_spawn(ipc: Tracker) -> None:
    shm = SharedMemory(size=4096)
    ipc.track("shm", shm.id)
    ro = SharedMemory.from_id(shm.id, readonly=True)
    proc = None
    try:
        shm.write(b"from parent!")
        proc = SPAWN.Process(target=_echo_in_child, args=(shm, ro))
        ro.close()  # the child attaches by itself
        proc.start()
        assert finish(proc) == 0
        assert shm.read(11, 100) == b"from child!"
        assert shm.stat().shm_nattch == 1
    finally:
        if proc is not None and proc.exitcode is None:
            proc.kill()
            proc.join(10)
        shm.close()


def test_unpickling_a_removed_segment_fails_cleanly(ipc: Tracker) -> None:
    shm = SharedMemory(size=4096, remove_on_close=True)
    sid = ipc.track("shm", shm.id)
    pickled = pickle.dumps(shm)
    shm.close()
    assert proc_row("shm", sid) is None
    with pytest.raises(OSError):
        pickle.loads(pickled)


# --------------------------------------------------------------------------
# remove_at_last_detach: nothing left behind after SIGKILL
# --------------------------------------------------------------------------


def _attach_and_wait(shm: SharedMemory, conn: Connection) -> None:
    shm.buf[0] = 42
    conn.send(shm.stat().shm_nattch)
    time.sleep(120)  # until SIGKILLed


def test_remove_at_last_detach_after_child_sigkill(ipc: Tracker) -> None:
    shm = SharedMemory(size=1 << 20, remove_at_last_detach=True)
    sid = ipc.track("shm", shm.id)
    parent_conn, child_conn = SPAWN.Pipe(duplex=False)
    proc = SPAWN.Process(target=_attach_and_wait, args=(shm, child_conn))
    proc.start()
    try:
        child_conn.close()
        assert parent_conn.poll(30), "the child did not attach"
        assert parent_conn.recv() == 2
        assert shm.read(1) == b"\x2a"
        os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL
        row = proc_row("shm", sid)
        assert row is not None and int(row["nattch"]) == 1  # only the parent now
        assert int(row["perms"], 8) & 0o1000
    finally:
        if proc.exitcode is None:
            proc.kill()
            proc.join(10)
        shm.close()
    assert wait_gone(sid), proc_row("shm", sid)


# The creator is itself a child process, killed with SIGKILL while its own
# spawned child is still attached; then that one is killed too.
CREATOR = textwrap.dedent(
    """
    import multiprocessing, sys, time
    from sysvipc import SharedMemory

    def hold(shm, conn):
        shm.buf[1] = 7
        conn.send("attached")
        time.sleep(120)

    if __name__ == "__main__":
        shm = SharedMemory(size=1 << 20, remove_at_last_detach=True)
        spawn = multiprocessing.get_context("spawn")
        r, w = spawn.Pipe(duplex=False)
        holder = spawn.Process(target=hold, args=(shm, w), daemon=False)
        holder.start()
        assert r.poll(30) and r.recv() == "attached"
        print(shm.id, holder.pid, flush=True)
        time.sleep(120)   # until SIGKILLed
    """
)


def readline(stream: object, timeout: float) -> str:
    fd = stream.fileno()  # type: ignore[attr-defined]
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        raise TimeoutError("no line from the child")
    return stream.readline()  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("creator_last", [True, False], ids=["creator-last", "creator-first"])
def test_remove_at_last_detach_after_creator_sigkill(
    ipc: Tracker, tmp_path: Path, creator_last: bool
) -> None:
    """creator-last: the holder is killed first, the creator is the last
    process attached when it is SIGKILLed.  creator-first: the creator dies
    while the holder is still attached; the holder is killed after."""
    script = tmp_path / "creator.py"
    script.write_text(CREATOR)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    creator = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    holder_pid = 0
    holder_killed = False
    sid = -1
    try:
        line = readline(creator.stdout, 60)
        sid_text, pid_text = line.split()
        sid, holder_pid = int(sid_text), int(pid_text)
        ipc.track("shm", sid)
        row = proc_row("shm", sid)
        assert row is not None and int(row["nattch"]) == 2 and int(row["perms"], 8) & 0o1000
        if creator_last:
            os.kill(holder_pid, signal.SIGKILL)
            holder_killed = True
            deadline = time.monotonic() + 10
            while (r := proc_row("shm", sid)) is not None and int(r["nattch"]) != 1:
                assert time.monotonic() < deadline, r
                time.sleep(0.01)
        creator.kill()
        creator.wait(10)
        assert creator.returncode == -signal.SIGKILL
        if not creator_last:
            row = proc_row("shm", sid)  # the grandchild still holds it
            assert row is not None and int(row["nattch"]) == 1
            os.kill(holder_pid, signal.SIGKILL)
            holder_killed = True
        assert wait_gone(sid), proc_row("shm", sid)
    finally:
        if creator.poll() is None:
            creator.kill()
            creator.wait(10)
        if holder_pid and not holder_killed:
            try:
                os.kill(holder_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if creator.stdout is not None:
            creator.stdout.close()
        if creator.stderr is not None:
            creator.stderr.close()
