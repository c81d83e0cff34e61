#!/usr/bin/env bash
# bench/serve.sh [BUILD_DIR]: `ferry serve` next to the magic-wormhole
# mailbox server (Debian's python3-magic-wormhole-mailbox-server, the
# rendezvous server ferry's signaling does the job of), both on loopback, in
# the same run, driven by bench-serve with each server's own protocol:
#
#   1. RSS per idle WebSocket: VmRSS before and with 10,000 idle connections
#      open and greeted (and the server CPU time it took to accept them);
#   2. pairs/s while those 10,000 are held (8 pairs in flight);
#   3. pairs/s on an otherwise empty server, 64 and 8 pairs in flight,
#      3 runs each, alternating the servers, median; the server's CPU time
#      per pair.
#
# A pair = a sender gets a nameplate, a receiver joins it, the receiver's
# message reaches the sender; then both close. Targets (issue #3): at most
# 20 KiB per idle connection, at least 2,000 pairs/s. Takes 2–3 minutes
# (IDLE_CONNECTIONS=N opens fewer idle connections, for a quicker look).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
ferry=$build/src/cli/ferry
gen=$build/bench/bench-serve
idle_n=${IDLE_CONNECTIONS:-10000}
pairs_n=10000    # per run, or as many as meet in pairs_s seconds
pairs_s=4
python=/usr/bin/python3 # Debian's, where apt puts twisted

for f in "$ferry" "$gen"; do
  [ -x "$f" ] || { echo "bench/serve.sh: no $f; build first (meson compile -C $build)" >&2; exit 2; }
done
if ! "$python" -c 'import twisted, autobahn, wormhole_mailbox_server' 2>/dev/null; then
  echo "bench/serve.sh: the comparison server is missing: apt-get install python3-magic-wormhole-mailbox-server" >&2
  exit 2
fi
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle_n + 200)) ]; then
  echo "bench/serve.sh: $idle_n connections need more file descriptors than the hard limit $(ulimit -Hn); raise it (ulimit -Hn) or set IDLE_CONNECTIONS lower" >&2
  exit 2
fi

