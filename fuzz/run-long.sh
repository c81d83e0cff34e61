#!/usr/bin/env bash
# run-long.sh [SECONDS]: builds the fuzzers with clang and runs each one for
# SECONDS (default 300), keeping what they find in _fuzz/corpus/NAME.
# Crashes land in _fuzz/ as crash-*; replay one with: build/fuzz/fuzz-NAME FILE
set -eu
cd "$(dirname "$0")/.."
secs=${1:-300}
[ -d _fuzz/build ] || CC=clang meson setup _fuzz/build -Dfuzz=enabled -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C _fuzz/build
for exe in _fuzz/build/fuzz/fuzz-*; do
  [ -x "$exe" ] || continue
  name=${exe##*/fuzz-}
  mkdir -p "_fuzz/corpus/$name"
  echo "== $name for ${secs}s"
  (cd _fuzz && "../$exe" -max_total_time="$secs" -max_len=8192 "corpus/$name" "../fuzz/corpus/$name")
done
