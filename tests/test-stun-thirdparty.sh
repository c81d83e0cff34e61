#!/usr/bin/env bash
# ferry's STUN responder answers STUN clients it did not write: coturn's
# turnutils_stunclient (Debian package coturn), and libnice's own STUN
# binding client (stun_usage_bind_run, what libnice's ICE agent gathers
# server-reflexive candidates with), driven by tests/stun-libnice-client.c
# since Debian ships no libnice STUN program.
set -u
. "$(dirname "$0")/tap.sh"
SERVE=${STUN_SERVE:?STUN_SERVE must point at the stun-serve test helper}
NICE=${STUN_NICE:?STUN_NICE must point at the stun-libnice-client test helper}

if ! command -v turnutils_stunclient >/dev/null; then
  echo "1..0 # SKIP turnutils_stunclient not found (install coturn: scripts/install-deps.sh)"
  exit 0
fi

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$TAP_TMP"
}
trap cleanup EXIT

# start_server NAME ADDRESS: runs stun-serve in the background; sets PORT.
start_server() {
  "$SERVE" "$2" >"$TAP_TMP/$1.out" 2>"$TAP_TMP/$1.err" &
  pids+=($!)
  eval "${1}_pid=$!"
  PORT=
  for _ in $(seq 100); do
    PORT=$(head -n1 "$TAP_TMP/$1.out" 2>/dev/null)
    [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  return 1
}

# stop_server NAME: SIGTERM, then the counters line it prints on the way out.
stop_server() {
  local pid
  eval "pid=\$${1}_pid"
  kill -TERM "$pid"
  wait "$pid"
  COUNTERS=$(tail -n1 "$TAP_TMP/$1.out")
}

stunclient() { # PORT HOST: at most 10 s (the client waits forever for no answer)
  timeout 10 turnutils_stunclient -p "$1" "$2"
}

ok_if "stun-serve starts on 127.0.0.1" start_server v4 127.0.0.1
v4_port=$PORT
expect_exit 0 "turnutils_stunclient gets an answer over IPv4" stunclient "$v4_port" 127.0.0.1
ok_if "it reports the mapped address 127.0.0.1" \
  grep -Eq 'UDP reflexive addr: 127\.0\.0\.1:[0-9]+' <<<"$OUT"
printf 'not a STUN message' >"/dev/udp/127.0.0.1/$v4_port"
expect_exit 0 "after garbage it still answers" stunclient "$v4_port" 127.0.0.1
ok_if "the answer is still 127.0.0.1" grep -Eq 'UDP reflexive addr: 127\.0\.0\.1:[0-9]+' <<<"$OUT"
expect_exit 0 "libnice's STUN client gets an answer over IPv4" timeout 10 "$NICE" 127.0.0.1 "$v4_port"
ok_if "libnice is told 127.0.0.1 and a real port" grep -Eq '^mapped 127\.0\.0\.1 [1-9][0-9]*$' <<<"$OUT"
stop_server v4
ok_if "counters: 3 requests answered, the garbage dropped" \
  test "$COUNTERS" = "requests=3 responses=3 dropped=1"

# Every address: one dual-stack socket (IPv4 only if the host has no IPv6).
ok_if "stun-serve starts on every address" start_server any any
any_port=$PORT
expect_exit 0 "an IPv4 client of the dual-stack socket gets an answer" \
  stunclient "$any_port" 127.0.0.1
ok_if "it is told its IPv4 address, not ::ffff:127.0.0.1" \
  grep -Eq 'UDP reflexive addr: 127\.0\.0\.1:[0-9]+' <<<"$OUT"
if python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))' \
  2>/dev/null; then
  expect_exit 0 "turnutils_stunclient gets an answer over IPv6" stunclient "$any_port" ::1
  ok_if "it reports the mapped address ::1" grep -Eq 'UDP reflexive addr: ::1:[0-9]+' <<<"$OUT"
  expect_exit 0 "libnice's STUN client gets an answer over IPv6" timeout 10 "$NICE" ::1 "$any_port"
  ok_if "libnice is told ::1" grep -Eq '^mapped ::1 [1-9][0-9]*$' <<<"$OUT"
else
  echo "# no IPv6 loopback here: IPv6 client not tried"
fi
stop_server any

done_testing
