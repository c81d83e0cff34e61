# Tiny TAP helpers for shell tests: source this file.
#   ok_if NAME COMMAND…     passes when COMMAND exits 0
#   expect_exit N NAME CMD… runs CMD, passes when it exits with N; output in $OUT/$ERR
#   wait_pid PID [SECONDS]  PID's exit status, or 124 after killing it when it
#                           outlives SECONDS (default: $LIMIT)
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

wait_pid() {
  local pid=$1 limit=${2:-${LIMIT:?wait_pid needs SECONDS or LIMIT}} i rc=0
  for ((i = 0; i < limit * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 124
  fi
  wait "$pid" || rc=$?
  return "$rc"
}

done_testing() {
  echo "1..$tap_n"
  [ "$tap_failed" = 0 ]
}
