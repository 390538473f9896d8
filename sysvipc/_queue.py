"""MessageQueue: a System V message queue."""

from __future__ import annotations

import errno
import os
import time
from typing import TYPE_CHECKING, Any

from . import _sysvipc as _c
from ._common import IPCObject, get_or_create
from ._sysvipc import (
    IPC_NOWAIT,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    MSG_COPY,
    MSG_EXCEPT,
    MSG_NOERROR,
    Message,
)

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from _typeshed import ReadableBuffer

    from ._structs import MsqidDs

# asyncio, concurrent.futures, random and the structures are imported where
# they are first used: together they were most of what `import sysvipc` cost.

__all__ = ["MessageQueue", "Message"]

# How long one background wait for a message lasts before it checks whether
# its receive_async was cancelled (waiting itself costs no CPU).  Jittered:
# many receive_async calls started together must not all wake, and all come
# back through the event loop, at the same instant.
_WAIT_SLICE = 1.0
_WAIT_JITTER = 0.25
# Polling bounds for send_async on a full queue.
_SEND_POLL_MIN = 0.0001
_SEND_POLL_MAX = 0.005

# The worker pool is per process: a forked child has none of the parent's
# threads, so it starts a pool of its own (see _reset_after_fork).
_waiters: ThreadPoolExecutor | None = None


def _waiter_pool() -> ThreadPoolExecutor:
    global _waiters
    if _waiters is None:
        from concurrent.futures import ThreadPoolExecutor

        _waiters = ThreadPoolExecutor(max_workers=1024, thread_name_prefix="sysvipc-wait")
    return _waiters


def _reset_after_fork() -> None:
    global _waiters
    _waiters = None  # the parent's pool, without its threads: never used


os.register_at_fork(after_in_child=_reset_after_fork)


def _receive_flags(block: bool, truncate: bool, except_type: bool) -> int:
    flags = 0 if block else IPC_NOWAIT
    if truncate:
        flags |= MSG_NOERROR
    if except_type:
        flags |= MSG_EXCEPT
    return flags


