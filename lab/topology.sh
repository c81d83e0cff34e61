#!/usr/bin/env bash
# The NAT lab's network, made of Linux network namespaces (root, iproute2,
# nftables). Source it for the lab_* functions, or run it:
#
#   lab/topology.sh run TYPE_A TYPE_B [CMD…]  build the lab, run CMD (default: a
#                                             shell) with LAB_* set, tear down
#   lab/topology.sh probe TYPE…               build a site of each TYPE and print
#                                             what nat-probe.py measures of it
#   lab/topology.sh clean                     delete namespaces left by lab runs
#                                             that were killed (SIGKILL)
#
# Picture (every address is in 100.64.0.0/10, shared address space, or in
# 10.0.0.0/8; nothing is routed outside the namespaces):
#
#   PREFIXpub ── bridge "core": 100.64.0.254 (ferry serve :443, STUN :3478)
#      │                        100.64.0.253 (coturn :443 UDP and TCP)
#      ├── up1 ══ wan 100.64.0.1  PREFIXr1 (site 1's router) lan ══ eth0  PREFIXp1
#      └── up2 ══ wan 100.64.0.2  PREFIXr2 (site 2's router) lan ══ eth0  PREFIXp2
#
# A peer behind a NAT has 10.S.0.2 (router 10.S.0.1); a peer of type "none" has
# the public 100.64.S.2 (router 100.64.S.1), routed by PREFIXpub. PREFIXpub is the
# "internet": the routers' default route, with forwarding on and no filter.
# The NAT types, each made by the nftables ruleset in lab_nat_rules:
#   none              plain routing, no filter
#   full-cone         EIM + endpoint-independent filtering
#   addr-restricted   EIM + address-dependent filtering
#   port-restricted   EIM + address-and-port-dependent filtering (masquerade)
#   symmetric         endpoint-dependent mapping (random ports) + APDF
#   udp-blocked       only TCP to port 443 goes out (masquerade)
# Each site is made anew (fresh conntrack) by lab_site; lab_down removes all.

LAB_TYPES="none full-cone addr-restricted port-restricted symmetric udp-blocked"
LAB_PREFIX=${LAB_PREFIX:-fl$$-}
LAB_PUB=${LAB_PREFIX}pub
LAB_SERVE_IP=100.64.0.254
LAB_TURN_IP=100.64.0.253
LAB_NAMESPACES=()
LAB_PIDS=()

# lab_can: 0 when this process can build the lab; else prints why not.
lab_can() {
  local t=lab-can-$$ tool
  if [ "$(id -u)" != 0 ]; then
    echo "the NAT lab needs root (network namespaces and nftables)"
    return 1
  fi
  for tool in ip nft python3; do
    command -v "$tool" >/dev/null || {
      echo "$tool not found (install iproute2, nftables and python3)"
      return 1
    }
  done
  if ! ip netns add "$t" 2>/dev/null; then
    echo "cannot create a network namespace here (ip netns add failed)"
    return 1
  fi
  if ! ip netns exec "$t" nft -f - <<<$'table ip t {\n chain p {\n type nat hook postrouting priority srcnat; masquerade\n }\n}' 2>/dev/null; then
    ip netns del "$t"
    echo "nftables NAT does not work in a namespace here (kernel without nf_nat?)"
    return 1
  fi
  ip netns del "$t"
}

# lab_ns NAME: a new namespace with lo up, no IPv6 (the lab is IPv4 only, so
# ICE has no link-local candidates to try in vain).
lab_ns() {
  ip netns add "$1" || return 1
  LAB_NAMESPACES+=("$1")
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1 >/dev/null
}

# lab_spawn NS LOG CMD…: runs CMD inside NS in the background, output in LOG;
# sets LAB_LAST_PID and remembers the pid for lab_down.
lab_spawn() {
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
  LAB_LAST_PID=$!
  LAB_PIDS+=("$LAB_LAST_PID")
}

