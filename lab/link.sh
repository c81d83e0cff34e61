#!/usr/bin/env bash
# An emulated WAN link between two network namespaces (root, iproute2):
#
#   LINK_A (eth0 10.79.0.1/24) ══ ea  LINK_M: linkem ea eb  eb ══ (eth0 10.79.0.2/24) LINK_B
#
# lab/linkem in the middle namespace carries every frame between ea and eb
# with the delay, loss and rate it is given; A and B see one Ethernet segment
# (so ARP, multicast and ferry's LAN discovery cross it too). Source it for the
# link_* functions, or run it:
#
#   lab/link.sh run [LINKEM_FLAGS…] [-- CMD…]  build the link, run CMD (default: a
#                                              shell) with LINK_A, LINK_B, LINK_IP_A,
#                                              LINK_IP_B set, tear everything down
#   lab/link.sh clean                          delete namespaces left by killed runs
#
# Offloads: ethtool is not installed here, so the end interfaces get
# `gso_max_segs 1` (and gso/gro_max_size 1514): TCP then builds one-segment
# skbs and the kernel segments UDP GSO skbs before the veth, so linkem sees
# one packet per frame; checksums that are still "partial" cross linkem
# through PACKET_VNET_HDR (see the header of lab/linkem.c). IPv6 is off in all
# three namespaces: the link carries IPv4 only and no stray router
# solicitations or MLD reports.
#
# Functions (the caller sets a trap that calls link_down):
#   link_up LINKEM [FLAGS…]   make the namespaces and start linkem with FLAGS
#   link_restart [FLAGS…]     stop linkem and start it again with new FLAGS
#   link_down                 stop linkem, delete the namespaces (safe twice)
# LINK_LOG is linkem's log (its "ready" line and its counters at exit).

LINK_PREFIX=${LINK_PREFIX:-le$$-}
LINK_A=${LINK_PREFIX}a
LINK_M=${LINK_PREFIX}m
LINK_B=${LINK_PREFIX}b
LINK_IP_A=10.79.0.1
LINK_IP_B=10.79.0.2
LINK_NAMESPACES=()
LINK_PID=
LINK_EXE=
LINK_LOG=${LINK_LOG:-}

# link_can: 0 when this process can build the link; else prints why not.
link_can() {
  local t=link-can-$$
  if [ "$(id -u)" != 0 ]; then
    echo "the emulated link needs root (network namespaces, packet sockets)"
    return 1
  fi
  command -v ip >/dev/null || {
    echo "ip not found (install iproute2)"
    return 1
  }
  if ! ip netns add "$t" 2>/dev/null; then
    echo "cannot create a network namespace here (ip netns add failed)"
    return 1
  fi
  ip netns del "$t"
}

link_ns() {
  ip netns add "$1" || return 1
  LINK_NAMESPACES+=("$1")
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1 >/dev/null
}

# link_start [FLAGS…]: starts linkem in LINK_M and waits for its "ready" line.
link_start() {
  local i
  : >"$LINK_LOG"
  ip netns exec "$LINK_M" "$LINK_EXE" "$@" ea eb >"$LINK_LOG" 2>&1 </dev/null &
  LINK_PID=$!
  for ((i = 0; i < 200; i++)); do
    grep -q '^linkem: ready' "$LINK_LOG" && return 0
    kill -0 "$LINK_PID" 2>/dev/null || break
    sleep 0.02
  done
  echo "linkem did not start: $(tail -n 3 "$LINK_LOG")" >&2
  return 1
}

# link_stop: SIGTERM to linkem (it prints its counters to LINK_LOG) and wait.
link_stop() {
  [ -n "$LINK_PID" ] || return 0
  kill "$LINK_PID" 2>/dev/null
  wait "$LINK_PID" 2>/dev/null
  LINK_PID=
}

