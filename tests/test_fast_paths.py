"""The hot paths' shortcuts keep every promise of the general paths.

``send()`` of bytes, ``receive()`` without a timeout, keyword arguments and
the ``Message`` a receive returns each have a shortcut in C (see
docs/benchmarks.md, instruction counts).  These tests pin what must not
change: nothing lost when memory runs out at any allocation of a receive,
keywords matched exactly, and a ``Message`` that behaves like the tuple it is.
"""

from __future__ import annotations

import gc
import importlib.util
import pickle
import sys

import pytest
from conftest import assert_child_ok, run_python

from sysvipc import IPC_PRIVATE, Message, MessageQueue, SemaphoreSet

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="System V IPC is Linux-only"
)


@pytest.fixture
def q() -> MessageQueue:
    with MessageQueue(IPC_PRIVATE, remove_on_close=True) as queue:
        yield queue


@pytest.mark.skipif(importlib.util.find_spec("_testcapi") is None, reason="needs _testcapi")
@pytest.mark.parametrize(
    ("size", "kwargs"),
    [
        (16, "{}"),
        (16, "{'type': 300}"),
        (16, "{'type': -1000}"),
        (16, "{'type': 7, 'except_type': True}"),
        (4096, "{'max_size': 5000}"),
        (8192, "{'block': False}"),
    ],
)
def test_no_allocation_failure_loses_a_message(size: int, kwargs: str) -> None:
    # Every allocation of a receive, in turn, fails (and every one after
    # it): the receive returns the message whole, or raises MemoryError
    # with the message still queued.  Types above 256 need an allocation.
    code = f"""
        import _testcapi, gc
        from sysvipc import IPC_PRIVATE, MessageQueue
        q = MessageQueue(IPC_PRIVATE, remove_on_close=True)
        kwargs = {kwargs}
        recv = q.receive
        outcomes = set()
        for start in range(40):
            payload = bytes([start % 251]) * {size}
            q.send(payload, 300)
            gc.collect()
            _testcapi.set_nomemory(start, 0)
            try:
                m = recv(**kwargs)
            except MemoryError:
                m = None
            finally:
                _testcapi.remove_mem_hooks()
            left = q.stat().msg_qnum
            if m is None:
                assert left == 1, (start, left)
                m = q.receive()
                outcomes.add("MemoryError")
            else:
                assert left == 0, (start, left)
                outcomes.add("received")
            assert m == (payload, 300), (start, len(m.data), m.type)
            assert m.data == payload and m.type == 300
        assert outcomes == {{"MemoryError", "received"}}, outcomes
        q.close()
        print("ok")
    """
    proc = run_python(code, timeout=120)
    assert_child_ok(proc)
    assert proc.stdout.strip() == "ok"


def test_received_message_is_a_plain_tuple_of_bytes_and_int(q: MessageQueue) -> None:
    q.send(b"hello", 5)
    m = q.receive()
    assert isinstance(m, tuple) and type(m) is Message
    assert m == (b"hello", 5) and m.data == b"hello" and m.type == 5
    data, mtype = m
    assert (data, mtype) == (b"hello", 5)
    assert pickle.loads(pickle.dumps(m)) == m
    assert type(pickle.loads(pickle.dumps(m))) is Message
    # It holds a bytes and an int: nothing for the garbage collector to do.
    assert not gc.is_tracked(m)
    with pytest.raises(AttributeError):
        m.data = b"other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del m.type  # type: ignore[misc]


def test_message_made_from_python_may_hold_anything() -> None:
    m = Message([1], 2)  # type: ignore[arg-type]
    assert gc.is_tracked(m)
    m.data.append(m)  # type: ignore[attr-defined]  # a cycle, collected
    del m
    gc.collect()


def test_deeply_nested_messages_are_freed_without_crashing() -> None:
    proc = run_python(
        """
        from sysvipc import Message
        m = Message(b"", 1)
        for _ in range(1_000_000):
            m = Message(m, 1)
        del m
        print("ok")
        """
    )
    assert_child_ok(proc)


def test_send_accepts_what_it_did(q: MessageQueue) -> None:
    big = b"z" * 8192
    for data in (b"", b"x", bytearray(b"ab"), memoryview(b"abc"), big):
        q.send(data)
        assert q.receive().data == bytes(data)
    with pytest.raises(BlockingIOError):
        q.receive(block=False)


@pytest.mark.parametrize(
    "name",
    ["typ", "type\x00", "type\x00x", "tÿpe", "t\u0101pe", "", "types", "TYPE"],
)
def test_keywords_match_exactly(q: MessageQueue, name: str) -> None:
    q.send(b"x", 1)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        q.receive(**{name: 1})
    with SemaphoreSet(IPC_PRIVATE, 1, initial=1, remove_on_close=True) as s:
        with pytest.raises(TypeError, match="unexpected keyword argument"):
            s[0].acquire(**{name.replace("type", "undo"): True})
        assert s[0].value == 1


def test_keywords_given_as_str_subclass_still_match(q: MessageQueue) -> None:
    class Name(str):
        pass

    q.send(b"x", 4)
    assert q.receive(**{Name("type"): 4}) == (b"x", 4)
    with SemaphoreSet(IPC_PRIVATE, 1, initial=1, remove_on_close=True) as s:
        assert s[0].acquire(**{Name("undo"): True}) is True
        s[0].release(undo=True)
        assert s[0].value == 1
