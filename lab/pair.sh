# One transfer across the NAT lab, and what RFC 4787 says it should do.
# Source after lab/topology.sh; needs lab_core, lab_servers and both sites up.

# nat_expect TYPE_A TYPE_B: "direct" when ferry must find a direct UDP path
# between peers behind these NATs (ICE with host, server-reflexive and
# peer-reflexive candidates, plus birthday punching), else "relay". RFC 4787
# reasoning:
# - udp-blocked: no UDP leaves the site, only TURN over TCP/443 does.
# - an endpoint-dependent mapping (symmetric) gives the other peer a port it
#   cannot learn from STUN. ICE still gets through when the other side's
#   filter lets a new source port of an address it sent to in (none,
#   full-cone, addr-restricted): a peer-reflexive candidate.
# - behind a port-restricted (EIM, APDF) NAT that filter drops them, but the
#   mapping is known: birthday punching (docs/protocol.md §7.4) opens 256
#   ports on the symmetric side while the other side opens its filter for
#   4096 random ones, and some meet.
# - symmetric × symmetric: both mappings unknowable, both filters APDF; no
#   prediction is attempted, so the relay.
# - every other pair has endpoint-independent mappings on both sides, so the
#   server-reflexive candidates are reachable once both have sent.
nat_expect() {
  local a=$1 b=$2
  if [ "$a" = udp-blocked ] || [ "$b" = udp-blocked ]; then
    echo relay
  elif [ "$a" = symmetric ] && [ "$b" = symmetric ]; then
    echo relay
  else
    echo direct
  fi
}

# pair_jget FILE EVENT KEY: KEY of the last JSON line of FILE whose event is
# EVENT (booleans as true/false), or nothing.
pair_jget() {
  python3 - "$@" <<'PY'
import json, sys
path, event, key = sys.argv[1:4]
val = None
try:
    lines = open(path, encoding="utf-8", errors="replace").readlines()
except OSError:
    lines = []
for line in lines:
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if isinstance(o, dict) and o.get("event") == event:
        val = o.get(key)
print("" if val is None else (str(val).lower() if isinstance(val, bool) else val))
PY
}

# pair_run FERRY DIR NAME [LIMIT]: `ferry send` of a 256 KiB file in site 1's peer,
# `ferry receive -y` in site 2's peer, both meeting at LAB_SERVER; the
# whole try ends after LIMIT seconds (default 90). Sets PAIR_CONNECTED
# (yes/no), PAIR_PATH (direct/relay/-), PAIR_DETAIL (ferry's path line or the
# first error), PAIR_MS (connect_ms of the receiver's "connected" event),
# PAIR_EXACT (yes/no). Files and logs go in DIR/NAME.*. Flags in PAIR_FLAGS
# (e.g. --force-relay) go to both sides.
pair_run() {
  local ferry=$1 dir=$2 name=$3 limit=${4:-90} spid rpid code= i rc=0
  local src=$dir/$name.src out=$dir/$name.out
  local env=(env -u FERRY_STUN_SERVER -u FERRY_TURN_SERVER -u FERRY_SERVER
    XDG_CONFIG_HOME="$dir/$name.config" XDG_STATE_HOME="$dir/$name.state")
  PAIR_CONNECTED=no PAIR_PATH=- PAIR_DETAIL= PAIR_MS=- PAIR_EXACT=no
  head -c 262144 /dev/urandom >"$src"
  mkdir -p "$out"
  ip netns exec "${LAB_PEER_NS[1]}" "${env[@]}" "$ferry" send --json --server "$LAB_SERVER" ${PAIR_FLAGS:-} \
    --connect-timeout $((limit * 1000 - 10000)) "$src" \
    >"$dir/$name.send.out" 2>"$dir/$name.send.err" </dev/null &
  spid=$!
  LAB_PIDS+=("$spid")
  for ((i = 0; i < 400; i++)); do
    code=$(pair_jget "$dir/$name.send.out" code code)
    [ -n "$code" ] && break
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$code" ]; then
    PAIR_DETAIL="sender gave no code: $(grep -v '^{' "$dir/$name.send.err" | head -n 1)"
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    return 1
  fi
  ip netns exec "${LAB_PEER_NS[2]}" "${env[@]}" "$ferry" receive -y --json ${PAIR_FLAGS:-} \
    --server "$LAB_SERVER" --connect-timeout $((limit * 1000 - 10000)) --out "$out" "$code" \
    >"$dir/$name.recv.out" 2>"$dir/$name.recv.err" </dev/null &
  rpid=$!
  LAB_PIDS+=("$rpid")
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$rpid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$rpid" "$spid" 2>/dev/null
  wait "$rpid" || rc=$?
  wait "$spid" 2>/dev/null
  if [ -n "$(pair_jget "$dir/$name.recv.out" connected path)" ]; then
    PAIR_CONNECTED=yes
    PAIR_DETAIL=$(pair_jget "$dir/$name.recv.out" connected path)
    PAIR_MS=$(pair_jget "$dir/$name.recv.out" connected connect_ms)
    if [ "$(pair_jget "$dir/$name.recv.out" connected relayed)" = true ]; then
      PAIR_PATH=relay
    else
      PAIR_PATH=direct
    fi
  else
    PAIR_DETAIL="exit $rc: $(grep -v '^{' "$dir/$name.recv.err" | grep . | tail -n 1)"
  fi
  cmp -s "$src" "$out/$name.src" && PAIR_EXACT=yes
  [ "$rc" = 0 ] && [ "$PAIR_EXACT" = yes ]
}