link_up() {
  LINK_EXE=$1
  shift
  [ -n "$LINK_LOG" ] || LINK_LOG=$(mktemp /tmp/linkem-XXXXXX.log)
  local ns dev
  for ns in "$LINK_A" "$LINK_M" "$LINK_B"; do link_ns "$ns" || return 1; done
  ip -n "$LINK_A" link add eth0 type veth peer name ea netns "$LINK_M" &&
    ip -n "$LINK_B" link add eth0 type veth peer name eb netns "$LINK_M" || return 1
  for ns in "$LINK_A" "$LINK_B"; do
    ip -n "$ns" link set dev eth0 gso_max_segs 1 gso_max_size 1514 gro_max_size 1514 || return 1
  done
  for dev in ea eb; do
    ip -n "$LINK_M" link set dev "$dev" gso_max_segs 1 gso_max_size 1514 gro_max_size 1514 up ||
      return 1
  done
  ip -n "$LINK_A" addr add "$LINK_IP_A/24" dev eth0 &&
    ip -n "$LINK_B" addr add "$LINK_IP_B/24" dev eth0 &&
    ip -n "$LINK_A" link set eth0 up &&
    ip -n "$LINK_B" link set eth0 up || return 1
  link_start "$@" || return 1
  # A veth end reports carrier a moment after `up`: until then programs
  # there (libnice gathering host candidates, for one) see no address.
  local i
  for ((i = 0; i < 100; i++)); do
    [ "$(ip netns exec "$LINK_A" cat /sys/class/net/eth0/operstate)" = up ] &&
      [ "$(ip netns exec "$LINK_B" cat /sys/class/net/eth0/operstate)" = up ] && return 0
    sleep 0.05
  done
  echo "link.sh: eth0 in $LINK_A or $LINK_B has no carrier after 5 s" >&2
  return 1
}

link_restart() {
  link_stop
  link_start "$@"
}

link_down() {
  local ns pid
  link_stop
  for ns in "${LINK_NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  LINK_NAMESPACES=()
}

# link_clean: deletes the namespaces of link runs whose process is gone.
link_clean() {
  local ns owner
  for ns in $(ip netns list | awk '{print $1}' | grep -E '^le[0-9]+-[amb]$'); do
    owner=${ns#le}
    owner=${owner%%-*}
    kill -0 "$owner" 2>/dev/null && continue
    ip netns del "$ns" && echo "deleted $ns"
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -u
  here=$(cd "$(dirname "$0")" && pwd)
  case ${1:-} in
  run)
    shift
    exe=${LINKEM_EXE:-}
    for f in "$here/../build-linkem/lab/linkem" "$here/../build/lab/linkem"; do
      [ -n "$exe" ] || { [ -x "$f" ] && exe=$f; }
    done
    [ -n "$exe" ] || {
      echo "no linkem binary: build one (meson compile -C build) or set LINKEM_EXE" >&2
      exit 2
    }
    flags=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
      flags+=("$1")
      shift
    done
    [ $# -gt 0 ] && shift
    why=$(link_can) || {
      echo "$why" >&2
      exit 1
    }
    trap link_down EXIT
    trap 'exit 130' INT TERM
    link_up "$exe" "${flags[@]}" || exit 1
    export LINK_A LINK_B LINK_IP_A LINK_IP_B
    echo "link up: $LINK_A ($LINK_IP_A) <-> $LINK_B ($LINK_IP_B); $(head -n 1 "$LINK_LOG")" >&2
    rc=0
    if [ $# -gt 0 ]; then "$@" || rc=$?; else "${SHELL:-bash}" || rc=$?; fi
    link_stop
    tail -n 2 "$LINK_LOG" >&2
    rm -f "$LINK_LOG"
    exit "$rc"
    ;;
  clean) link_clean ;;
  *)
    echo "usage: $0 run [LINKEM_FLAGS…] [-- CMD…] | clean" >&2
    exit 2
    ;;
  esac
fi
