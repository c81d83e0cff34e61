#!/usr/bin/env bash
# ferry hash as a user meets it: chunk hashes checked against sha256sum of
# split pieces, root hashes against an independent Python computation,
# and the errors for missing files and bad chunk sizes.
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}

# root FILE CHUNK_SIZE: the root hash as docs/protocol.md defines it.
root() {
  python3 - "$1" "$2" <<'PY'
import hashlib, struct, sys
data = open(sys.argv[1], "rb").read()
cs = int(sys.argv[2])
chunks = b"".join(hashlib.sha256(data[i:i + cs]).digest() for i in range(0, len(data), cs))
print(hashlib.sha256(b"ferry-root-v1" + struct.pack(">QQ", cs, len(data)) + chunks).hexdigest())
PY
}

file="$TAP_TMP/sample.bin"
head -c $((3 * 65536 + 1000)) /dev/urandom >"$file"

expect_exit 0 "hash with --chunks exits 0" "$F" hash --chunk-size 64K --chunks "$file"
first=$(head -n1 <<<"$OUT")
ok_if "first line is ROOT  N chunks  SIZE  PATH" \
  grep -Eq "^[0-9a-f]{64}  4 chunks  197608  $file\$" <<<"$first"

(cd "$TAP_TMP" && split -b 65536 -d sample.bin piece.)
want_chunks=$(cd "$TAP_TMP" && sha256sum piece.* | awk '{printf "  chunk %d  %s\n", NR - 1, $1}')
got_chunks=$(tail -n +2 <<<"$OUT")
ok_if "chunk hashes equal sha256sum of split pieces" [ "$got_chunks" = "$want_chunks" ]
ok_if "root hash equals the independent computation" \
  [ "${first%% *}" = "$(root "$file" 65536)" ]

expect_exit 0 "hash with the default chunk size exits 0" "$F" hash "$file"
ok_if "default chunk size is 1 MiB: one chunk, its root" \
  [ "$OUT" = "$(root "$file" 1048576)  1 chunks  197608  $file" ]

: >"$TAP_TMP/empty"
expect_exit 0 "a 0-byte file hashes" "$F" hash "$TAP_TMP/empty"
ok_if "a 0-byte file has 0 chunks and the defined root" \
  [ "$OUT" = "$(root "$TAP_TMP/empty" 1048576)  0 chunks  0  $TAP_TMP/empty" ]

expect_exit 1 "a missing file gives exit 1" "$F" hash "$TAP_TMP/missing.bin" "$file"
ok_if "the message names the missing file and why" \
  contains "$ERR" "$TAP_TMP/missing.bin: No such file or directory"
ok_if "the other file is still hashed" grep -q "  1 chunks  197608  $file\$" <<<"$OUT"

expect_exit 1 "a directory gives exit 1" "$F" hash "$TAP_TMP"
ok_if "the message says it is a directory" contains "$ERR" "is a directory"

expect_exit 2 "a chunk size that is not a power of two is a usage error" \
  "$F" hash --chunk-size 3M "$file"
ok_if "the message states the valid range" contains "$ERR" "between 64 KiB and 64 MiB"
ok_if "the message quotes the bad value" contains "$ERR" "'3M'"
expect_exit 2 "a too small chunk size is a usage error" "$F" hash --chunk-size 4096 "$file"
ok_if "the message states the valid range" contains "$ERR" "between 64 KiB and 64 MiB"
expect_exit 2 "an unknown unit is a usage error" "$F" hash --chunk-size 4MB "$file"
ok_if "the message lists the units" contains "$ERR" "use K, KiB, M, MiB"
expect_exit 2 "no file is a usage error" "$F" hash
ok_if "the message says what is missing" contains "$ERR" "name at least one file"

done_testing