tmp=$(mktemp -d /tmp/ferry-bench-serve.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for FILE SED-EXPR SECONDS PID: prints the first match of the sed
# expression in FILE, waiting for it; fails if PID dies or time runs out.
wait_for() {
  local file=$1 expr=$2 secs=$3 pid=$4 v i
  for ((i = 0; i < secs * 10; i++)); do
    [ -d "$tmp" ] || return 1 # cleaned up: the script is ending
    v=$(sed -n "$expr" "$file" 2>/dev/null | head -n 1)
    [ -n "$v" ] && { echo "$v"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench/serve.sh: gave up waiting for $file; it ends with:" >&2
  tail -n 5 "$file" >&2
  return 1
}

# field NAME LINE: the value of NAME=value in a bench-serve line.
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
# med "V1 V2 V3": median3 of a space-separated list.
med() {
  local -a v
  read -r -a v <<<"$1"
  median3 "${v[@]}"
}

# Both servers log no line per connection (ferry --quiet, wormhole
# --blur-usage below): what is timed is the rendezvous, not the log.
quiet=
"$ferry" serve --help | grep -q -- '--quiet' && quiet=--quiet
"$ferry" serve --listen 127.0.0.1:0 --no-stun $quiet --max-connections $((idle_n + 1000)) \
  --max-sessions 100000 --ip-connect-rate 0 --ip-session-rate 0 --message-rate 0 \
  >"$tmp/ferry.out" 2>"$tmp/ferry.err" &
ferry_pid=$!
pids+=("$ferry_pid")
ferry_port=$(wait_for "$tmp/ferry.out" 's/.*(port \([0-9]*\)).*/\1/p' 10 "$ferry_pid")

# The mailbox server as its operators run it: SQLite channel database (here
# in memory, so no disk is timed), request logging off (--blur-usage).
(cd "$tmp" && exec "$python" -m twisted wormhole-mailbox --port=tcp:0:interface=127.0.0.1 \
  --channel-db=:memory: --blur-usage=3600) >"$tmp/wormhole.out" 2>&1 &
wormhole_pid=$!
pids+=("$wormhole_pid")
wormhole_port=$(wait_for "$tmp/wormhole.out" 's/.*Site starting on \([0-9]*\).*/\1/p' 30 "$wormhole_pid")

# idle_phase NAME PROTO PORT PID: 10,000 idle connections, then pairs/s
# while they are held. Sets idle_line and loaded_line.
idle_phase() {
  local name=$1 proto=$2 port=$3 pid=$4 holder
  echo "$name: opening $idle_n idle connections…" >&2
  "$gen" --proto "$proto" --server-pid "$pid" --hold-ms 7000 --max-seconds 150 \
    "127.0.0.1:$port" idle "$idle_n" >"$tmp/idle-$name" &
  holder=$!
  pids+=("$holder")
  idle_line=$(wait_for "$tmp/idle-$name" '/^idle /p' 160 "$holder")
  loaded_line=$("$gen" --proto "$proto" --server-pid "$pid" --max-seconds "$pairs_s" \
    "127.0.0.1:$port" pairs "$pairs_n" 8)
  wait "$holder"
  echo "  $idle_line" >&2
  echo "  $(sed -n '/^idle-closed/p' "$tmp/idle-$name")" >&2
  echo "  with $idle_n held: $loaded_line" >&2
}

idle_phase ferry ferry "$ferry_port" "$ferry_pid"
ferry_idle=$idle_line ferry_loaded=$loaded_line
idle_phase wormhole wormhole "$wormhole_port" "$wormhole_pid"
worm_idle=$idle_line worm_loaded=$loaded_line

declare -A runs cpu p99
for i in 1 2 3; do
  for c in 64 8; do
    for s in ferry wormhole; do
      if [ "$s" = ferry ]; then port=$ferry_port pid=$ferry_pid; else port=$wormhole_port pid=$wormhole_pid; fi
      line=$("$gen" --proto "$s" --server-pid "$pid" --max-seconds "$pairs_s" \
        "127.0.0.1:$port" pairs "$pairs_n" "$c")
      echo "$s, $c in flight, run $i: $line" >&2
      runs[$s.$c]="${runs[$s.$c]:-} $(field pairs_per_s "$line")"
      cpu[$s.$c]="${cpu[$s.$c]:-} $(field server_cpu_us_per_pair "$line")"
      p99[$s.$c]="${p99[$s.$c]:-} $(field p99_ms "$line")"
    done
  done
done

# row NAME IDLE_LINE LOADED_LINE KEY: one line of the table.
row() {
  local name=$1 idle=$2 loaded=$3 k=$4
  printf '%-16s %9s %11s %10s %10s %9s %11s %12s\n' "$name" \
    "$(field kib_per_conn "$idle")" "$(field server_cpu_us_per_conn "$idle")" \
    "$(med "${runs[$k.64]}")" "$(med "${runs[$k.8]}")" "$(med "${cpu[$k.8]}")" \
    "$(med "${p99[$k.64]}")" "$(field pairs_per_s "$loaded")"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo
echo "ferry serve $("$ferry" version 2>/dev/null | head -n 1 | awk '{print $NF}') vs magic-wormhole mailbox server" \
  "$(dpkg-query -W -f '${Version}' python3-magic-wormhole-mailbox-server 2>/dev/null) (Python $("$python" -c 'import platform; print(platform.python_version())'))," \
  "loopback, $(nproc) CPUs shared by client and server"
echo "pairs/s: median of 3 runs of up to $pairs_n pairs or ${pairs_s} s; CPU: the server's, per pair, 8 in flight"
echo
printf '%-16s %9s %11s %10s %10s %9s %11s %12s\n' server "KiB/idle" "CPU us/conn" "pairs/s@64" "pairs/s@8" \
  "CPU us/pr" "p99 ms @64" "pairs/s@8+${idle_n}idle"
row "ferry serve" "$ferry_idle" "$ferry_loaded" ferry
row "wormhole mailbox" "$worm_idle" "$worm_loaded" wormhole
printf '%-16s %9s %11s %10s %10s %9s %11s %12s\n' "ferry/wormhole" \
  "$(ratio "$(field kib_per_conn "$ferry_idle")" "$(field kib_per_conn "$worm_idle")")" \
  "$(ratio "$(field server_cpu_us_per_conn "$ferry_idle")" "$(field server_cpu_us_per_conn "$worm_idle")")" \
  "$(ratio "$(med "${runs[ferry.64]}")" "$(med "${runs[wormhole.64]}")")" \
  "$(ratio "$(med "${runs[ferry.8]}")" "$(med "${runs[wormhole.8]}")")" \
  "$(ratio "$(med "${cpu[ferry.8]}")" "$(med "${cpu[wormhole.8]}")")" \
  "$(ratio "$(med "${p99[ferry.64]}")" "$(med "${p99[wormhole.64]}")")" \
  "$(ratio "$(field pairs_per_s "$ferry_loaded")" "$(field pairs_per_s "$worm_loaded")")"
echo
echo "KiB/idle: server RSS per idle connection; CPU us/conn: server CPU to accept one while the"
echo "$idle_n are opened; pairs/s@N: N pairs in flight; CPU us/pr: server CPU per pair (8 in flight);"
echo "the last column: pairs/s (8 in flight) while the $idle_n idle connections are held."
echo "Last row: ferry divided by wormhole (lower is better for KiB, CPU and p99; higher for pairs/s)."

kib=$(field kib_per_conn "$ferry_idle")
pps=$(med "${runs[ferry.64]}")
echo
awk -v k="$kib" -v p="$pps" 'BEGIN {
  printf "target <= 20 KiB per idle connection: %s (%.1f)\n", (k <= 20 ? "met" : "MISSED"), k
  printf "target >= 2000 pairs/s (64 in flight): %s (%d)\n", (p >= 2000 ? "met" : "MISSED"), p
}'
