"""Every OSError names the object (kind, key or id) and, where the kernel's
reason is known, says it in words, keeping errno and the exception type."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
from conftest import Tracker

import sysvipc
from sysvipc import lowlevel as ll


def test_missing_key_names_the_key(key: int) -> None:
    for cls, kind in ((sysvipc.MessageQueue, "message queue"),
                      (sysvipc.SemaphoreSet, "semaphore set")):  # fmt: skip
        with pytest.raises(FileNotFoundError) as info:
            cls(key)
        assert info.value.errno == errno.ENOENT
        assert f"{kind} with key {key:#010x}" in str(info.value)
    with pytest.raises(FileNotFoundError, match=f"shared memory segment with key {key:#010x}"):
        sysvipc.SharedMemory(key)


def test_existing_key_says_so(ipc: Tracker, key: int) -> None:
    ipc.msgget(key)
    with pytest.raises(FileExistsError) as info:
        sysvipc.MessageQueue(key, exclusive=True)
    assert info.value.errno == errno.EEXIST
    assert f"message queue with key {key:#010x}: one already exists" in str(info.value)


def test_larger_size_than_the_segment_says_so(ipc: Tracker, key: int) -> None:
    ipc.shmget(4096, key=key)
    with pytest.raises(OSError) as info:
        sysvipc.SharedMemory(key, size=10**8, create=True)
    assert info.value.errno == errno.EINVAL and type(info.value) is OSError
    text = str(info.value)
    assert f"shared memory segment with key {key:#010x}" in text
    assert "larger than the existing segment's" in text
    assert "(originated from shmget)" in text


def test_from_id_on_a_removed_object_names_the_id(ipc: Tracker) -> None:
    shmid = ll.shmget(ll.IPC_PRIVATE, 4096, ll.IPC_CREAT)
    ll.shmctl(shmid, ll.IPC_RMID)
    with pytest.raises(OSError) as info:
        sysvipc.SharedMemory.from_id(shmid)
    assert f"shared memory segment with id {shmid}" in str(info.value)
    assert "removed" in str(info.value)


def test_permission_is_said_in_words(ipc: Tracker, key: int) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to make an object another user cannot use")
    msqid = ipc.msgget(key, mode=0o600)
    code = (
        "import os, sysvipc\n"
        "os.setgid(65534); os.setuid(65534)\n"
        f"try: sysvipc.MessageQueue({key}).send(b'x')\n"
        "except PermissionError as e: print(e.errno, e)\n"
    )
    out = subprocess.run(
        ["python3" if False else __import__("sys").executable, "-c", code],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{errno.EACCES} ")
    assert f"message queue with id {msqid}" in out.stdout
    assert "permission bits do not grant" in out.stdout


def test_full_queue_and_empty_queue(ipc: Tracker) -> None:
    q = sysvipc.MessageQueue.from_id(ipc.msgget())
    with pytest.raises(BlockingIOError) as info:
        q.receive(block=False)
    assert f"message queue with id {q.id}" in str(info.value)
    assert "no message of the requested type" in str(info.value)
    q.close()


def test_removed_queue_names_the_queue() -> None:
    q = sysvipc.MessageQueue()
    q.remove()
    for call in (lambda: q.send(b"x"), lambda: q.receive(block=False)):
        with pytest.raises(sysvipc.IdentifierRemovedError) as info:
            call()
        assert info.value.errno == errno.EIDRM
        assert f"message queue with id {q.id}" in str(info.value)
    q.close()
