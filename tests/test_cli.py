"""The sysvipc command, driven as a subprocess, and the introspection API."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys

import pytest
from conftest import Tracker, existing_ids, proc_row, proc_rows

import sysvipc
from sysvipc import lowlevel as ll


def sysvipc_cmd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sysvipc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sysvipc_script(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the installed ``sysvipc`` console script, as a user would."""
    script = shutil.which("sysvipc", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the sysvipc console script is not installed beside this interpreter")
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=timeout)


def ls_json(*args: str) -> list[dict[str, object]]:
    proc = sysvipc_cmd("ls", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert isinstance(records, list)
    return records


# JSON fields every record has, and the ones per kind (documented in docs/cli.md).
COMMON_FIELDS = {"kind", "id", "key", "key_hex", "owner", "uid", "gid", "cuid", "cgid", "mode"}
KIND_FIELDS = {
    "msg": {"bytes", "messages", "max_bytes", "last_send_pid", "last_receive_pid",
            "send_time", "receive_time", "change_time"},
    "sem": {"nsems", "op_time", "change_time"},
    "shm": {"size", "attachments", "creator_pid", "last_pid", "attach_time", "detach_time",
            "change_time", "marked_for_removal", "locked"},
}  # fmt: skip


@pytest.mark.private_namespace
def test_ls_json_lists_what_the_test_created(ipc: Tracker, key: int) -> None:
    msqid = ipc.msgget(key, mode=0o640)
    semid = ipc.semget(3)
    shmid = ipc.shmget(12345)
    ll.msgsnd(msqid, b"abc", 5)
    records = ls_json()
    by_id = {(r["kind"], r["id"]): r for r in records}
    msg, sem, shm = by_id[("msg", msqid)], by_id[("sem", semid)], by_id[("shm", shmid)]
    for rec in (msg, sem, shm):
        assert set(rec) == COMMON_FIELDS | KIND_FIELDS[str(rec["kind"])]
        assert rec["owner"] == pwd.getpwuid(os.getuid()).pw_name
        assert rec["uid"] == os.getuid()
    assert msg["key"] == key and msg["key_hex"] == f"{key:#010x}"
    assert msg["mode"] == "0o640"
    assert msg["messages"] == 1 and msg["bytes"] == 3 and msg["last_send_pid"] == os.getpid()
    assert sem["nsems"] == 3 and sem["key"] == 0
    assert shm["size"] == 12345 and shm["attachments"] == 0
    assert shm["creator_pid"] == os.getpid() and shm["marked_for_removal"] is False
    # Every object the kernel lists is in the output, and nothing else.
    assert {(k, i) for k, i in existing_ids()} == set(by_id)


def test_ls_filters(ipc: Tracker, key: int) -> None:
    msqid = ipc.msgget(key)
    semid = ipc.semget(1)
    assert [(r["kind"], r["id"]) for r in ls_json("--key", hex(key))] == [("msg", msqid)]
    kinds = {r["kind"] for r in ls_json("--kind", "sem")}
    assert kinds == {"sem"}
    assert semid in {r["id"] for r in ls_json("--kind", "sem")}
    owner = pwd.getpwuid(os.getuid()).pw_name
    assert {r["owner"] for r in ls_json("--owner", owner)} == {owner}
    assert ls_json("--owner", "65534") == [] or all(
        r["uid"] == 65534 for r in ls_json("--owner", "65534")
    )


def test_ls_table(ipc: Tracker, key: int) -> None:
    ipc.shmget(4096, key=key)
    proc = sysvipc_cmd("ls")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0].split()[:3] == ["KIND", "KEY", "ID"]
    assert f"{key:#010x}" in proc.stdout


