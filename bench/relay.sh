#!/usr/bin/env bash
# bench/relay.sh [BUILD_DIR]: issue 8's benchmark. On loopback, in one run:
#   relay  curl -T FILE -> ferry serve's HTTP relay -> curl (to /dev/null)
#   nginx  nginx (sendfile, plain HTTP) serving the same FILE -> curl
# FILE is BIG_BYTES (1 GiB) of random bytes on a tmpfs. Each figure is the
# best of RUNS (3) runs, as MB/s of the downloading curl; each download's
# size is checked. Also printed: the relay/nginx ratio (target >= 0.8) and
# ferry serve's peak RSS (VmHWM, target <= 64 MiB) after all runs.
# CPU: each process's user+system seconds per GiB (median of the runs) —
# nginx and its curl; the uploading curl, ferry serve and the downloading
# curl — and from them the most the relay could move with every CPU busy
# (CPUs / its core-seconds per GiB), beside the nginx rate of the same run.
# nginx comes from scripts/install-bench-deps.sh; it runs from its own
# nginx.conf in a temporary folder and is stopped on exit.
# Yardsticks, same curls, same file: bench/ref-relay.c (compiled here with cc)
# relays one upload to one download doing nothing else — "copy" through a
# user buffer as ferry serve does, and "splice" without any byte entering user
# memory. They show what any user-space relay reaches on this machine, so
# ferry's relay can be judged against them as well as against nginx.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
build=${1:-build}
ferry=$build/src/cli/ferry
runs=${RUNS:-3}
big_bytes=${BIG_BYTES:-1073741824}
me=bench/relay.sh
secret=bench-relay-secret

fail() {
  echo "$me: $*" >&2
  exit 1
}
[ -x "$ferry" ] || fail "no $ferry: build first (meson compile -C $build)"
nginx_exe=$(PATH=$PATH:/usr/sbin command -v nginx || true)
[ -n "$nginx_exe" ] || fail "nginx is not installed: run scripts/install-bench-deps.sh"
command -v curl >/dev/null || fail "curl is not installed"
command -v cc >/dev/null || fail "no C compiler (cc) for bench/ref-relay.c"

tmp=$(mktemp -d /dev/shm/ferry-relay-bench-XXXXXX 2>/dev/null || mktemp -d)
pids=()
cleanup() {
  set +e
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

head -c "$big_bytes" /dev/urandom >"$tmp/big"
cc -O2 -o "$tmp/ref-relay" bench/ref-relay.c || fail "could not compile bench/ref-relay.c"

# A free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# nginx, plain HTTP, sendfile, serving $tmp.
nginx_port=$(free_port)
mkdir -p "$tmp/nginx"
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
$user_line
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    root $tmp;
  }
}
EOF
"$nginx_exe" -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx/out" 2>&1 &
pids+=($!)

"$ferry" serve --listen 127.0.0.1:0 --no-stun --quiet --relay-secret "$secret" >"$tmp/serve.out" 2>"$tmp/serve.err" &
serve_pid=$!
pids+=($serve_pid)
relay_port=""
for _ in $(seq 100); do
  relay_port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$tmp/serve.out")
  [ -n "$relay_port" ] && curl -s -o /dev/null "http://127.0.0.1:$nginx_port/" 2>/dev/null && break
  sleep 0.1
done
[ -n "$relay_port" ] || fail "ferry serve did not start: $(cat "$tmp/serve.err")"

# One download's MB/s, from curl's own size and time; "" if the size is wrong.
mbps() { # size_download time_total
  awk -v n="$1" -v t="$2" -v want="$big_bytes" 'BEGIN { if (n != want || t <= 0) print ""; else printf "%.0f", n / t / 1e6 }'
}

# CPU seconds (user + system, clock ticks) a process has used so far.
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}
hz=$(getconf CLK_TCK)
# per_gib SECONDS: SECONDS spent on one run, as core-seconds per GiB moved.
per_gib() { # seconds
  awk -v s="$1" -v b="$big_bytes" 'BEGIN { printf "%.3f", s * 1073741824 / b }'
}
# A command's user+system seconds, from /usr/bin/time's "%U %S" in FILE.
time_secs() {
  awk 'END { print $1 + $2 }' "$1"
}
nginx_worker() {
  pgrep -P "$(cat "$tmp/nginx/nginx.pid")" | head -1
}
# (the run functions run in $(…): their CPU figures go to files $tmp/cpu.*)

run_nginx() {
  local out w a b
  w=$(nginx_worker)
  a=$(cpu_ticks "$w")
  out=$(/usr/bin/time -f '%U %S' -o "$tmp/t.down" curl -sS -o /dev/null \
    -w '%{size_download} %{time_total}' "http://127.0.0.1:$nginx_port/big")
  b=$(cpu_ticks "$w")
  echo "$(per_gib "$(awk -v t=$((b - a)) -v hz="$hz" 'BEGIN { print t / hz }')")" >>"$tmp/cpu.ng"
  echo "$(per_gib "$(time_secs "$tmp/t.down")")" >>"$tmp/cpu.ngc"
  mbps $out
}

# The upload starts first and waits; the clock is the downloader's.
run_relay() {
  local out up a b
  a=$(cpu_ticks "$serve_pid")
  /usr/bin/time -f '%U %S' -o "$tmp/t.up" curl -sS -T "$tmp/big" \
    -H "Authorization: Bearer $secret" -o /dev/null "http://127.0.0.1:$relay_port/r/big" &
  up=$!
  sleep 0.3
  out=$(/usr/bin/time -f '%U %S' -o "$tmp/t.down" curl -sS -o /dev/null \
    -w '%{size_download} %{time_total}' "http://127.0.0.1:$relay_port/r/big")
  wait $up || true
  b=$(cpu_ticks "$serve_pid")
  echo "$(per_gib "$(awk -v t=$((b - a)) -v hz="$hz" 'BEGIN { print t / hz }')")" >>"$tmp/cpu.sv"
  echo "$(per_gib "$(time_secs "$tmp/t.up")")" >>"$tmp/cpu.up"
  echo "$(per_gib "$(time_secs "$tmp/t.down")")" >>"$tmp/cpu.dn"
  mbps $out
}

