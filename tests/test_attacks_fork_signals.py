"""Attacks through fork, the wake-up signal and asyncio shutdown (issue 16,
items 3-10).

Every scenario runs in a child interpreter with a timeout: before the fixes
they hung, killed the process, or lost a message.  No assertion is on
timing, except generous bounds that prove "did not hang" (a 0.3 s timeout
that ends within 20 s).
"""

from __future__ import annotations

import textwrap

import pytest
from conftest import assert_child_ok, run_python

from sysvipc import MessageQueue
from sysvipc import lowlevel as ll

PRELUDE = textwrap.dedent(
    """
    import asyncio, gc, os, signal, sys, threading, time
    import sysvipc
    from sysvipc import MessageQueue, SemaphoreSet, SharedMemory
    from sysvipc import _sysvipc as C, lowlevel as ll

    def in_syscall(tid, names=("msgrcv", "msgsnd", "nanosleep", "clock_nanosleep")):
        # x86-64 numbers; the sleeps are the polling fallback's naps.
        numbers = {"msgsnd": 69, "msgrcv": 70, "nanosleep": 35, "clock_nanosleep": 230}
        try:
            with open(f"/proc/self/task/{tid}/syscall") as f:
                first = f.read().split()[0]
        except (OSError, IndexError):
            return False
        return first.isdigit() and int(first) in {numbers[n] for n in names}

    def wait_until_blocked(tid, limit=10.0):
        # Elsewhere than on x86-64 a pause has to do.
        if os.uname().machine != "x86_64":
            time.sleep(0.3)
            return
        deadline = time.monotonic() + limit
        while not in_syscall(tid):
            assert time.monotonic() < deadline, "the thread never blocked"
            time.sleep(0.002)
        time.sleep(0.01)

    def reap(pid, limit=20.0):
        # The forked child's exit status, or a failure if it hangs.
        deadline = time.monotonic() + limit
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError("the forked child hung")
            time.sleep(0.01)
    """
)


def child(code: str, timeout: float = 60) -> str:
    proc = run_python(PRELUDE + textwrap.dedent(code), timeout=timeout)
    assert_child_ok(proc)
    return proc.stdout


# --------------------------------------------------------------------------
# 3. remove_on_close belongs to the process that created the object
# --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "with", "multiprocessing"])
def test_forked_child_never_removes_the_parents_object(how: str) -> None:
    child(
        f"""
        import multiprocessing
        def use(obj):
            if "{how}" == "with":
                with obj:
                    pass
            else:
                obj.close()

        objects = [
            MessageQueue(remove_on_close=True),
            SemaphoreSet(nsems=1, remove_on_close=True),
            SharedMemory(size=4096, remove_on_close=True),
            SharedMemory(size=4096, remove_on_close=True, remove_at_last_detach=True),
        ]
        try:
            for obj in objects:
                assert obj.created
                if "{how}" == "multiprocessing":
                    p = multiprocessing.get_context("fork").Process(target=use, args=(obj,))
                    p.start()
                    p.join(30)
                    assert p.exitcode == 0, p.exitcode
                    continue
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        assert not obj.created  # the child did not create it
                        use(obj)
                        code = 0
                    finally:
                        os._exit(code)
                assert reap(pid) == 0
            for obj in objects:
                obj.stat()  # still there for the parent
                assert obj.created
        finally:
            for obj in objects:
                obj.close()  # the creator's close removes it
        for obj in objects:
            try:
                type(obj).from_id(obj.id)
            except OSError:
                pass
            else:
                raise AssertionError(f"{{obj!r}} survived its creator's close")
        """
    )


# --------------------------------------------------------------------------
# 4. expired timed waits cost the GIL holder nothing
# --------------------------------------------------------------------------


