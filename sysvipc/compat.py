"""sysv_ipc's API on sysvipc's core: ``from sysvipc import compat as sysv_ipc``.

A drop-in for the `sysv_ipc <https://pypi.org/project/sysv_ipc/>`_ module
(version 1.2.0): the same classes, constructors, keyword names, attributes,
functions, constants and exceptions, so that a program written for
``sysv_ipc`` runs unchanged after replacing its import line.  It passes
``sysv_ipc``'s own test suite (``tests/test_compat_upstream.py`` runs it).

Nothing here makes a system call of its own: every operation goes through
the C core that the native API uses (:mod:`sysvipc._sysvipc`): the
``*get``/``*ctl`` calls, the C ``MessageQueueBase.send/receive``, the C
``SemaphoreBase.acquire/release``, the C ``Attachment`` (``shmat``, copies,
the buffer protocol) and ``SharedMemoryBase``, which exports the segment to
``memoryview``/numpy on every Python version.  This module holds only what is
``sysv_ipc``'s own: argument conventions, attribute names and its exception
classes.

Where ``sysv_ipc`` crashes or silently does the wrong thing, this module does
the safe thing instead (docs/migrating-from-sysv_ipc.md lists each case):
``detach()`` refuses while views of the segment exist (``BufferError``, as
``mmap.close()`` does) instead of leaving them pointing at unmapped memory;
views of a read-only attachment are read-only; keys outside ``key_t`` are a
``ValueError`` instead of being truncated; ``Semaphore(key, IPC_CREAT,
initial_value=v)`` sets ``v`` only when it created the semaphore; a receive
allocates the size of the message, not ``max_message_size``; and the
exceptions are also the matching :class:`OSError` subclasses, with ``errno``.
"""

from __future__ import annotations

import errno as _errno
import operator
import sys
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Never, NoReturn, TypeVar, overload

from . import _sysvipc as _c
from ._common import get_or_create
from ._queue import MessageQueue as _NativeQueue
from ._semaphore import Semaphore as _NativeSemaphore
from ._semaphore import SemaphoreSet as _NativeSemaphoreSet
from ._structs import IpcPerm, MsqidDs, SemidDs, ShmidDs
from ._sysvipc import (
    GETNCNT,
    GETPID,
    GETZCNT,
    IPC_CREAT,
    IPC_EXCL,
    IPC_PRIVATE,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    KEY_MAX,
    KEY_MIN,
    PAGE_SIZE,
    SEMVMX,
    SHM_HUGETLB,
    SHM_NORESERVE,
    SHM_RDONLY,
    SHM_REMAP,
    SHM_RND,
    IdentifierRemovedError,
    Message,
)

__all__ = [
    "IPC_CREAT",
    "IPC_CREX",
    "IPC_EXCL",
    "IPC_PRIVATE",
    "KEY_MAX",
    "KEY_MIN",
    "PAGE_SIZE",
    "SEMAPHORE_TIMEOUT_SUPPORTED",
    "SEMAPHORE_VALUE_MAX",
    "SHM_HUGETLB",
    "SHM_NORESERVE",
    "SHM_RDONLY",
    "SHM_REMAP",
    "SHM_RND",
    "VERSION",
    "AlreadyExistsError",
    "BusyError",
    "Error",
    "ExistentialError",
    "InternalError",
    "InvalidIdError",
    "MessageQueue",
    "NotAttachedError",
    "NotFoundError",
    "PermissionsError",
    "RemovedError",
    "Semaphore",
    "SharedMemory",
    "TimedOutError",
    "WouldBlockError",
    "attach",
    "ftok",
    "remove_message_queue",
    "remove_semaphore",
    "remove_shared_memory",
]

VERSION = "1.2.0"
"""The version of sysv_ipc's API this module provides (sysvipc's own
version is :data:`sysvipc.__version__`)."""
__version__ = VERSION
__author__ = "The sysvipc developers (API: Philip Semanchuk's sysv_ipc)"
__license__ = "MIT"
__copyright__ = "Copyright the sysvipc developers; sysv_ipc's API copyright Philip Semanchuk"

