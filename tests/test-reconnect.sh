#!/usr/bin/env bash
# Automatic reconnect (issue 6): two network namespaces joined by a veth
# pair, the sender (and its LAN-mode rendezvous) in one, the receiver in the
# other, the link rate-limited with tbf so a transfer lasts a while:
#   1. the link goes down for 10 s mid-transfer (longer than the QUIC idle
#      timeout, 5 s) and comes back: the receiver
#      notices, reconnects by itself and the file arrives byte for byte,
#      with part of it resumed, not sent twice;
#   2. the link goes down and never comes back: the receiver gives up after
#      --max-retries with a message that says how to continue, and the
#      checkpoint is kept.
# Needs root (network namespaces); skipped with the reason otherwise.
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}
T=$TAP_TMP
export XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state
unset FERRY_SERVER FERRY_STUN_SERVER FERRY_TURN_SERVER
mkdir -p "$T/config"

NS=()
cleanup() {
  local p n
  for p in $(jobs -p); do
    kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$TAP_TMP"
}
trap cleanup EXIT

A=ferryrc$$a
B=ferryrc$$b
if ! ip netns add "$A" 2>"$T/netns.err"; then
  echo "ok 1 # SKIP network namespaces cannot be created here: $(head -n1 "$T/netns.err")"
  tap_n=1
  done_testing
  exit 0
fi
NS+=("$A")
ip netns add "$B" && NS+=("$B")
ip -n "$A" link set lo up
ip -n "$B" link set lo up
ip link add "rc$$a" netns "$A" type veth peer name "rc$$b" netns "$B"
ip -n "$A" link set "rc$$a" addrgenmode none
ip -n "$B" link set "rc$$b" addrgenmode none
ip -n "$A" addr add 10.78.0.1/24 dev "rc$$a"
ip -n "$B" addr add 10.78.0.2/24 dev "rc$$b"
# 160 Mbit/s each way: 40 MB take ~2 s, long enough to cut the link in the middle.
ip netns exec "$A" tc qdisc add dev "rc$$a" root tbf rate 160mbit burst 256k latency 50ms
ip netns exec "$B" tc qdisc add dev "rc$$b" root tbf rate 160mbit burst 256k latency 50ms
ip -n "$A" link set "rc$$a" up
ip -n "$B" link set "rc$$b" up
for _ in $(seq 100); do
  ip -n "$A" link show "rc$$a" | grep -q LOWER_UP && ip -n "$B" link show "rc$$b" | grep -q LOWER_UP && break
  sleep 0.05
done
NA=(ip netns exec "$A")
NB=(ip netns exec "$B")

head -c 40000000 /dev/urandom >"$T/big.bin"

# start_send NAME: a sender in A (LAN mode) of big.bin; code in CODE, pid SPID.
start_send() {
  "${NA[@]}" "$F" send --ttl 2m "$T/big.bin" >"$T/$1.out" 2>"$T/$1.err" </dev/null &
  SPID=$!
  CODE=
  for _ in $(seq 300); do
    CODE=$(sed -n 's/^Code: //p' "$T/$1.out" 2>/dev/null)
    [ -n "$CODE" ] && return 0
    sleep 0.05
  done
  return 1
}

# part_size DIR: bytes in the receiver's temporary file so far.
part_size() {
  local f
  f=$(find "$1" -name '.big.bin.*.ferry-part' 2>/dev/null | head -n1)
  [ -n "$f" ] && stat -c %s "$f" || echo 0
}

# wait_part DIR BYTES: until the partial file holds BYTES (at most 20 s).
wait_part() {
  for _ in $(seq 400); do
    [ "$(part_size "$1")" -ge "$2" ] && return 0
    sleep 0.05
  done
  return 1
}

# wait_verified OUT BYTES: until the receiver's --json progress (OUT) counts
# BYTES verified (at most 20 s). The partial file's size is no measure of
# that: four data streams write four chunks at once, at offsets far apart,
# and only whole chunks that verify are ever resumed.
wait_verified() {
  local n
  for _ in $(seq 400); do
    n=$(grep -o '"bytes_done":[0-9]*' "$1" 2>/dev/null | tail -n1 | cut -d: -f2)
    [ "${n:-0}" -ge "$2" ] && return 0
    sleep 0.05
  done
  return 1
}

# ---- 1. the link goes down for 10 s and comes back -----------------------------

mkdir -p "$T/r1"
if start_send s1; then
  "${NB[@]}" timeout 120 "$F" receive -y --json --out "$T/r1" --retry-backoff 1000 "$CODE" \
    >"$T/r1.out" 2>"$T/r1.err" </dev/null &
  RPID=$!
  if wait_verified "$T/r1.out" 8000000; then
    ip -n "$B" link set "rc$$b" down
    sleep 10
    ip -n "$B" link set "rc$$b" up
    tap_result 0 "1: the link went down mid-transfer (8 MB or more verified) for 10 s"
  else
    tap_result 1 "1: the transfer got going before the link went down" "$(tail -n 3 "$T/r1.err")"
  fi
  rc=0
  wait "$RPID" || rc=$?
  ok_if "1: the receiver exits 0 without anyone doing anything" test "$rc" = 0
  ok_if "1: the file arrives byte for byte" cmp -s "$T/big.bin" "$T/r1/big.bin"
  ok_if "1: a reconnecting event (attempt 1 of 5) came after the connection was lost" \
    grep -q '"event":"reconnecting".*"attempt":1,"max_retries":5' "$T/r1.out"
  ok_if "1: the 8 MB verified before the break were resumed, not sent again" /usr/bin/python3 -c '
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
done = [e for e in events if e.get("event") == "done"]
if done and done[-1].get("bytes_resumed", 0) >= 8000000:
    sys.exit(0)
# Diagnostics (this failed once in a while under the sanitizer build):
# every event but the progress ones, with the progress just before each.
last = None
for e in events:
    if e.get("event") == "progress":
        last = e
        continue
    if last is not None:
        print(json.dumps(last))
        last = None
    print(json.dumps(e))
sys.exit(1)' "$T/r1.out"
  rc=0
  wait "$SPID" || rc=$?
  ok_if "1: the sender exits 0 once the receiver has everything" test "$rc" = 0
else
  tap_result 1 "1: a sender prints a code" "$(cat "$T/s1.err")"
fi

# ---- 2. the link never comes back --------------------------------------------

mkdir -p "$T/r2"
if start_send s2; then
  "${NB[@]}" timeout 120 "$F" receive -y --out "$T/r2" --max-retries 2 --retry-backoff 500 \
    "$CODE" >"$T/r2.out" 2>"$T/r2.err" </dev/null &
  RPID=$!
  wait_part "$T/r2" 8000000 || true
  ip -n "$B" link set "rc$$b" down
  rc=0
  wait "$RPID" || rc=$?
  # the last try finds no sender on the network at all: exit 11 (5 when it was a lost path)
  ok_if "2: the receiver gives up (exit $rc: no sender on this network)" test "$rc" = 11
  ok_if "2: … after its 2 reconnects" grep -q "attempt 2 of 2" "$T/r2.err"
  ok_if "2: … and says the verified part is kept and how to continue" \
    grep -q "the verified part is kept: run \`ferry receive $CODE\` again" "$T/r2.err"
  ok_if "2: the checkpoint is kept" test -n "$(find "$T/state/ferry/checkpoints" -name '*.ckpt')"
  kill "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
else
  tap_result 1 "2: a sender prints a code" "$(cat "$T/s2.err")"
fi
done_testing
