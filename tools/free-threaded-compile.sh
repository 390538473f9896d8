#!/usr/bin/env bash
# A compile-only check of the free-threaded ABI: build the C extension against
# the CPython 3.14 and 3.15 headers with -DPy_GIL_DISABLED=1 (what a
# free-threaded build's pyconfig.h defines), with setup.py's own flags and
# every warning an error.  Nothing is imported or run: no free-threaded
# interpreter is installed here (Debian does not package one), and the object
# layout the headers switch to (ob_tid, ob_ref_local, ob_ref_shared, PyMutex,
# critical sections) only matters to code that calls them.  What it proves:
# the source compiles and links as a free-threaded extension (the
# Py_GIL_DISABLED branches of the headers and of src/_sysvipc.c).
#
#   tools/free-threaded-compile.sh [VERSION...]     (default: 3.14 3.15)
#
# The headers come from the Debian sid root of tools/debian-python.sh (which
# skips with one line where the machine cannot make it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- 3.14 3.15
for version in "$@"; do
    # shellcheck disable=SC2016  # expanded inside the root
    "$here/debian-python.sh" "$version" sh -ec '
        "$PYTHON" -m venv /tmp/ft-venv
        /tmp/ft-venv/bin/pip install -q "setuptools>=77"
        CFLAGS="-DPy_GIL_DISABLED=1 -Werror" /tmp/ft-venv/bin/python setup.py -q build_ext \
            --build-temp build/ft-temp --build-lib build/ft-lib
        rm -rf /tmp/ft-venv
        so=$(ls build/ft-lib/sysvipc/_sysvipc*.so)
        # The free-threaded headers were really used: their refcounting
        # helpers appear among the undefined symbols.
        nm -D --undefined-only "$so" >build/undefined.txt
        grep -q "_Py_MergeZeroLocalRefcount\|_Py_DecRefShared" build/undefined.txt ||
            { echo "the free-threaded headers were not used"; exit 1; }
        echo "free-threaded ABI ($("$PYTHON" -V), Py_GIL_DISABLED=1): compiles and links without a warning"
    '
done
