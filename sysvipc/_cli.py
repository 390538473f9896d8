"""The ``sysvipc`` command (also ``python -m sysvipc``).

Exit codes: 0 success, 1 an error (a missing object, a refused removal),
2 a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import pwd
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import _sysvipc as _c
from ._introspect import (
    limits,
    list_message_queues,
    list_semaphore_sets,
    list_shared_memory,
    usage,
)
from ._structs import IpcPerm, MsqidDs, SemidDs, ShmidDs

KINDS = ("msg", "sem", "shm")
_KIND_ALIASES = {
    "msg": "msg", "queue": "msg", "q": "msg", "message-queue": "msg",
    "sem": "sem", "semaphore": "sem", "s": "sem", "semaphore-set": "sem",
    "shm": "shm", "memory": "shm", "m": "shm", "shared-memory": "shm",
}  # fmt: skip
KIND_NAMES = {"msg": "message queue", "sem": "semaphore set", "shm": "shared memory segment"}


class CommandError(Exception):
    """An error reported as one line on stderr, exit code 1."""


def _kind(text: str) -> str:
    try:
        return _KIND_ALIASES[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"unknown kind {text!r} (use msg, sem or shm)") from None


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _uid(user: str) -> int:
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise CommandError(f"unknown user {user!r}") from None


def _stat_one(kind: str, ident: int) -> MsqidDs | SemidDs | ShmidDs:
    """IPC_STAT, falling back to the listing for objects we may not read."""
    try:
        if kind == "msg":
            return MsqidDs._make(_c.msgctl(ident, _c.IPC_STAT))
        if kind == "sem":
            return SemidDs._make(_c.semctl(ident, 0, _c.IPC_STAT))
        return ShmidDs._make(_c.shmctl(ident, _c.IPC_STAT))
    except PermissionError:
        for entry_id, st in _listing(kind):
            if entry_id == ident:
                return st
        raise
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.EIDRM):
            raise CommandError(f"no {KIND_NAMES[kind]} with id {ident}") from None
        raise CommandError(f"{KIND_NAMES[kind]} {ident}: {e.strerror}") from None


def _listing(kind: str) -> Sequence[tuple[int, MsqidDs | SemidDs | ShmidDs]]:
    if kind == "msg":
        return list_message_queues()
    if kind == "sem":
        return list_semaphore_sets()
    return list_shared_memory()


def _perm(st: MsqidDs | SemidDs | ShmidDs) -> IpcPerm:
    if isinstance(st, MsqidDs):
        return st.msg_perm
    if isinstance(st, SemidDs):
        return st.sem_perm
    return st.shm_perm


def record(kind: str, ident: int, st: MsqidDs | SemidDs | ShmidDs) -> dict[str, Any]:
    """The documented JSON record of one object (``ls --json``, ``stat --json``)."""
    perm = _perm(st)
    rec: dict[str, Any] = {
        "kind": kind,
        "id": ident,
        "key": perm.key,
        "key_hex": f"{perm.key:#010x}",
        "owner": _user_name(perm.uid),
        "uid": perm.uid,
        "gid": perm.gid,
        "cuid": perm.cuid,
        "cgid": perm.cgid,
        "mode": f"{perm.mode & 0o777:#05o}",
    }
    if isinstance(st, MsqidDs):
        rec.update(
            bytes=st.msg_cbytes,
            messages=st.msg_qnum,
            max_bytes=st.msg_qbytes,
            last_send_pid=st.msg_lspid,
            last_receive_pid=st.msg_lrpid,
            send_time=st.msg_stime,
            receive_time=st.msg_rtime,
            change_time=st.msg_ctime,
        )
    elif isinstance(st, SemidDs):
        rec.update(nsems=st.sem_nsems, op_time=st.sem_otime, change_time=st.sem_ctime)
    else:
        rec.update(
            size=st.shm_segsz,
            attachments=st.shm_nattch,
            creator_pid=st.shm_cpid,
            last_pid=st.shm_lpid,
            attach_time=st.shm_atime,
            detach_time=st.shm_dtime,
            change_time=st.shm_ctime,
            marked_for_removal=st.marked_for_removal,
            locked=st.locked,
        )
    return rec


def _when(timestamp: int) -> str:
    if timestamp == 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _table(rows: list[dict[str, Any]]) -> str:
    header = ["KIND", "KEY", "ID", "OWNER", "MODE", "SIZE/MSGS/NSEMS", "ATTACH", "PIDS", "CHANGED"]
    lines = [header]
    for r in rows:
        if r["kind"] == "msg":
            amount = f"{r['messages']} msgs, {r['bytes']} B"
            attach = "-"
            pids = f"send {r['last_send_pid']} recv {r['last_receive_pid']}"
        elif r["kind"] == "sem":
            amount = f"{r['nsems']} sems"
            attach = "-"
            pids = "-"
        else:
            amount = f"{r['size']} B"
            attach = str(r["attachments"]) + (" dest" if r["marked_for_removal"] else "")
            pids = f"creator {r['creator_pid']} last {r['last_pid']}"
        lines.append(
            [
                r["kind"],
                r["key_hex"],
                str(r["id"]),
                r["owner"],
                r["mode"],
                amount,
                attach,
                pids,
                _when(r["change_time"]),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``3d``, ``1w``: seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (use e.g. 90s, 15m, 2h, 3d, 1w)"
        ) from None
    if not seconds >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"a duration must be >= 0, got {text!r}")
    return seconds


def _alive(pid: int) -> bool:
    """True if process ``pid`` exists (in this PID namespace)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _user_pids(kind: str, ident: int, st: MsqidDs | SemidDs | ShmidDs) -> list[int] | None:
    """The pids the kernel recorded as having used the object (None: unknown)."""
    if isinstance(st, ShmidDs):
        return [st.shm_cpid, st.shm_lpid]
    if isinstance(st, MsqidDs):
        return [st.msg_lspid, st.msg_lrpid]
    try:
        return [_c.semctl(ident, i, _c.GETPID) for i in range(st.sem_nsems)]
    except OSError:
        return None  # no read permission (or removed): not known to be orphaned


