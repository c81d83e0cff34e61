#!/usr/bin/env bash
# bench/hash.sh [BUILD_DIR]: `ferry hash` against coreutils' sha256sum on
# the same 1 GiB file, in the page cache, in the same run: 3 runs each,
# median MB/s (10^6 bytes/s) of each and their ratio. Then bench-hash's
# breakdown (threads, pread vs mmap, streaming, raw SHA-256) if built.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
ferry=$build/src/cli/ferry
[ -x "$ferry" ] || { echo "bench/hash.sh: no $ferry; build first (meson compile -C $build)" >&2; exit 2; }

dir=/tmp
if [ -d /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt $((1200 * 1024)) ]; then
  dir=/dev/shm
fi
file=$(mktemp "$dir/ferry-bench-hash.XXXXXX")
trap 'rm -f "$file"' EXIT
size=$((1024 * 1024 * 1024))
head -c "$size" /dev/urandom >"$file"
cat "$file" >/dev/null # warm the page cache

# mbps CMD…: runs CMD once, prints MB/s for the file.
mbps() {
  local start=$EPOCHREALTIME end
  "$@" >/dev/null
  end=$EPOCHREALTIME
  awk -v s="$start" -v e="$end" -v n="$size" 'BEGIN { printf "%.0f\n", n / (e - s) / 1e6 }'
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

ferry_runs=() sha_runs=()
for _ in 1 2 3; do
  ferry_runs+=("$(mbps "$ferry" hash "$file")")
  sha_runs+=("$(mbps sha256sum "$file")")
done
f=$(median3 "${ferry_runs[@]}")
s=$(median3 "${sha_runs[@]}")
echo "1 GiB file in $dir, page cache warm, $(nproc) CPUs"
echo "ferry hash:  $f MB/s  (runs: ${ferry_runs[*]})"
echo "sha256sum:   $s MB/s  (runs: ${sha_runs[*]})"
awk -v f="$f" -v s="$s" 'BEGIN { printf "ratio:       %.1fx\n", f / s }'

if [ -x "$build/bench/bench-hash" ]; then
  echo
  "$build/bench/bench-hash" "$file"
fi
