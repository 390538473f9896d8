"""Many threads sharing one handle of each kind, while others close it,
detach it or export and release views: checksummed payloads, nothing lost,
duplicated or crashed.  Meaningful on every interpreter: on a GIL build the
threads interleave at every call that releases the GIL (each blocking
syscall, each large copy) and at every bytecode boundary; on a free-threaded
build they really run at once.  Each scenario runs in a child process (a
crash fails the test, it does not kill pytest) and removes what it made."""

from __future__ import annotations

import textwrap

from conftest import assert_child_ok, run_python

PRELUDE = r"""
import threading, zlib, sys
from sysvipc import MessageQueue, SemaphoreSet, SharedMemory
import sysvipc._sysvipc as c

def run_threads(targets, timeout=60):
    errors = []
    barrier = threading.Barrier(len(targets))
    def wrap(fn, args):
        try:
            barrier.wait()
            fn(*args)
        except BaseException as e:
            errors.append(repr(e))
    threads = [threading.Thread(target=wrap, args=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread is stuck"
    assert not errors, errors

def packet(sender, seq):
    body = b"%d:%d:" % (sender, seq) + bytes([seq % 251]) * (seq % 300)
    return body + zlib.crc32(body).to_bytes(4, "little")

def unpack(data):
    body, crc = data[:-4], int.from_bytes(data[-4:], "little")
    assert zlib.crc32(body) == crc, "corrupted payload"
    sender, seq, _ = body.split(b":", 2)
    return int(sender), int(seq)
"""


def run_scenario(body: str) -> None:
    proc = run_python(PRELUDE + textwrap.dedent(body), timeout=120)
    assert_child_ok(proc)
    assert proc.stdout.strip().endswith("ok"), proc.stdout


def test_queue_shared_by_senders_and_receivers() -> None:
    """4 senders and 4 receivers on one handle, receives with timeouts and
    types, a thread polling stat(): every message exactly once, intact."""
    run_scenario(r"""
    SENDERS, PER = 4, 400
    q = MessageQueue(remove_on_close=True)
    got, lock = [], threading.Lock()
    def send(sender):
        for seq in range(PER):
            q.send(packet(sender, seq), type=1 + sender, timeout=30)
    def receive():
        while True:
            with lock:
                if len(got) >= SENDERS * PER:
                    return
            try:
                data, mtype = q.receive(timeout=0.05)
            except TimeoutError:
                continue
            sender, seq = unpack(data)
            assert mtype == 1 + sender
            with lock:
                got.append((sender, seq))
    def watch():
        for _ in range(300):
            assert 0 <= len(q) <= q.stat().msg_qnum + SENDERS * PER
    try:
        run_threads([(send, (s,)) for s in range(SENDERS)] + [(receive, ())] * 4 + [(watch, ())])
        assert sorted(got) == [(s, i) for s in range(SENDERS) for i in range(PER)]
        assert len(q) == 0
    finally:
        q.close()
    print("ok")
    """)


def test_queue_closed_while_in_use() -> None:
    """A handle closed under threads sending and receiving on it: each call
    either completes or raises ValueError (closed); no message is lost: sent =
    received + left in the queue."""
    run_scenario(r"""
    q = MessageQueue()
    qid = q.id
    sent, received, lock = [0], [0], threading.Lock()
    stop = threading.Event()
    def send():
        seq = 0
        while not stop.is_set():
            try:
                q.send(packet(0, seq), block=False)
            except ValueError:
                return                          # closed
            except BlockingIOError:
                continue                        # full
            with lock:
                sent[0] += 1
            seq += 1
    def receive():
        while not stop.is_set():
            try:
                data, _ = q.receive(timeout=0.01)
            except ValueError:
                return
            except TimeoutError:
                continue
            unpack(data)
            with lock:
                received[0] += 1
    def close():
        for _ in range(2000):
            len(q) if not q.closed else None
        q.close()
        stop.set()
    try:
        run_threads([(send, ())] * 3 + [(receive, ())] * 3 + [(close, ())])
        reopened = MessageQueue.from_id(qid)   # the queue was not removed
        n = len(reopened)
        for _ in range(n):
            unpack(reopened.receive(block=False)[0])
        reopened.close()
        assert sent[0] == received[0] + n, (sent, received, n)
    finally:
        c.msgctl(qid, c.IPC_RMID)
    print("ok")
    """)


def test_semaphore_lock_shared_by_threads() -> None:
    """8 threads take one semaphore as a lock (with timeouts) around a
    read-modify-write of a counter in shared memory: no update is lost."""
    run_scenario(r"""
    THREADS, PER = 8, 200
    s = SemaphoreSet(nsems=1, initial=[1], remove_on_close=True)
    shm = SharedMemory(size=4096, remove_on_close=True)
    def work():
        for _ in range(PER):
            while not s[0].acquire(timeout=0.05):
                pass
            try:
                n = int.from_bytes(shm.read(8), "little")
                shm.write((n + 1).to_bytes(8, "little"))
            finally:
                s[0].release()
    try:
        run_threads([(work, ())] * THREADS)
        assert int.from_bytes(shm.read(8), "little") == THREADS * PER
        assert s[0].value == 1
    finally:
        s.close()
        shm.close()
    print("ok")
    """)


def test_shared_memory_views_close_and_detach() -> None:
    """Threads write and check checksummed blocks through their own views
    (some large enough for the copy to run without the GIL) while another
    closes the handle, and others race detach() against exports on a raw
    attachment: views made before the close keep working, later ones fail
    with ValueError, detach() fails with BufferError while views exist."""
    run_scenario(r"""
    BLOCK = 1 << 17
    shm = SharedMemory(size=8 * BLOCK, remove_on_close=True)
    shmid = shm.id
    views = [memoryview(shm) for k in range(4)]  # made before the close
    def writer(k):
        view = views[k]
        for i in range(60):
            block = bytes([(k + i) % 256]) * (BLOCK - 4)
            block += zlib.crc32(block).to_bytes(4, "little")
            if i % 2:
                view[k * BLOCK:(k + 1) * BLOCK] = block
            else:
                try:
                    shm.write(block, k * BLOCK)
                except ValueError:
                    view[k * BLOCK:(k + 1) * BLOCK] = block   # closed meanwhile
            back = bytes(view[k * BLOCK:(k + 1) * BLOCK])
            assert zlib.crc32(back[:-4]) == int.from_bytes(back[-4:], "little")
        view.release()
    def closer():
        for _ in range(20):
            try:
                memoryview(shm).release()
            except ValueError:
                pass
        shm.close()
        try:
            memoryview(shm)
        except ValueError:
            pass
        else:
            raise AssertionError("a view of a closed handle")
    a = c.shmat(shmid)
    def exporter():
        for _ in range(500):
            try:
                with memoryview(a) as v:
                    v[0] = 1
            except ValueError:
                return                          # detached
    def detacher():
        while True:
            try:
                a.detach()
                return
            except BufferError:
                pass                            # views alive: retry
    run_threads([(writer, (k,)) for k in range(4)] + [(closer, ()), (exporter, ()),
                 (exporter, ()), (detacher, ())])
    assert a.detached
    print("ok")
    """)
