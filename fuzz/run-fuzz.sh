#!/usr/bin/env bash
# run-fuzz.sh FUZZER SEED_DIR RUNS: runs a libFuzzer target for RUNS inputs,
# starting from the committed seeds, without writing into the source tree.
set -eu
fuzzer=$1 seeds=$2 runs=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cd "$work"
exec "$fuzzer" -error_exitcode=1 -runs="$runs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$work/corpus" "$seeds"
