#!/usr/bin/env bash
# The README's test command: installs what is missing, then builds ferry twice
# and runs the whole suite in each build:
#   build/      gcc, -Werror: unit and CLI tests, fuzz seeds replayed
#   build-san/  clang, -Werror, AddressSanitizer + UndefinedBehaviorSanitizer,
#               libFuzzer targets run for a bounded number of inputs
# Ends with the line "N passed, N failed"; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
./scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
skipped=0
status=0

run_suite() { # name builddir setup-args...
  local name=$1 dir=$2
  shift 2
  echo "== $name"
  if [ ! -f "$dir/build.ninja" ]; then
    if ! "$@" "$dir" >"$dir.setup.log" 2>&1; then
      cat "$dir.setup.log"
      echo "ferry: $name: meson setup failed"
      failed=$((failed + 1)); status=1; return
    fi
  fi
  if ! meson compile -C "$dir"; then
    echo "ferry: $name: build failed"
    failed=$((failed + 1)); status=1; return
  fi
  meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
  # Count individual test cases from meson's JSON log (TAP subtests included
  # as their parent test's result).
  local counts
  counts=$(/usr/bin/python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("result") in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r.get("result") == "SKIP":
        s += 1
    else:
        f += 1
print(p, f, s)
PY
)
  read -r p f s <<<"$counts"
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
}

run_suite "gcc build" build env CC=gcc meson setup -Dwerror=true
run_suite "clang + ASan/UBSan + libFuzzer build" build-san \
  env CC=clang meson setup -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=enabled

echo "$passed passed, $failed failed, $skipped skipped"
[ "$status" = 0 ] && [ "$failed" = 0 ]
