"""What the orchestrator (run.py) and the workers (worker.py) share.

- ``ROWS``: every figure the benchmark reports, its unit and how a worker's
  raw numbers become that figure and the cost used for ratios;
- ``calibrate``: warm up, estimate the time per operation, then time one
  batch that lasts about the target time;
- ``Peer``: a forked second process driven through two pipes;
- ``measure_pair``, ``measure_stream``, ``measure_sem_pingpong``,
  ``measure_sem_uncontended``: the timed loops, shared by every backend;
- ``pin``: CPU affinity.

Workers report raw numbers only (operations and nanoseconds, latency
samples, CPU and wall time); the orchestrator turns them into figures.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

# --------------------------------------------------------------------------
# The rows of the report
# --------------------------------------------------------------------------

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Row:
    id: str
    family: str
    title: str
    unit: str
    # time: value = elapsed/ops/scale (lower is better)
    # rate: value = ops/s (higher is better)
    # bandwidth: value = ops*nbytes/elapsed in GB/s (higher is better)
    # latency: value = median of samples/scale (lower is better)
    # cpu: value = 100*cpu/wall (% of one core, lower is better; no ratio)
    kind: str
    param: int = 0
    scale: float = 1.0  # ns per unit for time and latency rows
    two_process: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        return self.kind in ("rate", "bandwidth")


def _rows() -> list[Row]:
    rows: list[Row] = []
    for size in (64, 4096, 8000):
        rows.append(
            Row(
                f"msg_pingpong_{size}",
                "msg_pingpong",
                f"message ping-pong {size} B",
                "µs/round trip",
                "time",
                size,
                1e3,
                True,
                "Two processes; one sends a message, the other receives it and sends it "
                "back; time per round trip.",
            )
        )
    for size in (16, 256, 4096, 8000):
        rows.append(
            Row(
                f"msg_stream_{size}",
                "msg_stream",
                f"message stream {size} B",
                "msg/s",
                "rate",
                size,
                1.0,
                True,
                "One producer process sends as fast as it can, one consumer process "
                "receives; messages per second (the ratio uses ns per message).",
            )
        )
    for size in (16, 256, 4096, 8000):
        rows.append(
            Row(
                f"msg_pair_{size}",
                "msg_pair",
                f"send+receive {size} B, one process",
                "ns/pair",
                "time",
                size,
                1.0,
                False,
                "One process sends a message and receives it back: the per-call cost.",
            )
        )
    rows.append(
        Row(
            "sem_pingpong",
            "sem_pingpong",
            "semaphore ping-pong",
            "µs/round trip",
            "time",
            0,
            1e3,
            True,
            "Two processes, two semaphores at 0: one releases A and acquires B, the other "
            "acquires A and releases B; time per round trip.",
        )
    )
    rows.append(
        Row(
            "sem_uncontended",
            "sem_uncontended",
            "acquire+release, uncontended",
            "ns/pair",
            "time",
            0,
            1.0,
            False,
            "One process acquires and releases a semaphore of value 1.",
        )
    )
    rows.append(
        Row(
            "sem_uncontended_undo",
            "sem_uncontended",
            "acquire+release with undo",
            "ns/pair",
            "time",
            1,
            1.0,
            False,
            "The same with SEM_UNDO on both operations.",
        )
    )
    for rid, title, desc in (
        (
            "shm_write_numpy",
            "shm write, numpy view",
            "Copy a numpy array into a numpy view of the segment.",
        ),
        (
            "shm_read_numpy",
            "shm read, numpy view",
            "Copy a numpy view of the segment into a numpy array.",
        ),
        (
            "shm_write_call",
            "shm write()",
            "The library's write call (or closest equivalent) from a numpy array.",
        ),
        (
            "shm_read_call",
            "shm read_into()",
            "The library's read-into call (or closest equivalent) into a numpy array.",
        ),
    ):
        rows.append(Row(rid, "shm_copy", title, "GB/s", "bandwidth", 0, 1.0, False, desc))
    rows.append(
        Row(
            "shm_create_1m",
            "shm_create",
            "create+attach+close+remove 1 MiB",
            "µs",
            "time",
            1 * MiB,
            1e3,
            False,
            "Create a segment, attach it, detach/close and remove it; nothing touched.",
        )
    )
    rows.append(
        Row(
            "shm_create_1g",
            "shm_create",
            "create+attach+close+remove 1 GiB",
            "µs",
            "time",
            1 * GiB,
            1e3,
            False,
            "The same for a 1 GiB segment.",
        )
    )
    rows.append(
        Row(
            "timed_wait_latency",
            "timed_wait",
            "receive(timeout) wake-up latency",
            "µs",
            "latency",
            0,
            1e3,
            True,
            "A process waits in a receive with a 1 s timeout; the other stamps "
            "CLOCK_MONOTONIC just before sending a message a few ms later; time from the "
            "stamp to the return of the receive (median of the samples of one repetition).",
        )
    )
    rows.append(
        Row(
            "timed_wait_cpu",
            "timed_wait",
            "CPU while waiting (no message)",
            "% of a core",
            "cpu",
            0,
            1.0,
            False,
            "user+system CPU time of the waiting process (getrusage) over a timed wait "
            "that expires, as a percentage of the wall time.",
        )
    )
    return rows


ROWS: list[Row] = _rows()
ROW_BY_ID: dict[str, Row] = {r.id: r for r in ROWS}
FAMILIES: list[str] = list(dict.fromkeys(r.family for r in ROWS))

# The families one worker process measures together (each repetition of a
# row still runs in a fresh process: one worker per group and repetition).
GROUPS: dict[str, list[str]] = {
    "messages": ["msg_pingpong", "msg_stream", "msg_pair"],
    "semaphores": ["sem_pingpong", "sem_uncontended"],
    "shm_copy": ["shm_copy"],
    "shm_create": ["shm_create"],
    "timed_wait": ["timed_wait"],
}


def spread_id(row_id: str) -> str:
    return row_id + "@spread"


def base_id(row_id: str) -> tuple[str, str]:
    """``'msg_stream_16@spread'`` -> ``('msg_stream_16', 'spread')``."""
    if row_id.endswith("@spread"):
        return row_id[: -len("@spread")], "spread"
    return row_id, "same"


def figure(row: Row, raw: dict[str, Any], shm_bytes: int) -> tuple[float, float | None]:
    """(value in the row's unit, cost in ns per operation for ratios or None)."""
    if row.kind == "time":
        cost = raw["elapsed_ns"] / raw["ops"]
        return cost / row.scale, cost
    if row.kind == "rate":
        cost = raw["elapsed_ns"] / raw["ops"]
        return 1e9 / cost, cost
    if row.kind == "bandwidth":
        cost = raw["elapsed_ns"] / raw["ops"]  # ns per pass over the segment
        nbytes = raw.get("nbytes", shm_bytes)
        return nbytes / cost, cost  # bytes per ns == GB/s
    if row.kind == "latency":
        samples = sorted(raw["samples_ns"])
        med = _median(samples)
        return med / row.scale, med
    if row.kind == "cpu":
        return 100.0 * raw["cpu_ns"] / raw["wall_ns"], None
    raise ValueError(row.kind)


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    if n == 0:
        raise ValueError("no values")
    mid = n // 2
    return float(s[mid]) if n % 2 else (s[mid - 1] + s[mid]) / 2.0


median = _median


# --------------------------------------------------------------------------
# Configuration handed to a worker
# --------------------------------------------------------------------------


@dataclass
class Config:
    """What a worker needs (also the C program's arguments)."""

    target_ns: int  # length of the timed batch
    warm_ns: int  # warm-up and calibration
    cpus: list[int]  # [cpu of the main process, cpu of the peer]
    placement: str  # "same" or "spread"
    prefix: str  # prefix of POSIX names (posix_ipc, multiprocessing)
    shm_bytes: int  # size of the shm_copy segment
    wait_s: float  # length of the timed wait with no message (timed_wait_cpu)
    latency_iters: int  # samples per repetition (timed_wait_latency)
    latency_delay_ns: int  # sender's pause before it sends (timed_wait_latency)
    wait_timeout_s: float = 1.0  # timeout of the receive that gets a message
    ledger: str = ""  # file where the worker lists the System V ids it creates

    @property
    def peer_cpu(self) -> int:
        return self.cpus[1] if self.placement == "spread" else self.cpus[0]

    def name(self, what: str) -> str:
        """A POSIX object name private to this worker."""
        return f"{self.prefix}_{what}"


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------

now_ns = time.monotonic_ns  # CLOCK_MONOTONIC, comparable across processes
MAX_OPS = 200_000_000


def calibrate(batch: Callable[[int], int], cfg: Config, *, min_ops: int = 1) -> dict[str, int]:
    """Warm up with batches of 1, 2, 4... operations until ``cfg.warm_ns``
    has passed, then time one batch sized to last ``cfg.target_ns``.

    ``batch(n)`` runs ``n`` operations and returns the nanoseconds they took.
    An operation whose first run alone lasts ten times the target (a 1 GiB
    segment filled by its constructor) is timed once: that run is the
    measurement.  (A single round trip delayed by the scheduler must not
    stand for a whole figure, hence the factor.)
    """
    n = 1
    spent = 0
    last = 0
    while True:
        last = max(1, batch(n))
        if n == 1 and last >= 10 * cfg.target_ns:
            return {"ops": 1, "elapsed_ns": last, "warm_ops": 0}
        spent += last
        if spent >= cfg.warm_ns or n >= MAX_OPS:
            break
        n *= 2
    per_op = last / n
    ops = int(cfg.target_ns / per_op) if per_op > 0 else MAX_OPS
    ops = max(min_ops, min(ops, MAX_OPS))
    return {"ops": ops, "elapsed_ns": batch(ops), "warm_ops": 2 * n - 1}


def pin(cpu: int) -> None:
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def cpu_choice() -> list[int]:
    """The CPUs to use: [main, peer] from the allowed set."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:
        allowed = list(range(os.cpu_count() or 1))
    if len(allowed) >= 2:
        return allowed[:2]
    return allowed[:1] * 2


# --------------------------------------------------------------------------
# The second process of a two-process workload
# --------------------------------------------------------------------------


class PeerDied(RuntimeError):
    pass


_Q = struct.Struct("q")


def _read_exact(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise EOFError("pipe closed")
        data += chunk
    return data


PEER_PIDS: list[int] = []  # every peer this worker started (for the report)


class Peer:
    """A forked process that runs ``child_main(peer)``.

    The parent sends commands (an int64; 0 means stop) and reads replies
    (an int64) through two pipes.  If the child dies, SIGCHLD makes the
    parent's blocking call raise :class:`PeerDied` instead of waiting
    forever.  ``close()`` stops and reaps the child (SIGKILL if needed); the
    child never runs Python finalizers (``os._exit``), so it never removes
    the parent's objects.
    """

    def __init__(self, child_main: Callable[[Peer], None], cpu: int) -> None:
        self.pid = 0
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        self._old_chld = signal.getsignal(signal.SIGCHLD)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child
            status = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(cmd_w)
                os.close(res_r)
                self._cmd, self._res = cmd_r, res_w
                pin(cpu)
                child_main(self)
                status = 0
            except BaseException:
                try:
                    traceback.print_exc()
                    sys.stderr.flush()
                except BaseException:
                    pass
            finally:
                os._exit(status)
        self.pid = pid
        PEER_PIDS.append(pid)
        os.close(cmd_r)
        os.close(res_w)
        self._cmd, self._res = cmd_w, res_r
        signal.signal(signal.SIGCHLD, self._on_sigchld)

    def _on_sigchld(self, signo: int, frame: object) -> None:
        if self.pid:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 0
            if pid:
                self.pid = 0
                raise PeerDied(f"the peer process exited (status {status:#x})")

    # parent side
    def command(self, n: int) -> None:
        os.write(self._cmd, _Q.pack(n))

    def result(self) -> int:
        return int(_Q.unpack(_read_exact(self._res, 8))[0])

    # child side
    def next_command(self) -> int:
        try:
            return int(_Q.unpack(_read_exact(self._cmd, 8))[0])
        except EOFError:
            return 0

    def reply(self, value: int) -> None:
        os.write(self._res, _Q.pack(value))

    def close(self) -> None:
        signal.signal(signal.SIGCHLD, self._old_chld or signal.SIG_DFL)
        pid, self.pid = self.pid, 0
        for fd in (self._cmd, self._res):
            try:
                os.close(fd)
            except OSError:
                pass
        if not pid:
            return
        # Closing the command pipe makes next_command() return 0: let the
        # child leave on its own for a moment, then kill it.
        deadline = time.monotonic() + 0.5
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.002)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                os.waitpid(pid, 0)
                return
            except ChildProcessError:
                return
            except InterruptedError:
                continue

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------
# Shared shapes of the workloads (each backend writes its own inner loops)
# --------------------------------------------------------------------------


def pack_stamp(t: int, size: int) -> bytes:
    return _Q.pack(t) + bytes(max(0, size - 8))


def unpack_stamp(data: bytes | bytearray | memoryview) -> int:
    return int(_Q.unpack_from(data, 0)[0])


def cpu_ns() -> int:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return int((ru.ru_utime + ru.ru_stime) * 1e9)


def timed_wait_cpu(wait: Callable[[float], None], cfg: Config) -> dict[str, Any]:
    """``wait(seconds)`` waits that long for a message that never comes."""
    wait(0.01)  # warm up (imports, first-call setup)
    c0 = cpu_ns()
    t0 = now_ns()
    wait(cfg.wait_s)
    t1 = now_ns()
    c1 = cpu_ns()
    return {
        "cpu_ns": c1 - c0,
        "wall_ns": t1 - t0,
        "overshoot_ns": (t1 - t0) - int(cfg.wait_s * 1e9),
    }


def serve_stamps(peer: Peer, send: Callable[[bytearray], object], cfg: Config) -> None:
    """The sender of the timed-wait latency workload (runs in the peer).

    For each command: sleep ``cfg.latency_delay_ns`` (the receiver is in
    its timed wait by then), stamp CLOCK_MONOTONIC into a 64-byte message
    and send it at once.  The loop goes straight back to a blocking read,
    so that on a shared CPU the sender gives the CPU back to the receiver
    after as few bytecodes as possible.
    """
    buf = bytearray(64)
    pack_into, clock, read, fd = _Q.pack_into, now_ns, os.read, peer._cmd
    delay = cfg.latency_delay_ns / 1e9
    while read(fd, 8):
        time.sleep(delay)
        pack_into(buf, 0, clock())
        send(buf)


def latency_samples(one: Callable[[], int], cfg: Config) -> dict[str, Any]:
    """``one()`` returns one latency in ns; one warm-up sample is dropped."""
    one()
    samples = [one() for _ in range(cfg.latency_iters)]
    return {"samples_ns": samples, "ops": len(samples)}


# --------------------------------------------------------------------------
# The loops every backend shares: it supplies its bound methods, called in
# the same shape by every library (a loop inside a function, the callables
# in its closure, as real code has them).  Ping-pong stays in the backends:
# each library passes the message type its own way.
# --------------------------------------------------------------------------


def measure_pair(
    send: Callable[[bytes], object], recv: Callable[[], object], size: int, cfg: Config
) -> dict[str, int]:
    """One process: ``send(data)`` then ``recv()``."""
    data = b"x" * size

    def batch(n: int) -> int:
        t0 = now_ns()
        for _ in repeat(None, n):
            send(data)
            recv()
        return now_ns() - t0

    return calibrate(batch, cfg)


def measure_stream(
    send: Callable[[bytes], object], recv: Callable[[], object], size: int, cfg: Config
) -> dict[str, int]:
    """``send(data)`` as fast as it goes; a forked peer ``recv()``s, timed
    from the first send to the peer's last receive."""

    def child(peer: Peer) -> None:
        while n := peer.next_command():
            for _ in repeat(None, n):
                recv()
            peer.reply(now_ns())

    data = b"x" * size
    with Peer(child, cfg.peer_cpu) as peer:

        def batch(n: int) -> int:
            peer.command(n)
            t0 = now_ns()
            for _ in repeat(None, n):
                send(data)
            return peer.result() - t0

        return calibrate(batch, cfg)


def measure_sem_pingpong(
    acq0: Callable[[], object],
    rel0: Callable[[], object],
    acq1: Callable[[], object],
    rel1: Callable[[], object],
    cfg: Config,
) -> dict[str, int]:
    """Two semaphores at 0: release A + acquire B against a forked peer's
    acquire A + release B."""

    def child(peer: Peer) -> None:
        while n := peer.next_command():
            for _ in repeat(None, n):
                acq0()
                rel1()

    with Peer(child, cfg.peer_cpu) as peer:

        def batch(n: int) -> int:
            peer.command(n)
            t0 = now_ns()
            for _ in repeat(None, n):
                rel0()
                acq1()
            return now_ns() - t0

        return calibrate(batch, cfg)


def measure_sem_uncontended(
    acq: Callable[..., object],
    rel: Callable[..., object],
    cfg: Config,
    *,
    undo_keyword: bool = False,
) -> dict[str, int]:
    """``acq()`` then ``rel()`` on a semaphore at 1; ``undo_keyword``:
    ``acq(undo=True)`` then ``rel(undo=True)`` (sysvipc's spelling of
    SEM_UNDO; other libraries set it otherwise or lack it)."""
    if undo_keyword:

        def batch(n: int) -> int:
            t0 = now_ns()
            for _ in repeat(None, n):
                acq(undo=True)
                rel(undo=True)
            return now_ns() - t0

    else:

        def batch(n: int) -> int:
            t0 = now_ns()
            for _ in repeat(None, n):
                acq()
                rel()
            return now_ns() - t0

    return calibrate(batch, cfg)


def track(cfg: Config, kind: str, ident: int) -> None:
    """Note a System V object (kind: msg, sem or shm) this worker created,
    so that run.py can remove it should the worker die before its
    ``finally`` (never called inside a timed loop)."""
    if cfg.ledger:
        with open(cfg.ledger, "a") as f:
            f.write(f"{kind} {ident}\n")


# --------------------------------------------------------------------------
# Running a worker's rows on one backend implementation
# --------------------------------------------------------------------------


def run_rows(impl: Any, row_ids: list[str], cfg: Config) -> dict[str, dict[str, Any]]:
    """Measure ``row_ids`` with ``impl`` (a backend module's ``Impl``).

    The orchestrator only asks a backend for the rows its ``unsupported()``
    accepts; the others are reported as n/a without running anything.
    """
    out: dict[str, dict[str, Any]] = {}
    copy_rows: list[str] = []
    for rid in row_ids:
        row = ROW_BY_ID[rid]
        fam = row.family
        if fam in ("msg_pingpong", "msg_stream", "msg_pair"):
            out[rid] = getattr(impl, fam)(row.param, cfg)
        elif fam == "sem_pingpong":
            out[rid] = impl.sem_pingpong(cfg)
        elif fam == "sem_uncontended":
            out[rid] = impl.sem_uncontended(bool(row.param), cfg)
        elif fam == "shm_copy":
            copy_rows.append(rid)
        elif fam == "shm_create":
            out[rid] = impl.shm_create(row.param, cfg)
        elif rid == "timed_wait_latency":
            out[rid] = impl.timed_wait_latency(cfg)
        elif rid == "timed_wait_cpu":
            out[rid] = timed_wait_cpu_with(impl, cfg)
        else:
            raise ValueError(f"unknown row {rid}")
    if copy_rows:
        out.update(shm_copy_rows(impl, copy_rows, cfg))
    return out


def timed_wait_cpu_with(impl: Any, cfg: Config) -> dict[str, Any]:
    with impl.waiter(cfg) as wait:
        return timed_wait_cpu(wait, cfg)


def shm_copy_rows(impl: Any, row_ids: list[str], cfg: Config) -> dict[str, dict[str, Any]]:
    """The four copies over one segment of ``cfg.shm_bytes``.

    ``impl.segment(cfg)`` is a context manager giving an object with
    ``view`` (a uint8 ndarray over the whole segment), ``write(src)`` and
    ``read_into(dst)`` (the library's calls, or the closest equivalent).
    The segment and the private buffer are both touched before any
    timing, and each row is warmed up, so no timed copy pays page faults.
    """
    import numpy as np

    size = cfg.shm_bytes
    out: dict[str, dict[str, Any]] = {}
    # One private buffer: the source of the writes, the destination of the
    # reads (touched here, so that no timed copy pays its page faults).
    buf = np.full(size, 0x5A, dtype=np.uint8)
    src = dst = buf
    ops: dict[str, Callable[[], object]] = {}
    with impl.segment(cfg) as seg:
        view = seg.view
        try:
            view[...] = 1
            ops = {
                "shm_write_numpy": lambda: np.copyto(view, src),
                "shm_read_numpy": lambda: np.copyto(dst, view),
                "shm_write_call": lambda: seg.write(src),
                "shm_read_call": lambda: seg.read_into(dst),
            }
            for rid in row_ids:
                op = ops[rid]

                def batch(n: int, op: Callable[[], object] = op) -> int:
                    t0 = now_ns()
                    for _ in range(n):
                        op()
                    return now_ns() - t0

                out[rid] = dict(calibrate(batch, cfg), nbytes=size)
        finally:
            # No view may outlive the segment's handle.
            ops.clear()
            view = None
    return out
