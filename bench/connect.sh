#!/usr/bin/env bash
# bench/connect.sh [BUILD_DIR]: issue 4's benchmark. On loopback, with a
# real `ferry serve` (and a real coturn for the relayed path), measures in
# one run:
#   ferry direct   1 GiB of application data over an authenticated
#                  connection made from a code (bench-connect), median of 3
#   ferry relayed  256 MiB, --force-relay through coturn, median of 3
#   connect        code entered -> authenticated connection, 10 runs
#                  (median and p90), with ICE's share
#   iperf3 TCP and iperf3 -u (-b 0, 4 MB socket buffers, 1400-byte
#                  datagrams; receiver side)
# and prints one table with the targets and the ratios. Every process it
# starts is stopped on exit, failures included. About 1-2 minutes.
# Environment: DIRECT_BYTES, RELAY_BYTES, IPERF_SECONDS override the sizes.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
bench=$build/bench/bench-connect
ferry=$build/src/cli/ferry
direct_bytes=${DIRECT_BYTES:-$((1024 * 1024 * 1024))}
relay_bytes=${RELAY_BYTES:-$((256 * 1024 * 1024))}
iperf_seconds=${IPERF_SECONDS:-4}

for exe in "$bench" "$ferry"; do
  [ -x "$exe" ] || { echo "bench/connect.sh: no $exe; build first (meson compile -C $build)" >&2; exit 2; }
done
have_turn=1
command -v turnserver >/dev/null || {
  have_turn=0
  echo "bench/connect.sh: coturn is not installed (apt-get install -y coturn): no relayed rows" >&2
}
have_iperf=1
command -v iperf3 >/dev/null || {
  have_iperf=0
  echo "bench/connect.sh: iperf3 is not installed (apt-get install -y iperf3): no iperf3 rows" >&2
}

