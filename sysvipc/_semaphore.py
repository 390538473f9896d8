"""System V semaphore sets: :class:`SemaphoreSet` and its :class:`Semaphore` items.

A set holds ``nsems`` counters that change only through ``semop(2)``, whose
operations over several semaphores of one set are applied all together or
not at all.  The class adds what the raw calls leave out:

- race-free creation with initial values (the ``sem_otime`` handshake: the
  creator sets the values and then performs a net-zero ``semop``; whoever
  opens the set waits until ``sem_otime`` is non-zero);
- locks that survive their holder's death (``with sem:`` uses ``SEM_UNDO``,
  so the kernel releases a lock held by a process killed even by SIGKILL);
- timeouts from ``semtimedop(2)`` that keep counting across signals;
- checks that name the limit (``SEMVMX``, ``SEMOPM``) instead of truncating.

>>> from sysvipc._semaphore import SemaphoreSet
>>> with SemaphoreSet(nsems=2, initial=[1, 0], remove_on_close=True) as s:
...     s.op([(0, -1), (1, +1)])       # move one unit from s[0] to s[1]
...     s.values
[0, 1]
"""

from __future__ import annotations

import errno
import math
import operator
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, overload

from . import _sysvipc as _c_sem
from ._common import IPCObject, check_mode, get_or_create
from ._sysvipc import (
    GETALL,
    GETNCNT,
    GETPID,
    GETVAL,
    GETZCNT,
    IPC_NOWAIT,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    SEM_UNDO,
    SEMVMX,
    SETALL,
    SETVAL,
    IdentifierRemovedError,
    canonical_key,
)
from ._sysvipc import semctl as _raw_semctl
from ._sysvipc import semop as _semop
from ._sysvipc import semop1 as _semop1

if TYPE_CHECKING:
    from ._structs import SemaphoreSetStat, SemidDs

__all__ = ["Semaphore", "SemaphoreSet", "SemaphoreSetStat"]


def __getattr__(name: str) -> Any:
    # The structures (dataclasses) load on first use: see sysvipc/__init__.py.
    if name == "SemaphoreSetStat":
        from ._structs import SemaphoreSetStat

        return SemaphoreSetStat
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SHORT_MIN = -(2**15)
SHORT_MAX = 2**15 - 1
"""``sem_op`` is a C ``short``: one operation changes a value by at most this."""

_OP_FLAGS = IPC_NOWAIT | SEM_UNDO


# --------------------------------------------------------------------------
# Kernel limits, read at run time (they are sysctls, per IPC namespace)
# --------------------------------------------------------------------------


def _kernel_sem_limits() -> tuple[int, int, int, int]:
    """``(SEMMSL, SEMMNS, SEMOPM, SEMMNI)`` from /proc/sys/kernel/sem
    (or from ``semctl(IPC_INFO)`` where /proc is not mounted)."""
    try:
        with open("/proc/sys/kernel/sem") as f:
            msl, mns, opm, mni = (int(field) for field in f.read().split())
        return msl, mns, opm, mni
    except (OSError, ValueError):
        from . import lowlevel as ll
        from ._structs import SemInfo

        info = ll.semctl(0, 0, ll.IPC_INFO)
        assert isinstance(info, tuple) and isinstance(info[1], SemInfo)
        limits = info[1]
        return limits.semmsl, limits.semmns, limits.semopm, limits.semmni


# --------------------------------------------------------------------------
# Argument checks (all of them run before any syscall)
# --------------------------------------------------------------------------


def _check_value(value: object, what: str = "value") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= SEMVMX:
        raise ValueError(f"{what} must be in the range 0..SEMVMX ({SEMVMX}), got {value}")
    return value