IPC_CREX = IPC_CREAT | IPC_EXCL
# KEY_MIN, KEY_MAX: the keys the core accepts, key_t's 32 bits in either
# spelling (sysv_ipc advertises 64 bits and truncates to 32).
SEMAPHORE_VALUE_MAX = SEMVMX
SEMAPHORE_TIMEOUT_SUPPORTED = True
"""Always true: sysvipc does not build without semtimedop."""

# sysv_ipc's default for max_message_size, and its bound.
_DEFAULT_MAX_MESSAGE_SIZE = 2048
_SSIZE_MAX = sys.maxsize
# The kernel's msgmax is a C int: no message is longer, so a larger
# max_message_size bounds nothing and the receive is left unbounded.
_LONGEST_MESSAGE = 2**31 - 1

_SEMVMX_TEXT = "The semaphore's value must remain between 0 and SEMVMX"


# --------------------------------------------------------------------------
# Exceptions: sysv_ipc's names, and also the built-in OSError subclasses
# --------------------------------------------------------------------------


class Error(OSError):
    """Base of this module's exceptions; an :class:`OSError` with ``errno``."""


class InternalError(Error):
    """Kept for sysv_ipc's API; never raised (a failure is an OSError with its errno)."""


class PermissionsError(Error, PermissionError):
    """The permission bits refuse the operation (EACCES, EPERM)."""


class ExistentialError(Error):
    """The object does not exist, already exists, or was removed.

    Raised as one of :class:`NotFoundError` (ENOENT), :class:`AlreadyExistsError`
    (EEXIST), :class:`RemovedError` (EIDRM) or :class:`InvalidIdError` (EINVAL).
    """


class NotFoundError(ExistentialError, FileNotFoundError):
    """No object has that key (ENOENT)."""


class AlreadyExistsError(ExistentialError, FileExistsError):
    """IPC_CREX and the key is taken (EEXIST)."""


class RemovedError(ExistentialError, IdentifierRemovedError):
    """The object was removed (EIDRM)."""


class InvalidIdError(ExistentialError, ValueError):
    """The id names no object (EINVAL).  Also a :class:`ValueError`, which
    sysv_ipc raises when ``shmat`` refuses an id."""


class BusyError(Error):
    """The call would wait: raised as :class:`WouldBlockError` (``block``
    is false) or :class:`TimedOutError` (a timeout expired)."""


class WouldBlockError(BusyError, BlockingIOError):
    """``block`` is false and the call would wait (EAGAIN, ENOMSG)."""


class TimedOutError(BusyError, TimeoutError):
    """A timeout expired (ETIMEDOUT)."""


class NotAttachedError(Error):
    """The segment is not attached (errno EINVAL, as from shmdt)."""


_ERRNO_CLASSES: dict[int, type[Error]] = {
    _errno.EACCES: PermissionsError,
    _errno.EPERM: PermissionsError,
    _errno.ENOENT: NotFoundError,
    _errno.EEXIST: AlreadyExistsError,
    _errno.EIDRM: RemovedError,
    _errno.EINVAL: InvalidIdError,
    _errno.EAGAIN: WouldBlockError,
    _errno.ENOMSG: WouldBlockError,
    _errno.ETIMEDOUT: TimedOutError,
}