def is_orphan(kind: str, ident: int, st: MsqidDs | SemidDs | ShmidDs) -> bool:
    """No process that the kernel recorded as using the object is alive.

    Shared memory: no attachment, and its creator and last attacher are gone.
    Message queues: the last sender and last receiver are gone (or never
    were).  Semaphore sets: the last process to operate on each semaphore is
    gone.  Pids are judged in this PID namespace.
    """
    if isinstance(st, ShmidDs) and st.shm_nattch != 0:
        return False
    pids = _user_pids(kind, ident, st)
    return pids is not None and not any(_alive(pid) for pid in pids)


def _change_time(st: MsqidDs | SemidDs | ShmidDs) -> int:
    if isinstance(st, MsqidDs):
        return st.msg_ctime
    if isinstance(st, SemidDs):
        return st.sem_ctime
    return st.shm_ctime


def _select(args: argparse.Namespace) -> list[tuple[str, int, MsqidDs | SemidDs | ShmidDs]]:
    """The objects that pass every filter given (--kind, --owner, --key,
    --orphans, --older-than), in kind then id order."""
    kinds = [args.kind] if args.kind else list(KINDS)
    owner = _uid(args.owner) if args.owner is not None else None
    key = _as_key(args.key) if getattr(args, "key", None) is not None else None
    older_than = getattr(args, "older_than", None)
    now = time.time()
    selected = []
    for kind in kinds:
        for ident, st in _listing(kind):
            perm = _perm(st)
            if owner is not None and perm.uid != owner:
                continue
            if key is not None and perm.key != key:
                continue
            if older_than is not None and now - _change_time(st) < older_than:
                continue
            if getattr(args, "orphans", False) and not is_orphan(kind, ident, st):
                continue
            selected.append((kind, ident, st))
    return selected


def _filtered(args: argparse.Namespace) -> bool:
    return any(
        getattr(args, name, None) not in (None, False)
        for name in ("owner", "key", "orphans", "older_than")
    )


def cmd_ls(args: argparse.Namespace) -> int:
    rows = [record(kind, ident, st) for kind, ident, st in _select(args)]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        print(_table(rows))
    else:
        print("no System V IPC objects" + (" match" if _filtered(args) else ""))
    return 0


def _as_key(key: int) -> int:
    # The C core owns the key's range and canonical (unsigned) spelling.
    try:
        return int(_c.canonical_key(key))
    except ValueError as e:
        raise CommandError(str(e)) from None


def _find_by_key(kind: str, key: int) -> int:
    key = _as_key(key)
    if key == _c.IPC_PRIVATE:
        raise CommandError("key 0 is IPC_PRIVATE: private objects have no key; use the id")
    for ident, st in _listing(kind):
        if _perm(st).key == key:
            return ident
    raise CommandError(f"no {KIND_NAMES[kind]} with key {key:#010x}")


def cmd_stat(args: argparse.Namespace) -> int:
    if (args.id is None) == (args.key is None):
        raise CommandError("stat needs an ID or --key KEY (one of them)")
    ident = args.id if args.id is not None else _find_by_key(args.kind, args.key)
    st = _stat_one(args.kind, ident)
    rec = record(args.kind, ident, st)
    if args.kind == "sem":
        try:
            rec["values"] = _c.semctl(ident, 0, _c.GETALL)
        except OSError:
            pass  # no read permission: the values stay private
    if args.json:
        print(json.dumps(rec, indent=2))
        return 0
    for name, value in rec.items():
        if name.endswith("_time"):
            value = f"{value} ({_when(value)})"
        print(f"{name:20s} {value}")
    print()
    for field in dataclasses.fields(st):
        value = getattr(st, field.name)
        print(f"{field.name:20s} {value}")
    return 0


def _remove(kind: str, ident: int) -> None:
    try:
        if kind == "msg":
            _c.msgctl(ident, _c.IPC_RMID)
        elif kind == "sem":
            _c.semctl(ident, 0, _c.IPC_RMID)
        else:
            _c.shmctl(ident, _c.IPC_RMID)
    except OSError as e:
        raise CommandError(f"cannot remove {KIND_NAMES[kind]} {ident}: {e.strerror}") from None


