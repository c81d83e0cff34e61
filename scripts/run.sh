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
trap 'kill $serve_pid 2>/dev/null || true; rm -rf "$demo"' EXIT
for _ in $(seq 50); do grep -q "(port " "$demo/serve.out" 2>/dev/null && break; sleep 0.1; done
cat "$demo/serve.out"
port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$demo/serve.out")
/usr/bin/python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode().strip())" \
  "http://127.0.0.1:$port/health"
echo
echo "== a file through a code: examples/ferry-pipe send | receive over that server"
echo "   (CPace over the server, sealed ICE candidates, QUIC on the path ICE chose,"
echo "   the PAKE key bound to the QUIC session before any byte moves)"
pipe=build/examples/ferry-pipe
export FERRY_SERVER=http://127.0.0.1:$port
"$pipe" send <"$demo/photos/2026/summer/beach.raw" >/dev/null 2>"$demo/send.err" &
pipe_pid=$!
code=
for _ in $(seq 100); do code=$(head -n1 "$demo/send.err" 2>/dev/null); [ -n "$code" ] && break; sleep 0.1; done
echo "sender's code: $code"
if ! FERRY_PIPE_VERBOSE=1 "$pipe" receive "$code" </dev/null >"$demo/received.raw" 2>"$demo/receive.err"; then
  cat "$demo/receive.err" "$demo/send.err" >&2
  echo "ferry: the transfer through the code failed (messages above)" >&2
  exit 1
fi
wait $pipe_pid || true
sed -n 's/^ferry-pipe: /path: /p' "$demo/receive.err"
echo "sent:     $(sha256sum <"$demo/photos/2026/summer/beach.raw" | cut -c1-64)  3000000 bytes"
echo "received: $(sha256sum <"$demo/received.raw" | cut -c1-64)  $(stat -c %s "$demo/received.raw") bytes"
if cmp -s "$demo/photos/2026/summer/beach.raw" "$demo/received.raw"; then
  echo "byte-exact: yes"
else
  echo "ferry: the received bytes differ from the sent ones" >&2
  exit 1
fi
kill -TERM $serve_pid && wait $serve_pid && echo "(server stopped cleanly with SIGTERM)"
echo
echo "ferry send / ferry receive (folders, per-chunk verification, resume, many"
echo "receivers) come with the transfer protocol (issue 5) on top of this connection."
echo "What ran above is everything that exists today; see README.md."