class _Translate:
    """``with _translate:`` turns the core's OSErrors into this module's
    classes, by errno; other errors (E2BIG, ENOSPC, ...) stay the core's
    OSError subclasses, as sysv_ipc raises plain OSErrors for them."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, OSError) and not isinstance(exc, Error):
            code = exc.errno
            if code is None and isinstance(exc, PermissionError):
                code = _errno.EACCES  # the core's write to a read-only attachment
            cls = _ERRNO_CLASSES.get(code or 0)
            if cls is not None:
                raise cls(code, exc.strerror or str(exc)) from None


_translate = _Translate()


# --------------------------------------------------------------------------
# Attributes: read-only ones fail as sysv_ipc's C attributes do
# --------------------------------------------------------------------------

_T = TypeVar("_T")


class _ReadOnly(Generic[_T]):
    """A read-only attribute whose AttributeError on assignment has the
    text of CPython's for C attributes, which programs (and sysv_ipc's
    tests) compare: ``readonly attribute`` for ``id`` (a C member), else
    ``attribute 'key' of 'module.Class' objects is not writable``."""

    def __init__(self, fget: Callable[[Any], _T]) -> None:
        self._fget = fget
        self._name = fget.__name__
        self.__doc__ = fget.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _ReadOnly[_T]: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> _T: ...
    def __get__(self, obj: object, objtype: type | None = None) -> _T | _ReadOnly[_T]:
        if obj is None:
            return self
        return self._fget(obj)

    def __set__(self, obj: object, value: Never) -> NoReturn:
        if self._name == "id":
            raise AttributeError("readonly attribute")
        cls = type(obj)
        raise AttributeError(
            f"attribute '{self._name}' of '{cls.__module__}.{cls.__qualname__}' "
            "objects is not writable"
        )

    def __delete__(self, obj: object) -> NoReturn:
        self.__set__(obj, None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Arguments shared by the three classes
# --------------------------------------------------------------------------


def _int(value: object, name: str) -> int:
    try:
        return int(operator.index(value))  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None


def _creation(key: int | None, flags: object, mode: object) -> tuple[bool, bool, int]:
    """sysv_ipc's flags: 0 opens, IPC_CREAT creates if missing, IPC_CREX
    must create.  Returns ``(create, exclusive, mode)``; mode is masked to
    its permission bits, as sysv_ipc does."""
    flags = _int(flags, "flags")
    mode = _int(mode, "mode") & 0o777
    if not flags & IPC_CREAT and flags & IPC_EXCL:
        raise ValueError("IPC_EXCL must be combined with IPC_CREAT")
    if key is None and flags & IPC_CREX != IPC_CREX:
        raise ValueError("Key can only be None if IPC_EXCL is set")
    return bool(flags & IPC_CREAT), flags & IPC_CREX == IPC_CREX, mode


def _open(
    get: Callable[[int, int], int], key: int | None, create: bool, exclusive: bool, mode: int
) -> tuple[int, int, bool]:
    """The core's key rules (random keys, create-or-open knowing which);
    ``get(key, flags)`` always asks for ``mode``, so that opening an object
    without that access fails at once, as in sysv_ipc."""
    with _translate:
        return get_or_create(lambda k, f, m: get(k, f), key, create, exclusive, mode)


def _data(value: object) -> object:
    """sysv_ipc takes a str as its UTF-8 bytes."""
    return value.encode("utf-8") if isinstance(value, str) else value


# --------------------------------------------------------------------------
# MessageQueue
# --------------------------------------------------------------------------


class MessageQueue:
    """sysv_ipc's ``MessageQueue(key, flags=0, mode=0o600, max_message_size=2048)``.

    ``send`` and ``receive`` are the core's (C) calls.  A receive takes at
    most ``max_message_size`` bytes (a longer message stays queued and the
    call raises ``OSError(E2BIG)``), and allocates only the message's size.
    """

    __slots__ = ("_max_message_size", "_queue", "_receive_bound")
    _max_message_size: int
    _receive_bound: int | None
    _queue: _NativeQueue

    def __init__(
        self,
        key: int | None,
        flags: int = 0,
        mode: int = 0o600,
        max_message_size: int = _DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        size = _int(max_message_size, "max_message_size")
        if not 0 <= size <= _SSIZE_MAX:
            raise ValueError(f"The message length must be <= {_SSIZE_MAX}")
        create, exclusive, mode = _creation(key, flags, mode)
        key, msqid, created = _open(
            lambda k, f: _c.msgget(k, f, mode), key, create, exclusive, mode
        )
        queue = _NativeQueue.__new__(_NativeQueue)
        queue._init_handle(key, msqid, created, False)
        self._queue = queue
        self._max_message_size = size
        self._receive_bound = size if size <= _LONGEST_MESSAGE else None

    def send(self, message: object, block: object = True, type: int = 1) -> None:
        """Send ``message`` (bytes-like, or a str sent as UTF-8) with ``type`` > 0.

        ``block=False`` raises :class:`BusyError` when the queue is full.
        """
        data = _data(message)
        size = memoryview(data).nbytes  # type: ignore[arg-type]
        if size > self._max_message_size:
            raise ValueError(
                f"The message length exceeds queue's max_message_size ({self._max_message_size})"
            )
        with _translate:
            self._queue.send(data, _int(type, "type"), block=bool(block))  # type: ignore[arg-type]

    def receive(self, block: object = True, type: int = 0) -> tuple[bytes, int]:
        """Return ``(message, type)``: the first message (``type`` 0), the
        first of that type (> 0), or the first of the lowest type <= -type.

        ``block=False`` raises :class:`BusyError` when there is none.
        """
        with _translate:
            message: Message = self._queue.receive(
                _int(type, "type"), block=bool(block), max_size=self._receive_bound
            )
        return message

    def remove(self) -> None:
        """Remove the queue (IPC_RMID); blocked callers get :class:`ExistentialError`."""
        with _translate:
            _c.msgctl(self._queue.id, IPC_RMID)

    def _stat(self) -> MsqidDs:
        with _translate:
            return MsqidDs._make(_c.msgctl(self._queue.id, IPC_STAT))

    def _set(
        self,
        uid: int | None = None,
        gid: int | None = None,
        mode: int | None = None,
        qbytes: int | None = None,
    ) -> None:
        with _translate:
            _c.msgctl(self._queue.id, IPC_SET, (uid, gid, mode, qbytes))

    @_ReadOnly
    def key(self) -> int:
        """The key the queue was made or opened with."""
        return self._queue.key

    @_ReadOnly
    def id(self) -> int:
        """The kernel's id of the queue."""
        return self._queue.id

    @property
    def max_size(self) -> int:
        """The queue's limit in bytes (``msg_qbytes``); settable."""
        return self._stat().msg_qbytes

    @max_size.setter
    def max_size(self, value: int) -> None:
        self._set(qbytes=_int(value, "max_size"))

    @property
    def mode(self) -> int:
        """The permission bits; settable."""
        return self._stat().msg_perm.mode

    @mode.setter
    def mode(self, value: int) -> None:
        self._set(mode=_int(value, "mode"))

    @property
    def uid(self) -> int:
        """The owner's user id; settable."""
        return self._stat().msg_perm.uid

    @uid.setter
    def uid(self, value: int) -> None:
        self._set(uid=_int(value, "uid"))

    @property
    def gid(self) -> int:
        """The owner's group id; settable."""
        return self._stat().msg_perm.gid

    @gid.setter
    def gid(self, value: int) -> None:
        self._set(gid=_int(value, "gid"))

    @_ReadOnly
    def cuid(self) -> int:
        """The creator's user id."""
        return self._stat().msg_perm.cuid

    @_ReadOnly
    def cgid(self) -> int:
        """The creator's group id."""
        return self._stat().msg_perm.cgid

    @_ReadOnly
    def last_send_time(self) -> int:
        """Time of the last send (seconds since the epoch; 0: never)."""
        return self._stat().msg_stime

    @_ReadOnly
    def last_receive_time(self) -> int:
        """Time of the last receive (0: never)."""
        return self._stat().msg_rtime

    @_ReadOnly
    def last_change_time(self) -> int:
        """Time of creation or of the last change of the permissions."""
        return self._stat().msg_ctime

    @_ReadOnly
    def last_send_pid(self) -> int:
        """Pid of the last sender (0: none)."""
        return self._stat().msg_lspid

    @_ReadOnly
    def last_receive_pid(self) -> int:
        """Pid of the last receiver (0: none)."""
        return self._stat().msg_lrpid

    @_ReadOnly
    def current_messages(self) -> int:
        """The number of messages on the queue."""
        return self._stat().msg_qnum

    def __repr__(self) -> str:
        return f"{__name__}.MessageQueue({self._queue.key})"


