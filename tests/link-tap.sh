# For shell tests on lab/link.sh's emulated link: source after tap.sh. Sets
# T (the test's temporary folder), BUILD, SRC, LINKEM and LINK_LOG, sources
# lab/link.sh, and on exit kills the test's background jobs (not linkem,
# which link_down stops), takes the link down and removes T.
T=$TAP_TMP
BUILD=${FERRY_TEST_BUILDDIR:?FERRY_TEST_BUILDDIR must point at the build directory}
SRC=${FERRY_TEST_SRCDIR:-$(dirname "${BASH_SOURCE[0]}")/..}
LINKEM=$BUILD/lab/linkem
. "$SRC/lab/link.sh"
LINK_LOG=$T/linkem.log

link_tap_cleanup() {
  local p
  for p in $(jobs -p); do
    [ "$p" = "$LINK_PID" ] || { kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; }
  done
  link_down
  rm -rf "$TAP_TMP"
}
trap link_tap_cleanup EXIT
trap 'exit 130' INT TERM
