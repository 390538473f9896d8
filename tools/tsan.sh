#!/usr/bin/env bash
# Tests with the C extension built under ThreadSanitizer, on a regular (GIL)
# build of CPython: TSan sees the extension's own memory accesses, and the
# GIL's hand-overs through the pthread calls it intercepts, so what it can
# report is a race between two threads in the extension's GIL-released
# sections (or one of them and code holding the GIL).  Any report fails the
# run (halt_on_error); tools/tsan-suppressions.txt lists CPython's own.
# Default: the threaded suite and the subinterpreters running in parallel.
#
#   tools/tsan.sh [PYTHON] [PYTEST ARGS...]
#       (default: python3 tests/test_threads.py tests/test_subinterpreters.py)
set -euo pipefail
python=${1:-python3}
shift || true
[ $# -gt 0 ] || set -- tests/test_threads.py tests/test_subinterpreters.py
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q 'setuptools>=77' pytest pytest-timeout

flags="-fsanitize=thread -fno-omit-frame-pointer -g -O1"
(cd "$root" && CFLAGS="$flags" LDFLAGS="$flags" "$work/venv/bin/python" setup.py -q build_ext \
    --build-temp "$work/build" --build-lib "$work/lib" --force)

mkdir "$work/run"
cp -r "$root/sysvipc" "$root/tests" "$root/pyproject.toml" "$work/run/"
rm -f "$work"/run/sysvipc/_sysvipc*.so
cp "$work"/lib/sysvipc/_sysvipc*.so "$work/run/sysvipc/"
cd "$work/run"
export PYTHONPATH="$work/run"
export LD_PRELOAD="$(gcc -print-file-name=libtsan.so)"
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:report_signal_unsafe=0:suppressions=$root/tools/tsan-suppressions.txt"
"$work/venv/bin/python" -c "import sysvipc._sysvipc as c; print('TSan build:', c.__file__)"
"$work/venv/bin/python" -m pytest -p no:cacheprovider -q "$@"
