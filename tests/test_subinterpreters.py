"""The C core in isolated subinterpreters (own GIL, only multi-phase modules
allowed), on CPython 3.12 and later: import, use, run two at once in
parallel, and destroy an interpreter while its objects are still alive.

Every scenario runs in a child process (a crash there fails the test instead
of killing pytest).  Interpreters come from ``concurrent.interpreters`` on
3.14+, from the private ``_interpreters`` on 3.13 and ``_xxsubinterpreters``
on 3.12.  On 3.12 the subinterpreters load the C core alone, not the
``sysvipc`` package: the package imports :mod:`asyncio`, and on CPython
3.12.1 ``import asyncio`` alone in an isolated subinterpreter aborts the
process at teardown ("free(): invalid pointer"), with or without sysvipc.
See docs/free-threading.md ("Subinterpreters")."""

from __future__ import annotations

import sys

import pytest
from conftest import assert_child_ok, run_python

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="isolated subinterpreters need CPython 3.12+"
)

# Defines `interpreter()` -> (run(code), close()) and CORE, the import line
# that gives the subinterpreter `c` (the C core) and, from 3.13, `sysvipc`.
PRELUDE = r"""
import sys, threading
import sysvipc._sysvipc as main_core

if sys.version_info >= (3, 14):
    from concurrent import interpreters

    def interpreter():
        interp = interpreters.create()       # isolated: own GIL
        return interp.exec, interp.close
elif sys.version_info >= (3, 13):
    import _interpreters

    def interpreter():
        iid = _interpreters.create("isolated")
        def run(code):
            failed = _interpreters.exec(iid, code)
            if failed is not None:
                raise RuntimeError(f"in the subinterpreter: {failed}")
        return run, lambda: _interpreters.destroy(iid)
else:
    import _xxsubinterpreters

    def interpreter():
        iid = _xxsubinterpreters.create(isolated=True)
        return (lambda code: _xxsubinterpreters.run_string(iid, code),
                lambda: _xxsubinterpreters.destroy(iid))

if sys.version_info >= (3, 13):
    CORE = "import sys, sysvipc, sysvipc._sysvipc as c\n"
else:
    CORE = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('sysvipc._sysvipc', {main_core.__file__!r})\n"
        "c = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(c)\n"
    )
"""


def run_child(body: str) -> str:
    proc = run_python(PRELUDE + body, timeout=120)
    assert_child_ok(proc)
    return proc.stdout


def test_import_and_use_every_kind() -> None:
    out = run_child(r"""
run, close = interpreter()
run(CORE + r'''
import zlib
q = c.msgget(c.IPC_PRIVATE, c.IPC_CREAT)
s = c.semget(c.IPC_PRIVATE, 1, c.IPC_CREAT)
m = c.shmget(c.IPC_PRIVATE, 4096, c.IPC_CREAT)
try:
    c.msgsnd(q, b"from a subinterpreter", 3)
    assert c.msgrcv(q, 100) == (b"from a subinterpreter", 3)
    try:
        c.msgrcv(q, 100, timeout=0.05)           # the wake-up timer works here too
    except TimeoutError:
        pass
    else:
        raise AssertionError("no TimeoutError")
    c.semop(s, [(0, 1, 0)])
    assert c.semctl(s, 0, c.GETVAL) == 1
    a = c.shmat(m)
    view = memoryview(a)
    view[:5] = b"hello"
    assert a.read(5) == b"hello"
    view.release()
    a.detach()
    if "sysvipc" in sys.modules:                  # 3.13+: the classes too
        import sysvipc
        with sysvipc.MessageQueue(remove_on_close=True) as mq:
            mq.send(b"x" * 100, type=1)
            assert mq.receive() == (b"x" * 100, 1)
        with sysvipc.SharedMemory(size=8192, remove_on_close=True) as shm:
            memoryview(shm)[:3] = b"abc"
            assert bytes(memoryview(shm)[:3]) == b"abc"
    print("used every kind", flush=True)
finally:
    c.msgctl(q, c.IPC_RMID)
    c.semctl(s, 0, c.IPC_RMID)
    c.shmctl(m, c.IPC_RMID)
''')
close()
print("closed")
""")
    assert out.split() == ["used", "every", "kind", "closed"]


