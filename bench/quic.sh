#!/usr/bin/env bash
# bench/quic.sh [BUILD_DIR] [--perf]: 1 GiB over one QUIC connection on
# loopback between two processes (sender on CPU 0, receiver on CPU 1), next
# to the same bytes over TLS 1.3 on TCP and over plain TCP, in the same run;
# median of 3 runs each, with 1452-byte datagrams. Then 32000-byte
# datagrams (what ferry uses when both ends are on one host), the other
# congestion controllers and the no-GSO path, and with --perf (perf
# installed) where the CPU time goes on each side.
set -eu
cd "$(dirname "$0")/.."
build=build
perf=0
for a in "$@"; do
  case $a in
  --perf) perf=1 ;;
  *) build=$a ;;
  esac
done
bench=$build/bench/bench-quic
[ -x "$bench" ] || { echo "bench/quic.sh: no $bench; build first (meson compile -C $build)" >&2; exit 2; }

"$bench" --bytes $((1024 * 1024 * 1024)) --runs 3
echo
echo "Other congestion controllers and paths (QUIC only, 1 GiB, median of 3):"
# What ferry sends between two processes on one host (connection.c: the
# loopback MTU is the path MTU there); the runs above use 1452 bytes, the
# size for any path that leaves the machine.
"$bench" --only quic --datagram 32000 | grep MB/s | sed 's/1 stream)/1 stream, 32000-byte datagrams)/'
for cc in cubic bbr2; do
  "$bench" --only quic --cc "$cc" | grep MB/s
done
"$bench" --only quic --no-gso | grep MB/s
"$bench" --only quic --streams 4 | grep MB/s

if [ "$perf" = 1 ]; then
  command -v perf >/dev/null || { echo "bench/quic.sh: perf is not installed" >&2; exit 2; }
  data=$(mktemp /tmp/ferry-bench-quic-perf.XXXXXX)
  trap 'rm -f "$data"' EXIT
  perf record -q -o "$data" -F 1999 -- "$bench" --only quic --runs 1 >/dev/null 2>&1
  echo
  echo "Where the CPU goes (ferry-quic-cli sends, ferry-quic-srv receives), % of all samples:"
  perf report -i "$data" --no-children --sort comm,dso -g none 2>/dev/null |
    awk '/^ +[0-9.]+%/ && $2 ~ /ferry-quic/ && $1+0 >= 0.5 { printf "  %-8s %-16s %s\n", $1, $2, $3 }'
fi