@pytest.mark.parametrize("kind", ["msg", "sem", "shm"])
def test_stat_shows_the_same_values_as_the_api(ipc: Tracker, kind: str) -> None:
    if kind == "msg":
        ident = ipc.msgget()
        ll.msgsnd(ident, b"x" * 10, 1)
        st = sysvipc.MessageQueue.from_id(ident).stat()
        expected = {"messages": st.msg_qnum, "bytes": st.msg_cbytes, "max_bytes": st.msg_qbytes,
                    "send_time": st.msg_stime, "change_time": st.msg_ctime}  # fmt: skip
    elif kind == "sem":
        ident = ipc.semget(2)
        ll.semctl(ident, 0, ll.SETALL, [3, 4])
        st2 = ll.semctl(ident, 0, ll.IPC_STAT)
        assert isinstance(st2, sysvipc.SemidDs)
        expected = {"nsems": st2.sem_nsems, "change_time": st2.sem_ctime, "values": [3, 4]}
    else:
        ident = ipc.shmget(8192)
        st3 = ll.shmctl(ident, ll.IPC_STAT)
        assert isinstance(st3, sysvipc.ShmidDs)
        expected = {"size": st3.shm_segsz, "attachments": st3.shm_nattch,
                    "creator_pid": st3.shm_cpid}  # fmt: skip
    proc = sysvipc_cmd("stat", kind, str(ident), "--json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["id"] == ident and rec["kind"] == kind
    for name, value in expected.items():
        assert rec[name] == value, name
    text = sysvipc_cmd("stat", kind, str(ident))
    assert text.returncode == 0 and f"id                   {ident}" in text.stdout


def test_rm_removes_exactly_what_it_names(ipc: Tracker) -> None:
    keep = ipc.msgget()
    doomed = [ipc.msgget(), ipc.msgget()]
    other = ipc.semget(1)
    proc = sysvipc_cmd("rm", "msg", *map(str, doomed))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"removed message queue {i}" for i in doomed]
    assert all(proc_row("msg", i) is None for i in doomed)
    assert proc_row("msg", keep) is not None and proc_row("sem", other) is not None


def test_rm_by_key(ipc: Tracker, key: int) -> None:
    shmid = ipc.shmget(4096, key=key)
    keep = ipc.shmget(4096)
    proc = sysvipc_cmd("rm", "--key", hex(key))
    assert proc.returncode == 0, proc.stderr
    assert proc_row("shm", shmid) is None and proc_row("shm", keep) is not None


def test_rm_missing_object_is_an_error_and_removes_nothing(ipc: Tracker) -> None:
    real = ipc.msgget()
    missing = max(int(r["msqid"]) for r in proc_rows("msg")) + 1000
    proc = sysvipc_cmd("rm", "msg", str(real), str(missing))
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert f"no message queue with id {missing}" in proc.stderr
    assert proc_row("msg", real) is not None  # all-or-nothing


@pytest.mark.parametrize(
    "args",
    [["stat", "msg", "987654321"], ["stat", "shm", "987654321"], ["rm", "sem", "987654321"],
     ["rm", "--key", "0x7ffffff0"]],
)  # fmt: skip
def test_bad_id_exit_code_1_and_one_line(args: list[str]) -> None:
    proc = sysvipc_cmd(*args)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("sysvipc: ")


