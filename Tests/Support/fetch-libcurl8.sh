#!/usr/bin/env bash
# Downloads Debian bookworm-backports' libcurl4 (libcurl 8.x, same soname as bookworm's 7.88) into DIR without
# installing it, and prints the directory holding libcurl.so.4. `make test` reruns the HTTP/2 and export suites
# with LD_LIBRARY_PATH set to it, so both connection paths of the transport (fresh connection per HTTP/2
# request before libcurl 8.0, reuse and multiplexing from 8.0) are exercised on one machine.
# Exits non-zero (with the reason on stderr) when it cannot: not Debian bookworm, no apt-get, no network.
set -euo pipefail
mkdir -p "${1:?usage: fetch-libcurl8.sh DIR}"
dir=$(cd "$1" && pwd)
lib="$dir/root/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
if [ -e "$lib/libcurl.so.4" ]; then echo "$lib"; exit 0; fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { echo "no apt-get/dpkg-deb" >&2; exit 1; }
grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null || { echo "not Debian bookworm" >&2; exit 1; }
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/download"
echo "deb http://deb.debian.org/debian bookworm-backports main" > "$dir/sources.list"
apt_options=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=/dev/null
  -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o Debug::NoLocking=1 -q)
apt-get "${apt_options[@]}" update >/dev/null 2>&1 || { echo "apt-get update of bookworm-backports failed" >&2; exit 1; }
(cd "$dir/download" && apt-get "${apt_options[@]}" download libcurl4/bookworm-backports >/dev/null 2>&1) \
  || { echo "apt-get download libcurl4/bookworm-backports failed" >&2; exit 1; }
dpkg-deb -x "$dir"/download/libcurl4_*.deb "$dir/root"
[ -e "$lib/libcurl.so.4" ] || { echo "the package holds no libcurl.so.4" >&2; exit 1; }
echo "$lib"
