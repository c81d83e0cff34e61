#!/usr/bin/env bash
# The whole NAT matrix (lab/nat-matrix, issue 7) in the test suite: all 36
# ordered pairs of NAT types, a real ferry send / ferry receive each, one TAP
# line per pair. A pair passes when it connects, the file arrives byte-exact
# and the path is the one RFC 4787 reasoning (lab/pair.sh nat_expect) says
# ferry must make: direct for the 24 pairs where hole punching can make one,
# the relay for the 12 with a UDP-blocked side or two symmetric NATs.
# Skipped when the lab cannot be built here (not root, no nftables, no
# namespaces, no coturn). ~2-3 minutes.
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}
LAB=$(cd "$(dirname "$0")/../lab" && pwd)

if ! command -v turnserver >/dev/null; then
  echo "1..0 # SKIP coturn not found (install it: scripts/install-deps.sh)"
  exit 0
fi
rc=0
"$LAB/nat-matrix" --ferry "$F" --keep "$TAP_TMP/logs" >"$TAP_TMP/matrix.out" 2>"$TAP_TMP/matrix.err" ||
  rc=$?
if [ "$rc" = 77 ]; then
  echo "1..0 # SKIP $(tail -n 1 "$TAP_TMP/matrix.err")"
  exit 0
fi
# rows: SITE1 SITE2 CONNECTED PATH EXPECT MS EXACT VERDICT: DETAIL
while read -r a b connected path expect ms exact verdict detail; do
  case $verdict in
  ok: | better:) tap_result 0 "$a × $b: connects, byte-exact, $path (expected $expect) in $ms ms" ;;
  FAIL:) tap_result 1 "$a × $b: connects, byte-exact, $expect" "connected=$connected path=$path exact=$exact: $detail" ;;
  esac
done < <(grep -E '^[a-z-]+ +[a-z-]+ +(yes|no) ' "$TAP_TMP/matrix.out")
ok_if "36 pairs ran" test "$tap_n" = 36
ok_if "lab/nat-matrix exits 0 ($(grep -E '^[0-9]+ pairs in' "$TAP_TMP/matrix.out"))" test "$rc" = 0
[ "$tap_failed" = 0 ] || tail -n 20 "$TAP_TMP/matrix.err" | sed 's/^/# /'
done_testing