# --------------------------------------------------------------------------
# Semaphore
# --------------------------------------------------------------------------


class Semaphore:
    """sysv_ipc's ``Semaphore(key, flags=0, mode=0o600, initial_value=0)``:
    semaphore 0 of a set.

    ``initial_value`` applies only when this call created the semaphore
    (sysv_ipc also applies it to an existing one opened with IPC_CREAT).
    ``acquire``/``release``/``Z`` are the core's C operations, with
    ``semtimedop`` timeouts that keep counting across signals.
    """

    __slots__ = ("_block", "_sem", "_undo")
    _block: bool
    _sem: _NativeSemaphore
    _undo: bool

    def __init__(
        self, key: int | None, flags: int = 0, mode: int = 0o600, initial_value: int = 0
    ) -> None:
        initial = _int(initial_value, "initial_value")
        create, exclusive, mode = _creation(key, flags, mode)
        key, semid, created = _open(
            lambda k, f: _c.semget(k, 1, f, mode), key, create, exclusive, mode
        )
        # A handle over the set, without the native creation handshake (its
        # semop would set o_time, which sysv_ipc leaves 0 until first use).
        semset = _NativeSemaphoreSet.__new__(_NativeSemaphoreSet)
        semset._nsems = 1
        semset._init_handle(key, semid, created, False)
        self._sem = _NativeSemaphore(semset, 0)
        self._block = True
        self._undo = False
        if created and mode & 0o200:
            try:
                self._setval(initial)
            except BaseException:
                with _translate:  # nobody can be using it yet
                    _c.semctl(semid, 0, IPC_RMID)
                raise

    @property
    def _id(self) -> int:
        semid: int = self._sem.set.id
        return semid

    def _setval(self, value: int) -> None:
        try:
            with _translate:
                self._sem.value = value
        except (ValueError, OverflowError):
            raise ValueError(_SEMVMX_TEXT) from None

    def _flags(self, timeout: float | None) -> dict[str, Any]:
        if not self._block:
            return {"block": False}  # sysv_ipc: IPC_NOWAIT wins over a timeout
        return {"timeout": timeout}  # the core checks it

    def acquire(self, timeout: float | None = None, delta: int = 1) -> None:
        """Subtract ``|delta|`` (default 1), waiting while the value is
        smaller: for ever (``timeout=None``), or up to ``timeout`` seconds,
        then :class:`BusyError`; at once when ``block`` is false."""
        n = _delta(delta)
        with _translate:
            done = self._sem.acquire(n, undo=self._undo, **self._flags(timeout))
        if not done:  # the native API answers False, sysv_ipc raises
            self._busy("semop")

    def _busy(self, call: str) -> NoReturn:
        if self._block:
            raise TimedOutError(_errno.ETIMEDOUT, f"Timed out (originated from {call})")
        raise WouldBlockError(
            _errno.EAGAIN, f"Resource temporarily unavailable (originated from {call})"
        )

    P = acquire

    def release(self, delta: int = 1) -> None:
        """Add ``|delta|`` (default 1); never waits.  Past SEMVMX: ValueError."""
        n = _delta(delta)
        try:
            with _translate:
                self._sem.release(n, undo=self._undo)
        except ValueError:
            raise ValueError(_SEMVMX_TEXT) from None

    V = release

    def Z(self, timeout: float | None = None) -> None:
        """Wait until the value is 0 (see :meth:`acquire` for ``timeout``)."""
        with _translate:
            done = self._sem.wait_zero(**self._flags(timeout))
        if not done:
            self._busy("semop")

    def remove(self) -> None:
        """Remove the semaphore (IPC_RMID); blocked callers get :class:`ExistentialError`."""
        with _translate:
            _c.semctl(self._id, 0, IPC_RMID)

    def __enter__(self) -> Semaphore:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _stat(self) -> SemidDs:
        with _translate:
            return SemidDs._make(_c.semctl(self._id, 0, IPC_STAT))

    def _get(self, cmd: int) -> int:
        with _translate:
            value: int = _c.semctl(self._id, 0, cmd)
        return value

    def _set(self, uid: int | None = None, gid: int | None = None, mode: int | None = None) -> None:
        with _translate:
            _c.semctl(self._id, 0, IPC_SET, (uid, gid, mode))

    @_ReadOnly
    def key(self) -> int:
        """The key the semaphore was made or opened with."""
        key: int = self._sem.set.key
        return key

    @_ReadOnly
    def id(self) -> int:
        """The kernel's id of the semaphore's set."""
        return self._id

    @property
    def value(self) -> int:
        """The current value; settable (0..SEMVMX)."""
        with _translate:
            return self._sem.value

    @value.setter
    def value(self, value: int) -> None:
        self._setval(value)

    @property
    def block(self) -> bool:
        """False: acquire() and Z() raise :class:`BusyError` instead of waiting."""
        return self._block

    @block.setter
    def block(self, value: object) -> None:
        self._block = bool(value)

    @property
    def undo(self) -> bool:
        """True: acquire() and release() use SEM_UNDO (the kernel reverts
        them when this process exits)."""
        return self._undo

    @undo.setter
    def undo(self, value: object) -> None:
        self._undo = bool(value)

    @property
    def mode(self) -> int:
        """The permission bits; settable."""
        return self._stat().sem_perm.mode

    @mode.setter
    def mode(self, value: int) -> None:
        self._set(mode=_int(value, "mode"))

    @property
    def uid(self) -> int:
        """The owner's user id; settable."""
        return self._stat().sem_perm.uid

    @uid.setter
    def uid(self, value: int) -> None:
        self._set(uid=_int(value, "uid"))

    @property
    def gid(self) -> int:
        """The owner's group id; settable."""
        return self._stat().sem_perm.gid

    @gid.setter
    def gid(self, value: int) -> None:
        self._set(gid=_int(value, "gid"))

    @_ReadOnly
    def cuid(self) -> int:
        """The creator's user id."""
        return self._stat().sem_perm.cuid

    @_ReadOnly
    def cgid(self) -> int:
        """The creator's group id."""
        return self._stat().sem_perm.cgid

    @_ReadOnly
    def last_pid(self) -> int:
        """Pid of the last process that operated on it (GETPID)."""
        return self._get(GETPID)

    @_ReadOnly
    def waiting_for_nonzero(self) -> int:
        """Processes waiting for the value to increase (GETNCNT)."""
        return self._get(GETNCNT)

    @_ReadOnly
    def waiting_for_zero(self) -> int:
        """Processes waiting for the value to be 0 (GETZCNT)."""
        return self._get(GETZCNT)

    @_ReadOnly
    def o_time(self) -> int:
        """Time of the last semop (0: never)."""
        return self._stat().sem_otime

    def __repr__(self) -> str:
        return f"{__name__}.Semaphore({self.key})"


