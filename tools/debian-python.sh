#!/usr/bin/env bash
# CPython 3.14 and 3.15 on this machine: Debian's unstable suite packages both
# (python3.14, python3.15 with -dev and -venv).  This script creates (once) a
# minimal Debian sid root with debootstrap, reuses it on later runs, and runs
# a command for one version in a copy of this checkout inside that root,
# under `chroot` in a private IPC and mount namespace (`unshare --ipc
# --mount`): the tests' IPC objects never touch the machine's, and /proc,
# /dev and /dev/shm are mounted for the chroot only, vanishing with it.
#
#   tools/debian-python.sh VERSION            the README's test command with
#                                             pythonVERSION (3.14 or 3.15)
#   tools/debian-python.sh VERSION CMD...     CMD in the copy of the checkout;
#                                             $PYTHON names pythonVERSION
#   tools/debian-python.sh --root             only create (or check) the root
#   tools/debian-python.sh --rebuild ...      make a fresh root first (sid moves)
#
# The root lives outside the git tree, in $SYSVIPC_DEBIAN_ROOT (default
# /var/cache/sysvipc/debian-sid), and survives between CI runs; its pip cache
# (/root/.cache/pip inside) makes later installs fast.  Making it needs root,
# debootstrap (installed with apt-get if missing) and the Debian mirror
# $SYSVIPC_DEBIAN_MIRROR.  Where the machine cannot make it, the script prints
# one line "== Debian sid CPython ...: skipped (<reason>)" and exits 0; with
# --require (or SYSVIPC_DEBIAN_REQUIRE=1) it exits 1 instead.
#
# The copy of the checkout is what `git ls-files --cached --others
# --exclude-standard` lists (uncommitted edits included, no venvs or build
# products), under /tmp in the root, removed afterwards.
set -euo pipefail

root=${SYSVIPC_DEBIAN_ROOT:-/var/cache/sysvipc/debian-sid}
mirror=${SYSVIPC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3.14,python3.14-dev,python3.14-venv,python3.15,python3.15-dev,python3.15-venv,gcc,libc6-dev
require=${SYSVIPC_DEBIAN_REQUIRE:-0}
rebuild=0
only_root=0
while [ $# -gt 0 ]; do
    case "$1" in
        --require) require=1 ;;
        --rebuild) rebuild=1 ;;
        --root) only_root=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
version=
if [ "$only_root" = 0 ]; then
    version=${1:?usage: tools/debian-python.sh [--require] [--rebuild] VERSION [CMD...] | --root}
    shift
    case "$version" in
        3.14 | 3.15) ;;
        *) echo "VERSION must be 3.14 or 3.15, not $version" >&2; exit 2 ;;
    esac
fi
checkout=$(cd "$(dirname "$0")/.." && pwd)
label="Debian sid CPython ${version:-3.14/3.15}"

skip() {
    echo "== $label: skipped ($*)"
    [ "$require" = 1 ] && exit 1
    exit 0
}

# What the machine must offer before anything is attempted.
[ "$(uname -s)" = Linux ] || skip "not Linux"
[ "$(id -u)" = 0 ] || skip "needs root for debootstrap, chroot and unshare"
for tool in unshare chroot mount flock tar; do
    command -v "$tool" >/dev/null || skip "no $tool on this machine"
done
[ -r /etc/ssl/certs/ca-certificates.crt ] || skip "no CA bundle at /etc/ssl/certs/ca-certificates.crt for pip"
unshare --ipc --mount true 2>/dev/null || skip "unshare --ipc --mount is not permitted here"

# The root is complete when the marker names exactly the package list above.
marker=$root/.sysvipc-debian-root
complete() { [ -f "$marker" ] && [ "$(cat "$marker")" = "$packages" ]; }

make_root() {
    if ! command -v debootstrap >/dev/null; then
        command -v apt-get >/dev/null || skip "no debootstrap and no apt-get to install it"
        echo "== installing debootstrap on the host"
        apt-get install -y -q debootstrap >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q debootstrap >/dev/null 2>&1; } ||
            skip "debootstrap is not installed and apt-get could not install it"
    fi
    local new=$root.new
    # Never delete through a mount point (none is made outside a private
    # namespace, but a crashed foreign tool could have left one).
    if grep -qF " $root" /proc/self/mountinfo; then
        echo "something is mounted under $root; refusing to replace it" >&2
        exit 1
    fi
    rm -rf "$new"
    echo "== debootstrap: a Debian sid root with $packages in $root (about a minute)"
    local started=$SECONDS
    if ! debootstrap --variant=minbase --include="$packages" sid "$new" "$mirror" \
        >"$root.log" 2>&1; then
        tail -n 5 "$root.log"
        rm -rf "$new"
        skip "debootstrap failed, log in $root.log"
    fi
    # Packages' caches are not needed again.
    rm -rf "$new"/var/cache/apt/archives/*.deb
    printf '%s' "$packages" >"$new/.sysvipc-debian-root"
    rm -rf "$root"
    mv "$new" "$root"
    echo "== root made in $((SECONDS - started))s"
}

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
if [ "$rebuild" = 1 ] || ! complete; then
    flock 9 # exclusive: nobody uses the root while it is made
    if [ "$rebuild" = 1 ] || ! complete; then
        make_root
    fi
fi
flock -s 9 # shared: other runs may use the root at the same time

# What the chroot needs from the host, refreshed on every run.
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"

if [ "$only_root" = 1 ]; then
    for v in 3.14 3.15; do
        printf '%s: ' "$v"
        chroot "$root" "/usr/bin/python$v" -c 'import sys; print(sys.version.replace("\n", " "))'
    done
    exit 0
fi

python=/usr/bin/python$version
[ -x "$root$python" ] || skip "$python missing from $root (try --rebuild)"

if [ $# -eq 0 ]; then
    # The README's test command, with this version's python for python3.
    set -- sh -c '"$PYTHON" -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'
fi

work=$(mktemp -d "$root/tmp/sysvipc.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
# (deleted but still tracked files are skipped, with a warning from tar)
(cd "$checkout" && git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -C "$work/src" -xf -
inside=${work#"$root"}/src

# Only what the commands inside need from the environment: no host paths.
environment=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
    LANG=C.UTF-8 TERM="${TERM:-dumb}" PYTHON="$python"
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-180}")
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL; do
    [ -n "${!name:-}" ] && environment+=("$name=${!name}")
done

echo "== $label in $root: $(chroot "$root" "$python" -VV | tr '\n' ' ')"
# A private IPC namespace (the suite removes objects namespace-wide) and a
# private mount namespace: proc, dev and a fresh /dev/shm exist in it only.
unshare --ipc --mount --propagation private -- /bin/sh -ec '
    root=$1 inside=$2; shift 2
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
    exec chroot "$root" /usr/bin/env -i "$@"
' sh "$root" "$inside" "${environment[@]}" /bin/sh -ec 'cd "$0"; exec "$@"' "$inside" "$@"
