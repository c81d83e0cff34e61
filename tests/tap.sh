# Tiny TAP helpers for shell tests: source this file.
#   ok_if NAME COMMAND…     passes when COMMAND exits 0
#   expect_exit N NAME CMD… runs CMD, passes when it exits with N; output in $OUT/$ERR
#   done_testing
tap_n=0
tap_failed=0
TAP_TMP=$(mktemp -d)
trap 'rm -rf "$TAP_TMP"' EXIT

tap_result() { # status name [diag]
  tap_n=$((tap_n + 1))
  if [ "$1" = 0 ]; then
    echo "ok $tap_n - $2"
  else
    echo "not ok $tap_n - $2"
    tap_failed=$((tap_failed + 1))
    [ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
  fi
}

ok_if() {
  local name=$1
  shift
  if "$@" >"$TAP_TMP/out" 2>"$TAP_TMP/err"; then
    tap_result 0 "$name"
  else
    tap_result 1 "$name" "$(cat "$TAP_TMP/out" "$TAP_TMP/err")"
  fi
}

expect_exit() {
  local want=$1 name=$2 rc=0
  shift 2
  "$@" >"$TAP_TMP/out" 2>"$TAP_TMP/err" || rc=$?
  OUT=$(cat "$TAP_TMP/out")
  ERR=$(cat "$TAP_TMP/err")
  if [ "$rc" = "$want" ]; then
    tap_result 0 "$name"
  else
    tap_result 1 "$name (exit $rc, wanted $want)" "$OUT$ERR"
  fi
}

contains() { # haystack needle
  case "$1" in *"$2"*) return 0 ;; *) return 1 ;; esac
}

done_testing() {
  echo "1..$tap_n"
  [ "$tap_failed" = 0 ]
}
