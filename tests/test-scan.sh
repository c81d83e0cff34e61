#!/usr/bin/env bash
# `ferry scan` as a user meets it: the listing, its order, warnings for
# what is skipped, --json, and exit codes.
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}

W="$TAP_TMP/work"
mkdir -p "$W/photos/sub" "$W/photos/empty" "$W/other/photos"
printf hello >"$W/photos/a.txt"
: >"$W/photos/sub/b.bin"
printf '12' >"$W/photos/say \"hi\".txt"
ln -s a.txt "$W/photos/link"
mkfifo "$W/photos/pipe"
: >"$W/photos/bad
name"
chmod 0755 "$W/photos" "$W/photos/sub" "$W/photos/empty"
chmod 0644 "$W/photos/a.txt" "$W/photos/sub/b.bin" "$W/photos/say \"hi\".txt"
cd "$W" || exit 1

expect_exit 0 "scan of a directory exits 0" "$F" scan ./photos/
want=$(cat <<'LIST'
d 0755            0 photos
f 0644            5 photos/a.txt
d 0755            0 photos/empty
l 0777            0 photos/link -> a.txt
f 0644            2 photos/say "hi".txt
d 0755            0 photos/sub
f 0644            0 photos/sub/b.bin
3 files, 3 directories, 1 symlink, 7 bytes (7 bytes); 2 skipped (see the warnings)
LIST
)
ok_if "lists every entry in order, then the summary" test "$OUT" = "$want"
[ "$OUT" = "$want" ] || diff <(echo "$want") <(echo "$OUT") | sed 's/^/# /'
ok_if "warns about the FIFO, naming it and the reason" contains "$ERR" \
  "ferry: warning: skipped 'photos/pipe': is a FIFO (named pipe); only regular files, directories and symlinks are sent, so it is skipped"
ok_if "warns about a control character, shown escaped" contains "$ERR" \
  "ferry: warning: skipped 'photos/bad\\x0aname': path contains a control character; receivers refuse such a name, rename it to send it"
ok_if "warnings stay off stdout" test "$(grep -c 'ferry: warning' <<<"$OUT")" = 0

expect_exit 0 "scan of a single file exits 0" "$F" scan photos/a.txt
ok_if "a file root is named by its basename" test "$OUT" = "f 0644            5 a.txt
1 file, 0 directories, 0 symlinks, 5 bytes (5 bytes)"

expect_exit 1 "a missing path exits 1" "$F" scan photos nope
ok_if "the message names the missing path" contains "$ERR" \
  "ferry: error: cannot scan 'nope': No such file or directory; check the path"
ok_if "nothing is listed for a bad command line" test -z "$OUT"

expect_exit 1 "two paths with one name exit 1" "$F" scan photos other/photos
ok_if "the message names both paths" contains "$ERR" \
  "'photos' and 'other/photos' would both be sent as 'photos'"

expect_exit 1 "refuses to scan /" "$F" scan /
ok_if "the message says why" contains "$ERR" "refusing to send '/', the whole file system"

expect_exit 2 "no path is a usage error" "$F" scan
ok_if "the usage message says what to do" contains "$ERR" "name at least one file or directory"

expect_exit 0 "--json exits 0" "$F" scan --json photos
check_json() {
  python3 - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines()]
by = {r.get("path"): r for r in rows}
assert by["photos/a.txt"] == {"type": "file", "path": "photos/a.txt", "size": 5,
                              "mode": "0644", "mtime_ns": by["photos/a.txt"]["mtime_ns"]}
assert isinstance(by["photos/a.txt"]["mtime_ns"], int)
assert by['photos/say "hi".txt']["size"] == 2
assert by["photos/link"]["type"] == "symlink" and by["photos/link"]["target"] == "a.txt"
assert by["photos/pipe"]["type"] == "skipped" and by["photos/pipe"]["kind"] == "special"
assert by["photos/bad\nname"]["kind"] == "bad-name"
assert rows[-1] == {"type": "summary", "files": 3, "dirs": 3, "symlinks": 1, "bytes": 7,
                    "skipped": 2}, rows[-1]
PY
}
ok_if "--json prints one valid object per line with the right fields" check_json "$OUT"

done_testing