# lab_core: the public namespace and its bridge (no servers yet).
lab_core() {
  lab_ns "$LAB_PUB" || return 1
  ip -n "$LAB_PUB" link add core type bridge &&
    ip -n "$LAB_PUB" link set core up &&
    ip -n "$LAB_PUB" addr add "$LAB_SERVE_IP/24" dev core &&
    ip -n "$LAB_PUB" addr add "$LAB_TURN_IP/24" dev core &&
    ip netns exec "$LAB_PUB" sysctl -qw net.ipv4.ip_forward=1 \
      net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.core.send_redirects=0 >/dev/null
}

# lab_nat_rules SITE TYPE: the nftables ruleset of SITE's router for TYPE.
# Linux conntrack keeps a flow's source port when the (address, port) pair is
# free on the outside, and one host is behind each router, so SNAT/masquerade
# mappings are endpoint-independent (the same outside port for every
# destination) unless "random,fully-random" asks for a new port per flow.
# The router itself takes nothing unsolicited from the outside (input
# policy drop, as home routers do): a dropped packet leaves no conntrack entry,
# whereas an accepted one (answered by an ICMP port unreachable) would hold
# the reverse tuple and push the peer's later flow to that address onto
# another outside port, turning the NAT endpoint-dependent by accident.
# Conntrack alone only lets in replies to the exact 5-tuple (APDF); the
# looser filters are built from dynamic sets that outgoing UDP fills, and a
# DNAT of matching unsolicited packets to the peer.
lab_nat_rules() {
  local s=$1 type=$2 wan=100.64.0.$1 peer=10.$1.0.2
  local head="table ip lab {"
  local fwd="chain input { type filter hook input priority filter; policy drop;
        ct state established,related accept
        iifname { \"lo\", \"lan\" } accept
      }
      chain forward { type filter hook forward priority filter; policy drop;
        ct state established,related accept"
  case $type in
  none) ;;
  port-restricted)
    echo "$head $fwd
        iifname \"lan\" oifname \"wan\" accept
      }
      chain postrouting { type nat hook postrouting priority srcnat; oifname \"wan\" masquerade
      }
    }"
    ;;
  symmetric)
    echo "$head $fwd
        iifname \"lan\" oifname \"wan\" accept
      }
      chain postrouting { type nat hook postrouting priority srcnat;
        oifname \"wan\" masquerade random,fully-random
      }
    }"
    ;;
  full-cone)
    # every outside port the peer has sent UDP from is open to anyone
    echo "$head
      set mapped { type inet_service; flags dynamic,timeout; timeout 2m; }
      chain prerouting { type nat hook prerouting priority dstnat;
        iifname \"wan\" udp dport @mapped dnat to $peer
      }
      $fwd
        iifname \"lan\" oifname \"wan\" meta l4proto udp update @mapped { udp sport }
        iifname \"lan\" oifname \"wan\" accept
        iifname \"wan\" oifname \"lan\" ct status dnat accept
      }
      chain postrouting { type nat hook postrouting priority srcnat; oifname \"wan\" snat to $wan
      }
    }"
    ;;
  addr-restricted)
    # an outside port is open to any port of an address the peer sent to from it
    echo "$head
      set sent { type ipv4_addr . inet_service; flags dynamic,timeout; timeout 2m; }
      chain prerouting { type nat hook prerouting priority dstnat;
        iifname \"wan\" ip saddr . udp dport @sent dnat to $peer
      }
      $fwd
        iifname \"lan\" oifname \"wan\" meta l4proto udp update @sent { ip daddr . udp sport }
        iifname \"lan\" oifname \"wan\" accept
        iifname \"wan\" oifname \"lan\" ct status dnat accept
      }
      chain postrouting { type nat hook postrouting priority srcnat; oifname \"wan\" snat to $wan
      }
    }"
    ;;
  udp-blocked)
    echo "$head $fwd
        iifname \"lan\" oifname \"wan\" tcp dport 443 accept
      }
      chain postrouting { type nat hook postrouting priority srcnat; oifname \"wan\" masquerade
      }
    }"
    ;;
  *)
    echo "unknown NAT type '$type': use one of $LAB_TYPES" >&2
    return 1
    ;;
  esac
}