def _delta(delta: object) -> int:
    n = abs(_int(delta, "delta"))
    if n == 0:
        raise ValueError("The delta must be non-zero")
    return n


# --------------------------------------------------------------------------
# SharedMemory
# --------------------------------------------------------------------------

# New segments are filled in pieces of this size: each write of the core
# copies with the GIL released (pieces >= 64 KiB).
_FILL_CHUNK = 1 << 20


class SharedMemory(_c.SharedMemoryBase):
    """sysv_ipc's ``SharedMemory(key, flags=0, mode=0o600, size=0, init_character=b' ')``.

    Created with IPC_CREX, the segment is ``size`` bytes (0: PAGE_SIZE) and
    filled with ``init_character``, as sysv_ipc does.  It is attached at
    once, read-only if ``mode`` lacks the owner's write bit.

    The object is a buffer (``memoryview(mem)``, ``bytearray(mem)``,
    ``numpy.frombuffer(mem)``) on every Python version, through the core's
    exporter; a view of a read-only attachment is read-only.  ``detach()``
    refuses while such views exist.  The buffer is the first attachment's:
    after ``detach()``, ``attach()`` restores ``read``/``write`` but the
    object exports no buffer any more (:func:`attach` makes a new object).
    """

    __slots__ = ("_current", "_exporting", "_id", "_key")
    _current: _c.Attachment | None  # the mapping read/write use (None: detached)
    _exporting: bool  # the handle got its attachment (the buffer protocol's)
    _id: int
    _key: int

    def __init__(
        self,
        key: int | None,
        flags: int = 0,
        mode: int = 0o600,
        size: int = 0,
        init_character: bytes = b" ",
    ) -> None:
        size = _int(size, "size")
        if size < 0:
            raise ValueError("The size is invalid")
        if not isinstance(init_character, (bytes, bytearray)) or len(init_character) != 1:
            raise TypeError("init_character must be a byte string of length 1")
        all_flags = _int(flags, "flags")
        create, exclusive, mode = _creation(key, all_flags, mode)
        extra = all_flags & ~(IPC_CREX | 0o777)
        if exclusive and not size:
            size = PAGE_SIZE
        try:
            key, shmid, created = _open(
                lambda k, f: _c.shmget(k, size, f | extra, mode),
                key,
                create,
                exclusive,
                mode,
            )
        except ExistentialError as exc:
            if exc.errno == _errno.EINVAL:  # shmget's answer to a size it refuses
                raise ValueError("The size is invalid") from None
            raise
        self._key = key
        self._id = shmid
        self._current = None
        self._exporting = False
        readonly = not mode & 0o200
        try:
            self._attach(SHM_RDONLY if readonly else 0)
        except BaseException:
            if created:  # never remove a segment this call did not create
                _c.shmctl(shmid, IPC_RMID)
            raise
        if exclusive and not readonly and init_character != b"\0":
            self._fill(bytes(init_character))

    def _attach(self, flags: int) -> None:
        with _translate:
            attachment = _c.shmat(self._id, flags)
        if not self._exporting:
            # The first attachment is the one the buffer protocol exports
            # (the core's handle takes one, once).
            self._attachment = attachment
            self._exporting = True
        self._current = attachment

    def _fill(self, char: bytes) -> None:
        attachment = self._mapped("Write attempt on unattached memory segment")
        total = attachment.size
        piece = memoryview(char * min(total, _FILL_CHUNK))
        for offset in range(0, total, _FILL_CHUNK):
            attachment.write(piece[: min(_FILL_CHUNK, total - offset)], offset)

    def _mapped(self, message: str) -> _c.Attachment:
        attachment = self._current
        if attachment is None:
            raise NotAttachedError(_errno.EINVAL, message)
        return attachment

    def attach(self, address: int | None = None, flags: int = 0) -> None:
        """Attach the segment (again), read-only with ``flags=SHM_RDONLY``.

        The kernel chooses the address: an ``address`` other than None is a
        :class:`ValueError`.  Already attached: detached first.
        """
        if address is not None:
            raise ValueError(
                "sysvipc.compat attaches where the kernel chooses: address must be None"
            )
        flags = _int(flags, "flags") & ~SHM_RND  # SHM_RND only rounds an address
        if self._current is not None:
            self.detach()
        self._attach(flags)

    def detach(self) -> None:
        """Detach the segment.  While views of it exist (memoryviews, numpy
        arrays) this raises :class:`BufferError` and stays attached:
        release them first."""
        attachment = self._mapped("Not attached")
        attachment.detach()  # BufferError while views exist (the core's rule)
        self._current = None
        if self._attachment is not None:
            self._close_mapping()

    def read(self, byte_count: int = 0, offset: int = 0) -> bytes:
        """``byte_count`` bytes from ``offset``; 0 (the default) or more
        than there is: to the end of the segment."""
        byte_count = _int(byte_count, "byte_count")
        offset = _int(offset, "offset")
        attachment = self._mapped("Read attempt on unattached memory segment")
        size = attachment.size
        if not 0 <= offset < size:
            raise ValueError("The offset must be less than the segment size")
        if byte_count < 0:
            raise ValueError("The byte_count cannot be negative")
        if not byte_count or byte_count > size - offset:
            byte_count = size - offset
        return attachment.read(byte_count, offset)

    def write(self, s: object, offset: int = 0) -> None:
        """Copy ``s`` (bytes-like, or a str written as UTF-8) to ``offset``.
        Past the end: ValueError; read-only attachment: :class:`PermissionsError`."""
        data = _data(s)
        offset = _int(offset, "offset")
        attachment = self._mapped("Write attempt on unattached memory segment")
        if offset < 0:
            raise ValueError("Attempt to write past end of memory segment")
        with _translate:
            attachment.write(data, offset)  # type: ignore[arg-type]

    def remove(self) -> None:
        """Mark the segment for removal (IPC_RMID): it goes at the last detach."""
        with _translate:
            _c.shmctl(self._id, IPC_RMID)

    def _stat(self) -> ShmidDs:
        with _translate:
            return ShmidDs._make(_c.shmctl(self._id, IPC_STAT))

    def _perm(self) -> IpcPerm:
        return self._stat().shm_perm

    def _set(self, uid: int | None = None, gid: int | None = None, mode: int | None = None) -> None:
        with _translate:
            _c.shmctl(self._id, IPC_SET, (uid, gid, mode))

    @_ReadOnly
    def key(self) -> int:
        """The key the segment was made or opened with."""
        return self._key

    @_ReadOnly
    def id(self) -> int:
        """The kernel's id of the segment."""
        return self._id

    @_ReadOnly
    def size(self) -> int:
        """The segment's size in bytes."""
        return self._stat().shm_segsz

    @_ReadOnly
    def address(self) -> int:
        """Where the segment is attached in this process (0: not attached)."""
        return 0 if self._current is None else self._current.address

    @_ReadOnly
    def attached(self) -> bool:
        """True while attached."""
        return self._current is not None

    @_ReadOnly
    def last_attach_time(self) -> int:
        """Time of the last attach (seconds since the epoch)."""
        return self._stat().shm_atime

    @_ReadOnly
    def last_detach_time(self) -> int:
        """Time of the last detach."""
        return self._stat().shm_dtime

    @_ReadOnly
    def last_change_time(self) -> int:
        """Time of creation or of the last change of the permissions."""
        return self._stat().shm_ctime

    @_ReadOnly
    def creator_pid(self) -> int:
        """Pid of the creator."""
        return self._stat().shm_cpid

    @_ReadOnly
    def last_pid(self) -> int:
        """Pid of the last process that attached or detached."""
        return self._stat().shm_lpid

    @_ReadOnly
    def number_attached(self) -> int:
        """The number of attachments, in every process."""
        return self._stat().shm_nattch

    @property
    def mode(self) -> int:
        """The permission bits; settable."""
        return self._perm().mode

    @mode.setter
    def mode(self, value: int) -> None:
        self._set(mode=_int(value, "mode"))

    @property
    def uid(self) -> int:
        """The owner's user id; settable."""
        return self._perm().uid

    @uid.setter
    def uid(self, value: int) -> None:
        self._set(uid=_int(value, "uid"))

    @property
    def gid(self) -> int:
        """The owner's group id; settable."""
        return self._perm().gid

    @gid.setter
    def gid(self, value: int) -> None:
        self._set(gid=_int(value, "gid"))

    @_ReadOnly
    def cuid(self) -> int:
        """The creator's user id."""
        return self._perm().cuid

    @_ReadOnly
    def cgid(self) -> int:
        """The creator's group id."""
        return self._perm().cgid

    def __repr__(self) -> str:
        return f"{__name__}.SharedMemory({self._key})"


