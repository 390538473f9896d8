#!/usr/bin/env bash
# Reference-leak hunt on a debug CPython (apt-get install python3.11-dbg).
#
#   tools/refleaks.sh [DEBUG-PYTHON]    (default: python3.11-dbg)
set -euo pipefail
python=${1:-python3.11-dbg}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q 'setuptools>=77'
(cd "$root" && "$work/venv/bin/python" setup.py -q build_ext --build-temp "$work/build" \
    --build-lib "$work/lib" --force)
# The Python sources beside the debug build of the extension (the other
# builds' .so files carry other ABI tags and are never loaded).
cp "$root"/sysvipc/*.py "$root"/sysvipc/*.pyi "$work/lib/sysvipc/"
cd "$work/lib"
PYTHONPATH="$work/lib" "$work/venv/bin/python" "$root/tools/refleaks.py"