# The yardstick relay in MODE (copy or splice): one upload, one download.
run_ref() { # mode
  local out up port rp
  port=$(free_port)
  "$tmp/ref-relay" "$port" "$1" >"$tmp/ref.cpu" &
  rp=$!
  sleep 0.2 # it listens at once; a probe connection would be taken for the upload
  /usr/bin/time -f '%U %S' -o "$tmp/t.rup" curl -sS -T "$tmp/big" -o /dev/null "http://127.0.0.1:$port/big" &
  up=$!
  sleep 0.3
  out=$(curl -sS -o /dev/null -w '%{size_download} %{time_total}' "http://127.0.0.1:$port/big")
  wait $up || true
  wait "$rp" || true
  echo "$(per_gib "$(cat "$tmp/ref.cpu")")" >>"$tmp/cpu.ref-$1"
  mbps $out
}

best() { sort -n | tail -1; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
nginx_all=()
relay_all=()
copy_all=()
splice_all=()
for i in $(seq "$runs"); do
  nginx_all+=("$(run_nginx)")
  relay_all+=("$(run_relay)")
  copy_all+=("$(run_ref copy)")
  splice_all+=("$(run_ref splice)")
done
nb=$(printf '%s\n' "${nginx_all[@]}" | grep . | best || true)
rb=$(printf '%s\n' "${relay_all[@]}" | grep . | best || true)
cb=$(printf '%s\n' "${copy_all[@]}" | grep . | best || true)
sb=$(printf '%s\n' "${splice_all[@]}" | grep . | best || true)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$serve_pid/status")

echo "HTTP relay benchmark: $((big_bytes / 1048576)) MiB on loopback, best of $runs; $(nproc) CPUs;" \
  "$("$nginx_exe" -v 2>&1 | sed 's/.*: //'); $(curl --version | head -1 | awk '{print $1, $2}')"
printf '  %-36s %8s MB/s   (runs: %s)\n' "nginx -> curl (plain HTTP, sendfile)" "${nb:-failed}" "${nginx_all[*]}"
printf '  %-36s %8s MB/s   (runs: %s)\n' "curl -T -> ferry relay -> curl" "${rb:-failed}" "${relay_all[*]}"
if [ -n "$nb" ] && [ -n "$rb" ]; then
  ratio=$(awk -v a="$rb" -v b="$nb" 'BEGIN { printf "%.2f", a / b }')
  met=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8) ? "met" : "MISSED" }')
  echo "  relay / nginx: ${ratio}x (target >= 0.8: $met)"
fi
printf '  %-36s %8s MB/s   (runs: %s)\n' "yardstick: curl -T -> copy -> curl" "${cb:-failed}" "${copy_all[*]}"
printf '  %-36s %8s MB/s   (runs: %s)\n' "yardstick: curl -T -> splice -> curl" "${sb:-failed}" "${splice_all[*]}"
if [ -n "$nb" ] && [ -n "$sb" ] && [ -n "$cb" ] && [ -n "$rb" ]; then
  awk -v r="$rb" -v c="$cb" -v s="$sb" -v n="$nb" 'BEGIN {
    printf "  yardsticks / nginx: copy %.2fx, splice %.2fx; ferry relay / copy yardstick %.2fx, / splice yardstick %.2fx\n", c / n, s / n, r / c, r / s }'
fi
m_ng=$(median <"$tmp/cpu.ng")
m_ngc=$(median <"$tmp/cpu.ngc")
m_up=$(median <"$tmp/cpu.up")
m_sv=$(median <"$tmp/cpu.sv")
m_dn=$(median <"$tmp/cpu.dn")
echo "  CPU, core-seconds per GiB (median of $runs):"
printf '    nginx %s + its curl %s = %s\n' "$m_ng" "$m_ngc" "$(awk -v a="$m_ng" -v b="$m_ngc" 'BEGIN { printf "%.3f", a + b }')"
printf '    uploading curl %s + ferry serve %s + downloading curl %s = %s\n' "$m_up" "$m_sv" "$m_dn" \
  "$(awk -v a="$m_up" -v b="$m_sv" -v c="$m_dn" 'BEGIN { printf "%.3f", a + b + c }')"
printf '    yardstick relays themselves: copy %s, splice %s\n' "$(median <"$tmp/cpu.ref-copy")" "$(median <"$tmp/cpu.ref-splice")"
if [ -n "$nb" ]; then
  awk -v a="$m_up" -v b="$m_sv" -v c="$m_dn" -v n="$(nproc)" -v nb="$nb" 'BEGIN {
    t = a + b + c; u = a + c
    printf "    with all %d CPUs busy the relay moves at most %.0f MB/s (%.2fx nginx); with a ferry serve\n", n, n / t * 1073.741824, n / t * 1073.741824 / nb
    printf "    that cost nothing, the two curls alone allow %.0f MB/s (%.2fx nginx)\n", n / u * 1073.741824, n / u * 1073.741824 / nb }'
fi
echo "  ferry serve peak RSS (VmHWM): $((hwm / 1024)) MiB (target <= 64: $([ "$hwm" -le 65536 ] && echo met || echo MISSED))"
