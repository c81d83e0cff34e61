#!/usr/bin/env bash
# LAN mode: ferry send and ferry receive with no server configured
# anywhere find each other by UDP multicast and transfer through the
# sender's own rendezvous (issue 6, items 1 and 4). Checked by the bytes on
# disk, the exit statuses and what the user is told:
#   1. two terminals on this machine (FERRY_SERVER unset, empty config);
#      the sender's --json code event says "lan": true;
#   1b. the same in a network namespace with nothing but lo up;
#   2. two network namespaces joined by a veth pair (IPv4), sender in one,
#      receiver in the other;
#   3. two senders at once in one namespace: a receiver in the other gets
#      the files of the code it was given, for either code;
#   4. a code nobody on the network holds: exit 11 and the way out;
#   5. the veth pair with IPv6 link-local addresses as well (discovery
#      over both families; ICE then prefers the link-local pair, whose
#      packets carry a scope id libnice's remote candidate lacks);
#   6. a server and the LAN both possible: the sender offers its server
#      code on the LAN too; a receiver asks both and uses the first to
#      answer (LAN first when the server is slow, the server when the LAN
#      is silent), and a sender whose server is gone falls back to LAN mode.
# Cases 1b to 5 need network namespaces (root); without them they are
# skipped with the reason.
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}
T=$TAP_TMP
export XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state
unset FERRY_SERVER FERRY_STUN_SERVER FERRY_TURN_SERVER
mkdir -p "$T/config"

NS=()
# Kills this script's children, deletes the namespaces, removes the files.
cleanup() {
  local p n
  for p in $(jobs -p); do
    kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$TAP_TMP"
}
trap cleanup EXIT

# make_tree DIR SEED: a few files of different sizes, one folder deep.
make_tree() {
  mkdir -p "$1/sub"
  head -c 1500000 /dev/urandom >"$1/big-$2.bin"
  printf 'file of tree %s\n' "$2" >"$1/sub/note-$2.txt"
  : >"$1/empty-$2"
}
make_tree "$T/one" one
make_tree "$T/two" two

