"""Keys in both spellings: 0..0xffffffff as ipcs prints them, and the
signed key_t range; one canonical (unsigned) form in every attribute, repr,
error message and command output."""

from __future__ import annotations

import re

import pytest
from conftest import Tracker, proc_row

import sysvipc
from sysvipc import lowlevel as ll

HIGH = 0xDEADBEEF  # the high bit set: negative as a signed key_t
SIGNED = HIGH - 2**32


@pytest.fixture
def high_key() -> int:
    for kind in ("msg", "sem", "shm"):
        try:
            getattr(ll, f"{kind}get")(HIGH)
            pytest.skip("key 0xdeadbeef already in use")
        except FileNotFoundError:
            pass
        except OSError:
            pytest.skip("key 0xdeadbeef not usable here")
    return HIGH


def test_canonical_key_accepts_both_spellings() -> None:
    assert sysvipc.canonical_key(HIGH) == sysvipc.canonical_key(SIGNED) == HIGH
    assert sysvipc.canonical_key(-1) == 0xFFFFFFFF
    assert sysvipc.canonical_key(0) == sysvipc.IPC_PRIVATE == 0
    assert sysvipc.canonical_key(2**31 - 1) == 2**31 - 1
    assert sysvipc.canonical_key(-(2**31)) == 2**31
    for bad in (2**32, -(2**31) - 1, 2**64):
        with pytest.raises(ValueError, match=r"key must fit a 32-bit key_t.*0xffffffff"):
            sysvipc.canonical_key(bad)
    with pytest.raises(TypeError):
        sysvipc.canonical_key("0xdeadbeef")  # type: ignore[arg-type]


def test_both_spellings_open_the_same_object(ipc: Tracker, high_key: int) -> None:
    q = sysvipc.MessageQueue(high_key, create=True)
    ipc.track("msg", q.id)
    same = sysvipc.MessageQueue(SIGNED)
    assert same == q
    assert q.key == same.key == HIGH  # one canonical form, whatever was passed
    assert sysvipc.MessageQueue.from_id(q.id).key == HIGH
    assert q.stat().msg_perm.key == HIGH
    row = proc_row("msg", q.id)
    assert row is not None and int(row["key"]) == SIGNED  # the kernel's signed view
    assert dict(sysvipc.list_message_queues())[q.id].msg_perm.key == HIGH
    assert re.fullmatch(rf"<MessageQueue id={q.id} key=0xdeadbeef .*>", repr(q))
    q.close()
    same.close()


def test_repr_pads_like_ipcs(ipc: Tracker) -> None:
    s = sysvipc.SemaphoreSet(0x1234, create=True)
    ipc.track("sem", s.id)
    assert "key=0x00001234 nsems=1" in repr(s)
    s.close()


def test_wider_keys_are_refused_not_truncated() -> None:
    for cls in (sysvipc.MessageQueue, sysvipc.SemaphoreSet):
        with pytest.raises(ValueError, match="key must fit"):
            cls(2**32 + 5, create=True)
    with pytest.raises(ValueError, match="key must fit"):
        sysvipc.SharedMemory(2**32, size=10, create=True)


def test_ftok_is_canonical(tmp_path: object) -> None:
    key = sysvipc.ftok("/", 0xFF)  # proj_id 0xff sets the high bit
    assert 2**31 <= key < 2**32
    assert sysvipc.canonical_key(key) == key


def test_error_messages_show_keys_as_ipcs_does(high_key: int) -> None:
    with pytest.raises(FileNotFoundError) as info:
        sysvipc.MessageQueue(SIGNED)
    assert "0xdeadbeef" in str(info.value)