# --------------------------------------------------------------------------
# Module functions
# --------------------------------------------------------------------------


def attach(id: int, address: int | None = None, flags: int = 0) -> SharedMemory:
    """A new :class:`SharedMemory` attached to the segment ``id``."""
    shmid = _int(id, "id")
    if address is not None:
        raise ValueError("sysvipc.compat attaches where the kernel chooses: address must be None")
    flags = _int(flags, "flags") & ~SHM_RND
    with _translate:
        key = ShmidDs._make(_c.shmctl(shmid, IPC_STAT)).shm_perm.key
    mem = SharedMemory.__new__(SharedMemory)
    mem._key = key
    mem._id = shmid
    mem._current = None
    mem._exporting = False
    mem._attach(flags)
    return mem


def ftok(path: str, id: int, silence_warning: bool = False) -> int:
    """The key ftok(3) makes from ``path`` (which must exist) and ``id``.

    Warns, as sysv_ipc does, unless ``silence_warning``: ftok keys collide
    (they come from the inode number and 8 bits of ``id``).
    """
    if not silence_warning:
        warnings.warn(
            "Use of ftok() is not recommended; see sysv_ipc documentation",
            Warning,
            stacklevel=2,
        )
    return _c.ftok(path, _int(id, "id"))


def remove_semaphore(id: int) -> None:
    """Remove the semaphore (set) ``id``."""
    with _translate:
        _c.semctl(_int(id, "id"), 0, IPC_RMID)


def remove_shared_memory(id: int) -> None:
    """Mark the segment ``id`` for removal at its last detach."""
    with _translate:
        _c.shmctl(_int(id, "id"), IPC_RMID)


def remove_message_queue(id: int) -> None:
    """Remove the queue ``id``."""
    with _translate:
        _c.msgctl(_int(id, "id"), IPC_RMID)
