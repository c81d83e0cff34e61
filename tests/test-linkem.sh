#!/usr/bin/env bash
# The link emulator (lab/linkem) checked against itself (issue 7, item 2):
# namespaces A and B joined through linkem (lab/link.sh), and what a program
# in A and B measures must be what linkem was asked for:
#   1. its command line: --help, and clear refusals of bad values;
#   2. delay: the median UDP round trip with 20 ms each way is 40 ms
#      (±15 % + 2 ms), far above the round trip without delay; 30 ms/5 ms
#      (one value per direction) gives 35 ms;
#   3. loss: 10 % one way (--loss 10/0) over 2000 datagrams lies within the
#      binomial 5-sigma band (133 to 267 lost), and equals linkem's own count;
#      the other direction loses nothing;
#   4. rate: 50 Mbit/s, measured by iperf3 over TCP (20 ms RTT) at 70-105 %,
#      and UDP offered at 80 Mbit/s arrives at no more than the link carries;
#   5. jitter keeps datagrams in order, unless --reorder.
# Needs root (network namespaces) and iperf3; skipped with the reason
# otherwise. Takes about 30 s. Datagram probes are a small Python program
# (ping is not installed here).
set -u
. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/link-tap.sh"

# ---- 1. the command line --------------------------------------------------------

expect_exit 0 "1: linkem --help exits 0" "$LINKEM" --help
ok_if "1: … and explains --delay, --loss, --rate and --queue" bash -c \
  'grep -q -- "--delay=T\[/T\]" <<<"$0" && grep -q -- "--loss" <<<"$0" && grep -q -- "--rate" <<<"$0" && grep -q -- "--queue" <<<"$0"' "$OUT"
expect_exit 2 "1: a delay that is not a time is refused (exit 2)" "$LINKEM" --delay 5x ea eb
ok_if "1: … naming the option, the value and an example" \
  grep -q "^linkem: --delay '5x' is not valid: .* e.g. --delay 50ms/10ms" <<<"$ERR"
expect_exit 2 "1: a loss above 100 % is refused" "$LINKEM" --loss 150 ea eb
expect_exit 2 "1: three values for one option are refused" "$LINKEM" --rate 1M/2M/3M ea eb
expect_exit 2 "1: no interfaces: exit 2" "$LINKEM" --delay 5ms
ok_if "1: … saying what to give" grep -q "give the two interfaces to join" <<<"$ERR"
expect_exit 1 "1: an interface that does not exist: exit 1" "$LINKEM" nope-if0 nope-if1
ok_if "1: … naming it and where linkem must run" \
  grep -q "no interface 'nope-if0' in this network namespace: run linkem in the namespace" <<<"$ERR"

why=$(link_can) || {
  echo "ok $((tap_n + 1)) # SKIP $why"
  tap_n=$((tap_n + 1))
  done_testing
  exit
}
command -v iperf3 >/dev/null || {
  echo "ok $((tap_n + 1)) # SKIP iperf3 is not installed (apt install iperf3)"
  tap_n=$((tap_n + 1))
  done_testing
  exit
}

cat >"$T/probe.py" <<'EOF'
# probe.py echo PORT | ping HOST PORT COUNT GAP_S | sink PORT SECONDS | blast HOST PORT COUNT GAP_S
import socket, struct, sys, time
mode = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
if mode == "echo":
    s.bind(("0.0.0.0", int(sys.argv[2])))
    print("listening", flush=True)
    while True:
        data, addr = s.recvfrom(2048)
        s.sendto(data, addr)
elif mode == "sink":
    s.bind(("0.0.0.0", int(sys.argv[2])))
    print("listening", flush=True)
    s.settimeout(0.2)
    got, reordered, top, end = 0, 0, -1, time.monotonic() + float(sys.argv[3])
    while time.monotonic() < end:
        try:
            data = s.recv(2048)
        except socket.timeout:
            continue
        seq = struct.unpack("!I", data[:4])[0]
        got += 1
        if seq < top:
            reordered += 1
        top = max(top, seq)
    print(got, reordered)
elif mode == "blast":
    host, port, count, gap = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    t0 = time.monotonic()
    for i in range(count):
        while time.monotonic() < t0 + i * gap:
            pass
        s.sendto(struct.pack("!I", i) + bytes(200), (host, port))