@pytest.mark.parametrize(
    "args", [["bogus"], ["stat", "nope", "1"], ["stat", "msg", "x"], ["ls", "--kind", "zzz"]]
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert sysvipc_cmd(*args).returncode == 2


@pytest.mark.private_namespace  # a regression would remove every object
def test_rm_all_without_yes_is_a_dry_run(ipc: Tracker) -> None:
    msqid = ipc.msgget()
    me = pwd.getpwuid(os.getuid()).pw_name
    for args in (["rm", "--all"], ["rm", "--all", "--owner", me]):
        proc = sysvipc_script(*args)
        assert proc.returncode == 0, proc.stderr
        assert f"would remove message queue {msqid}" in proc.stdout
        assert "dry run" in proc.stdout
        assert proc_row("msg", msqid) is not None  # nothing removed
    # Removing everything needs a filter as well as --yes.
    proc = sysvipc_script("rm", "--all", "--yes")
    assert proc.returncode == 1 and "needs a filter" in proc.stderr
    assert proc_row("msg", msqid) is not None


@pytest.mark.private_namespace
def test_rm_all_removes_only_that_owners_objects(ipc: Tracker) -> None:
    mine = ipc.msgget()
    # Give one object to another owner: it must survive.
    theirs = ipc.semget(1)
    ll.semctl(theirs, 0, ll.IPC_SET, uid=65534)
    me = pwd.getpwuid(os.getuid()).pw_name
    proc = sysvipc_cmd("rm", "msg", "--all", "--owner", me, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert proc_row("msg", mine) is None
    assert proc_row("sem", theirs) is not None


@pytest.mark.parametrize("command", ["ls", "stat", "rm", "limits", "demo"])
def test_help(command: str) -> None:
    proc = sysvipc_cmd(command, "--help")
    assert proc.returncode == 0 and "usage: sysvipc" in proc.stdout


def test_limits_command() -> None:
    proc = sysvipc_cmd("limits", "--json")
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    with open("/proc/sys/kernel/msgmax") as f:
        assert data["limits"]["msgmax"] == int(f.read())
    assert set(data["usage"]) >= {"message_queues", "semaphore_sets", "shared_memory_segments"}


def test_demo_runs_and_leaves_nothing_behind() -> None:
    before = existing_ids()
    proc = sysvipc_cmd("demo", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "removed everything it created" in proc.stdout
    assert existing_ids() == before


# -- the API behind the command ---------------------------------------------


def test_limits_match_proc() -> None:
    lim = sysvipc.limits()

    def read(name: str) -> list[int]:
        with open(f"/proc/sys/kernel/{name}") as f:
            return [int(x) for x in f.read().split()]

    assert lim.msgmax == read("msgmax")[0]
    assert lim.msgmnb == read("msgmnb")[0]
    assert lim.msgmni == read("msgmni")[0]
    assert [lim.semmsl, lim.semmns, lim.semopm, lim.semmni] == read("sem")
    assert lim.shmmni == read("shmmni")[0]
    assert lim.shmmax == read("shmmax")[0] and lim.shmall == read("shmall")[0]
    assert lim.semvmx == ll.SEMVMX == 32767
    assert lim.page_size == os.sysconf("SC_PAGESIZE")


@pytest.mark.private_namespace
def test_usage_counts_objects(ipc: Tracker) -> None:
    before = sysvipc.usage()
    msqid = ipc.msgget()
    ll.msgsnd(msqid, b"12345", 1)
    ipc.semget(4)
    ipc.shmget(3 * os.sysconf("SC_PAGESIZE"))
    after = sysvipc.usage()
    assert after.message_queues == before.message_queues + 1
    assert after.messages == before.messages + 1
    assert after.message_bytes == before.message_bytes + 5
    assert after.semaphore_sets == before.semaphore_sets + 1
    assert after.semaphores == before.semaphores + 4
    assert after.shared_memory_segments == before.shared_memory_segments + 1


@pytest.mark.private_namespace
def test_list_functions_match_proc(ipc: Tracker) -> None:
    msqid, semid, shmid = ipc.msgget(), ipc.semget(2), ipc.shmget(100)
    queues = dict(sysvipc.list_message_queues())
    sets = dict(sysvipc.list_semaphore_sets())
    segs = dict(sysvipc.list_shared_memory())
    assert set(queues) == {int(r["msqid"]) for r in proc_rows("msg")}
    assert set(sets) == {int(r["semid"]) for r in proc_rows("sem")}
    assert set(segs) == {int(r["shmid"]) for r in proc_rows("shm")}
    assert isinstance(queues[msqid], sysvipc.MsqidDs)
    assert sets[semid].sem_nsems == 2
    assert segs[shmid].shm_segsz == 100
    entry = sysvipc.list_shared_memory()[0]
    ident, st = entry
    assert entry.id == ident and entry.stat == st


def test_proc_fallback_reads_modes_as_octal(ipc: Tracker) -> None:
    # Where *_STAT_ANY is refused, the listings come from /proc/sysvipc, whose
    # perms column is octal (0.1.0 read 0o640 as 640).
    from sysvipc import _introspect

    ids = {"msg": ipc.msgget(mode=0o640), "sem": ipc.semget(1, mode=0o604)}
    ids["shm"] = ipc.shmget(4096, mode=0o620)
    for kind, field, mode in (
        ("msg", "msqid", 0o640),
        ("sem", "semid", 0o604),
        ("shm", "shmid", 0o620),
    ):
        (row,) = [r for r in _introspect._proc_rows(kind) if r[field] == ids[kind]]
        assert _introspect._proc_perm(row).mode & 0o777 == mode


def test_demo_removes_everything_on_ctrl_c() -> None:
    import signal
    import time

    before = existing_ids()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sysvipc", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait until it has created its objects, then interrupt it.
        deadline = time.monotonic() + 30
        while existing_ids() == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert existing_ids() != before, "the demo created nothing"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "removed everything it created" in out, out + err
    assert existing_ids() == before


def test_console_script_is_installed() -> None:
    from importlib.metadata import PackageNotFoundError, distribution, entry_points

    try:
        distribution("sysvipc")
    except PackageNotFoundError:
        pytest.skip("sysvipc is not installed (imported from a source copy)")

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("sysvipc") == "sysvipc._cli:main"


# -- issue 17: what a person cleaning up needs -------------------------------


def test_version() -> None:
    proc = sysvipc_script("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"sysvipc {sysvipc.__version__}"


@pytest.mark.parametrize("spelling", ["unsigned", "signed", "decimal"])
def test_stat_by_key_in_either_spelling(ipc: Tracker, spelling: str) -> None:
    key = 0xDEADBEEF if not any(int(r["key"]) == 0xDEADBEEF - 2**32 for r in proc_rows("msg")) \
        else pytest.skip("key in use")  # fmt: skip
    msqid = ipc.msgget(key)
    text = {"unsigned": "0xdeadbeef", "signed": str(key - 2**32), "decimal": str(key)}[spelling]
    proc = sysvipc_script("stat", "msg", "--key", text, "--json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["id"] == msqid and rec["key"] == key and rec["key_hex"] == "0xdeadbeef"
    # An id is still an id.
    assert json.loads(sysvipc_script("stat", "msg", str(msqid), "--json").stdout)["id"] == msqid


def test_stat_by_missing_key_names_it(key: int) -> None:
    proc = sysvipc_script("stat", "sem", "--key", hex(key))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"sysvipc: no semaphore set with key {key:#010x}"
    assert sysvipc_script("stat", "sem").returncode == 1  # neither id nor key
    assert sysvipc_script("stat", "msg", "--key", hex(2**32)).returncode == 1


def test_keys_print_as_ipcs_does(ipc: Tracker) -> None:
    key = 0x0000BEEF
    if any(int(r["key"]) == key for r in proc_rows("shm")):
        pytest.skip("key in use")
    ipc.shmget(4096, key=key)
    proc = sysvipc_script("ls", "--kind", "shm")
    assert "0x0000beef" in proc.stdout
    proc = sysvipc_script("rm", "--key", "0x7ffffff0")
    assert proc.stderr.strip() == "sysvipc: no object with key 0x7ffffff0"


@pytest.mark.private_namespace  # rm --all --yes: every match in the namespace
def test_orphans_filter(ipc: Tracker) -> None:
    # A segment whose creator is gone and that nobody attaches: an orphan.
    code = (
        "from sysvipc import lowlevel as ll; print(ll.shmget(ll.IPC_PRIVATE, 4096, ll.IPC_CREAT))"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    orphan = ipc.track("shm", int(child.stdout))
    # One made by this (living) process, and one that is attached: not orphans.
    mine = ipc.shmget(4096)
    attached = ipc.shmget(4096)
    att = ll.shmat(attached)
    # A queue nobody ever used, and one this process used.
    idle = ipc.msgget()
    used = ipc.msgget()
    ll.msgsnd(used, b"x", 1)
    try:
        found = {(r["kind"], r["id"]) for r in json.loads(
            sysvipc_script("ls", "--orphans", "--json").stdout)}  # fmt: skip
        assert ("shm", orphan) in found and ("msg", idle) in found
        assert ("shm", mine) not in found and ("shm", attached) not in found
        assert ("msg", used) not in found
        # rm --all --orphans without --yes only shows them; with --yes removes them.
        dry = sysvipc_script("rm", "shm", "--all", "--orphans")
        assert f"would remove shared memory segment {orphan}" in dry.stdout
        assert proc_row("shm", orphan) is not None
        proc = sysvipc_script("rm", "shm", "--all", "--orphans", "--yes")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == [f"removed shared memory segment {orphan}"]
        assert proc_row("shm", orphan) is None
        assert proc_row("shm", mine) is not None and proc_row("shm", attached) is not None
    finally:
        att.detach()


@pytest.mark.private_namespace  # rm --all --yes: every match in the namespace
def test_older_than_filter(ipc: Tracker) -> None:
    msqid = ipc.msgget()
    assert msqid in {r["id"] for r in ls_json("--older-than", "0s", "--kind", "msg")}
    for age in ("1h", "2d", "1w", "3600", "15m"):
        assert msqid not in {r["id"] for r in ls_json("--older-than", age)}
    proc = sysvipc_script("ls", "--older-than", "soon")
    assert proc.returncode == 2 and "not a duration" in proc.stderr
    # Combined with --owner and rm: nothing that young is removed.
    me = pwd.getpwuid(os.getuid()).pw_name
    proc = sysvipc_script("rm", "--all", "--owner", me, "--older-than", "1d", "--yes")
    assert proc.returncode == 0 and proc_row("msg", msqid) is not None


def test_filters_need_all_in_rm(ipc: Tracker) -> None:
    msqid = ipc.msgget()
    proc = sysvipc_script("rm", "msg", str(msqid), "--orphans")
    assert proc.returncode == 1 and "only with --all" in proc.stderr
    assert proc_row("msg", msqid) is not None


def test_readme_demo_command_installs_numpy() -> None:
    # The demo promises a numpy array: the README's command installs numpy.
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    demo = next(line for line in readme.splitlines() if "sysvipc demo" in line)
    assert "'.[numpy]'" in demo, demo
    assert "pip install sysvipc" in readme and "pip install ." in readme


def test_demo_says_how_the_rows_were_shared() -> None:
    pytest.importorskip("numpy")
    proc = sysvipc_script("demo", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "one numpy array in the segment" in proc.stdout