def test_expired_timed_waits_take_no_signals_while_waiting_for_the_gil() -> None:
    """Threads whose timed receive expired while another thread holds the
    GIL must not be woken again and again meanwhile (the old timer repeated
    every 100 µs until the GIL came back).  Counts context switches of the
    waiting threads while the main thread holds the GIL in a blocking C call
    (ctypes.PyDLL keeps the GIL during the call)."""
    out = child(
        """
        import ctypes, subprocess
        libc = ctypes.PyDLL(None, use_errno=True)
        N = 16
        q = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
        tids = []
        ready = threading.Barrier(N + 1)
        def wait():
            tids.append(threading.get_native_id())
            ready.wait()
            try:
                ll.msgrcv(q, 10, timeout=0.2)
            except TimeoutError:
                pass
        try:
            threads = [threading.Thread(target=wait) for _ in range(N)]
            for t in threads:
                t.start()
            ready.wait()
            for tid in tids:
                wait_until_blocked(tid)
            r, w = os.pipe()
            observer = subprocess.Popen(
                [sys.executable, "-c", '''
        import os, sys, time
        pid, fd, tids = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
        def switches():
            total = 0
            for tid in tids:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if "ctxt_switches" in line:
                            total += int(line.split()[1])
            return total
        time.sleep(0.6)  # every wait has expired: they all wait for the GIL
        before = switches()
        time.sleep(0.5)
        print(switches() - before, flush=True)
        os.write(fd, b"x")
        ''', str(os.getpid()), str(w), *map(str, tids)],
                pass_fds=(w,), stdout=subprocess.PIPE, text=True,
            )
            buf = ctypes.create_string_buffer(1)
            libc.read(r, buf, 1)  # holds the GIL until the observer is done
            delta = int(observer.communicate(timeout=30)[0])
            for t in threads:
                t.join(30)
            print(delta)
        finally:
            ll.msgctl(q, ll.IPC_RMID)
        """
    )
    switches = int(out.split()[-1])
    # 16 threads woken every 100 µs for 0.5 s would be 80000; waiting for the
    # GIL itself wakes each about every 5 ms (100 each).
    assert switches < 16 * 500, switches


def test_the_timeout_watchdog_leaves_no_thread_behind() -> None:
    """The thread that ends timed waits exists only while they are in use,
    so a process that stopped using them is single-threaded again (a fork
    then draws no multi-threading warning on 3.12+)."""
    child(
        """
        def threads():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
        q = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
        try:
            assert threads() == 1
            for _ in range(3):
                try:
                    ll.msgrcv(q, 10, timeout=0.1)
                except TimeoutError:
                    pass
            assert threads() == 2  # the watchdog
            deadline = time.monotonic() + 20
            while threads() != 1:
                assert time.monotonic() < deadline, "the watchdog never ended"
                time.sleep(0.05)
            try:  # and it comes back when needed
                ll.msgrcv(q, 10, timeout=0.1)
            except TimeoutError:
                pass
        finally:
            ll.msgctl(q, ll.IPC_RMID)
        """
    )


# --------------------------------------------------------------------------
# 5. the wake-up signal's disposition changed during a wait
# --------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["SIG_IGN", "SIG_DFL", "save-restore", "handler"])
def test_timed_wait_survives_a_disposition_change_during_the_wait(change: str) -> None:
    out = child(
        f"""
        q = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
        seen = []
        def change():
            if "{change}" == "SIG_IGN":
                signal.signal(C.WAKEUP_SIGNAL, signal.SIG_IGN)
            elif "{change}" == "SIG_DFL":
                signal.signal(C.WAKEUP_SIGNAL, signal.SIG_DFL)
            elif "{change}" == "handler":
                signal.signal(C.WAKEUP_SIGNAL, lambda signo, frame: seen.append(signo))
            else:  # the save-and-restore idiom: getsignal reports SIG_DFL
                old = signal.getsignal(C.WAKEUP_SIGNAL)
                signal.signal(C.WAKEUP_SIGNAL, lambda signo, frame: None)
                signal.signal(C.WAKEUP_SIGNAL, old)
        try:
            for round in range(3):
                ended = []
                def wait():
                    start = time.monotonic()
                    try:
                        ll.msgrcv(q, 10, timeout=0.3)
                    except TimeoutError:
                        ended.append(time.monotonic() - start)
                t = threading.Thread(target=wait)
                t.start()
                wait_until_blocked(t.native_id)
                change()
                t.join(20)
                assert not t.is_alive(), "the timed wait did not end"
                assert len(ended) == 1 and ended[0] < 20, ended
            # Timed waits still see a message at once, and still time out.
            sender = threading.Timer(0.1, ll.msgsnd, (q, b"late", 1))
            sender.start()
            assert ll.msgrcv(q, 10, timeout=20) == (b"late", 1)
            sender.join()
            start = time.monotonic()
            try:
                ll.msgsnd(q, b"", 1)
                ll.msgctl(q, ll.IPC_SET, qbytes=1)
                ll.msgsnd(q, b"", 1, timeout=0.2)
            except TimeoutError:
                assert time.monotonic() - start < 20
            else:
                raise AssertionError("msgsnd on a full queue did not time out")
        finally:
            ll.msgctl(q, ll.IPC_RMID)
        print("ok")
        """
    )
    assert out.split()[-1] == "ok"