# start_send NAME [PREFIX…] -- PATH…: a sender in the background ($NAME.out,
# $NAME.err, pid in SPID); waits for its code (in CODE), at most 15 s.
start_send() {
  local name=$1 i
  shift
  local pre=()
  while [ "$1" != "--" ]; do
    pre+=("$1")
    shift
  done
  shift
  "${pre[@]}" "$F" send "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null &
  SPID=$!
  CODE=
  for ((i = 0; i < 300; i++)); do
    CODE=$(sed -n 's/^Code: //p' "$T/$name.out" 2>/dev/null)
    [ -n "$CODE" ] && return 0
    kill -0 "$SPID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# receive NAME [PREFIX…] -- CODE: runs a receiver into $T/NAME/ (status in
# RC, output in $T/NAME.out / .err), at most 60 s.
receive() {
  local name=$1
  shift
  local pre=()
  while [ "$1" != "--" ]; do
    pre+=("$1")
    shift
  done
  shift
  RC=0
  timeout 60 "${pre[@]}" "$F" receive -y --out "$T/$name" "$@" >"$T/$name.out" \
    2>"$T/$name.err" </dev/null || RC=$?
}

same_tree() { diff -r "$1" "$2" >/dev/null; }

# ---- 1. two terminals on this machine -----------------------------------------

mkdir -p "$T/r1"
if start_send s1 -- "$T/one"; then
  tap_result 0 "1: a sender with no server prints a code"
  ok_if "1: … and says it is LAN mode, and how to go further" grep -q \
    "no server configured: receivers on this network can use this code (LAN mode); for the internet use --server" "$T/s1.err"
  ok_if "1: … and the command to run has no --server" grep -qx "On the other side run: ferry receive $CODE" "$T/s1.out"
  receive r1 -- "$CODE"
  ok_if "1: the receiver exits 0" test "$RC" = 0
  ok_if "1: … after looking on the local network" grep -q "looking for the sender on the local network" "$T/r1.err"
  ok_if "1: the files arrive byte for byte" same_tree "$T/one" "$T/r1/one"
  rc=0
  wait_pid "$SPID" 30 || rc=$?
  ok_if "1: the sender exits 0" test "$rc" = 0
else
  tap_result 1 "1: a sender with no server prints a code" "$(cat "$T/s1.err")"
fi

"$F" send --json "$T/one" >"$T/j.out" 2>"$T/j.err" </dev/null &
pid=$!
for ((i = 0; i < 300; i++)); do
  [ -s "$T/j.out" ] && break
  sleep 0.05
done
kill -INT $pid 2>/dev/null
wait_pid $pid 20
ok_if "1: send --json: the code event says lan: true, and nothing else is printed" python3 -c '
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
code = events[0]
assert code["event"] == "code" and code["lan"] is True, code
assert code["command"] == "ferry receive " + code["code"], code
' "$T/j.out"
ok_if "1: send --json: no LAN text on standard error" test "$(grep -c 'LAN mode' "$T/j.err")" = 0

# ---- namespaces -----------------------------------------------------------------

A=ferrylan-$$-a
B=ferrylan-$$-b
L=ferrylan-$$-lo
if ! ip netns add "$L" 2>"$T/netns.err"; then
  why="network namespaces cannot be created here: $(head -n1 "$T/netns.err")"
  for c in 1b 2 3 4 5 6; do echo "ok $((tap_n + 1)) # SKIP case $c: $why" && tap_n=$((tap_n + 1)); done
  done_testing
  exit
fi
NS+=("$L")
ip netns add "$A" && NS+=("$A")
ip netns add "$B" && NS+=("$B")
ip -n "$L" link set lo up
ip -n "$A" link set lo up
ip -n "$B" link set lo up
ip link add "lan$$a" netns "$A" type veth peer name "lan$$b" netns "$B"
# no IPv6 address until case 5
ip -n "$A" link set "lan$$a" addrgenmode none
ip -n "$B" link set "lan$$b" addrgenmode none
ip -n "$A" addr add 10.77.0.1/24 dev "lan$$a"
ip -n "$B" addr add 10.77.0.2/24 dev "lan$$b"
ip -n "$A" link set "lan$$a" up
ip -n "$B" link set "lan$$b" up
# both ends carry (ICE gathers only on running interfaces)
for ((i = 0; i < 100; i++)); do
  ip -n "$A" link show "lan$$a" | grep -q LOWER_UP && ip -n "$B" link show "lan$$b" | grep -q LOWER_UP && break
  sleep 0.05
done
NA=(ip netns exec "$A")
NB=(ip netns exec "$B")

# ---- 1b. a machine with no network at all ------------------------------------

mkdir -p "$T/r1b"
if start_send s1b ip netns exec "$L" -- "$T/one"; then
  receive r1b ip netns exec "$L" -- "$CODE"
  ok_if "1b: only lo up: the receiver exits 0" test "$RC" = 0
  [ "$RC" = 0 ] || echo "# receiver: $(cat "$T/r1b.err")"
  ok_if "1b: only lo up: the files arrive byte for byte" same_tree "$T/one" "$T/r1b/one"
  rc=0
  wait_pid "$SPID" 30 || rc=$?
  ok_if "1b: only lo up: the sender exits 0" test "$rc" = 0
else
  tap_result 1 "1b: only lo up: the sender prints a code" "$(cat "$T/s1b.err")"
fi

# ---- 2. two machines on one LAN -------------------------------------------------

mkdir -p "$T/r2"
if start_send s2 "${NA[@]}" -- "$T/one"; then
  receive r2 "${NB[@]}" -- -v "$CODE"
  ok_if "2: across the veth pair: the receiver exits 0" test "$RC" = 0
  [ "$RC" = 0 ] || echo "# receiver: $(cat "$T/r2.err")"
  ok_if "2: the files arrive byte for byte" same_tree "$T/one" "$T/r2/one"
  ok_if "2: the data went directly between the two namespaces" grep -Eq \
    "connected: direct: host 10.77.0.2:[0-9]+ <-> host 10.77.0.1:[0-9]+" "$T/r2.err"
  rc=0
  wait_pid "$SPID" 30 || rc=$?
  ok_if "2: the sender exits 0" test "$rc" = 0
else
  tap_result 1 "2: a sender in a namespace prints a code" "$(cat "$T/s2.err")"
fi

# ---- 3. two senders on the LAN at once ---------------------------------------

mkdir -p "$T/r3a" "$T/r3b"
if start_send s3a "${NA[@]}" -- "$T/one" && CODE_A=$CODE && PID_A=$SPID &&
  start_send s3b "${NA[@]}" -- "$T/two" && CODE_B=$CODE && PID_B=$SPID; then
  receive r3b "${NB[@]}" -- "$CODE_B"
  ok_if "3: the receiver with the second code exits 0" test "$RC" = 0
  [ "$RC" = 0 ] || echo "# receiver: $(cat "$T/r3b.err")"
  ok_if "3: … and gets the second sender's files" same_tree "$T/two" "$T/r3b/two"
  ok_if "3: … and nothing of the first" test ! -e "$T/r3b/one"
  receive r3a "${NB[@]}" -- "$CODE_A"
  ok_if "3: the receiver with the first code exits 0" test "$RC" = 0
  [ "$RC" = 0 ] || echo "# receiver: $(cat "$T/r3a.err")"
  ok_if "3: … and gets the first sender's files" same_tree "$T/one" "$T/r3a/one"
  rc=0
  wait_pid "$PID_A" 30 || rc=$?
  ok_if "3: the first sender exits 0" test "$rc" = 0
  rc=0
  wait_pid "$PID_B" 30 || rc=$?
  ok_if "3: the second sender exits 0" test "$rc" = 0
  ok_if "3: neither sender saw a wrong code" test "$(cat "$T/s3a.err" "$T/s3b.err" | grep -c 'wrong code')" = 0
else
  tap_result 1 "3: two senders in one namespace print their codes" "$(cat "$T/s3a.err" "$T/s3b.err" 2>/dev/null)"
fi

# ---- 4. nobody holds the code ---------------------------------------------------

receive r4 "${NB[@]}" -- 7-ocean-tiger-piano
ok_if "4: a code nobody on the network holds: exit 11" test "$RC" = 11
ok_if "4: … saying so and naming the way out" grep -q \
  "no sender with that code on this network; if the sender is elsewhere, both sides need --server URL" "$T/r4.err"

# ---- 5. IPv6 link-local addresses as well --------------------------------------

ip -n "$A" addr add fe80::77:1/64 dev "lan$$a" nodad
ip -n "$B" addr add fe80::77:2/64 dev "lan$$b" nodad
mkdir -p "$T/r5"
if start_send s5 "${NA[@]}" -- "$T/two"; then
  receive r5 "${NB[@]}" -- --connect-timeout 20000 "$CODE"
  [ "$RC" = 0 ] || echo "# receiver: $(tail -n 1 "$T/r5.err")"
  ok_if "5: with IPv6 link-local too: the files arrive byte for byte" same_tree "$T/two" "$T/r5/two"
  kill "$SPID" 2>/dev/null
  wait_pid "$SPID" 10
else
  tap_result 1 "5: with IPv6 link-local too: a sender prints a code" "$(cat "$T/s5.err")"
fi

# ---- 6. a server and the LAN both possible: the first to answer wins -------------
# In the namespace with only lo: a ferry serve, and a TCP proxy to it that
# waits 1.5 s before it carries anything (a far-away server).

NL=(ip netns exec "$L")
"${NL[@]}" "$F" serve --listen 127.0.0.1:0 --stun-port 0 >"$T/serve6.out" 2>"$T/serve6.err" &
SERVE_PID=$!
port=
for ((i = 0; i < 200; i++)); do
  port=$(sed -n 's/.*listening on .*(port \([0-9]*\)).*/\1/p' "$T/serve6.out" 2>/dev/null | head -n1)
  [ -n "$port" ] && break
  sleep 0.05
done
S6=ws://127.0.0.1:$port
cat >"$T/slow-proxy.py" <<'PY'
import asyncio, sys
upstream = int(sys.argv[1])
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()
async def handle(r, w):
    await asyncio.sleep(1.5)
    ur, uw = await asyncio.open_connection("127.0.0.1", upstream)
    await asyncio.gather(pipe(r, uw), pipe(ur, w), return_exceptions=True)
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
PY
"${NL[@]}" python3 "$T/slow-proxy.py" "$port" >"$T/proxy6.out" 2>&1 &
slow=
for ((i = 0; i < 100; i++)); do
  slow=$(head -n1 "$T/proxy6.out" 2>/dev/null)
  [ -n "$slow" ] && break
  sleep 0.05
done
SLOW=ws://127.0.0.1:$slow

# 6a: the sender uses the server (and says it is on the LAN too); the
# way to that server is slow: for the receiver the LAN answers first.
mkdir -p "$T/r6a"
if [ -n "$port" ] && [ -n "$slow" ] && start_send s6a "${NL[@]}" -- --server "$SLOW" "$T/one"; then
  ok_if "6a: a sender with a server gives the server's command" grep -qx \
    "On the other side run: ferry receive --server $SLOW $CODE" "$T/s6a.out"
  for ((i = 0; i < 100; i++)); do
    grep -q "also offered on this network" "$T/s6a.err" && break
    sleep 0.05
  done
  ok_if "6a: … and says the code is offered on this network too" grep -q \
    "also offered on this network: receivers here connect without the server (--no-lan to stop that)" "$T/s6a.err"
  receive r6a "${NL[@]}" -- --server "$SLOW" --json "$CODE"
  ok_if "6a: the receiver whose server is slow exits 0" test "$RC" = 0
  ok_if "6a: … found the sender on the LAN first (rendezvous event via lan)" grep -q \
    '"event":"rendezvous","via":"lan"' "$T/r6a.out"
  ok_if "6a: the files arrive byte for byte" same_tree "$T/one" "$T/r6a/one"
  rc=0
  wait_pid "$SPID" 30 || rc=$?
  ok_if "6a: the sender exits 0" test "$rc" = 0
else
  tap_result 1 "6a: a sender with a server prints a code" "$(cat "$T/serve6.err" "$T/proxy6.out" "$T/s6a.err" 2>/dev/null)"
fi

# 6b: multicast dropped: the LAN stays silent, the server answers.
mkdir -p "$T/r6b"
"${NL[@]}" nft -f - <<'NFT'
table inet ferrylan6 {
  chain out { type filter hook output priority 0; udp dport 41414 drop; }
}
NFT
if start_send s6b "${NL[@]}" -- --server "$S6" "$T/two"; then
  receive r6b "${NL[@]}" -- --server "$S6" "$CODE"
  ok_if "6b: with the LAN silent, the receiver exits 0" test "$RC" = 0
  ok_if "6b: … and says the server answered first" grep -q "the server $S6 answered first" "$T/r6b.err"
  ok_if "6b: the files arrive byte for byte" same_tree "$T/two" "$T/r6b/two"
  wait_pid "$SPID" 30
else
  tap_result 1 "6b: a sender with a server prints a code" "$(cat "$T/s6b.err")"
fi
"${NL[@]}" nft delete table inet ferrylan6

# 6c: the server is gone: the sender falls back to LAN mode and says so; a
# receiver configured with the same dead server finds it on the LAN.
kill "$SERVE_PID" 2>/dev/null
wait "$SERVE_PID" 2>/dev/null
mkdir -p "$T/r6c"
if start_send s6c "${NL[@]}" -- --server "$S6" "$T/one"; then
  ok_if "6c: the sender says the server cannot be reached and it uses LAN mode" grep -q \
    "offering the code on this network only (LAN mode)" "$T/s6c.err"
  ok_if "6c: … and gives a command without --server" grep -qx "On the other side run: ferry receive $CODE" "$T/s6c.out"
  receive r6c "${NL[@]}" -- --server "$S6" "$CODE"
  ok_if "6c: the receiver with the dead server exits 0" test "$RC" = 0
  ok_if "6c: … saying the server cannot be reached and the LAN found it" grep -q \
    "the server cannot be reached; found the sender on this network (LAN)" "$T/r6c.err"
  ok_if "6c: the files arrive byte for byte" same_tree "$T/one" "$T/r6c/one"
  wait_pid "$SPID" 30
else
  tap_result 1 "6c: a sender whose server is gone still prints a code" "$(cat "$T/s6c.err")"
fi

# 6d: --no-lan: no fallback; the dead server is the answer.
"${NL[@]}" "$F" send --no-lan --server "$S6" "$T/one" >"$T/s6d.out" 2>"$T/s6d.err" </dev/null
rc=$?
ok_if "6d: send --no-lan with a dead server: exit 4" test "$rc" = 4
ok_if "6d: … naming the server" grep -q "cannot connect to the server at $S6" "$T/s6d.err"

# ---- every process: no sanitizer report -------------------------------------------

reports=$(grep -l -E 'runtime error:|ERROR: (Address|Leak|Undefined)Sanitizer' "$T"/*.err 2>/dev/null)
ok_if "no sanitizer report from any process" test -z "$reports"
[ -z "$reports" ] || head -n 30 $reports | sed 's/^/# /'
done_testing
