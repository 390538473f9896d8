"""SharedMemory: an attached System V shared memory segment."""

from __future__ import annotations

import errno
import operator
from typing import TYPE_CHECKING, Any, Literal

from . import _sysvipc as _c
from ._common import IPCObject, get_or_create
from ._sysvipc import (
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    SHM_HUGE_1GB,
    SHM_HUGE_2MB,
    SHM_HUGETLB,
    SHM_LOCK,
    SHM_NORESERVE,
    SHM_RDONLY,
    SHM_UNLOCK,
    SharedMemoryBase,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from _typeshed import ReadableBuffer, WriteableBuffer

    from ._structs import ShmidDs

__all__ = ["SharedMemory"]

_HUGE_PAGE_FLAGS = {None: 0, 2 << 20: SHM_HUGE_2MB, 1 << 30: SHM_HUGE_1GB}


class SharedMemory(SharedMemoryBase, IPCObject):
    """A System V shared memory segment, attached to this process.

    The object itself is a buffer: ``memoryview(shm)``, ``bytes(shm)`` and
    ``numpy.frombuffer(shm, ...)`` are zero-copy views of the segment, and
    ``shm.buf`` is a memoryview of all of it.

    >>> with SharedMemory(size=4096, remove_on_close=True) as shm:
    ...     shm.buf[:5] = b"hello"
    ...     shm.read(5)
    b'hello'

    **Lifetime.** :meth:`close` (or leaving ``with``, or garbage collection)
    ends the handle at once: its methods raise :class:`ValueError` and it
    makes no new views.  The mapping itself stays until nothing can reach it
    any more (memoryviews, numpy arrays, ctypes objects, slices of them, and
    a closed handle that exported a buffer itself, until that handle object
    goes: ``np.ndarray(buffer=shm)`` keeps only the handle), so existing
    views keep working on the segment itself, and ``shm_nattch`` falls when
    the last one goes.  Nothing can crash by outliving the handle.

    Key rules as for :class:`MessageQueue`.  ``size`` is required to create
    a segment (new segments are zero-filled by the kernel); when opening,
    0 means "whatever size it has".  ``readonly=True`` attaches with
    SHM_RDONLY: every view is read-only and writing raises.
    ``remove_at_last_detach=True`` marks a segment this call created for
    removal right after attaching: it disappears when the last process
    detaches or dies, with no tracker process (other processes can still
    attach it by id, e.g. by unpickling this object, but no longer by key).
    """

    _kind = "shared memory segment"
    _size: int = 0
    _readonly: bool = False

    def __init__(
        self,
        key: int | None = None,
        size: int = 0,
        *,
        create: bool = False,
        exclusive: bool = False,
        mode: int = 0o600,
        readonly: bool = False,
        hugetlb: bool = False,
        huge_page_size: int | None = None,
        noreserve: bool = False,
        remove_on_close: bool = False,
        remove_at_last_detach: bool = False,
    ) -> None:
        size = operator.index(size)
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        if noreserve and (hugetlb or huge_page_size is not None):
            # A huge-page segment without a reservation gets SIGBUS at first
            # touch when no huge page is free: refuse rather than crash.
            raise ValueError("hugetlb and noreserve cannot be combined (SIGBUS risk)")
        if huge_page_size not in _HUGE_PAGE_FLAGS:
            raise ValueError("huge_page_size must be None, 2 MiB (2 << 20) or 1 GiB (1 << 30)")
        extra = 0
        if hugetlb or huge_page_size is not None:
            extra |= SHM_HUGETLB | _HUGE_PAGE_FLAGS[huge_page_size]
        if noreserve:
            extra |= SHM_NORESERVE
        creating = key is None or key == _c.IPC_PRIVATE or create or exclusive
        if creating and size == 0 and (key is None or key == _c.IPC_PRIVATE or exclusive):
            raise ValueError("size must be > 0 to create a segment")

        def get(k: int, flags: int, m: int) -> int:
            if flags & _c.IPC_CREAT:
                if size == 0:
                    # create=True, size 0: open the segment if it exists,
                    # since there is nothing to create it with.
                    _c.shmget(k, 0, 0, 0)  # FileNotFoundError if missing...
                    raise FileExistsError  # ...else get_or_create opens it
                flags |= extra
            try:
                return _c.shmget(k, size, flags, m)
            except OSError as e:
                if extra & SHM_HUGETLB and e.errno in (errno.EINVAL, errno.ENOMEM, errno.EPERM):
                    raise OSError(
                        e.errno,
                        f"{e.strerror}; the kernel refused a huge-page segment "
                        "(see /proc/sys/vm/nr_hugepages and hugetlb_shm_group)",
                    ) from e
                raise

        try:
            key, shmid, created = get_or_create(get, key, create, exclusive, mode)
        except FileNotFoundError:
            if create and size == 0:
                raise ValueError("size must be > 0 to create a segment") from None
            raise
        try:
            self._attach(shmid, readonly)
        except BaseException:
            if created:  # never remove a segment this call did not create
                _c.shmctl(shmid, IPC_RMID)
            raise
        self._init_handle(key, shmid, created, remove_on_close)
        if remove_at_last_detach and created:
            _c.shmctl(shmid, IPC_RMID)

    def _attach(self, shmid: int, readonly: bool) -> None:
        attachment = _c.shmat(shmid, SHM_RDONLY if readonly else 0)
        self._attachment = attachment
        self._size = attachment.size
        self._readonly = readonly

    @classmethod
    def from_id(cls, shmid: int, *, readonly: bool = False) -> SharedMemory:
        """Attach an existing segment by its id."""
        from ._structs import ShmidDs

        st = ShmidDs._make(_c.shmctl(shmid, IPC_STAT))
        self = cls.__new__(cls)
        self._attach(shmid, readonly)
        self._init_handle(st.shm_perm.key, shmid, False, False)
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # Re-attach by id in the receiving process, read-only if this was.
        return (_from_id, (type(self), self._id, self._readonly))

    # -- the memory ---------------------------------------------------------

    def _mapping(self) -> _c.Attachment:
        attachment = self._attachment
        if self._closed or attachment is None:
            self._raise_closed()
        return attachment

    @property
    def buf(self) -> memoryview:
        """A new memoryview of the whole segment (read-only for a read-only
        attachment).  It stays valid after :meth:`close`; releasing it
        affects no other view."""
        return memoryview(self._mapping())

    @property
    def size(self) -> int:
        """The segment's size in bytes."""
        return self._size

    @property
    def readonly(self) -> bool:
        """True if attached read-only (SHM_RDONLY)."""
        return self._readonly

    def __len__(self) -> int:
        return self._size

    def read(self, size: int | None = None, offset: int = 0) -> bytes:
        """A copy of ``size`` bytes (to the end by default) from ``offset``."""
        return self._mapping().read(size, offset)

    def read_into(self, buffer: WriteableBuffer, offset: int = 0) -> int:
        """Fill ``buffer`` from ``offset``; return the number of bytes."""
        return self._mapping().read_into(buffer, offset)

    def write(self, data: ReadableBuffer, offset: int = 0) -> int:
        """Copy ``data`` into the segment at ``offset``; return its length.
        :class:`PermissionError` on a read-only attachment."""
        return self._mapping().write(data, offset)

    def ndarray(
        self,
        dtype: npt.DTypeLike,
        shape: int | tuple[int, ...] | None = None,
        offset: int = 0,
        order: Literal["C", "F"] = "C",
    ) -> np.ndarray[Any, Any]:
        """A zero-copy numpy array over the segment.

        ``shape`` defaults to as many items as fit after ``offset``.  The
        array must lie inside the segment and ``offset`` must suit the
        dtype's alignment.  The array keeps the mapping alive by itself.
        """
        try:
            import numpy as np
        except ImportError:
            raise ModuleNotFoundError(
                "SharedMemory.ndarray needs numpy: pip install 'sysvipc[numpy]'"
            ) from None
        mapping = self._mapping()
        dt = np.dtype(dtype)
        offset = operator.index(offset)
        if not 0 <= offset <= self._size:
            raise ValueError(f"offset {offset} is outside the {self._size}-byte segment")
        if dt.hasobject:
            # Object fields would read segment bytes as PyObject pointers:
            # whoever can write the segment could crash this process.
            raise TypeError(f"dtype {dt} holds Python objects, which cannot live in shared memory")
        if dt.itemsize == 0:
            raise ValueError(f"dtype {dt} has no size")
        if shape is None:
            shape = ((self._size - offset) // dt.itemsize,)
        elif isinstance(shape, int):
            shape = (shape,)
        shape = tuple(operator.index(n) for n in shape)
        if any(n < 0 for n in shape):
            raise ValueError(f"negative dimension in shape {shape}")
        count = 1
        for n in shape:
            count *= n
        nbytes = count * dt.itemsize
        if nbytes > self._size - offset:
            raise ValueError(
                f"an array of {nbytes} bytes at offset {offset} exceeds the "
                f"{self._size}-byte segment"
            )
        if offset % dt.alignment:
            raise ValueError(f"offset {offset} is not aligned for {dt} (alignment {dt.alignment})")
        if order not in ("C", "F"):
            raise ValueError("order must be 'C' or 'F'")
        array: np.ndarray[Any, Any] = np.ndarray(
            shape, dtype=dt, buffer=memoryview(mapping), offset=offset, order=order
        )
        return array

    # -- control ------------------------------------------------------------

    def stat(self) -> ShmidDs:
        """The segment's :class:`~sysvipc.ShmidDs` (IPC_STAT)."""
        from ._structs import ShmidDs

        return ShmidDs._make(self._call(_c.shmctl, IPC_STAT))

    def set(
        self, *, mode: int | None = None, uid: int | None = None, gid: int | None = None
    ) -> None:
        """Change the owner or permissions (IPC_SET); others stay."""
        self._call(_c.shmctl, IPC_SET, (uid, gid, mode))

    def lock(self) -> None:
        """Lock the segment in memory (SHM_LOCK; needs CAP_IPC_LOCK or
        enough RLIMIT_MEMLOCK)."""
        self._call(_c.shmctl, SHM_LOCK)

    def unlock(self) -> None:
        """Undo :meth:`lock` (SHM_UNLOCK)."""
        self._call(_c.shmctl, SHM_UNLOCK)

    def _rmid(self) -> None:
        _c.shmctl(self._id, IPC_RMID)

    def remove(self) -> None:
        """Mark the segment for destruction (IPC_RMID): it goes when the
        last process detaches.  This handle stays attached until closed."""
        super().remove()

    def close(self) -> None:
        """Close the handle.  The mapping stays while views of it exist (and,
        if this handle exported a buffer itself, while the handle object
        lives) and goes with the last one; the segment stays unless this
        handle was made with ``remove_on_close=True``."""
        if self._closed:
            return
        self._close_mapping()
        super().close()

    def _repr_details(self) -> str:
        return f" size={self._size}" + (" readonly" if self._readonly else "")


def _from_id(cls: type[SharedMemory], shmid: int, readonly: bool) -> SharedMemory:
    return cls.from_id(shmid, readonly=readonly)
