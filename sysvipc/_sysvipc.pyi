"""Type stubs for the C core, sysvipc._sysvipc."""

from collections.abc import Sequence
from os import PathLike
from typing import Any, Final, Self, final

from _typeshed import ReadableBuffer, WriteableBuffer
from typing_extensions import disjoint_base

IPC_CREAT: Final[int]
IPC_EXCL: Final[int]
IPC_NOWAIT: Final[int]
IPC_PRIVATE: Final[int]
IPC_RMID: Final[int]
IPC_SET: Final[int]
IPC_STAT: Final[int]
IPC_INFO: Final[int]
MSG_NOERROR: Final[int]
MSG_EXCEPT: Final[int]
MSG_COPY: Final[int]
MSG_STAT: Final[int]
MSG_INFO: Final[int]
MSG_STAT_ANY: Final[int]
SEM_UNDO: Final[int]
GETPID: Final[int]
GETVAL: Final[int]
GETALL: Final[int]
GETNCNT: Final[int]
GETZCNT: Final[int]
SETVAL: Final[int]
SETALL: Final[int]
SEM_STAT: Final[int]
SEM_INFO: Final[int]
SEM_STAT_ANY: Final[int]
SEMVMX: Final[int]
KEY_MIN: Final[int]
KEY_MAX: Final[int]
SHM_RDONLY: Final[int]
SHM_RND: Final[int]
SHM_REMAP: Final[int]
SHM_EXEC: Final[int]
SHM_LOCK: Final[int]
SHM_UNLOCK: Final[int]
SHM_STAT: Final[int]
SHM_INFO: Final[int]
SHM_STAT_ANY: Final[int]
SHM_DEST: Final[int]
SHM_LOCKED: Final[int]
SHM_HUGETLB: Final[int]
SHM_NORESERVE: Final[int]
SHM_HUGE_SHIFT: Final[int]
SHM_HUGE_2MB: Final[int]
SHM_HUGE_1GB: Final[int]
SHM_R: Final[int]
SHM_W: Final[int]
SHMLBA: Final[int]
PAGE_SIZE: Final[int]
WAKEUP_SIGNAL: Final[int]

class IdentifierRemovedError(OSError):
    """The IPC object was removed while in use (errno EIDRM)."""

@final
class Message(tuple[bytes, int]):
    """A received message: a tuple (data, type) with named fields."""

    __match_args__: Final = ("data", "type")
    def __new__(cls, data: bytes | tuple[bytes, int], type: int | None = None) -> Message: ...
    @property
    def data(self) -> bytes: ...
    @property
    def type(self) -> int: ...

@final
class Attachment:
    """A shmat(2) mapping, exported through the buffer protocol."""

    @property
    def address(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def detached(self) -> bool: ...
    @property
    def readonly(self) -> bool: ...
    @property
    def shmid(self) -> int: ...
    @property
    def exports(self) -> int: ...
    def detach(self, /) -> None: ...
    def read(self, /, size: int | None = None, offset: int = 0) -> bytes: ...
    def read_into(self, /, buffer: WriteableBuffer, offset: int = 0) -> int: ...
    def write(self, /, data: ReadableBuffer, offset: int = 0) -> int: ...
    # Python exposes these on 3.12+ only; declared always so that type
    # checkers see a Buffer (stubtest allowlist: tests/stubtest-allowlist.txt).
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...

@disjoint_base
class MessageQueueBase:
    """Base of sysvipc.MessageQueue: its hot paths in C."""

    _id: int
    _closed: bool
    def send(
        self,
        /,
        data: ReadableBuffer,
        type: int = 1,
        *,
        block: bool = True,
        timeout: float | None = None,
    ) -> None: ...
    def receive(
        self,
        /,
        type: int = 0,
        *,
        block: bool = True,
        timeout: float | None = None,
        max_size: int | None = None,
        truncate: bool = False,
        except_type: bool = False,
    ) -> Message: ...
    def receive_into(
        self,
        /,
        buffer: WriteableBuffer,
        type: int = 0,
        *,
        block: bool = True,
        timeout: float | None = None,
        truncate: bool = False,
        except_type: bool = False,
    ) -> tuple[int, int]: ...

@disjoint_base
class SemaphoreSetBase:
    """Base of sysvipc.SemaphoreSet: the id and closed flag."""

    _id: int
    _closed: bool

@disjoint_base
class SemaphoreBase:
    """Base of sysvipc.Semaphore: acquire, release and the with-lock in C."""

    _set: Any
    _index: int
    def acquire(
        self,
        /,
        n: int = 1,
        *,
        block: bool = True,
        timeout: float | None = None,
        undo: bool = False,
    ) -> bool: ...
    def release(self, /, n: int = 1, *, undo: bool = False) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...

@disjoint_base
class SharedMemoryBase:
    """Base of sysvipc.SharedMemory: exports its Attachment's mapping."""

    _attachment: Attachment | None
    def _close_mapping(self, /) -> None: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...

def ftok(path: str | bytes | PathLike[str] | PathLike[bytes], proj_id: int | str, /) -> int: ...
def canonical_key(key: int, /) -> int: ...
def msgget(key: int, flags: int = 0, mode: int = 0o600) -> int: ...
def msgsnd(
    msqid: int,
    data: ReadableBuffer,
    type: int = 1,
    flags: int = 0,
    *,
    timeout: float | None = None,
) -> None: ...
def msgrcv(
    msqid: int,
    max_size: int | None = None,
    type: int = 0,
    flags: int = 0,
    *,
    timeout: float | None = None,
) -> Message: ...
def msgrcv_into(
    msqid: int,
    buffer: WriteableBuffer,
    type: int = 0,
    flags: int = 0,
    *,
    timeout: float | None = None,
) -> tuple[int, int]: ...
def msgctl(msqid: int, cmd: int, arg: tuple[int | None, ...] | None = None) -> Any: ...
def semget(key: int, nsems: int = 0, flags: int = 0, mode: int = 0o600) -> int: ...
def semop(
    semid: int,
    ops: Sequence[tuple[int, int] | tuple[int, int, int]],
    *,
    timeout: float | None = None,
    flags: int = 0,
) -> None: ...
def semop1(
    semid: int, sem_num: int, sem_op: int, sem_flg: int = 0, timeout: float | None = None
) -> None: ...
def semctl(semid: int, semnum: int, cmd: int, arg: Any = None) -> Any: ...
def shmget(key: int, size: int = 0, flags: int = 0, mode: int = 0o600) -> int: ...
def shmat(shmid: int, flags: int = 0) -> Attachment: ...
def shmdt(attachment: Attachment, /) -> None: ...
def shmctl(shmid: int, cmd: int, arg: tuple[int | None, ...] | None = None) -> Any: ...
def _removed_error(exc: BaseException, id: int, /) -> BaseException: ...
