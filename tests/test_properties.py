"""Hostile input, part 1 (issue 10): hypothesis property and stateful tests
of the API against models of the kernel objects.

- messages: arbitrary bytes (any bytes-like wrapper) and types round-trip
  through send/receive and send/receive_into;
- semaphores: random sequences of ``op`` (several operations, per-operation
  and whole-call SEM_UNDO, negative indexes), ``acquire``/``release``,
  ``value``/``values`` assignments, checked against a Python model of
  semop(2)'s all-or-nothing semantics, the SEMVMX limit and the undo range;
- shared memory: write/read/read_into/slice assignment at arbitrary offsets
  and sizes, checked against a bytearray;
- a RuleBasedStateMachine of MessageQueue against a model of the kernel's
  queue: send (full queue included), receive with type 0, > 0, < 0 and
  except_type, max_size with and without truncate, receive_into, peek,
  len, ``msg_cbytes``, and ``max_bytes`` changes.

The bounded runs take a few hundred examples each; the ``soak`` variants
(``--soak``) many more.  Every object is removed, even on failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Tracker

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import sysvipc  # noqa: E402
from sysvipc import SEM_UNDO, SEMVMX, MessageQueue, SemaphoreSet, SharedMemory  # noqa: E402

SOAK_FACTOR = int(os.environ.get("SYSVIPC_SOAK_FACTOR", "20"))
LONG_MAX = 2**63 - 1
SHORT_MIN, SHORT_MAX = -(2**15), 2**15 - 1
SEMAEM = SEMVMX  # the kernel's undo range is -(SEMAEM + 1)..SEMAEM
LIMITS = sysvipc.limits()


def examples(bounded: int) -> Any:
    """Parametrize a test with its bounded and its soak example count."""
    return pytest.mark.parametrize(
        "max_examples",
        [
            pytest.param(bounded, id="bounded"),
            pytest.param(
                bounded * SOAK_FACTOR,
                id="soak",
                marks=[pytest.mark.slow, pytest.mark.timeout(3600)],
            ),
        ],
    )


def config(max_examples: int, **kwargs: Any) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **kwargs,
    )


def report(record_property: Callable[[str, object], None], **figures: object) -> None:
    for name, value in figures.items():
        record_property(name, value)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


def as_buffer(kind: str, data: bytes) -> Any:
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(bytearray(b"??" + data + b"??"))[2 : 2 + len(data)]
    return memoryview(data)


BUFFER_KINDS = st.sampled_from(["bytes", "bytearray", "memoryview", "readonly-view"])


# --------------------------------------------------------------------------
# Messages: round trips
# --------------------------------------------------------------------------


@examples(400)
def test_message_round_trip(ipc: Tracker, record_property: Any, max_examples: int) -> None:
    q = MessageQueue()
    ipc.track("msg", q.id)
    tried = [0]

    @config(max_examples)
    @given(
        data=st.binary(max_size=LIMITS.msgmax) | st.binary(max_size=64),
        mtype=st.integers(1, LONG_MAX) | st.integers(1, 5),
        kind=BUFFER_KINDS,
        how=st.sampled_from(["receive", "by-type", "into", "into-exact"]),
    )
    def check(data: bytes, mtype: int, kind: str, how: str) -> None:
        tried[0] += 1
        q.send(as_buffer(kind, data), mtype, block=False)
        if how == "receive":
            got = q.receive(block=False)
        elif how == "by-type":
            got = q.receive(mtype, block=False, max_size=len(data))
        else:
            buf = bytearray(len(data) + (0 if how == "into-exact" else 7))
            n, t = q.receive_into(buf, -mtype, block=False)
            got = sysvipc.Message(bytes(buf[:n]), t)
        assert got == (data, mtype)
        assert type(got.data) is bytes
        assert len(q) == 0

    check()
    report(record_property, message_round_trips=tried[0])


# --------------------------------------------------------------------------
# Semaphores: operation sequences against a model of semop(2)
# --------------------------------------------------------------------------


class SemModel:
    """The kernel's semop: operations applied in order on running values,
    all or nothing; a negative result or a wait for zero 'would block',
    a value above SEMVMX or an undo adjustment out of range is ERANGE."""

    def __init__(self, values: list[int]) -> None:
        self.values = list(values)
        self.adj = [0] * len(values)

    def op(self, ops: list[tuple[int, int, bool]]) -> str | None:
        values, adj = list(self.values), list(self.adj)
        for index, delta, undo in ops:
            if delta == 0 and values[index] != 0:
                return "block"
            result = values[index] + delta
            if result < 0:
                return "block"
            if result > SEMVMX:
                return "range"
            if undo:
                new_adj = adj[index] - delta
                if not -(SEMAEM + 1) <= new_adj <= SEMAEM:
                    return "range"
                adj[index] = new_adj
            values[index] = result
        self.values, self.adj = values, adj
        return None


@st.composite
def sem_programs(draw: Any) -> tuple[list[int], list[tuple[Any, ...]]]:
    nsems = draw(st.integers(1, 5))
    value = st.integers(0, 6) | st.integers(0, SEMVMX) | st.sampled_from([SEMVMX, SEMVMX - 1])
    initial = draw(st.lists(value, min_size=nsems, max_size=nsems))
    index = st.integers(-nsems, nsems - 1)
    delta = (
        st.integers(-4, 4)
        | st.integers(SHORT_MIN, SHORT_MAX)
        | st.sampled_from([SHORT_MIN, SHORT_MAX, -SEMVMX, SEMVMX])
    )
    count = st.integers(1, 4) | st.integers(1, SHORT_MAX)
    action = st.one_of(
        st.tuples(
            st.just("op"),
            st.lists(st.tuples(index, delta, st.booleans()), min_size=1, max_size=5),
            st.booleans(),
        ),
        st.tuples(st.just("acquire"), index, count, st.booleans()),
        st.tuples(st.just("release"), index, count, st.booleans()),
        st.tuples(st.just("wait_zero"), index),
        st.tuples(st.just("set"), index, value),
        st.tuples(st.just("setall"), st.lists(value, min_size=nsems, max_size=nsems)),
        st.tuples(
            st.just("bad-index"),
            st.integers(nsems, nsems + 3) | st.integers(-nsems - 3, -nsems - 1),
        ),
    )
    return initial, draw(st.lists(action, max_size=25))


OUTCOMES: dict[str, int] = {}


def expect(outcome: str | None, call: Callable[[], object], answers: bool = False) -> None:
    """``answers``: the call returns True/False (acquire, wait_zero) instead
    of raising BlockingIOError when it would wait."""
    key = outcome or "done"
    OUTCOMES[key] = OUTCOMES.get(key, 0) + 1
    if outcome is None:
        result = call()
        if answers:
            assert result is True
    elif outcome == "block" and answers:
        assert call() is False
    elif outcome == "block":
        with pytest.raises(BlockingIOError):
            call()
    else:
        with pytest.raises(ValueError):
            call()


@examples(400)
def test_semaphore_operations_match_model(
    ipc: Tracker, record_property: Any, max_examples: int
) -> None:
    tried = [0, 0]
    OUTCOMES.clear()

    @config(max_examples)
    @given(program=sem_programs())
    def check(program: tuple[list[int], list[tuple[Any, ...]]]) -> None:
        tried[0] += 1
        initial, actions = program
        n = len(initial)
        s = SemaphoreSet(nsems=n, initial=initial)
        ipc.track("sem", s.id)
        try:
            model = SemModel(initial)
            for action in actions:
                tried[1] += 1
                kind = action[0]
                if kind == "op":
                    _, ops, undo_all = action
                    norm = [(i % n, d, u or undo_all) for i, d, u in ops]
                    expect(
                        model.op(norm),
                        lambda ops=ops, undo_all=undo_all: s.op(
                            [(i, d, SEM_UNDO) if u else (i, d) for i, d, u in ops],
                            block=False,
                            undo=undo_all,
                        ),
                    )
                elif kind == "acquire":
                    _, i, count, undo = action
                    expect(
                        model.op([(i % n, -count, undo)]),
                        lambda i=i, count=count, undo=undo: s[i].acquire(
                            count, block=False, undo=undo
                        ),
                        answers=True,
                    )
                elif kind == "release":
                    _, i, count, undo = action
                    expect(
                        model.op([(i % n, count, undo)]),
                        lambda i=i, count=count, undo=undo: s[i].release(count, undo=undo),
                    )
                elif kind == "wait_zero":
                    i = action[1]
                    expect(
                        model.op([(i % n, 0, False)]),
                        lambda i=i: s[i].wait_zero(block=False),
                        answers=True,
                    )
                elif kind == "set":
                    _, i, v = action
                    s[i].value = v
                    model.values[i % n] = v
                    model.adj[i % n] = 0  # SETVAL clears everyone's adjustment
                elif kind == "setall":
                    s.values = action[1]
                    model.values = list(action[1])
                    model.adj = [0] * n
                else:
                    with pytest.raises(IndexError):
                        s[action[1]].acquire(block=False)
                    with pytest.raises(IndexError):
                        s.op([(action[1], 1)])
                assert s.values == model.values, f"after {action}"
            assert [sem.value for sem in s] == model.values
            st_ = s.stat()
            assert [x.semval for x in st_.semaphores] == model.values
            assert all(x.semncnt == 0 and x.semzcnt == 0 for x in st_.semaphores)
        finally:
            s.remove()
            s.close()

    check()
    report(
        record_property,
        semaphore_programs=tried[0],
        semaphore_actions=tried[1],
        semaphore_ops_done=OUTCOMES.get("done", 0),
        semaphore_ops_would_block=OUTCOMES.get("block", 0),
        semaphore_ops_out_of_range=OUTCOMES.get("range", 0),
    )


# --------------------------------------------------------------------------
# Shared memory against a bytearray
# --------------------------------------------------------------------------


@st.composite
def shm_programs(draw: Any) -> tuple[int, list[tuple[Any, ...]]]:
    size = draw(st.integers(1, 3 * 4096 + 100) | st.sampled_from([1, 4095, 4096, 4097, 8192]))
    offset = st.integers(0, size) | st.integers(-3, size + 3) | st.sampled_from([0, size, size - 1])
    length = st.integers(0, 64) | st.integers(0, size + 2)
    action = st.one_of(
        st.tuples(
            st.just("write"),
            offset,
            st.binary(max_size=80) | st.binary(max_size=size + 2),
            BUFFER_KINDS,
        ),
        st.tuples(st.just("read"), offset, st.none() | length),
        st.tuples(st.just("read_into"), offset, length),
        st.tuples(st.just("setslice"), offset, length, st.integers(0, 255)),
        st.tuples(st.just("getslice"), offset, length),
    )
    return size, draw(st.lists(action, max_size=20))


@examples(300)
def test_shared_memory_matches_bytearray(
    ipc: Tracker, record_property: Any, max_examples: int
) -> None:
    tried = [0, 0]

    @config(max_examples)
    @given(program=shm_programs())
    def check(program: tuple[int, list[tuple[Any, ...]]]) -> None:
        tried[0] += 1
        size, actions = program
        shm = SharedMemory(size=size)
        ipc.track("shm", shm.id)
        try:
            model = bytearray(size)  # new segments are zero-filled
            assert shm.read() == model
            for action in actions:
                tried[1] += 1
                kind, offset = action[0], action[1]
                valid_offset = 0 <= offset <= size
                if kind == "write":
                    data = action[2]
                    if valid_offset and offset + len(data) <= size:
                        assert shm.write(as_buffer(action[3], data), offset) == len(data)
                        model[offset : offset + len(data)] = data
                    else:
                        with pytest.raises(ValueError):
                            shm.write(as_buffer(action[3], data), offset)
                elif kind == "read":
                    n = action[2]
                    end = size if n is None else offset + n
                    if valid_offset and end <= size:
                        assert shm.read(n, offset) == model[offset:end]
                    else:
                        with pytest.raises(ValueError):
                            shm.read(n, offset)
                elif kind == "read_into":
                    buf = bytearray(b"\xee" * action[2])
                    if valid_offset and offset + len(buf) <= size:
                        assert shm.read_into(buf, offset) == len(buf)
                        assert buf == model[offset : offset + len(buf)]
                    else:
                        with pytest.raises(ValueError):
                            shm.read_into(buf, offset)
                        assert buf == b"\xee" * action[2]
                elif kind == "setslice":
                    n, byte = action[2], action[3]
                    if 0 <= offset:
                        # memoryview slicing clamps like bytearray's
                        part = bytes([byte]) * len(model[offset : offset + n])
                        shm.buf[offset : offset + n] = part
                        model[offset : offset + n] = part
                else:
                    n = action[2]
                    if 0 <= offset:
                        assert shm.buf[offset : offset + n] == model[offset : offset + n]
                assert shm.read() == model, f"after {action[0]} at {offset}"
            assert bytes(shm) == model
        finally:
            shm.remove()
            shm.close()

    check()
    report(record_property, shm_programs=tried[0], shm_actions=tried[1])


# --------------------------------------------------------------------------
# MessageQueue against a model of the kernel's queue
# --------------------------------------------------------------------------

TYPES = st.sampled_from([1, 2, 3, 4, LONG_MAX]) | st.integers(1, 6)
SELECTORS = st.sampled_from([0, 1, 2, 3, -1, -2, -3, -4, 5, LONG_MAX, -LONG_MAX, -(2**63)])
MSG_DATA = st.binary(max_size=40) | st.binary(max_size=900)

_machine_ipc: list[Tracker] = []
_machine_steps = [0, 0]


def select(queue: list[tuple[bytes, int]], selector: int, except_type: bool) -> int | None:
    """Index of the message msgrcv(2) would take, or None."""
    if selector == 0:
        return 0 if queue else None
    if selector < 0:
        limit = LONG_MAX if selector == -(2**63) else -selector
        candidates = [(t, i) for i, (_, t) in enumerate(queue) if t <= limit]
        return min(candidates)[1] if candidates else None
    for i, (_, t) in enumerate(queue):
        if (t != selector) if except_type else (t == selector):
            return i
    return None


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.q = MessageQueue()
        _machine_ipc[0].track("msg", self.q.id)
        self.qbytes = 4096
        self.q.set(max_bytes=self.qbytes)
        self.model: list[tuple[bytes, int]] = []
        _machine_steps[0] += 1

    def teardown(self) -> None:
        self.q.remove()
        self.q.close()

    def fits(self, n: int) -> bool:
        cbytes = sum(len(d) for d, _ in self.model)
        return cbytes + n <= self.qbytes and len(self.model) + 1 <= self.qbytes

    @rule(data=MSG_DATA, mtype=TYPES)
    def send(self, data: bytes, mtype: int) -> None:
        _machine_steps[1] += 1
        if self.fits(len(data)):
            self.q.send(data, mtype, block=False)
            self.model.append((data, mtype))
        else:
            with pytest.raises(BlockingIOError):
                self.q.send(data, mtype, block=False)

    @rule(
        selector=SELECTORS,
        except_type=st.booleans(),
        max_size=st.none() | st.integers(0, 50),
        truncate=st.booleans(),
    )
    def receive(
        self, selector: int, except_type: bool, max_size: int | None, truncate: bool
    ) -> None:
        _machine_steps[1] += 1
        i = select(self.model, selector, except_type)

        def call() -> sysvipc.Message:
            return self.q.receive(
                selector, block=False, max_size=max_size, truncate=truncate, except_type=except_type
            )

        if i is None:
            with pytest.raises(BlockingIOError):
                call()
            return
        data, mtype = self.model[i]
        if max_size is not None and len(data) > max_size and not truncate:
            with pytest.raises(OSError) as err:
                call()
            assert err.value.errno == 7  # E2BIG; the message stays
            return
        got = call()
        del self.model[i]
        assert got == (data if max_size is None else data[:max_size], mtype)

    @rule(selector=SELECTORS, size=st.integers(0, 60), truncate=st.booleans())
    def receive_into(self, selector: int, size: int, truncate: bool) -> None:
        _machine_steps[1] += 1
        i = select(self.model, selector, False)
        buf = bytearray(b"\xaa" * size)
        if i is None:
            with pytest.raises(BlockingIOError):
                self.q.receive_into(buf, selector, block=False, truncate=truncate)
            assert buf == b"\xaa" * size
            return
        data, mtype = self.model[i]
        if len(data) > size and not truncate:
            with pytest.raises(OSError):
                self.q.receive_into(buf, selector, block=False)
            return
        n, t = self.q.receive_into(buf, selector, block=False, truncate=truncate)
        del self.model[i]
        assert (bytes(buf[:n]), t) == (data[:size], mtype)

    @rule(index=st.integers(0, 8))
    def peek(self, index: int) -> None:
        _machine_steps[1] += 1
        if index < len(self.model):
            assert self.q.peek(index) == self.model[index]
        else:
            with pytest.raises(IndexError):
                self.q.peek(index)

    @precondition(lambda self: len(self.model) > 0)
    @rule(index=st.integers(0, 8))
    def peek_does_not_consume(self, index: int) -> None:
        _machine_steps[1] += 1
        index %= len(self.model)
        assert self.q.peek(index) == self.model[index]
        assert self.q.peek(index) == self.model[index]  # still there
        assert len(self.q) == len(self.model)

    @rule(qbytes=st.integers(0, 4096) | st.sampled_from([0, 1, 100, LIMITS.msgmnb]))
    def set_max_bytes(self, qbytes: int) -> None:
        _machine_steps[1] += 1
        self.q.set(max_bytes=qbytes)
        self.qbytes = qbytes
        assert self.q.stat().msg_qbytes == qbytes

    @invariant()
    def same_length_and_bytes(self) -> None:
        st_ = self.q.stat()
        assert len(self.q) == st_.msg_qnum == len(self.model)
        assert st_.msg_cbytes == sum(len(d) for d, _ in self.model)


@examples(150)
def test_message_queue_state_machine(ipc: Tracker, record_property: Any, max_examples: int) -> None:
    _machine_ipc[:] = [ipc]
    _machine_steps[:] = [0, 0]
    try:
        run_state_machine_as_test(
            QueueMachine, settings=config(max_examples, stateful_step_count=40)
        )
    finally:
        _machine_ipc.clear()
    report(
        record_property, queue_machine_runs=_machine_steps[0], queue_machine_steps=_machine_steps[1]
    )
