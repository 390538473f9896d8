"""One wait semantics per kind of call (docs/timeouts-signals.md, "Waiting:
one table"), and sysv_ipc's shape of a semaphore whose `with` is the lock."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Tracker

import sysvipc
from sysvipc import MessageQueue, Semaphore, SemaphoreSet


@pytest.fixture
def taken(ipc: Tracker) -> Semaphore:
    s = SemaphoreSet(initial=0)
    ipc.track("sem", s.id)
    return s[0]


def test_acquire_answers_like_threading(taken: Semaphore) -> None:
    assert taken.acquire(block=False) is False
    assert taken.acquire(timeout=0) is False
    assert taken.acquire(timeout=0.01) is False
    assert taken.value == 0  # nothing taken
    taken.release()
    assert taken.acquire(timeout=5) is True
    taken.release()
    assert taken.acquire(block=False) is True
    # The idiom from the standard library works: the branch runs.
    ran = False
    if not taken.acquire(timeout=0.01):
        ran = True
    assert ran


def test_wait_zero_answers_like_event_wait(taken: Semaphore) -> None:
    assert taken.wait_zero(block=False) is True
    taken.release()
    assert taken.wait_zero(block=False) is False
    assert taken.wait_zero(timeout=0.01) is False


def test_op_and_queues_raise(taken: Semaphore, ipc: Tracker) -> None:
    with pytest.raises(BlockingIOError):
        taken.set.op([(0, -1)], block=False)
    with pytest.raises(TimeoutError):
        taken.set.op([(0, -1)], timeout=0.01)
    q = MessageQueue()
    ipc.track("msg", q.id)
    with pytest.raises(BlockingIOError):
        q.receive(block=False)
    with pytest.raises(TimeoutError) as info:
        q.receive(timeout=0.01)
    assert f"message queue with id {q.id}" in str(info.value)
    with pytest.raises(TimeoutError):
        asyncio.run(q.receive_async(timeout=0.01))
    q.close()


def test_errors_still_raise(taken: Semaphore) -> None:
    # Only "not acquired" is False; a removed set is an error.
    taken.set.remove()
    with pytest.raises(sysvipc.IdentifierRemovedError):
        taken.acquire(timeout=0.01)
    with pytest.raises(ValueError, match="timeout makes no sense"):
        taken.acquire(block=False, timeout=1)


def test_semaphore_by_key_is_a_set_of_one_and_with_locks(ipc: Tracker, key: int) -> None:
    sem = Semaphore(key, create=True, initial=1)
    ipc.track("sem", sem.set.id)
    assert len(sem.set) == 1 and sem.index == 0 and sem.set.key == key
    with sem:
        assert sem.value == 0
        assert Semaphore(key).acquire(block=False) is False  # another handle
    assert sem.value == 1
    assert Semaphore(key) == sem
    new = Semaphore()  # a new set under a random key, like SemaphoreSet()
    ipc.track("sem", new.set.id)
    assert new.value == 0 and new.set.created
    with pytest.raises(TypeError, match="takes no index"):
        Semaphore(key, 0)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="needs the index"):
        Semaphore(sem.set)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        Semaphore("key")  # type: ignore[call-overload]
    with pytest.raises(FileNotFoundError):
        Semaphore(key + 1 if key < 2**31 - 1 else 1)


def test_with_on_a_set_closes_and_says_so(ipc: Tracker) -> None:
    s = SemaphoreSet(initial=1)
    ipc.track("sem", s.id)
    with s:
        pass  # a sysv_ipc user meant a lock here
    for call in (lambda: s.values, lambda: s[0], lambda: s.op([(0, -1)])):
        with pytest.raises(ValueError, match=r"`with semset:` closes the handle.*does not lock"):
            call()
    item = SemaphoreSet.from_id(s.id)[0]
    item.set.close()
    with pytest.raises(ValueError, match="with semset\\[i\\]"):
        item.acquire()  # the C fast path gives the same reminder
