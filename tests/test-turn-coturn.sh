#!/usr/bin/env bash
# coturn accepts the TURN credentials ferry mints: a real turnserver on
# loopback in REST-API mode (use-auth-secret), and coturn's own client
# turnutils_uclient allocating relays with them.
set -u
. "$(dirname "$0")/tap.sh"
MINT=${TURN_MINT:?TURN_MINT must point at the turn-mint test helper}
SECRET=ferry-coturn-test-secret

if ! command -v turnserver >/dev/null || ! command -v turnutils_uclient >/dev/null; then
  echo "1..0 # SKIP coturn not found (install it: scripts/install-deps.sh)"
  exit 0
fi

turn_pid=
cleanup() {
  [ -n "$turn_pid" ] && kill "$turn_pid" 2>/dev/null && wait "$turn_pid" 2>/dev/null
  rm -rf "$TAP_TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts turnserver on a free port with everything it writes kept in
# TAP_TMP (no configuration file, no system database, no pid file in
# /var); sets PORT. Tries a few ports in case one was taken meanwhile.
start_coturn() {
  local log=$TAP_TMP/turnserver.log
  for _ in 1 2 3; do
    PORT=$(free_port)
    : >"$log"
    turnserver -n --use-auth-secret --static-auth-secret="$SECRET" --realm=ferry.test \
      --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$PORT" \
      --allow-loopback-peers --no-tls --no-dtls --no-cli \
      --userdb="$TAP_TMP/turndb" --pidfile="$TAP_TMP/turnserver.pid" \
      --log-file=stdout --simple-log >"$log" 2>&1 &
    turn_pid=$!
    for _ in $(seq 100); do
      kill -0 "$turn_pid" 2>/dev/null || break
      if grep -q 'Total General servers' "$log"; then
        grep -q 'Address already in use' "$log" || return 0
        break
      fi
      sleep 0.1
    done
    kill "$turn_pid" 2>/dev/null
    wait "$turn_pid" 2>/dev/null
    turn_pid=
  done
  cat "$log" >&2
  return 1
}

# allocate USER PASS [FLAGS…]: two relayed allocations on coturn that send
# each other a few messages (-y); exits 0 only if coturn accepted both.
allocate() {
  local user=$1 pass=$2
  shift 2
  timeout 60 turnutils_uclient -y -n 3 -m 1 "$@" -p "$PORT" -u "$user" -w "$pass" 127.0.0.1
}

# refused USER PASS: coturn turns the allocation down (not a hang, not a
# crash of the client): a failed exit and uclient's own failure message.
refused() {
  local rc=0
  allocate "$@" >"$TAP_TMP/refused" 2>&1 || rc=$?
  cat "$TAP_TMP/refused"
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q 'Cannot complete Allocation' "$TAP_TMP/refused"
}

field() { # NAME TEXT: the value of NAME=… in turn-mint's output
  sed -n "s/^$1=//p" <<<"$2"
}

ok_if "turnserver starts on loopback with use-auth-secret" start_coturn

now=$(date +%s)
expect_exit 0 "turn-mint mints credentials" "$MINT" "$SECRET" peer-1 600 "turn:127.0.0.1:$PORT"
user=$(field username "$OUT")
pass=$(field credential "$OUT")
expires=$(field expires "$OUT")
ok_if "username is EXPIRY:PEERID" grep -Eq '^[0-9]+:peer-1$' <<<"$user"
ok_if "EXPIRY is about now + ttl" test "$expires" -ge $((now + 600)) -a "$expires" -le $((now + 610))
ok_if "username carries EXPIRY" test "$user" = "$expires:peer-1"
ok_if "the URL is canonical" test "$(field url "$OUT")" = "turn:127.0.0.1:$PORT"

expect_exit 0 "coturn allocates relays (UDP) with ferry's credentials" allocate "$user" "$pass"
ok_if "messages went through the relays" grep -q 'Total lost packets 0 ' <<<"$OUT"
expect_exit 0 "coturn allocates relays (TCP) with ferry's credentials" allocate "$user" "$pass" -t
ok_if "messages went through the relays over TCP" grep -q 'Total lost packets 0 ' <<<"$OUT"

"$MINT" other-secret peer-1 600 "turn:127.0.0.1:$PORT" >"$TAP_TMP/other" || exit 1
other_pass=$(field credential "$(cat "$TAP_TMP/other")")
ok_if "another secret gives another password" test "$other_pass" != "$pass"
ok_if "a password from another secret is refused" refused "$user" "$other_pass"
ok_if "a changed peer ID with the same password is refused" refused "${expires}:peer-2" "$pass"

"$MINT" "$SECRET" peer-1 600 "turn:127.0.0.1:$PORT" $((now - 3600)) >"$TAP_TMP/old" || exit 1
old=$(cat "$TAP_TMP/old")
ok_if "credentials past their EXPIRY are refused" \
  refused "$(field username "$old")" "$(field credential "$old")"

ok_if "turnserver is still running" kill -0 "$turn_pid"
done_testing