def _check_values(values: object, nsems: int, what: str) -> list[int]:
    if isinstance(values, (str, bytes, bytearray)) or not isinstance(values, Iterable):
        raise TypeError(f"{what} must be a sequence of ints, not {type(values).__name__}")
    checked = [_check_value(v, f"each of {what}") for v in values]
    if len(checked) != nsems:
        raise ValueError(
            f"{what} needs exactly {nsems} values (one per semaphore), got {len(checked)}"
        )
    return checked


def _check_count(n: object) -> int:
    """The ``n`` of acquire/release: 1..32767 (a C ``short``)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    if not 1 <= n <= SHORT_MAX:
        raise ValueError(f"n must be in the range 1..{SHORT_MAX}, got {n}")
    return n


def _check_init_timeout(init_timeout: object) -> float:
    """Seconds to wait for another creator's initialisation; 0 for none."""
    if init_timeout is None:
        return 0.0
    if isinstance(init_timeout, bool) or not isinstance(init_timeout, (int, float)):
        raise TypeError(
            f"init_timeout must be a number of seconds or None, not {type(init_timeout).__name__}"
        )
    if math.isnan(init_timeout) or init_timeout < 0:
        raise ValueError(f"init_timeout must be >= 0 seconds, got {init_timeout}")
    return float(init_timeout)


def _block_flags(block: bool, timeout: float | None, undo: bool) -> int:
    if not block and timeout is not None:
        raise ValueError("a timeout makes no sense with block=False")
    return (0 if block else IPC_NOWAIT) | (SEM_UNDO if undo else 0)


# --------------------------------------------------------------------------
# Creation: values first, then a net-zero semop that sets sem_otime
# --------------------------------------------------------------------------


_INITIALISING = 0o100
"""The owner-execute mode bit (meaningless for a semaphore set, which is only
read or altered) marks a set that sysvipc is creating: it is set by the
creating ``semget`` and cleared, by ``IPC_SET``, once the values are in
place and ``sem_otime`` is non-zero.  A set with ``sem_otime == 0`` and no
mark was made by another program (``ipcmk -S``, C, Perl) that will never run
the handshake: opening it must not wait."""


def _initialise(semid: int, values: list[int]) -> None:
    """Set the values of a set this process just created, then mark it
    initialised: a net-zero ``semop`` makes ``sem_otime`` non-zero, which is
    what :func:`_wait_initialised` waits for in other processes."""
    _raw_semctl(semid, 0, SETALL, values)
    # +1 then -1 (or -1 then +1 at SEMVMX) in one atomic call: the values
    # end where SETALL put them, and no other process can see the step.
    touch = [(0, -1), (0, +1)] if values[0] == SEMVMX else [(0, +1), (0, -1)]
    _semop(semid, touch, flags=IPC_NOWAIT)


def _clear_mark(semid: int, mode: int) -> None:
    """Give the set the mode asked for, without the initialising mark."""
    _raw_semctl(semid, 0, IPC_SET, (None, None, mode))


def _stat_or_removed(semid: int, key: int) -> SemidDs:
    from ._structs import SemidDs

    try:
        return SemidDs._make(_raw_semctl(semid, 0, IPC_STAT))
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EIDRM):
            raise IdentifierRemovedError(
                errno.EIDRM,
                f"semaphore set {semid} (key {key:#010x}) was removed before it was initialised",
            ) from exc
        raise


def _wait_initialised(semid: int, key: int, init_timeout: float) -> SemidDs:
    """Return the set's state once its creator has initialised it.

    Only a set that a sysvipc creator is still initialising is waited for
    (``sem_otime == 0`` and the :data:`_INITIALISING` mark), and only while
    it is younger than ``init_timeout``, judged from ``sem_ctime`` (which
    the creator's ``SETALL`` also sets).  Any other set opens at once:
    initialised ones, and sets made by programs that never run ``semop``.
    """
    ds = _stat_or_removed(semid, key)
    if ds.sem_otime or not ds.sem_perm.mode & _INITIALISING or not init_timeout:
        return ds
    # sem_ctime has whole seconds: count the set one second younger.
    remaining = min(init_timeout, ds.sem_ctime + 1 + init_timeout - time.time())
    deadline = time.monotonic() + max(remaining, 0.0)
    delay = 0.0005
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                errno.ETIMEDOUT,
                f"semaphore set {semid} (key {key:#010x}) was never initialised: it is marked "
                f"as being created by sysvipc, but its sem_otime stayed 0 for {init_timeout:g} s "
                "after its creation.  Its creator may have died before setting the values; "
                "open it with init_timeout=0 (or SemaphoreSet.from_id) to use it anyway",
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)
        ds = _stat_or_removed(semid, key)
        if ds.sem_otime:
            return ds