# --------------------------------------------------------------------------
# 6. receive_async in a forked child
# --------------------------------------------------------------------------


def test_receive_async_works_in_a_forked_child_after_the_parent_used_it() -> None:
    child(
        """
        q = MessageQueue(remove_on_close=True)
        async def parent_use():
            try:
                await q.receive_async(timeout=0.05)
            except TimeoutError:
                pass
        try:
            asyncio.run(parent_use())
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    async def child_use():
                        start = time.monotonic()
                        try:
                            await q.receive_async(timeout=0.3)
                        except TimeoutError:
                            assert time.monotonic() - start < 15
                        else:
                            raise AssertionError("no message was sent")
                        threading.Timer(0.1, q.send, (b"to the child",)).start()
                        msg = await q.receive_async(timeout=15)
                        assert msg.data == b"to the child", msg
                    asyncio.run(child_use())
                    code = 0
                finally:
                    os._exit(code)
            assert reap(pid, 30) == 0
            # And the parent's own pool still works.
            threading.Timer(0.1, q.send, (b"to the parent",)).start()
            assert asyncio.run(q.receive_async(timeout=15)).data == b"to the parent"
        finally:
            q.close()
        """
    )


def test_receive_async_timeout_holds_even_if_no_worker_ever_runs() -> None:
    """The timeout is enforced in the coroutine, not only in the worker: with
    the parent's pool put back in a forked child (its threads do not exist
    there, so a submitted wait never runs), the call still times out."""
    child(
        """
        import sysvipc._queue as queue_module
        q = MessageQueue(remove_on_close=True)
        async def use():
            try:
                await q.receive_async(timeout=0.05)
            except TimeoutError:
                pass
        try:
            asyncio.run(use())
            inherited = queue_module._waiters
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    queue_module._waiters = inherited  # no thread will run
                    start = time.monotonic()
                    try:
                        asyncio.run(q.receive_async(timeout=0.3))
                    except TimeoutError:
                        code = 0 if time.monotonic() - start < 15 else 3
                finally:
                    os._exit(code)
            assert reap(pid, 30) == 0
        finally:
            q.close()
        """
    )


# --------------------------------------------------------------------------
# 7. a receive_async coroutine closed instead of cancelled
# --------------------------------------------------------------------------


def test_closed_receive_async_coroutine_loses_no_zero_length_message() -> None:
    child(
        """
        q = MessageQueue(remove_on_close=True)
        try:
            coro = q.receive_async()
            async def start():
                task = asyncio.ensure_future(coro)
                await asyncio.sleep(0.2)  # its worker now waits in msgrcv
                return task
            loop = asyncio.new_event_loop()
            task = loop.run_until_complete(start())
            loop.close()  # with the task pending
            coro.close()  # what collecting the task does: GeneratorExit
            q.send(b"", type=7)  # taken by the orphaned worker
            deadline = time.monotonic() + 15
            while len(q) == 0:
                assert time.monotonic() < deadline, "the message was lost"
                time.sleep(0.01)
            assert q.receive(block=False) == (b"", 7)
        finally:
            q.close()
        """
    )


# --------------------------------------------------------------------------
# 8. interpreter exit after a cancelled receive_async on a full queue
# --------------------------------------------------------------------------


def test_exit_is_prompt_after_a_cancelled_receive_async_and_nothing_is_lost() -> None:
    proc = run_python(
        PRELUDE
        + textwrap.dedent(
            """
            q = MessageQueue()
            print(q.id, flush=True)
            q.set(max_bytes=1)  # room for one message
            async def main():
                task = asyncio.ensure_future(q.receive_async(type=2))
                await asyncio.sleep(0.2)  # its worker waits in msgrcv
                q.send(b"", type=2)  # the worker takes it (zero length)
                time.sleep(0.5)      # without letting the task see it
                q.send(b"x", type=1)  # now the queue is full
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            asyncio.run(main())
            print("exiting", flush=True)
            """
        ),
        timeout=30,
    )
    assert_child_ok(proc)
    msqid = int(proc.stdout.split()[0])
    try:
        q = MessageQueue.from_id(msqid)
        assert q.receive(timeout=10) == (b"x", 1)
        # Room again: the cancelled call's message comes back.
        assert q.receive(timeout=20) == (b"", 2)
    finally:
        ll.msgctl(msqid, ll.IPC_RMID)


