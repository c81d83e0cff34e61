#!/usr/bin/env bash
# The README's first command: installs what is missing, builds ferry and runs
# its main job on this machine.
#
# ferry's main job is `ferry send` → `ferry receive`. Until the connection and
# transfer layers land (issues 4-6), this runs every part that exists today on
# a small sample tree and says so: the scan a sender makes, the chunk hashes a
# receiver verifies against, and a join code.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
meson compile -C build >/dev/null
ferry=build/src/cli/ferry

demo=$(mktemp -d /tmp/ferry-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
mkdir -p "$demo/photos/2026/summer" "$demo/photos/empty-album"
head -c 3000000 /dev/urandom >"$demo/photos/2026/summer/beach.raw"
printf 'hello from ferry\n' >"$demo/photos/2026/notes.txt"
: >"$demo/photos/2026/summer/zero-bytes"

echo "== $($ferry --version | head -n1)"
echo
echo "== what a sender would send: ferry scan $demo/photos"
$ferry scan "$demo/photos"
echo
echo "== what a receiver verifies every chunk against: ferry hash --chunk-size 1M"
$ferry hash --chunk-size 1M "$demo/photos/2026/summer/beach.raw" "$demo/photos/2026/notes.txt"
echo
echo "== a join code's secret words (the server assigns the number in front): ferry code"
$ferry code
echo
echo "ferry send / ferry receive are not built yet: the rendezvous server, the"
echo "secure connection and the transfer itself arrive with issues 3-6. What ran"
echo "above is everything that exists today."