elif mode == "ping":
    host, port, count, gap = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    s.setblocking(False)
    rtts, sent, t0 = [], 0, time.monotonic()
    deadline = t0 + count * gap + 2
    while time.monotonic() < deadline and len(rtts) < count:
        now = time.monotonic()
        if sent < count and now >= t0 + sent * gap:
            s.sendto(struct.pack("!Iq", sent, time.monotonic_ns()), (host, port))
            sent += 1
        try:
            data = s.recv(64)
            rtts.append((time.monotonic_ns() - struct.unpack("!Iq", data[:12])[1]) / 1e6)
        except BlockingIOError:
            time.sleep(0.0002)
    rtts.sort()
    print("%.3f %d" % (rtts[len(rtts) // 2] if rtts else -1, len(rtts)))
EOF

# within VALUE LOW HIGH: LOW <= VALUE <= HIGH (decimals allowed).
within() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'; }

# counter DIR NAME: linkem's last printed counter NAME of direction DIR (a->b, b->a).
counter() { grep "^linkem: $1:" "$LINK_LOG" | tail -n 1 | sed -n "s/.*; $2 \([0-9]*\).*/\1/p"; }

# rtt COUNT: the median round trip in ms of COUNT probes from A to B's echo (5 ms apart).
rtt() { ip netns exec "$LINK_A" python3 "$T/probe.py" ping "$LINK_IP_B" 7000 "$1" 0.005; }

# blast NS_FROM NS_TO IP COUNT GAP: COUNT datagrams from NS_FROM to a sink in
# NS_TO; prints "received reordered".
blast() {
  local spid
  ip netns exec "$2" python3 "$T/probe.py" sink 7001 "$(awk -v c="$4" -v g="$5" 'BEGIN { print c * g + 1.5 }')" \
    >"$T/sink.out" 2>&1 &
  spid=$!
  for _ in $(seq 100); do grep -q listening "$T/sink.out" && break; sleep 0.02; done
  ip netns exec "$1" python3 "$T/probe.py" blast "$3" 7001 "$4" "$5"
  wait "$spid"
  tail -n 1 "$T/sink.out"
}

if ! link_up "$LINKEM"; then
  tap_result 1 "the link A - linkem - B comes up" "$(cat "$LINK_LOG")"
  done_testing
  exit
fi
tap_result 0 "the link A - linkem - B comes up"
ip netns exec "$LINK_B" python3 "$T/probe.py" echo 7000 >"$T/echo.out" 2>&1 &
for _ in $(seq 100); do grep -q listening "$T/echo.out" && break; sleep 0.02; done

# ---- 2. delay -----------------------------------------------------------------

read -r base n <<<"$(rtt 200)"
ok_if "2: without delay all 200 probes come back, median RTT $base ms (< 5 ms)" \
  bash -c "[ '$n' = 200 ] && awk 'BEGIN { exit !($base >= 0 && $base < 5) }'"
link_restart --delay 20ms
read -r d20 n <<<"$(rtt 200)"
ok_if "2: --delay 20ms: median RTT $d20 ms is 40 ms ± (15 % + 2 ms)" within "$d20" 32 48
ok_if "2: … ($n of 200 came back), at least 30 ms above the RTT without delay ($base ms)" \
  bash -c "[ '$n' = 200 ] && awk 'BEGIN { exit !($d20 - $base >= 30) }'"
link_restart --delay 30ms/5ms
read -r d35 n <<<"$(rtt 100)"
ok_if "2: --delay 30ms/5ms (A->B/B->A): median RTT $d35 ms is 35 ms ± (15 % + 2 ms)" \
  within "$d35" 27.75 42.25

# ---- 3. loss ------------------------------------------------------------------

link_restart --loss 10/0 --seed "$RANDOM"
read -r got _ <<<"$(blast "$LINK_A" "$LINK_B" "$LINK_IP_B" 2000 0.0002)"
read -r back _ <<<"$(blast "$LINK_B" "$LINK_A" "$LINK_IP_A" 2000 0.0002)"
link_stop
lost=$((2000 - got))
ok_if "3: --loss 10/0: $lost of 2000 datagrams A->B lost, within 200 ± 5 sigma (133..267)" \
  test "$lost" -ge 133 -a "$lost" -le 267
# linkem counts every frame it drops, and a neighbour-discovery or ARP frame
# may cross the link during the blast (seen once in CI: 188 counted, 187 of
# the blast's own): the count is the blast's losses plus at most 3 others.
counted=$(counter 'a->b' lost)
ok_if "3: … which is what linkem counted as lost ($counted)" \
  test "$counted" -ge "$lost" -a "$counted" -le $((lost + 3))
ok_if "3: … and nothing else dropped them (queue $(counter 'a->b' queue-drops), socket $(counter 'a->b' socket-drops))" \
  test "$(counter 'a->b' queue-drops)$(counter 'a->b' socket-drops)$(counter 'a->b' send-errors)" = 000
# The other direction has no loss configured: linkem drops none there, and
# (allowing for a busy machine's own socket drops: 56 were seen once in CI
# under the sanitizer build's load) nearly all arrive; 1900 is still far
# above what 10 % loss lets through (at most 1867 at 5 sigma).
ok_if "3: B->A loses none to linkem's --loss (counted $(counter 'b->a' lost))" test "$(counter 'b->a' lost)" = 0
ok_if "3: … and $back of 2000 arrive (>= 1900, far from the 10 % of A->B)" test "$back" -ge 1900

# ---- 4. rate ------------------------------------------------------------------

link_start --rate 50M --delay 10ms
ip netns exec "$LINK_B" iperf3 -s -B "$LINK_IP_B" >"$T/iperf-s.out" 2>&1 &
for _ in $(seq 100); do grep -q "listening" "$T/iperf-s.out" && break; sleep 0.02; done
ip netns exec "$LINK_A" iperf3 -c "$LINK_IP_B" -t 5 -J >"$T/tcp.json" 2>&1
tcp=$(python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e6))' "$T/tcp.json" 2>/dev/null || echo 0)
ok_if "4: --rate 50M: iperf3 TCP gets $tcp Mbit/s, 70-105 % of 50 Mbit/s" within "$tcp" 35 52.5
ip netns exec "$LINK_A" iperf3 -c "$LINK_IP_B" -t 3 -u -b 80M -l 1400 -J >"$T/udp.json" 2>&1
udp=$(python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]["sum_received"]
print("%.2f %.1f" % (e["bits_per_second"] / 1e6, e["lost_percent"]))' "$T/udp.json" 2>/dev/null || echo "0 0")
read -r udp_rate udp_lost <<<"$udp"
# 1400 bytes of payload travel in 1442-byte frames: at most 48.5 Mbit/s of
# payload; iperf3 divides what arrived by the sender's time, which leaves out
# the ~30 ms the queue and the delay take to drain (1 %)
ok_if "4: UDP offered at 80 Mbit/s: $udp_rate Mbit/s of payload arrive ($udp_lost % lost), 40-49.5" \
  within "$udp_rate" 40 49.5
link_stop
qd=$(counter 'a->b' queue-drops)
ok_if "4: … the excess was dropped by linkem's queue ($qd frames), nothing by the socket or send" \
  bash -c "[ '${qd:-0}' -gt 1000 ] && [ '$(counter 'a->b' socket-drops)$(counter 'a->b' send-errors)' = 00 ]"

# ---- 5. jitter and order --------------------------------------------------------

link_start --delay 10ms --jitter 5ms
read -r got reord <<<"$(blast "$LINK_A" "$LINK_B" "$LINK_IP_B" 2000 0.0001)"
ok_if "5: --jitter 5ms: all 2000 datagrams arrive ($got), none out of order ($reord)" \
  test "$got:$reord" = 2000:0
link_restart --delay 10ms --jitter 5ms --reorder
read -r got reord <<<"$(blast "$LINK_A" "$LINK_B" "$LINK_IP_B" 2000 0.0001)"
ok_if "5: --jitter 5ms --reorder: all arrive ($got), many out of order ($reord > 200)" \
  bash -c "[ '$got' = 2000 ] && [ '${reord:-0}' -gt 200 ]"
done_testing
