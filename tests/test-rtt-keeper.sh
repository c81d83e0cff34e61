#!/usr/bin/env bash
# The RTT keeper (src/net/quic.c, rtt_keeper_holds()) on an emulated long
# link: namespaces A and B joined by lab/linkem at 100 Mbit/s with 50 ms each
# way and its queue of one bandwidth-delay product (lab/link.sh), a 160 MB
# ferry send in A and ferry receive in B (LAN mode), ~14 s of transfer.
#   1. default congestion control (bbr): the file arrives whole; the sender
#      drained the queue at least once and got an RTT sample at the minimum
#      back, and its window never fell to 4 packets (no ProbeRTT);
#   2. --quic-cc bbr-plain (ngtcp2's BBR alone): the file arrives whole, and
#      the window did fall to 4 packets — the ProbeRTT the keeper spares,
#      and proof that case 1 can see one; the path line names bbr-plain.
# Needs root (network namespaces); skipped with the reason otherwise. Takes
# about 40 s.
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}
. "$(dirname "$0")/link-tap.sh"

why=$(link_can) || {
  echo "1..0 # SKIP $why"
  exit 0
}
ok_if "the link is up (100 Mbit/s, 50 ms each way)" link_up "$LINKEM" --delay 50ms --rate 100M

head -c 160000000 /dev/urandom >"$T/big"
# The first datagram each way costs an ARP round trip on this emulated
# segment (a real long link has none): pay it before ferry starts.
ip netns exec "$LINK_A" python3 -c \
  "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('$LINK_IP_B', 9))"
ip netns exec "$LINK_B" python3 -c \
  "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('$LINK_IP_A', 9))"

# transfer NAME FLAGS…: sends big from A to B with FLAGS on both sides; the
# sender's debug output goes to $T/NAME.send.err. Returns the receiver's exit
# status once the copy is compared.
transfer() {
  local name=$1 spid code="" rc=0
  shift
  rm -rf "$T/dst" && mkdir -p "$T/dst"
  ip netns exec "$LINK_A" env FERRY_DEBUG=ferry-net "$F" send --json --ttl 5m "$@" "$T/big" \
    >"$T/$name.send.out" 2>"$T/$name.send.err" </dev/null &
  spid=$!
  for _ in $(seq 200); do
    code=$(sed -n 's/.*"event":"code".*"code":"\([^"]*\)".*/\1/p' "$T/$name.send.out" | head -n 1)
    [ -n "$code" ] && break
    sleep 0.05
  done
  [ -n "$code" ] || {
    echo "no code from the sender: $(tail -n 3 "$T/$name.send.err")"
    return 1
  }
  timeout 120 ip netns exec "$LINK_B" "$F" receive --json -y "$@" --out "$T/dst" "$code" \
    >"$T/$name.recv.out" 2>"$T/$name.recv.err" || rc=$?
  wait_pid "$spid" 30 || true
  grep '"event":"done"' "$T/$name.recv.out" | head -n 1
  [ "$rc" = 0 ] || {
    echo "ferry receive exited $rc: $(tail -n 3 "$T/$name.recv.err")"
    return 1
  }
  cmp "$T/big" "$T/dst/big"
}

ok_if "1: bbr: 160 MB cross the link intact" transfer keeper
ok_if "1: … the sender drained the queue when no RTT sample at the minimum came for 8 s" \
  grep -q "quic: no RTT sample at the minimum (.*) for .* s: draining the queue" "$T/keeper.send.err"
ok_if "1: … and got one back" grep -q "quic: an RTT sample at the minimum (.*) after draining" \
  "$T/keeper.send.err"
ok_if "1: … and its window never fell to 4 packets (no ProbeRTT)" \
  bash -c '! grep "quic: the congestion window fell to" "$0"' "$T/keeper.send.err"

ok_if "2: bbr-plain: 160 MB cross the link intact" transfer plain --quic-cc bbr-plain
ok_if "2: … without the keeper the window fell to 4 packets (ProbeRTT)" \
  grep -q "quic: the congestion window fell to [0-9]* bytes" "$T/plain.send.err"
ok_if "2: … the receiver names the controller in its path line" \
  grep -q '"path":"direct: .*, bbr-plain, ' "$T/plain.recv.out"
ok_if "2: … and the keeper did nothing" bash -c '! grep -q "draining the queue" "$0"' "$T/plain.send.err"
done_testing