# --------------------------------------------------------------------------
# 9. fork from a signal handler inside a timed receive
# --------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["msgrcv", "msgsnd"])
def test_fork_in_a_signal_handler_during_a_timed_wait(call: str) -> None:
    child(
        f"""
        q = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
        me = os.getpid()
        forked = []
        def handler(signo, frame):
            forked.append(os.fork())
        signal.signal(signal.SIGUSR1, handler)
        main = threading.get_native_id()
        def poke():
            wait_until_blocked(main)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
        try:
            if "{call}" == "msgsnd":
                ll.msgctl(q, ll.IPC_SET, qbytes=1)
                ll.msgsnd(q, b"x", 1)
                wait = lambda: ll.msgsnd(q, b"y", 1, timeout=0.5)
            else:
                wait = lambda: ll.msgrcv(q, 10, timeout=0.5)
            threading.Thread(target=poke).start()
            start = time.monotonic()
            try:
                wait()
            except TimeoutError:
                pass
            else:
                raise AssertionError("nothing should have arrived")
            if os.getpid() != me:  # the child: its wait ended too
                os._exit(0 if time.monotonic() - start < 15 else 3)
            assert reap(forked[0]) == 0
            # The child's timer is the child's: a second round still works.
            try:
                wait()
            except TimeoutError:
                pass
        finally:
            if os.getpid() == me:
                ll.msgctl(q, ll.IPC_RMID)
        """
    )


# --------------------------------------------------------------------------
# 10. a child forked during another thread's large copy can detach
# --------------------------------------------------------------------------


def test_child_forked_during_a_large_copy_can_detach() -> None:
    out = child(
        """
        shm = SharedMemory(size=32 << 20, remove_on_close=True)
        attachment = shm._attachment
        data = bytes(32 << 20)
        stop = threading.Event()
        def copy():
            while not stop.is_set():
                shm.write(data)  # the GIL is released during the copy
                shm.read_into(bytearray(data))
        t = threading.Thread(target=copy)
        t.start()
        caught = 0
        try:
            for _ in range(20):
                time.sleep(0.01)
                pid = os.fork()
                if pid == 0:
                    # No view of the mapping exists in this process, and no
                    # copy is in flight: detach must work.
                    code = 1
                    try:
                        code = 2 if attachment.exports else 3
                        attachment.detach()
                        assert attachment.detached
                        code = 0
                    finally:
                        os._exit(code)
                status = reap(pid)
                assert status == 0, status
        finally:
            stop.set()
            t.join(30)
            shm.close()
        print("ok")
        """,
        timeout=120,
    )
    assert out.split()[-1] == "ok"


def test_child_forked_during_a_blocking_send_from_shared_memory_can_detach() -> None:
    """The same class: a send that waits for room must not hold the export
    of its data during the wait, or a child forked meanwhile keeps it."""
    child(
        """
        shm = SharedMemory(size=4096, remove_on_close=True)
        attachment = shm._attachment
        q = ll.msgget(ll.IPC_PRIVATE, ll.IPC_CREAT)
        try:
            ll.msgctl(q, ll.IPC_SET, qbytes=4096)
            ll.msgsnd(q, bytes(4096), 1)  # full
            t = threading.Thread(target=ll.msgsnd, args=(q, shm, 2), kwargs={"timeout": 30})
            t.start()
            wait_until_blocked(t.native_id)
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = 2 if attachment.exports else 3
                    attachment.detach()
                    code = 0
                finally:
                    os._exit(code)
            assert reap(pid) == 0
            ll.msgrcv(q, 8192, 1)  # room: the send completes
            t.join(30)
            assert ll.msgrcv(q, 8192, 2, timeout=10).data == bytes(4096)
        finally:
            ll.msgctl(q, ll.IPC_RMID)
            shm.close()
        """
    )
