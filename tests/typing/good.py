"""Typical use that must type-check under mypy --strict."""

from __future__ import annotations

import numpy as np

import sysvipc
from sysvipc import (
    Message,
    MessageQueue,
    MsqidDs,
    Semaphore,
    SemaphoreSet,
    SharedMemory,
    ShmidDs,
    lowlevel,
)


def queues() -> None:
    with MessageQueue(remove_on_close=True) as q:
        q.send(b"x", 2, timeout=1.0)
        q.send(bytearray(b"y"), block=False)
        message: Message = q.receive(-2, timeout=0.5, max_size=100, truncate=True)
        data: bytes = message.data
        kind: int = message.type
        data, kind = q.receive(except_type=True, block=False)
        nbytes, kind = q.receive_into(bytearray(100))
        st: MsqidDs = q.stat()
        count: int = len(q) + st.msg_qnum
        q.set(mode=0o600, max_bytes=1024)
        print(data, kind, nbytes, count, q.peek(0), q.id, q.key)


async def queues_async(q: MessageQueue) -> bytes:
    await q.send_async(b"z", 3, timeout=1.0)
    message = await q.receive_async(3, timeout=1.0)
    return message.data


def semaphores() -> None:
    with SemaphoreSet(nsems=2, initial=[1, 0], remove_on_close=True) as s:
        sem: Semaphore = s[0]
        with sem:
            ok: bool = s[1].acquire(block=False) if s[1].value else True
        sem.release(2, undo=False)
        s.op([(0, -1), (1, 1, 0)], timeout=0.1)
        values: list[int] = s.values
        s.values = [0, 0]
        print(ok, values, len(s), s.stat().semaphores[0].semval)


def shared_memory() -> None:
    shm = SharedMemory(size=4096)
    try:
        view: memoryview = memoryview(shm)
        array = shm.ndarray(np.uint8, (16,), offset=0)
        total = int(np.frombuffer(memoryview(shm), dtype=np.uint8).sum())  # numpy stubs
        shm.write(b"abc", 10)
        got: bytes = shm.read(3, 10)
        n: int = shm.read_into(bytearray(8))
        st: ShmidDs = shm.stat()
        print(view.nbytes, array.shape, total, got, n, st.shm_nattch, st.marked_for_removal)
    finally:
        shm.remove()
        shm.close()


def low_level() -> None:
    msqid = lowlevel.msgget(lowlevel.IPC_PRIVATE, lowlevel.IPC_CREAT, 0o600)
    lowlevel.msgsnd(msqid, b"x", 1)
    data, kind = lowlevel.msgrcv(msqid, None, 0, lowlevel.IPC_NOWAIT)
    lowlevel.msgctl(msqid, lowlevel.IPC_RMID)
    for ident, stat in sysvipc.list_shared_memory():
        print(ident, stat.shm_segsz)
    print(data, kind, sysvipc.limits().msgmax, sysvipc.ftok("/", "A"))


def compat() -> None:
    from sysvipc import compat as sysv_ipc

    mq = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX, max_message_size=256)
    mq.send("text", block=False, type=2)
    message, kind = mq.receive()
    sem = sysv_ipc.Semaphore(None, sysv_ipc.IPC_CREX, initial_value=1)
    with sem:
        sem.block = False
    mem = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, size=4096)
    mem.write(b"abc", offset=1)
    got: bytes = mem.read(byte_count=3, offset=1)
    view = memoryview(mem)
    ident: int = mem.id
    view.release()
    try:
        mem.detach()
    except sysv_ipc.Error as e:
        print(e.errno)
    print(message, kind, got, ident, mq.current_messages, sem.value)
    for gone in (mq.remove, sem.remove, mem.remove):
        gone()