# lab_site_down SITE: removes SITE's router and peer (and their processes).
lab_site_down() {
  local s=$1 ns pid keep=()
  for ns in "${LAB_PREFIX}r$s" "${LAB_PREFIX}p$s"; do
    [ -e "/run/netns/$ns" ] || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns"
  done
  for ns in "${LAB_NAMESPACES[@]}"; do
    [ "$ns" = "${LAB_PREFIX}r$s" ] || [ "$ns" = "${LAB_PREFIX}p$s" ] || keep+=("$ns")
  done
  LAB_NAMESPACES=("${keep[@]}")
  ip -n "$LAB_PUB" route del "100.64.$s.0/24" 2>/dev/null
  # The kernel tears a deleted namespace's devices down in the background:
  # until our end of its veth is gone, making it again fails ("File
  # exists"). Wait for that, up to 5 s.
  local i
  for ((i = 0; i < 100; i++)); do
    ip -n "$LAB_PUB" link show "up$s" >/dev/null 2>&1 || break
    sleep 0.05
  done
  return 0
}

# lab_site SITE TYPE: (re)makes site SITE (1 or 2) with a NAT of TYPE; sets
# LAB_PEER_NS[SITE], LAB_PEER_IP[SITE].
declare -A LAB_PEER_NS LAB_PEER_IP
lab_site() {
  local s=$1 type=$2 r=${LAB_PREFIX}r$1 p=${LAB_PREFIX}p$1 net rules
  rules=$(lab_nat_rules "$s" "$type") || return 1
  lab_site_down "$s"
  if [ "$type" = none ]; then net=100.64.$s; else net=10.$s.0; fi
  lab_ns "$r" && lab_ns "$p" || return 1
  ip -n "$LAB_PUB" link add "up$s" type veth peer name wan netns "$r" &&
    ip -n "$LAB_PUB" link set "up$s" master core up &&
    ip -n "$r" addr add "100.64.0.$s/24" dev wan &&
    ip -n "$r" link set wan up &&
    ip -n "$r" route add default via "$LAB_SERVE_IP" &&
    ip -n "$r" link add lan type veth peer name eth0 netns "$p" &&
    ip -n "$r" addr add "$net.1/24" dev lan &&
    ip -n "$r" link set lan up &&
    ip -n "$p" addr add "$net.2/24" dev eth0 &&
    ip -n "$p" link set eth0 up &&
    ip -n "$p" route add default via "$net.1" &&
    ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1 >/dev/null || return 1
  if [ "$type" = none ]; then
    ip -n "$LAB_PUB" route add "$net.0/24" via "100.64.0.$s" || return 1
  else
    ip netns exec "$r" nft -f - <<<"$rules" || return 1
  fi
  LAB_PEER_NS[$s]=$p
  LAB_PEER_IP[$s]=$net.2
}