tmp=$(mktemp -d /tmp/ferry-bench-connect.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# forget PID: a process that was waited for is no longer ours to stop.
forget() {
  local keep=() p
  for p in "${pids[@]}"; do
    [ "$p" = "$1" ] || keep+=("$p")
  done
  pids=("${keep[@]}")
}

fail() {
  echo "bench/connect.sh: $*" >&2
  exit 1
}

# wait_for FILE PATTERN TRIES: polls FILE every 50 ms for PATTERN.
wait_for() {
  for _ in $(seq "$3"); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# start_serve NAME [ARGS...]: a ferry serve on a free loopback port; sets
# serve_url.
start_serve() {
  local name=$1
  shift
  "$ferry" serve --listen 127.0.0.1:0 --no-stun "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=("$!")
  wait_for "$tmp/$name.out" "(port " 100 || fail "ferry serve did not start: $(cat "$tmp/$name.err")"
  serve_url=http://127.0.0.1:$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$tmp/$name.out" | head -1)
}

# start_coturn: coturn on loopback with use-auth-secret, as the tests run
# it; sets turn_port and turn_secret.
start_coturn() {
  turn_secret=ferry-bench-$RANDOM$RANDOM
  for _ in 1 2 3 4 5; do
    turn_port=$((30000 + RANDOM % 20000))
    local min=$((50000 + RANDOM % 10000))
    : >"$tmp/turn.log"
    turnserver -n --log-file=stdout --simple-log --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 \
      --listening-port="$turn_port" --allow-loopback-peers --no-dtls --no-tls --no-cli \
      --realm=ferry.bench --use-auth-secret --static-auth-secret="$turn_secret" \
      --min-port="$min" --max-port=$((min + 199)) --pidfile="$tmp/turnserver.pid" \
      --userdb="$tmp/turndb" >"$tmp/turn.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
      grep -q "Total General servers" "$tmp/turn.log" && return 0
      grep -q "Address already in use" "$tmp/turn.log" && break
      sleep 0.05
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
  done
  fail "coturn did not start: $(tail -5 "$tmp/turn.log")"
}

# run_pair URL BYTES [OPTIONS...]: one sender and one receiver; prints the
# receiver's result line (the path line goes to $tmp/path.last).
run_pair() {
  local url=$1 bytes=$2
  shift 2
  : >"$tmp/send.out"
  "$bench" --server "$url" --bytes "$bytes" "$@" send >"$tmp/send.out" 2>"$tmp/send.err" &
  local spid=$!
  pids+=("$spid")
  wait_for "$tmp/send.out" "^code " 200 || fail "the sender printed no code: $(cat "$tmp/send.err")"
  local code
  code=$(awk '/^code /{print $2; exit}' "$tmp/send.out")
  "$bench" --server "$url" "$@" receive "$code" >"$tmp/recv.out" 2>"$tmp/recv.err" ||
    fail "the receiver failed: $(cat "$tmp/recv.err") / sender: $(cat "$tmp/send.err")"
  wait "$spid" || fail "the sender failed: $(cat "$tmp/send.err")"
  forget "$spid"
  grep '^path ' "$tmp/recv.out" | sed 's/^path //' >"$tmp/path.last"
  local result
  result=$(grep '^result ' "$tmp/recv.out") || fail "no result from the receiver"
  local got
  got=$(field bytes "$result")
  [ "$got" = "$bytes" ] || fail "the receiver got $got bytes of $bytes"
  echo "$result $(grep '^sender ' "$tmp/send.out" | sed 's/^sender bytes=[0-9]* / sender_/')"
}

# field KEY LINE: the value of KEY=value in LINE.
field() {
  echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1
}

# median, p90 (nearest rank): of numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
p90() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else { i = int(NR * 0.9); if (i < NR * 0.9) i++; print v[i] } }'; }

# series NAME RUNS URL BYTES [OPTIONS...]: RUNS result lines into $tmp/NAME.
series() {
  local name=$1 runs=$2
  shift 2
  : >"$tmp/$name"
  for i in $(seq "$runs"); do
    run_pair "$@" >>"$tmp/$name"
    printf '  %-8s run %2d: %s\n' "$name" "$i" "$(tail -1 "$tmp/$name")" >&2
  done
  cp "$tmp/path.last" "$tmp/$name.path"
}
col() { while read -r l; do field "$1" "$l"; done <"$tmp/$2"; }

echo "bench/connect.sh: $(nproc) CPUs, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

start_serve serve-direct
direct_url=$serve_url
echo "ferry direct, $((direct_bytes / 1048576)) MiB x 3:" >&2
series direct 3 "$direct_url" "$direct_bytes"
echo "connect (no data) x 10:" >&2
series connect 10 "$direct_url" 0

if [ "$have_turn" = 1 ]; then
  start_coturn
  start_serve serve-relay --turn-server "turn:127.0.0.1:$turn_port" --turn-static-auth-secret "$turn_secret"
  echo "ferry through coturn, $((relay_bytes / 1048576)) MiB x 3:" >&2
  series relay 3 "$serve_url" "$relay_bytes" --force-relay
fi

tcp_mbps=- udp_mbps=- udp_loss=-
if [ "$have_iperf" = 1 ]; then
  iport=$((30000 + RANDOM % 20000))
  iperf3 -s --forceflush -p "$iport" >"$tmp/iperf-s.log" 2>&1 &
  pids+=("$!")
  wait_for "$tmp/iperf-s.log" "Server listening" 100 || fail "iperf3 -s did not start: $(cat "$tmp/iperf-s.log")"
  echo "iperf3 TCP and UDP, ${iperf_seconds} s each:" >&2
  iperf3 -c 127.0.0.1 -p "$iport" -t "$iperf_seconds" -f m >"$tmp/iperf-tcp.log" 2>&1 ||
    fail "iperf3 TCP failed: $(cat "$tmp/iperf-tcp.log")"
  iperf3 -c 127.0.0.1 -p "$iport" -u -b 0 -w 4M -l 1400 -t "$iperf_seconds" -f m >"$tmp/iperf-udp.log" 2>&1 ||
    fail "iperf3 -u failed: $(cat "$tmp/iperf-udp.log")"
  tcp_mbps=$(awk '/receiver$/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") printf "%.1f", $i / 8 }' "$tmp/iperf-tcp.log")
  udp_mbps=$(awk '/receiver$/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") printf "%.1f", $i / 8 }' "$tmp/iperf-udp.log")
  udp_loss=$(awk '/receiver$/ { for (i = 1; i <= NF; i++) if ($i ~ /^\(.*%\)$/) { gsub(/[()%]/, "", $i); print $i } }' "$tmp/iperf-udp.log")
fi

d_mbps=$(col mbps direct | median)
d_cpu=$(col cpu_s direct | median)
d_scpu=$(col sender_cpu_s direct | median)
d_secs=$(col secs direct | median)
c_med=$(col connect_ms connect | median)
c_p90=$(col connect_ms connect | p90)
c_ice=$(col ice_ms connect | median)
c_other=$(col other_ms connect | median)
if [ "$have_turn" = 1 ]; then
  r_mbps=$(col mbps relay | median)
  r_cpu=$(col cpu_s relay | median)
  r_scpu=$(col sender_cpu_s relay | median)
  r_secs=$(col secs relay | median)
  r_conn=$(col connect_ms relay | median)
else
  r_mbps=- r_cpu=- r_scpu=- r_secs=- r_conn=-
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
meets() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { if (v == "-") print "-"; else if ((op == ">=" && v + 0 >= t) || (op == "<=" && v + 0 <= t)) print "yes"; else print "NO" }'; }

echo
echo "Issue 4 benchmark, loopback, $(nproc) CPUs; MB/s = 10^6 bytes/s of application data, receiver side"
printf '%-34s %10s  %-10s %-5s %s\n' "what" "value" "target" "met" "notes"
printf '%-34s %10s  %-10s %-5s %s\n' "ferry direct ($((direct_bytes / 1048576)) MiB, median of 3)" "$d_mbps MB/s" ">= 1200" "$(meets "$d_mbps" 1200 '>=')" \
  "$(printf 'cpu s recv %s / send %s over %s s' "$d_cpu" "$d_scpu" "$d_secs")"
printf '%-34s %10s  %-10s %-5s %s\n' "ferry via coturn ($((relay_bytes / 1048576)) MiB, median of 3)" "$r_mbps MB/s" ">= 300" "$(meets "$r_mbps" 300 '>=')" \
  "$(printf 'cpu s recv %s / send %s over %s s; connect %s ms' "$r_cpu" "$r_scpu" "$r_secs" "$r_conn")"
printf '%-34s %10s  %-10s %-5s %s\n' "connect, direct (median of 10)" "$c_med ms" "<= 150" "$(meets "$c_med" 150 '<=')" \
  "p90 $c_p90 ms; ICE $c_ice ms, PAKE+signaling+QUIC+binding $c_other ms"
printf '%-34s %10s\n' "iperf3 TCP" "$tcp_mbps MB/s"
printf '%-34s %10s  %-10s %-5s %s\n' "iperf3 -u (-b 0 -w 4M, 1400 B)" "$udp_mbps MB/s" "" "" "receiver side, loss $udp_loss %"
echo
echo "Ratios: direct/iperf3 TCP $(ratio "$d_mbps" "$tcp_mbps"), direct/iperf3 -u $(ratio "$d_mbps" "$udp_mbps"), relay/direct $(ratio "$r_mbps" "$d_mbps"), relay/iperf3 -u $(ratio "$r_mbps" "$udp_mbps")"
echo "Paths: direct: $(cat "$tmp/direct.path")"
[ "$have_turn" = 1 ] && echo "       relay:  $(cat "$tmp/relay.path")"
echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
