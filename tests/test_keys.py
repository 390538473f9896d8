"""Keys in both spellings: 0..0xffffffff as ipcs prints them, and the
signed key_t range; one canonical (unsigned) form in every attribute, repr,
error message and command output."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import Tracker, assert_child_ok, existing_ids, proc_row, run_python

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


# The "done when": objects made by ipcmk open by the key ipcs prints,
# and an ipcmk -S set opens, with no conversion and no wait.
IPCMK_SCRIPT = r"""
import re, subprocess
import sysvipc

def ipcmk(*args):
    out = subprocess.run(["ipcmk", *args], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"id: (\d+)", out).group(1))

def key_from_ipcs(option, ident):
    out = subprocess.run(["ipcs", option], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[0].startswith("0x") and fields[1] == str(ident):
            return fields[0]            # e.g. 0x9b7b38cd, as ipcs prints it
    raise LookupError(ident)

made = {"q": ipcmk("-Q"), "s": ipcmk("-S", "2"), "m": ipcmk("-M", "4096")}
try:
    keys = {kind: int(key_from_ipcs("-" + kind, ident), 16) for kind, ident in made.items()}
    q = sysvipc.MessageQueue(keys["q"])
    s = sysvipc.SemaphoreSet(keys["s"])                      # an ipcmk -S set: no wait
    s2 = sysvipc.SemaphoreSet(keys["s"], init_timeout=3600)  # not even with a long init_timeout
    m = sysvipc.SharedMemory(keys["m"])
    assert (q.id, s.id, s2.id, m.id) == (made["q"], made["s"], made["s"], made["m"])
    assert s.stat().sem_otime == 0 and len(s) == 2
    for handle in (q, s, m):
        assert handle.key == keys[{"MessageQueue": "q", "SemaphoreSet": "s", "SharedMemory": "m"}[type(handle).__name__]]
        assert f"key={handle.key:#010x}" in repr(handle)
        print(repr(handle))
    q.send(b"hello ipcmk")
    assert q.receive().data == b"hello ipcmk"
    s[0].release()  # ipcmk's values are 0: make it a free lock
    with s[0]:
        assert s[0].value == 0
    m.write(b"shared")
    assert m.read(6) == b"shared"
    m.close()
finally:
    subprocess.run(["ipcrm", "-q", str(made["q"]), "-s", str(made["s"]), "-m", str(made["m"])], check=True)
print("ok")
"""


@pytest.mark.skipif(shutil.which("ipcmk") is None, reason="ipcmk is not installed")
def test_ipcmk_objects_open_by_the_key_ipcs_prints() -> None:
    # Runs in the test's private IPC namespace (unshare --ipc); a wait for
    # the ipcmk set would hang the child past its timeout.
    before = existing_ids()
    proc = run_python(IPCMK_SCRIPT, timeout=60)
    assert_child_ok(proc)
    assert proc.stdout.splitlines()[-1] == "ok"
    assert existing_ids() == before  # the script removed what it made
