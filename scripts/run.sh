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
echo "== the rendezvous server: ferry serve on 127.0.0.1 (a free port), asked for /health"
$ferry serve --listen 127.0.0.1:0 --stun-port 0 >"$demo/serve.out" 2>"$demo/serve.err" &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null; rm -rf "$demo"' EXIT
for _ in $(seq 50); do grep -q "(port " "$demo/serve.out" 2>/dev/null && break; sleep 0.1; done
cat "$demo/serve.out"
port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$demo/serve.out")
/usr/bin/python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode().strip())" \
  "http://127.0.0.1:$port/health"
kill -TERM $serve_pid && wait $serve_pid && echo "(stopped cleanly with SIGTERM)"
echo
echo "ferry send / ferry receive are not built yet: they need the secure connection"
echo "(ICE + QUIC, issue 4) and the transfer protocol (issue 5). What ran above is"
echo "everything that exists today; see README.md."