def test_parallel_subinterpreters_share_a_queue() -> None:
    """Two interpreters with their own GIL, each in its thread, send and
    receive checksummed messages of their own type on one queue."""
    out = run_child(r"""
q = main_core.msgget(main_core.IPC_PRIVATE, main_core.IPC_CREAT)
errors = []

def worker(kind):
    try:
        run, close = interpreter()
        try:
            run(CORE + f'''
import zlib
for i in range(300):
    data = (b"%d-%d" % ({kind}, i)) * (1 + i % 50)
    c.msgsnd({q}, data + zlib.crc32(data).to_bytes(4, "little"), {kind})
    body, mtype = c.msgrcv({q}, 65536, type={kind}, timeout=30)
    payload, crc = body[:-4], int.from_bytes(body[-4:], "little")
    assert mtype == {kind} and zlib.crc32(payload) == crc and payload == data, (i, body)
''')
        finally:
            close()
    except BaseException as e:
        errors.append(e)

try:
    threads = [threading.Thread(target=worker, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    try:
        main_core.msgrcv(q, 65536, flags=main_core.IPC_NOWAIT)
    except OSError:
        pass                                   # ENOMSG: nothing left over
    else:
        raise AssertionError("a message was left in the queue")
    print("parallel ok")
finally:
    main_core.msgctl(q, main_core.IPC_RMID)
""")
    assert out.split() == ["parallel", "ok"]


def test_objects_alive_at_interpreter_teardown() -> None:
    """An interpreter destroyed while its queue handle, attachment, exported
    view and semaphore handle are alive: nothing crashes, nothing it created
    is removed unasked, the message it sent is still there."""
    out = run_child(r"""
q = main_core.msgget(main_core.IPC_PRIVATE, main_core.IPC_CREAT)
s = main_core.semget(main_core.IPC_PRIVATE, 1, main_core.IPC_CREAT)
m = main_core.shmget(main_core.IPC_PRIVATE, 4096, main_core.IPC_CREAT)
try:
    run, close = interpreter()
    run(CORE + f'''
c.msgsnd({q}, b"left behind", 5)
attachment = c.shmat({m})
view = memoryview(attachment)                 # exported, never released
view[:6] = b"stayed"
c.semop({s}, [(0, 2, 0)])
keep = [attachment, view]
if "sysvipc" in sys.modules:                  # 3.13+: open handles too
    import sysvipc
    keep += [sysvipc.MessageQueue.from_id({q}), sysvipc.SemaphoreSet.from_id({s}),
             sysvipc.SharedMemory.from_id({m})]
    keep.append(memoryview(keep[-1]))
''')
    close()
    # Nothing was removed and nothing was lost.
    assert main_core.msgrcv(q, 100, flags=main_core.IPC_NOWAIT) == (b"left behind", 5)
    assert main_core.semctl(s, 0, main_core.GETVAL) == 2
    a = main_core.shmat(m)
    assert a.read(6) == b"stayed"
    a.detach()
    print("teardown ok")
finally:
    main_core.msgctl(q, main_core.IPC_RMID)
    main_core.semctl(s, 0, main_core.IPC_RMID)
    main_core.shmctl(m, main_core.IPC_RMID)
""")
    assert out.split() == ["teardown", "ok"]


def test_many_interpreters_in_turn() -> None:
    """Module state is per interpreter: import, use and destroy repeatedly."""
    out = run_child(r"""
for i in range(20):
    run, close = interpreter()
    run(CORE + '''
q = c.msgget(c.IPC_PRIVATE, c.IPC_CREAT)
try:
    c.msgsnd(q, b"round", 1)
    assert c.msgrcv(q, 10) == (b"round", 1)
finally:
    c.msgctl(q, c.IPC_RMID)
''')
    close()
print("20 rounds")
""")
    assert out.split() == ["20", "rounds"]