# lab_wait_log LOG TEXT [PID]: waits up to 10 s for TEXT in LOG (fails early
# when PID ends).
lab_wait_log() {
  local i
  for ((i = 0; i < 200; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && break
    sleep 0.05
  done
  echo "waited in vain for '$2' in $1:" >&2
  tail -n 20 "$1" >&2
  return 1
}

# lab_servers FERRY DIR SECRET: coturn (use-auth-secret, UDP and TCP on
# 100.64.0.253:443) and `ferry serve` on 100.64.0.254:443 with its STUN
# responder on :3478, handing out both TURN URLs. Logs and coturn's files go
# in DIR; LAB_TURN_EXTRA adds turnserver flags (e.g. -V). Sets LAB_SERVER
# (the URL for --server).
lab_servers() {
  local ferry=$1 dir=$2 secret=$3
  lab_spawn "$LAB_PUB" "$dir/turnserver.log" turnserver -n --use-auth-secret \
    --static-auth-secret="$secret" --realm=ferry.lab \
    --listening-ip="$LAB_TURN_IP" --relay-ip="$LAB_TURN_IP" --listening-port=443 \
    --no-tls --no-dtls --no-cli --no-multicast-peers ${LAB_TURN_EXTRA:-} \
    --userdb="$dir/turndb" --pidfile="$dir/turnserver.pid" --log-file=stdout --simple-log
  lab_wait_log "$dir/turnserver.log" 'Total General servers' "$LAB_LAST_PID" || return 1
  lab_spawn "$LAB_PUB" "$dir/serve.log" env FERRY_TURN_STATIC_AUTH_SECRET="$secret" \
    "$ferry" serve --listen "$LAB_SERVE_IP:443" --stun-port 3478 \
    --turn-server "turn:$LAB_TURN_IP:443" --turn-server "turn:$LAB_TURN_IP:443?transport=tcp" \
    --ip-connect-rate 0 --ip-session-rate 0 --ip-join-rate 0 --message-rate 0
  lab_wait_log "$dir/serve.log" '(port 443' "$LAB_LAST_PID" || return 1
  LAB_SERVER=ws://$LAB_SERVE_IP:443
}

# lab_probe_server DIR: nat-probe.py's responder in the public namespace.
lab_probe_server() {
  lab_spawn "$LAB_PUB" "$1/probe-server.log" python3 "$LAB_DIR/nat-probe.py" serve \
    "$LAB_SERVE_IP" "$LAB_TURN_IP"
  lab_wait_log "$1/probe-server.log" 'listening' "$LAB_LAST_PID"
}

# lab_probe SITE: what nat-probe.py measures from SITE's peer (one line).
lab_probe() {
  ip netns exec "${LAB_PEER_NS[$1]}" python3 "$LAB_DIR/nat-probe.py" probe \
    "$LAB_SERVE_IP" "$LAB_TURN_IP"
}

# lab_down: ends the processes the lab started (by pid, then whatever is
# still inside its namespaces) and deletes the namespaces. Safe to call twice.
lab_down() {
  local pid ns
  for pid in "${LAB_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${LAB_PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  LAB_PIDS=()
  for ns in "${LAB_NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  LAB_NAMESPACES=()
}

# lab_clean: deletes the namespaces of lab runs whose process is gone.
lab_clean() {
  local ns owner
  for ns in $(ip netns list | awk '{print $1}' | grep -E '^fl[0-9]+-(pub|[rp][12])$'); do
    owner=${ns#fl}
    owner=${owner%%-*}
    kill -0 "$owner" 2>/dev/null && continue
    ip netns del "$ns" && echo "deleted $ns"
  done
}

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -u
  case ${1:-} in
  run)
    [ $# -ge 3 ] || {
      echo "usage: $0 run TYPE_A TYPE_B [CMD…]  (types: $LAB_TYPES)" >&2
      exit 2
    }
    why=$(lab_can) || {
      echo "$why" >&2
      exit 1
    }
    trap lab_down EXIT
    trap 'exit 130' INT TERM
    a=$2 b=$3
    shift 3
    lab_core && lab_site 1 "$a" && lab_site 2 "$b" || exit 1
    export LAB_PUB LAB_SERVE_IP LAB_TURN_IP
    export LAB_PEER_A=${LAB_PEER_NS[1]} LAB_PEER_B=${LAB_PEER_NS[2]}
    echo "lab up: $LAB_PUB; site 1 ($a) peer $LAB_PEER_A ${LAB_PEER_IP[1]};" \
      "site 2 ($b) peer $LAB_PEER_B ${LAB_PEER_IP[2]}" >&2
    if [ $# -gt 0 ]; then "$@"; else "${SHELL:-bash}"; fi
    ;;
  probe)
    shift
    [ $# -ge 1 ] || set -- $LAB_TYPES
    why=$(lab_can) || {
      echo "$why" >&2
      exit 1
    }
    trap lab_down EXIT
    trap 'exit 130' INT TERM
    dir=$(mktemp -d)
    lab_core && lab_probe_server "$dir" || exit 1
    for t in "$@"; do
      lab_site 1 "$t" || exit 1
      printf '%-16s %s\n' "$t" "$(lab_probe 1)"
    done
    rm -rf "$dir"
    ;;
  clean) lab_clean ;;
  *)
    echo "usage: $0 run TYPE_A TYPE_B [CMD…] | probe [TYPE…] | clean" >&2
    exit 2
    ;;
  esac
fi