# --------------------------------------------------------------------------
# One semaphore of a set
# --------------------------------------------------------------------------


class Semaphore(_c_sem.SemaphoreBase):
    """One semaphore: ``s[i]`` of a :class:`SemaphoreSet`, or
    ``Semaphore(key, ...)``, a set of one semaphore (as ``sysv_ipc`` and
    ``posix_ipc`` have them).

    ``acquire`` subtracts, ``release`` adds, and ``with sem:`` is a lock
    that the kernel releases if its holder dies:

    >>> from sysvipc._semaphore import SemaphoreSet
    >>> s = SemaphoreSet(initial=1)
    >>> try:
    ...     with s[0]:                  # acquire(undo=True) ... release(undo=True)
    ...         print(s[0].value)
    ... finally:
    ...     s.remove()
    0

    The object holds its set; it is valid as long as the set's handle is
    open.  Equal semaphores are the same index of the same set.
    """

    # _set and _index live in SemaphoreBase (C), as do acquire(), release()
    # and the with-lock: the hot paths.
    __slots__ = ()

    @overload
    def __init__(self, semset: SemaphoreSet, index: int, /) -> None: ...

    @overload
    def __init__(
        self,
        key: int | None = None,
        /,
        *,
        create: bool = False,
        exclusive: bool = False,
        mode: int = 0o600,
        initial: int = 0,
        init_timeout: float | None = 10.0,
    ) -> None: ...

    def __init__(
        self,
        key: SemaphoreSet | int | None = None,
        index: int | None = None,
        /,
        *,
        create: bool = False,
        exclusive: bool = False,
        mode: int = 0o600,
        initial: int = 0,
        init_timeout: float | None = 10.0,
    ) -> None:
        """``Semaphore(semset, index)`` is the same as ``semset[index]``.

        ``Semaphore(key, create=..., exclusive=..., mode=..., initial=...,
        init_timeout=...)`` is a set of one semaphore, as ``sysv_ipc`` and
        ``posix_ipc`` have them: ``SemaphoreSet(key, 1, ...)[0]``, with the
        same arguments, and ``with sem:`` is the lock.  Its set is
        :attr:`set` (``sem.set.remove()`` removes it).
        """
        if isinstance(key, SemaphoreSet):
            if (create, exclusive, mode, initial, init_timeout) != (False, False, 0o600, 0, 10.0):
                raise TypeError("Semaphore(semset, index) takes no keyword arguments")
            if index is None:
                raise TypeError("Semaphore(semset, index) needs the index")
            semset = key
        elif key is None or (isinstance(key, int) and not isinstance(key, bool)):
            if index is not None:
                raise TypeError(
                    "Semaphore(key) is a set of one semaphore and takes no index; "
                    "for an item of a larger set use SemaphoreSet(key)[index]"
                )
            semset = SemaphoreSet(
                key,
                1,
                create=create,
                exclusive=exclusive,
                mode=mode,
                initial=initial,
                init_timeout=init_timeout,
            )
            index = 0
        else:
            raise TypeError(
                f"Semaphore needs a SemaphoreSet and an index, or a key, not {type(key).__name__}"
            )
        semset._check_open()
        self._set = semset
        self._index = semset._index_of(index)

    @property
    def set(self) -> SemaphoreSet:
        """The set this semaphore belongs to."""
        semset: SemaphoreSet = self._set
        return semset

    @property
    def index(self) -> int:
        """The position in the set (0..nsems-1; never negative)."""
        return self._index

    # -- operations ---------------------------------------------------------

    def wait_zero(self, *, block: bool = True, timeout: float | None = None) -> bool:
        """Wait until the value is 0 (a ``sem_op`` of 0).

        Returns True once it is 0, False if it was not, as
        :meth:`threading.Event.wait` does: False when the ``timeout``
        expired, or with ``block=False`` when it is not 0 now.
        """
        semid = self._set._check_open()
        flags = _block_flags(block, timeout, False)
        try:
            _semop1(semid, self._index, 0, flags, timeout)
        except (TimeoutError, BlockingIOError):
            return False
        except OSError as exc:
            self._set._translate(exc)
            raise
        return True

    # -- state --------------------------------------------------------------

    def _get(self, cmd: int) -> int:
        semid = self._set._check_open()
        try:
            value: int = _raw_semctl(semid, self._index, cmd)
        except OSError as exc:
            self._set._translate(exc)
            raise
        return value

    @property
    def value(self) -> int:
        """The current value (``GETVAL``).

        Setting it (``SETVAL``, 0..SEMVMX) also clears every process's undo
        adjustment for this semaphore, so do not set the value of a lock
        that someone may hold.
        """
        return self._get(GETVAL)

    @value.setter
    def value(self, value: int) -> None:
        semid = self._set._check_open()
        _check_value(value)
        try:
            _raw_semctl(semid, self._index, SETVAL, value)
        except OSError as exc:
            self._set._translate(exc)
            raise

    @property
    def ncount(self) -> int:
        """Processes (threads) waiting for the value to increase (``GETNCNT``)."""
        return self._get(GETNCNT)

    @property
    def zcount(self) -> int:
        """Processes (threads) waiting for the value to become 0 (``GETZCNT``)."""
        return self._get(GETZCNT)

    @property
    def pid(self) -> int:
        """Pid of the last process that operated on it (``GETPID``; 0: none)."""
        return self._get(GETPID)

    # -- identity -----------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Semaphore):
            return NotImplemented
        return self._set == other._set and self._index == other._index

    def __hash__(self) -> int:
        return hash((self._set, self._index))

    def __repr__(self) -> str:
        return f"<Semaphore {self._index} of {self._set!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # The set pickles by id; the item is looked up again on arrival.
        return (operator.getitem, (self._set, self._index))


