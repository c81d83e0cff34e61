#!/usr/bin/env bash
# bench/relay.sh [BUILD_DIR]: issue 8's benchmark. On loopback, in one run:
#   relay  curl -T FILE -> ferry serve's HTTP relay -> curl (to /dev/null)
#   nginx  nginx (sendfile, plain HTTP) serving the same FILE -> curl
# FILE is BIG_BYTES (1 GiB) of random bytes on a tmpfs. Each figure is the
# best of RUNS (3) runs, as MB/s of the downloading curl; each download's
# size is checked. Also printed: the relay/nginx ratio (target >= 0.8) and
# ferry serve's peak RSS (VmHWM, target <= 64 MiB) after all runs.
# nginx comes from scripts/install-bench-deps.sh; it runs from its own
# nginx.conf in a temporary folder and is stopped on exit.
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

run_nginx() {
  local out
  out=$(curl -sS -o /dev/null -w '%{size_download} %{time_total}' "http://127.0.0.1:$nginx_port/big")
  mbps $out
}

# The upload starts first and waits; the clock is the downloader's.
run_relay() {
  local out up
  curl -sS -T "$tmp/big" -H "Authorization: Bearer $secret" -o /dev/null \
    "http://127.0.0.1:$relay_port/r/big" &
  up=$!
  sleep 0.3
  out=$(curl -sS -o /dev/null -w '%{size_download} %{time_total}' "http://127.0.0.1:$relay_port/r/big")
  wait $up || true
  mbps $out
}

best() { sort -n | tail -1; }
nginx_all=()
relay_all=()
for i in $(seq "$runs"); do
  nginx_all+=("$(run_nginx)")
  relay_all+=("$(run_relay)")
done
nb=$(printf '%s\n' "${nginx_all[@]}" | grep . | best || true)
rb=$(printf '%s\n' "${relay_all[@]}" | grep . | best || true)
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
echo "  ferry serve peak RSS (VmHWM): $((hwm / 1024)) MiB (target <= 64: $([ "$hwm" -le 65536 ] && echo met || echo MISSED))"
