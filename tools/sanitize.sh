#!/usr/bin/env bash
# The test suite with the C extension built under AddressSanitizer and
# UndefinedBehaviorSanitizer.  Any sanitizer report aborts, failing the run.
#
#   tools/sanitize.sh [PYTHON] [PYTEST ARGS...]
set -euo pipefail
python=${1:-python3}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q 'setuptools>=77' pytest pytest-timeout hypothesis numpy mypy sysv_ipc

flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
(cd "$root" && CFLAGS="$flags" LDFLAGS="$flags" "$work/venv/bin/python" setup.py -q build_ext \
    --build-temp "$work/build" --build-lib "$work/lib" --force)

# A copy of the package with the sanitized extension, tested from there.
mkdir "$work/run"
cp -r "$root/sysvipc" "$root/tests" "$root/docs" "$root/benchmarks" "$root/README.md" \
    "$root/pyproject.toml" "$work/run/"
rm -f "$work"/run/sysvipc/_sysvipc*.so
cp "$work"/lib/sysvipc/_sysvipc*.so "$work/run/sysvipc/"
cd "$work/run"
export PYTHONPATH="$work/run"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export PYTHONMALLOC=malloc
# CPython does not free everything at exit: leak reports would be noise here
# (tools/refleaks.sh hunts leaks).
# handle_segv=0: a segfault stays a SIGSEGV (some tests expect one from a C
# peer or from sysv_ipc); ASan finds memory errors through its shadow memory.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:handle_segv=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
"$work/venv/bin/python" -c "import sysvipc._sysvipc as c; print('sanitized build:', c.__file__)"
"$work/venv/bin/python" -m pytest -p no:cacheprovider -q "$@"