def cmd_rm(args: argparse.Namespace) -> int:
    targets: list[tuple[str, int]] = []
    if args.all:
        targets = [(kind, ident) for kind, ident, _ in _select(args)]
        if not args.yes:
            # A dry run: show exactly what --yes would remove.
            for kind, ident in targets:
                print(f"would remove {KIND_NAMES[kind]} {ident}")
            if not targets:
                print("nothing would be removed")
            if not _filtered(args):
                print("(dry run; rm --all removes only with a filter, "
                      "--owner/--orphans/--older-than, and --yes)")  # fmt: skip
            else:
                print("(dry run; add --yes to remove them)")
            return 0
        if not _filtered(args):
            raise CommandError(
                "rm --all --yes needs a filter: --owner USER, --orphans or --older-than AGE"
            )
    elif args.owner is not None or args.orphans or args.older_than is not None:
        raise CommandError("--owner, --orphans and --older-than select objects only with --all")
    elif args.key is not None:
        key = _as_key(args.key)
        if key == _c.IPC_PRIVATE:
            raise CommandError(
                "key 0 is IPC_PRIVATE: private objects have no key; remove them by id"
            )
        for kind in [args.kind] if args.kind else KINDS:
            targets += [(kind, i) for i, st in _listing(kind) if _perm(st).key == key]
        if not targets:
            raise CommandError(f"no object with key {key:#010x}")
    else:
        if args.kind is None or not args.ids:
            raise CommandError(
                "usage: sysvipc rm KIND ID... | rm --key KEY | rm --all [FILTERS] [--yes]"
            )
        targets = [(args.kind, i) for i in args.ids]
        for kind, ident in targets:  # check all first: remove all or none
            _stat_one(kind, ident)
    failures = 0
    for kind, ident in targets:
        try:
            _remove(kind, ident)
        except CommandError as e:
            print(f"sysvipc: {e}", file=sys.stderr)
            failures += 1
            continue
        print(f"removed {KIND_NAMES[kind]} {ident}")
    if args.all and not targets:
        print("nothing to remove")
    return 1 if failures else 0


def cmd_limits(args: argparse.Namespace) -> int:
    lim = dataclasses.asdict(limits())
    use = dataclasses.asdict(usage())
    if args.json:
        print(json.dumps({"limits": lim, "usage": use}, indent=2))
        return 0
    print("limits")
    for name, value in lim.items():
        print(f"  {name:32s} {value}")
    print("usage")
    for name, value in use.items():
        print(f"  {name:32s} {value}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run

    return run(workers=args.workers)


def _add_filters(parser: argparse.ArgumentParser, only: str) -> None:
    parser.add_argument("--owner", help=f"{only} objects owned by USER (name or uid)")
    parser.add_argument(
        "--orphans",
        action="store_true",
        help=f"{only} objects no living process has used (segments: also no attachment)",
    )
    parser.add_argument(
        "--older-than",
        type=_duration,
        metavar="AGE",
        help=f"{only} objects created or changed longer ago than AGE (90s, 15m, 2h, 3d, 1w)",
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="sysvipc",
        description="See, inspect and clean up System V IPC objects, and run the demonstration.",
    )
    parser.add_argument("--version", action="version", version=f"sysvipc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ls = sub.add_parser("ls", aliases=["list"], help="list every object on the machine")
    ls.add_argument("--kind", type=_kind, help="only msg, sem or shm")
    ls.add_argument("--key", type=_int, help="only objects with this key (e.g. 0xdeadbeef)")
    _add_filters(ls, "only")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=cmd_ls)

    st = sub.add_parser("stat", help="everything the kernel knows about one object")
    st.add_argument("kind", type=_kind, help="msg, sem or shm")
    st.add_argument("id", type=_int, nargs="?", help="the object's id (or give --key)")
    st.add_argument("--key", type=_int, help="the object's key, e.g. 0x5eed0001 as ipcs shows it")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_stat)

    rm = sub.add_parser(
        "rm",
        help="remove named objects",
        description="Remove exactly the objects named: by kind and id, by key, "
        "or with --all every object that passes the filters.  Without --yes, "
        "--all only shows what it would remove.",
    )
    rm.add_argument("kind", type=_kind, nargs="?", help="msg, sem or shm")
    rm.add_argument("ids", type=_int, nargs="*", metavar="ID")
    rm.add_argument("--key", type=_int, help="remove the objects with this key")
    rm.add_argument("--all", action="store_true", help="every object that passes the filters")
    _add_filters(rm, "with --all: only")
    rm.add_argument("--yes", action="store_true", help="with --all: really remove (else dry run)")
    rm.set_defaults(func=cmd_rm)

    lim = sub.add_parser("limits", help="the kernel's limits and current usage")
    lim.add_argument("--json", action="store_true", help="machine-readable output")
    lim.set_defaults(func=cmd_limits)

    demo = sub.add_parser("demo", help="run the main demonstration")
    demo.add_argument("--workers", type=int, default=3, help="worker processes (default 3)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CommandError as e:
        print(f"sysvipc: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`sysvipc ls | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
