"""Attachment.write and read_into call back into Python while they work: the
argument's buffer protocol (``__buffer__``, a Python method since 3.12) and
the offset's ``__index__``.  Code run there may detach the very attachment
being written; the copy must then fail cleanly, never go through the
address it read before (a segfault before the fix).  In child processes."""

from __future__ import annotations

import sys

import pytest
from conftest import assert_child_ok, run_python

PRELUDE = """
import sysvipc._sysvipc as c
m = c.shmget(c.IPC_PRIVATE, 1 << 20, c.IPC_CREAT)
a = c.shmat(m)
"""


def run_case(call: str, setup: str) -> str:
    proc = run_python(
        PRELUDE
        + setup
        + f"""
try:
    try:
        {call}
    except ValueError as e:
        print("ValueError:", e)
    else:
        print("no error")
finally:
    c.shmctl(m, c.IPC_RMID)
"""
    )
    assert_child_ok(proc)
    return proc.stdout.strip()


DETACHING_BUFFER = """
class Detaching:
    def __init__(self, n):
        self.data = bytearray(n)
    def __buffer__(self, flags):
        a.detach()
        return memoryview(self.data)
"""


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ in Python needs 3.12+")
@pytest.mark.parametrize("size", [100, 1 << 20])  # small copy, and one without the GIL
@pytest.mark.parametrize("method", ["write", "read_into"])
def test_buffer_that_detaches_the_attachment(method: str, size: int) -> None:
    out = run_case(f"a.{method}(Detaching({size}), 0)", DETACHING_BUFFER)
    assert out == "ValueError: operation on a detached shared memory attachment"


DETACHING_OFFSET = """
class Offset:
    def __index__(self):
        a.detach()
        return 0
"""


@pytest.mark.parametrize(
    "call",
    [
        "a.write(b'x' * 100, Offset())",
        "a.read_into(bytearray(100), Offset())",
        "a.read(100, Offset())",
    ],
)
def test_offset_that_detaches_the_attachment(call: str) -> None:
    out = run_case(call, DETACHING_OFFSET)
    assert out.startswith("ValueError:"), out