# --------------------------------------------------------------------------
# The set
# --------------------------------------------------------------------------


class SemaphoreSet(_c_sem.SemaphoreSetBase, IPCObject):
    """A System V semaphore set (``semget(2)``).

    - ``key=None``: a new set under a fresh random key; ``key=IPC_PRIVATE``
      (0): a new private set; an int: open the existing set, or with
      ``create=True`` create it if missing, with ``exclusive=True`` require
      creating it.
    - ``nsems``: the number of semaphores (fixed at creation; an existing set
      must have at least that many).
    - ``initial``: an int for every semaphore, or a sequence of ``nsems``
      ints (0..SEMVMX), applied **only if this call created the set**.
      Opening an existing set never changes its values.
    - ``init_timeout``: when this call opens a set that another sysvipc
      process is still creating (values not yet set), wait until it is
      initialised, as long as the set is younger than this many seconds
      (from its ``sem_ctime``); past that, raise :class:`TimeoutError`.
      Sets made by other programs (``ipcmk -S``, C, Perl, sysv_ipc), which
      never run the creation handshake, open at once, as do initialised
      ones.  0 or None: never wait.
    - ``remove_on_close``: :meth:`close` also removes the set.

    ``with s:`` manages the *handle*, like a file: it closes it at the end
    of the block and locks nothing.  The lock is ``with s[i]:`` (or
    ``with Semaphore(key):``); ``sysv_ipc``'s ``with sem:`` is that one.

    >>> from sysvipc._semaphore import SemaphoreSet
    >>> s = SemaphoreSet(nsems=3, initial=[1, 2, 3])
    >>> len(s), s.values, s[-1].value
    (3, [1, 2, 3], 3)
    >>> s.remove()
    """

    _kind = "semaphore set"
    _nsems: int = 0

    def __init__(
        self,
        key: int | None = None,
        nsems: int = 1,
        *,
        create: bool = False,
        exclusive: bool = False,
        mode: int = 0o600,
        initial: int | Sequence[int] = 0,
        remove_on_close: bool = False,
        init_timeout: float | None = 10.0,
    ) -> None:
        if isinstance(nsems, bool) or not isinstance(nsems, int):
            raise TypeError(f"nsems must be an int, not {type(nsems).__name__}")
        if nsems < 1:
            raise ValueError(f"nsems must be at least 1, got {nsems}")
        semmsl = _kernel_sem_limits()[0]
        if nsems > semmsl:
            raise ValueError(
                f"nsems={nsems} is above the kernel's limit SEMMSL={semmsl} "
                "(/proc/sys/kernel/sem, field 1)"
            )
        if isinstance(initial, int) and not isinstance(initial, bool):
            values = [_check_value(initial, "initial")] * nsems
        else:
            values = _check_values(initial, nsems, "initial")
        wait = _check_init_timeout(init_timeout)

        try:
            key, semid, created = get_or_create(
                # Creating: mark the set as being initialised (see _INITIALISING).
                lambda k, f, m: _c_sem.semget(k, nsems, f, m | _INITIALISING if f else m),
                key,
                create,
                exclusive,
                mode,
            )
        except OSError as exc:
            if exc.errno == errno.EINVAL and isinstance(key, int):
                # nsems <= SEMMSL was checked: the existing set is smaller.
                raise ValueError(
                    f"the semaphore set of key {canonical_key(key):#010x} has fewer than nsems={nsems} semaphores"
                ) from exc
            raise

        if created:
            try:
                _initialise(semid, values)
                _clear_mark(semid, mode)
            except BaseException:
                # Nobody else can use a set that is never initialised.
                try:
                    _raw_semctl(semid, 0, IPC_RMID)
                except OSError:
                    pass
                raise
            self._nsems = nsems
        else:
            assert key is not None
            try:
                self._nsems = _wait_initialised(semid, key, wait).sem_nsems
            except PermissionError:
                if wait:
                    raise  # cannot see sem_otime without read permission
                self._nsems = nsems  # no read permission: at least this many
        self._init_handle(key, semid, created, remove_on_close)

    @classmethod
    def from_id(cls, semid: int) -> SemaphoreSet:
        """Open the set with id ``semid`` (from :attr:`id`, ``ipcs -s``, or
        another process).  Does not wait for initialisation; never removes
        the set at close.  Pickling a set sends its id and calls this."""
        from ._structs import SemidDs

        ds = SemidDs._make(_raw_semctl(semid, 0, IPC_STAT))
        self = cls.__new__(cls)
        self._nsems = ds.sem_nsems
        self._init_handle(ds.sem_perm.key, semid, False, False)
        return self

    # -- errors -------------------------------------------------------------

    def _translate(self, exc: OSError) -> None:
        """Raise the clearer error for a failed call on this set, if any
        (the caller re-raises ``exc`` otherwise)."""
        self._removed(exc)  # the handles' one rule for a removed set
        if exc.errno == errno.ERANGE:
            raise ValueError(
                f"the operation would take a value of semaphore set {self._id} above "
                f"SEMVMX ({SEMVMX}), or its undo adjustment beyond -{SEMVMX}..{SEMVMX}"
            ) from exc

    def _raise_closed(self) -> NoReturn:
        # The trap for code from sysv_ipc, where ``with sem:`` locks.
        raise ValueError(
            "operation on a closed semaphore set (note: `with semset:` closes the handle "
            "when the block ends and does not lock; for a lock use `with semset[i]:` or "
            "sysvipc.Semaphore(key))"
        )

    def _index_of(self, index: int) -> int:
        i = operator.index(index)
        n = self._nsems
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"semaphore index {index} out of range for a set of {n}")
        return i

    # -- the semaphores -----------------------------------------------------

    def __len__(self) -> int:
        """The number of semaphores (fixed when the set was created)."""
        self._check_open()
        return self._nsems

    def __bool__(self) -> bool:
        return True  # even when closed (len() would raise)

    def __getitem__(self, index: int) -> Semaphore:
        """``s[i]``: the semaphore at ``i`` (negative counts from the end)."""
        return Semaphore(self, index)

    def __iter__(self) -> Iterator[Semaphore]:
        self._check_open()
        return (Semaphore(self, i) for i in range(self._nsems))

    @property
    def values(self) -> list[int]:
        """All values at once (``GETALL``); assign a sequence of exactly
        ``len(s)`` ints in 0..SEMVMX to set them all atomically (``SETALL``,
        which also clears every process's undo adjustments)."""
        semid = self._check_open()
        try:
            values: list[int] = _raw_semctl(semid, 0, GETALL)
        except OSError as exc:
            self._translate(exc)
            raise
        return values

    @values.setter
    def values(self, values: Sequence[int]) -> None:
        semid = self._check_open()
        checked = _check_values(values, self._nsems, "values")
        try:
            _raw_semctl(semid, 0, SETALL, checked)
        except OSError as exc:
            self._translate(exc)
            raise

    def op(
        self,
        ops: Iterable[tuple[int, int] | tuple[int, int, int]],
        *,
        block: bool = True,
        timeout: float | None = None,
        undo: bool = False,
    ) -> None:
        """Apply ``[(index, delta), ...]`` or ``[(index, delta, flags), ...]``
        in one ``semop``: all of them, or (when one would wait and the call
        gives up) none of them.

        ``delta`` < 0 waits until the value is at least ``-delta`` and
        subtracts; > 0 adds; 0 waits for the value to be 0.  ``flags`` per
        operation: ``IPC_NOWAIT``, ``SEM_UNDO``; ``block=False`` and
        ``undo=True`` apply to every operation.  ``block=False`` raises
        :class:`BlockingIOError` instead of waiting, an expired ``timeout``
        :class:`TimeoutError`; in both cases no value has changed.

        >>> from sysvipc._semaphore import SemaphoreSet
        >>> s = SemaphoreSet(nsems=2, initial=[1, 0])
        >>> s.op([(0, -1), (1, -1)], block=False)  # s[1] is 0: nothing happens
        Traceback (most recent call last):
          ...
        BlockingIOError: [Errno 11] Resource temporarily unavailable: semaphore set with id ... (originated from semop)
        >>> s.values
        [1, 0]
        >>> s.remove()
        """
        semid = self._check_open()
        flags = _block_flags(block, timeout, undo)
        checked: list[tuple[int, int] | tuple[int, int, int]] = []
        for op in ops:
            if isinstance(op, (str, bytes)) or not isinstance(op, Sequence):
                raise TypeError(
                    f"each operation must be an (index, delta[, flags]) tuple, not {op!r}"
                )
            if len(op) not in (2, 3):
                raise ValueError(f"each operation must be (index, delta[, flags]), got {op!r}")
            index = self._index_of(op[0])
            delta = op[1]
            if isinstance(delta, bool) or not isinstance(delta, int):
                raise TypeError(f"delta must be an int, not {type(delta).__name__}")
            if not SHORT_MIN <= delta <= SHORT_MAX:
                raise ValueError(
                    f"delta must fit a C short ({SHORT_MIN}..{SHORT_MAX}), got {delta}"
                )
            if len(op) == 3:
                op_flags = op[2]
                if isinstance(op_flags, bool) or not isinstance(op_flags, int):
                    raise TypeError(f"flags must be an int, not {type(op_flags).__name__}")
                if op_flags & ~_OP_FLAGS or op_flags < 0:
                    raise ValueError(
                        f"flags may hold only IPC_NOWAIT and SEM_UNDO, got {op_flags:#x}"
                    )
                checked.append((index, delta, op_flags))
            else:
                checked.append((index, delta))
        if not checked:
            raise ValueError("ops must hold at least one operation")
        try:
            if len(checked) > 65535:  # nsops is an unsigned short in the C core
                raise OSError(errno.E2BIG, "too many operations")
            _semop(semid, checked, timeout=timeout, flags=flags)
        except OSError as exc:
            if exc.errno == errno.E2BIG:
                # The kernel checks SEMOPM before anything else: nothing changed.
                limit = _kernel_sem_limits()[2]
                raise ValueError(
                    f"{len(checked)} operations in one semop: more than the kernel's limit "
                    f"SEMOPM={limit} (/proc/sys/kernel/sem, field 3)"
                ) from exc
            self._translate(exc)
            raise

    # -- the set as a whole -------------------------------------------------

    def stat(self) -> SemaphoreSetStat:
        """The set's ``semid_ds`` fields and every semaphore's
        ``Sem(semval, sempid, semncnt, semzcnt)``.

        >>> from sysvipc._semaphore import SemaphoreSet
        >>> s = SemaphoreSet(nsems=2, initial=[4, 0], mode=0o640)
        >>> st = s.stat()
        >>> oct(st.sem_perm.mode & 0o777), st.sem_nsems, [sem.semval for sem in st.semaphores]
        ('0o640', 2, [4, 0])
        >>> s.remove()
        """
        from ._structs import Sem, SemaphoreSetStat, SemidDs

        semid = self._check_open()
        try:
            ds = SemidDs._make(_raw_semctl(semid, 0, IPC_STAT))
            values: list[int] = _raw_semctl(semid, 0, GETALL)
            sems = tuple(
                Sem(
                    values[i],
                    _raw_semctl(semid, i, GETPID),
                    _raw_semctl(semid, i, GETNCNT),
                    _raw_semctl(semid, i, GETZCNT),
                )
                for i in range(ds.sem_nsems)
            )
        except OSError as exc:
            self._translate(exc)
            raise
        return SemaphoreSetStat(ds.sem_perm, ds.sem_otime, ds.sem_ctime, ds.sem_nsems, sems)

    def set(self, mode: int | None = None, uid: int | None = None, gid: int | None = None) -> None:
        """Change the permission bits, owner and/or group (``IPC_SET``);
        None keeps the current one.  Only the owner, creator or root may."""
        semid = self._check_open()
        if mode is not None:
            check_mode(mode)
        try:
            _raw_semctl(semid, 0, IPC_SET, (uid, gid, mode))
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                # Also the answer to a uid or gid the kernel cannot map.
                try:
                    _raw_semctl(semid, 0, IPC_STAT)
                except OSError as gone:
                    self._translate(gone)
                raise
            self._translate(exc)
            raise

    def _rmid(self) -> None:
        _raw_semctl(self._id, 0, IPC_RMID)

    def remove(self) -> None:
        """Remove the set (``IPC_RMID``) now, for every process: blocked
        operations fail with :class:`~sysvipc.IdentifierRemovedError`, and so
        does any later one.  The handle stays open until :meth:`close`."""
        self._check_open()
        try:
            self._rmid()
        except OSError as exc:
            self._translate(exc)
            raise

    def _repr_details(self) -> str:
        return f" nsems={self._nsems}"

    def __reduce__(self) -> tuple[Any, ...]:
        self._check_open()
        return super().__reduce__()
