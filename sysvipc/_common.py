"""What the three IPC classes share: the key rules and the handle's life.

A handle (``MessageQueue``, ``SemaphoreSet``, ``SharedMemory``) names one
kernel object by id.  ``close()`` ends the handle; only ``remove()`` (or
``remove_on_close=True`` chosen at construction) destroys the object.
Nothing here ever removes an object this handle did not create unless asked,
and "created" means created by this process: a forked child inherits the
handle, not the decision (see ``_made_here``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn, TypeVar

from ._sysvipc import IPC_CREAT, IPC_EXCL, IPC_PRIVATE, _removed_error, canonical_key

__all__ = ["IPCObject", "check_mode", "get_or_create", "random_key"]

_Self = TypeVar("_Self", bound="IPCObject")
_T = TypeVar("_T")

KEY_MAX = 2**31 - 1
"""Random keys are drawn from 1..KEY_MAX: positive in both spellings."""


def random_key() -> int:
    """A key drawn from os.urandom over the positive key_t range (never 0)."""
    while True:
        key = int.from_bytes(os.urandom(4), "little") & KEY_MAX
        if key != IPC_PRIVATE:
            return key


def check_mode(mode: int) -> None:
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise TypeError(f"mode must be an int, not {type(mode).__name__}")
    if not 0 <= mode <= 0o777:
        raise ValueError(f"mode must be permission bits in 0..0o777, got {mode:#o}")


def get_or_create(
    get: Callable[[int, int, int], int],
    key: int | None,
    create: bool,
    exclusive: bool,
    mode: int,
) -> tuple[int, int, bool]:
    """Apply the key rules; return ``(key, id, created)``.

    ``get(key, flags, mode)`` is the ``*get`` syscall with everything else
    bound.  ``mode`` is passed only when creating: opening asks for no
    particular access (the kernel checks access on each operation), so a
    user with read permission alone can still open the object.

    Keys are 32 bits, in either spelling (``0..0xffffffff`` as ipcs prints
    them, or the signed ``key_t`` range); the returned key is the canonical
    unsigned one.

    - ``key=None``: a new object under a fresh random key (IPC_CREAT|IPC_EXCL,
      retried on collision).
    - ``key=IPC_PRIVATE``: a new private object.
    - an int: open the existing object; ``create=True`` creates it when
      missing; ``exclusive=True`` requires creating it.
    """
    if key is not None:
        # The C core owns the key's type and range check, and its spelling:
        # the handle keeps the canonical (unsigned) key.
        key = canonical_key(key)
    check_mode(mode)
    if key is None:
        for _ in range(1000):
            candidate = random_key()
            try:
                return candidate, get(candidate, IPC_CREAT | IPC_EXCL, mode), True
            except FileExistsError:
                continue
        raise FileExistsError("no free random key found in 1000 tries")
    if key == IPC_PRIVATE:
        return key, get(key, IPC_CREAT, mode), True
    if exclusive:
        return key, get(key, IPC_CREAT | IPC_EXCL, mode), True
    if not create:
        return key, get(key, 0, 0), False
    # Create if missing, and know whether this call did (for initial values
    # and remove_on_close): try exclusive first, then open.
    for _ in range(1000):
        try:
            return key, get(key, IPC_CREAT | IPC_EXCL, mode), True
        except FileExistsError:
            pass
        try:
            return key, get(key, 0, 0), False
        except FileNotFoundError:
            continue  # removed in between: try creating again
    raise RuntimeError(f"key {key:#010x} keeps appearing and disappearing")


class IPCObject:
    """Base of the handle classes: identity, closing, pickling, repr."""

    _kind: ClassVar[str] = "IPC object"
    # Class-level defaults, so close() and repr work on a half-built object.
    _id: int = -1
    _key: int = IPC_PRIVATE
    _closed: bool = True
    _created: bool = False
    _remove_on_close: bool = False
    # The process that made this handle.  A forked child inherits the handle
    # but neither the creation nor remove_on_close: every decision of that
    # kind asks _made_here(), so it is taken in this process only.
    _owner_pid: int = 0

    def _init_handle(self, key: int, ident: int, created: bool, remove_on_close: bool) -> None:
        self._key = key
        self._id = ident
        self._created = created
        self._owner_pid = os.getpid()
        self._remove_on_close = remove_on_close
        self._closed = False

    def _made_here(self) -> bool:
        """True in the process that made this handle, False in a forked
        child that inherited it."""
        return self._owner_pid == os.getpid()

    @property
    def id(self) -> int:
        """The kernel's identifier for the object."""
        return self._id

    @property
    def key(self) -> int:
        """The key, in its canonical form: the unsigned 32-bit value
        ``0..0xffffffff`` that ``ipcs`` prints (``hex(q.key)`` reads as in
        ``ipcs``), whichever spelling was passed in.  ``IPC_PRIVATE`` (0)
        for private objects."""
        return self._key

    @property
    def created(self) -> bool:
        """True if this handle created the object, in this process: False in
        a forked child, which inherits the handle but did not create the
        object."""
        return self._created and self._made_here()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> int:
        if self._closed:
            self._raise_closed()
        return self._id

    def _raise_closed(self) -> NoReturn:
        raise ValueError(f"operation on a closed {self._kind}")

    # Errors: every method of every class goes through _call or _removed,
    # so an object removed under the handle is IdentifierRemovedError
    # everywhere.  The rule itself is the C core's (_removed_error), shared
    # with the methods written in C.

    def _removed(self, exc: OSError) -> None:
        """Raise :class:`~sysvipc.IdentifierRemovedError` if ``exc``, from a
        call on this handle's id, means that the object is gone; return
        otherwise (the caller re-raises ``exc``)."""
        removed = _removed_error(exc, self._id)
        if removed is not exc:
            raise removed from None

    def _call(self, func: Callable[..., _T], *args: Any) -> _T:
        """``func(id, *args)`` on this open handle, with the handle's error
        rule (see :meth:`_removed`)."""
        ident = self._check_open()
        try:
            return func(ident, *args)
        except OSError as exc:
            self._removed(exc)
            raise

    def _rmid(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def remove(self) -> None:
        """Remove the object from the system (IPC_RMID).

        Processes blocked on it are woken with
        :class:`~sysvipc.IdentifierRemovedError`.  The handle stays open, but
        further operations fail.  On a closed handle: :class:`ValueError`.
        """
        self._check_open()
        try:
            self._rmid()
        except OSError as exc:
            self._removed(exc)
            raise

    def close(self) -> None:
        """Close the handle.  The object itself stays unless this handle was
        made with ``remove_on_close=True`` in this process: a forked child's
        close never removes it.  Closing twice
        does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._remove_on_close and self._made_here():
            try:
                self._rmid()
            except (FileNotFoundError, OSError):
                pass  # already removed by someone else

    def __enter__(self: _Self) -> _Self:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IPCObject):
            return NotImplemented
        return type(self)._kind == type(other)._kind and self._id == other._id

    def __hash__(self) -> int:
        return hash((self._kind, self._id))

    def _repr_details(self) -> str:
        return ""

    def __repr__(self) -> str:
        state = " closed" if self._closed else self._repr_details()
        return f"<{type(self).__qualname__} id={self._id} key={self._key:#010x}{state}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Re-open the same object by id in the receiving process.
        return (type(self).from_id, (self._id,))

    @classmethod
    def from_id(cls: type[_Self], ident: int) -> _Self:  # pragma: no cover
        raise NotImplementedError
