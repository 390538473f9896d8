"""The sysvipc command: ``python -m sysvipc demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sysvipc", description="System V IPC from Python: tools and a demonstration."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="run the main demonstration")
    demo.add_argument("--workers", type=int, default=3, help="worker processes (default 3)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run

        return run(workers=args.workers)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
