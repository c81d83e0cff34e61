#!/usr/bin/env bash
# The README's first command: installs what is missing, builds ferry and runs
# its main job on this machine.
#
# ferry's main job is `ferry send` → `ferry receive`. After showing the parts
# a transfer is made of (the scan, the chunk hashes, a code), this sends a
# small sample tree (nested folders, an empty folder, an empty file, a 3 MB
# file) to a receiver in another folder twice: first with nothing set up at
# all (no server: the sender runs the rendezvous itself and announces its
# number on the local network), then through a `ferry serve` as two machines
# on the internet would. Each time it checks the trees are identical.
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
# transfer LABEL [--server URL]: ferry send photos → ferry receive CODE into
# $demo/received-LABEL, then compares the trees.
transfer() {
  local label=$1 out="$demo/received-$1" code=
  shift
  $ferry send "$@" "$demo/photos" >"$demo/send-$label.out" 2>"$demo/send-$label.err" &
  send_pid=$!
  for _ in $(seq 100); do
    code=$(sed -n 's/^Code: \([^ ]*\).*/\1/p' "$demo/send-$label.out" 2>/dev/null | head -n1)
    [ -n "$code" ] && break
    sleep 0.1
  done
  sed 's/^/sender: /' "$demo/send-$label.out" "$demo/send-$label.err"
  if [ -z "$code" ]; then
    echo "ferry: the sender printed no code (messages above)" >&2
    exit 1
  fi
  echo "\$ ferry receive -y --out $(basename "$out")${*:+ $*} $code"
  if ! $ferry receive -y --out "$out" "$@" "$code" 2>&1; then
    cat "$demo/send-$label.err" >&2
    echo "ferry: the transfer through the code failed (messages above)" >&2
    exit 1
  fi
  wait $send_pid
  echo "sender: $(tail -n1 "$demo/send-$label.err")"
  (cd "$out" && find photos -printf '  %y %8s  %p\n' | sort -k3)
  sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
  if diff <(sums "$demo/photos") <(sums "$out/photos") >/dev/null &&
    [ -d "$out/photos/empty-album" ]; then
    echo "byte-exact: yes ($(find "$out/photos" | wc -l) entries, sha256 of every file compared)"
  else
    echo "ferry: the received tree differs from the sent one" >&2
    exit 1
  fi
}
export XDG_STATE_HOME="$demo/state" XDG_CONFIG_HOME="$demo/config"
unset FERRY_SERVER
send_pid=
trap 'kill $serve_pid $send_pid 2>/dev/null || true; rm -rf "$demo"' EXIT

echo "== zero setup: ferry send photos  →  ferry receive CODE, no server anywhere"
echo "   (the sender runs the rendezvous itself and announces the code's number on the"
echo "   local network; CPace on the code, QUIC on the path ICE chose, every chunk"
echo "   checked with SHA-256)"
transfer lan
echo
echo "== across the internet: the same through the ferry serve above (--server URL)"
transfer server --server "http://127.0.0.1:$port"
kill -TERM $serve_pid && wait $serve_pid && echo "(server stopped cleanly with SIGTERM)"