class MessageQueue(_c.MessageQueueBase, IPCObject):
    """A System V message queue.

    >>> q = MessageQueue()              # a new queue under a random key
    >>> q.send(b"hello", type=2)
    >>> q.receive()
    sysvipc.Message(data=b'hello', type=2)
    >>> data, type = q.receive(timeout=0.01) if len(q) else (b"", 0)
    >>> q.remove()

    ``key=None`` creates a new queue under a fresh random key;
    ``key=IPC_PRIVATE`` a new private one; an int key opens the existing
    queue (``create=True``: create it if missing; ``exclusive=True``: it must
    not exist yet).  ``close()`` and leaving a ``with`` block never remove the
    queue unless ``remove_on_close=True``.
    """

    _kind = "message queue"

    def __init__(
        self,
        key: int | None = None,
        *,
        create: bool = False,
        exclusive: bool = False,
        mode: int = 0o600,
        remove_on_close: bool = False,
    ) -> None:
        key, msqid, created = get_or_create(_c.msgget, key, create, exclusive, mode)
        self._init_handle(key, msqid, created, remove_on_close)

    @classmethod
    def from_id(cls, msqid: int) -> MessageQueue:
        """Open an existing queue by its id."""
        from ._structs import MsqidDs

        st = MsqidDs._make(_c.msgctl(msqid, IPC_STAT))
        self = cls.__new__(cls)
        self._init_handle(st.msg_perm.key, msqid, False, False)
        return self

    # send(), receive() and receive_into() are MessageQueueBase's, in C.

    # -- asyncio ------------------------------------------------------------

    async def send_async(
        self, data: ReadableBuffer, type: int = 1, *, timeout: float | None = None
    ) -> None:
        """Send without blocking the event loop.

        The message is handed to the kernel on the event loop's thread, so a
        cancelled ``send_async`` either sent it or did not: never both, never
        half.  While the queue is full it retries with a short, growing
        pause (0.1 to 5 ms).
        """
        import asyncio  # already loaded by the running event loop

        msqid = self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _SEND_POLL_MIN
        while True:
            try:
                # One try that does not wait, with send()'s own checks (a
                # message that can never fit is a ValueError, a removed
                # queue IdentifierRemovedError).
                self.send(data, type, timeout=0)
                return
            except TimeoutError:
                pass
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        errno.ETIMEDOUT,
                        f"Timed out: message queue with id {msqid} (originated from msgsnd)",
                    )
                pause = min(pause, remaining)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _SEND_POLL_MAX)

    async def receive_async(
        self,
        type: int = 0,
        *,
        timeout: float | None = None,
        max_size: int | None = None,
        truncate: bool = False,
        except_type: bool = False,
    ) -> Message:
        """Receive without blocking the event loop.

        Cancelling it (or closing the coroutine, or its timeout) never loses
        a message: messages are only taken off the queue on the event loop's
        thread, in a non-blocking call that either returns the message to
        this coroutine or leaves it queued.  The waiting happens in a worker
        thread that blocks in the kernel until a matching message *exists*,
        without taking it (a zero-byte receive that the kernel answers with
        E2BIG).  A zero-length message is the one exception the kernel
        forces: the waiter does receive it, and if this call ended meanwhile
        it is sent back to the queue (if the queue is full, by a keeper
        process that waits for room, so that interpreter exit is never held
        up).  ``timeout`` is enforced here as well as in the worker.

        Each call waiting on an empty queue holds one worker thread (from a
        shared pool of up to 1024, reused), which wakes the moment a message
        arrives.
        """
        import asyncio  # already loaded by the running event loop
        import random

        msqid = self._check_open()
        flags = _receive_flags(False, truncate, except_type)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return self._call(_c.msgrcv, max_size, type, flags)
            except BlockingIOError:
                pass
            wait = _WAIT_SLICE * random.uniform(1 - _WAIT_JITTER, 1 + _WAIT_JITTER)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        errno.ETIMEDOUT,
                        f"Timed out: message queue with id {msqid} (originated from msgrcv)",
                    )
                wait = min(wait, remaining)
            future = _waiter_pool().submit(_wait_for_message, msqid, type, except_type, wait)
            waiting = asyncio.wrap_future(future, loop=loop)
            try:
                if deadline is None:
                    found = await waiting
                else:
                    # Bounded here as well as in the worker: the timeout
                    # holds even if no worker ever runs.
                    remaining = max(deadline - time.monotonic(), 0.0)
                    found = await asyncio.wait_for(waiting, remaining)
            except TimeoutError:
                _abandon(future, msqid)
                raise TimeoutError(errno.ETIMEDOUT, "Timed out (originated from msgrcv)") from None
            except BaseException:
                # Cancelled, or closed without being cancelled (GeneratorExit:
                # the event loop closed with this call pending, the task
                # collected): a message the worker took goes back.
                _abandon(future, msqid)
                raise
            if found is not None:
                return found

    # -- inspection and control -------------------------------------------

    def peek(self, index: int = 0) -> Message:
        """Return the message at position ``index`` (0 = the head) without
        removing it (MSG_COPY).  :class:`IndexError` if there is no such
        message; :class:`NotImplementedError` on kernels built without
        CONFIG_CHECKPOINT_RESTORE, which MSG_COPY needs."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, not {type(index).__name__}")
        if index < 0:
            raise IndexError("peek index must be >= 0")
        try:
            return self._call(_c.msgrcv, None, index, MSG_COPY | IPC_NOWAIT)
        except BlockingIOError:
            raise IndexError(f"no message at index {index}") from None
        except OSError as e:
            if e.errno == errno.ENOSYS:
                raise NotImplementedError(
                    "peek needs MSG_COPY, which this kernel lacks (CONFIG_CHECKPOINT_RESTORE)"
                ) from e
            raise

    def __len__(self) -> int:
        """The number of messages on the queue (``msg_qnum``)."""
        return self.stat().msg_qnum

    def stat(self) -> MsqidDs:
        """The queue's :class:`~sysvipc.MsqidDs` (IPC_STAT)."""
        from ._structs import MsqidDs

        return MsqidDs._make(self._call(_c.msgctl, IPC_STAT))

    def set(
        self,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        """Change the owner, permissions or ``msg_qbytes`` (IPC_SET); the
        values not given stay.  Raising ``max_bytes`` above
        ``/proc/sys/kernel/msgmnb`` needs CAP_SYS_RESOURCE."""
        self._call(_c.msgctl, IPC_SET, (uid, gid, mode, max_bytes))

    def _rmid(self) -> None:
        _c.msgctl(self._id, IPC_RMID)

    def _repr_details(self) -> str:
        try:
            st = self.stat()
        except OSError:
            return " removed"
        return f" messages={st.msg_qnum} bytes={st.msg_cbytes}"


def _wait_for_message(msqid: int, type: int, except_type: bool, wait: float) -> Message | None:
    """Block until a matching message exists; return None then (it stays
    queued), or the message itself if it had zero length (the kernel hands
    those over even to a zero-byte receive)."""
    flags = MSG_EXCEPT if except_type else 0
    try:
        return _c.msgrcv(msqid, 0, type, flags, timeout=wait)
    except TimeoutError:
        return None
    except OSError as e:
        if e.errno == errno.E2BIG:
            return None  # a message is there, and still queued
        raise


def _abandon(future: Future[Message | None], msqid: int) -> None:
    """The receive_async that submitted ``future`` is over: stop the worker
    if it has not started, else re-queue whatever message it takes."""
    if not future.cancel():
        future.add_done_callback(_requeue_if_taken(msqid))


def _requeue_if_taken(msqid: int) -> Any:
    def callback(future: Future[Message | None]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        message = future.result()
        if message is not None:  # taken by the waiter after its caller left
            _requeue(msqid, message)

    return callback


def _requeue(msqid: int, message: Message) -> None:
    """Send a message taken for a caller that left back to its queue."""
    try:
        _c.msgsnd(msqid, message.data, message.type, IPC_NOWAIT)
    except BlockingIOError:
        # The queue is full: waiting here for room could hold up interpreter
        # exit forever, and giving up would lose the message.  A keeper
        # process waits instead, as long as it takes.
        _keep_in_a_child(msqid, message)


def _keep_in_a_child(msqid: int, message: Message) -> None:
    """Fork a process that sends ``message`` as soon as the queue has room
    (or ends when the queue is removed), detached from the terminal and from
    every pipe, so that nothing waits for it."""
    pid = os.fork()
    if pid != 0:
        os.waitpid(pid, 0)  # the middle process exits at once
        return
    try:
        if os.fork() != 0:  # the keeper is a grandchild: nobody's zombie
            return
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        try:
            _c.msgsnd(msqid, message.data, message.type)
        except OSError:
            pass  # the queue is gone, and its messages with it
    finally:
        os._exit(0)
