#!/usr/bin/env bash
# ferry send --link and ferry receive URL (issue 8): files through the HTTP
# relay of a real `ferry serve` on loopback, with the real ferry on both
# ends and curl beside them. Checked by the bytes on disk, exit statuses
# and what the user is told:
#   1. one file: the link is printed; ferry receive gets it byte-exact; the
#      sender says it was delivered; both exit 0
#   2. --encrypt: the key is only in the #fragment; the server (curl) sees
#      ciphertext of the documented size; ferry receive decrypts it
#   3. a folder (unicode name, empty folder, symlink, modes): a tar that
#      curl gets and GNU tar lists; ferry receive unpacks it identical
#   4. an encrypted folder: ferry receive decrypts and unpacks it
#   5. the same name already in the output folder: "name (1)", nothing
#      overwritten
#   6. refusals: no --server (2), a wrong relay token (1, naming
#      --relay-token), a link nobody uploads (11), not a ferry link (2)
#   7. on a terminal the link comes with a QR code (script(1) gives a tty)
# and against tests/link-origin.py, a stand-in for the relay's download
# side that can cut a response or flip a byte:
#   8. a cut single-file download keeps its part; the same command resumes
#      with Range from the byte it has and ends byte-exact
#   9. the same for an encrypted link: resumed at the first record not
#      yet written, so only authenticated plaintext is kept
#  10. an encrypted link with one flipped byte: exit 9, no file in place
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}
SRC=${FERRY_TEST_SRCDIR:-$(dirname "$0")/..}
T=$TAP_TMP
SECRET=link-test-secret
export XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state
unset FERRY_SERVER FERRY_RELAY_TOKEN

cleanup() {
  local p
  for p in $(jobs -p); do
    kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  rm -rf "$TAP_TMP"
}
trap cleanup EXIT

"$F" serve --listen 127.0.0.1:0 --no-stun --quiet --relay-secret "$SECRET" >"$T/serve.out" 2>"$T/serve.err" &
port=
for i in $(seq 100); do
  port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$T/serve.out")
  [ -n "$port" ] && break
  sleep 0.1
done
S=http://127.0.0.1:$port

# start_link NAME ARGS…: ferry send --link in the background; waits for its
# link (in LINK), at most 10 s. Output in $T/NAME.out/.err, pid in SPID.
start_link() {
  local name=$1 i
  shift
  "$F" send --link --server "$S" "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null &
  SPID=$!
  LINK=
  for ((i = 0; i < 200; i++)); do
    LINK=$(sed -n 's/^Link: //p' "$T/$name.out" 2>/dev/null)
    [ -n "$LINK" ] && return 0
    kill -0 "$SPID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# receive DIR URL…: ferry receive into $T/DIR; status in RC, stderr in $T/DIR.err.
receive() {
  local dir=$1
  shift
  RC=0
  timeout 60 "$F" receive --out "$T/$dir" "$@" >"$T/$dir.out" 2>"$T/$dir.err" </dev/null || RC=$?
}

head -c 3000000 /dev/urandom >"$T/one.bin"
TREE=$T/tree/Fotos
mkdir -p "$TREE/leer" "$TREE/sub"
head -c 200000 /dev/urandom >"$TREE/sub/größe.bin"
printf 'hello\n' >"$TREE/hi.txt"
chmod 0640 "$TREE/hi.txt"
ln -s hi.txt "$TREE/sub/link"

# ---- 1. one file ------------------------------------------------------------------
if start_link s1 --relay-token "$SECRET" "$T/one.bin"; then
  ok_if "1: the link is on the relay: $S/r/…-one.bin" contains "$LINK" "$S/r/"
  ok_if "1: … and names the file" contains "$LINK" "-one.bin"
  receive r1 "$LINK"
  ok_if "1: ferry receive URL exits 0" test "$RC" = 0
  got=$(ls "$T/r1")
  ok_if "1: the file arrives byte for byte, under the link's name" cmp "$T/one.bin" "$T/r1/$got"
  ok_if "1: nothing else is left in the folder (no part file)" test "$(ls -A "$T/r1" | wc -l)" = 1
  ok_if "1: the receiver says what it saved" grep -q "received 2.86 MiB.*length checked: $got" "$T/r1.err"
  rc=0
  wait_pid "$SPID" 20 || rc=$?
  ok_if "1: the sender exits 0" test "$rc" = 0
  ok_if "1: … saying it was delivered" grep -q "delivered 2.86 MiB" "$T/s1.err"
else
  tap_result 1 "1: ferry send --link prints a link" "$(cat "$T/s1.err")"
fi

# ---- 2. encrypted ----------------------------------------------------------------------
if start_link s2 --relay-token "$SECRET" --encrypt "$T/one.bin"; then
  ok_if "2: the encrypted link carries the key in its fragment" \
    python3 -c 'import sys,re; assert re.fullmatch(r".*/r/[a-z0-9]{8}-one\.bin#k=[A-Za-z0-9_-]{43}", sys.argv[1])' "$LINK"
  # curl sees what the server holds: the ciphertext (it sends no fragment)
  curl -sS -o "$T/cipher" "${LINK%%#*}"
  size=$(stat -c %s "$T/cipher")
  ok_if "2: the server relays ciphertext of the documented size (8 + n + 16 per record)" \
    test "$size" = $((8 + 3000000 + 16 * (3000000 / 65536 + 1)))
  ok_if "2: … that starts FRYLNK01 and is not the file" sh -c "head -c 8 '$T/cipher' | grep -q FRYLNK01 && ! cmp -s '$T/cipher' '$T/one.bin'"
  wait_pid "$SPID" 20
else
  tap_result 1 "2: ferry send --link --encrypt prints a link" "$(cat "$T/s2.err")"
fi
if start_link s2b --relay-token "$SECRET" --encrypt "$T/one.bin"; then
  receive r2 "$LINK"
  ok_if "2: ferry receive of the encrypted link exits 0" test "$RC" = 0
  got=$(ls "$T/r2")
  ok_if "2: … and writes the plaintext byte for byte" cmp "$T/one.bin" "$T/r2/$got"
  ok_if "2: … saying it was decrypted and authenticated" grep -q "decrypted and authenticated" "$T/r2.err"
  rc=0
  wait_pid "$SPID" 20 || rc=$?
  ok_if "2: the sender exits 0" test "$rc" = 0
else
  tap_result 1 "2: a second encrypted link" "$(cat "$T/s2b.err")"
fi

# ---- 3. a folder ---------------------------------------------------------------------------
if start_link s3 --relay-token "$SECRET" "$TREE"; then
  curl -sS -D "$T/h3" -o "$T/f3.tar" "$LINK"
  ok_if "3: curl gets the folder as a tar (Content-Type application/x-tar)" grep -qi "^Content-Type: application/x-tar" "$T/h3"
  ok_if "3: … that GNU tar lists with the folder's entries" sh -c "tar -tf '$T/f3.tar' | sort | tr '\n' ' ' | grep -q 'Fotos/ Fotos/hi.txt Fotos/leer/ Fotos/sub/ Fotos/sub/größe.bin Fotos/sub/link'"
  wait_pid "$SPID" 20
else
  tap_result 1 "3: ferry send --link of a folder prints a link" "$(cat "$T/s3.err")"
fi
if start_link s3b --relay-token "$SECRET" "$TREE"; then
  receive r3 "$LINK"
  ok_if "3: ferry receive of a folder link exits 0" test "$RC" = 0
  ok_if "3: … and unpacks the folder identical (files, empty folder, symlink)" diff -r --no-dereference "$TREE" "$T/r3/Fotos"
  ok_if "3: … with the files' modes" test "$(stat -c %a "$T/r3/Fotos/hi.txt")" = 640
  ok_if "3: … and no part folder left" test ! -e "$T/r3/.$(basename "${LINK##*/}").ferry-part"
  wait_pid "$SPID" 20
else
  tap_result 1 "3: a second folder link" "$(cat "$T/s3b.err")"
fi

# ---- 4. an encrypted folder --------------------------------------------------------------------
if start_link s4 --relay-token "$SECRET" --encrypt "$TREE"; then
  receive r4 "$LINK"
  ok_if "4: ferry receive of an encrypted folder link exits 0" test "$RC" = 0
  ok_if "4: … and unpacks it identical" diff -r --no-dereference "$TREE" "$T/r4/Fotos"
  wait_pid "$SPID" 20
else
  tap_result 1 "4: ferry send --link --encrypt of a folder" "$(cat "$T/s4.err")"
fi

# ---- 5. the name is taken --------------------------------------------------------------------------
if start_link s5 --relay-token "$SECRET" "$TREE"; then
  receive r3 "$LINK"
  ok_if "5: a folder whose name is taken: exit 0" test "$RC" = 0
  ok_if "5: … saved as 'Fotos (1)', identical" diff -r --no-dereference "$TREE" "$T/r3/Fotos (1)"
  ok_if "5: … and the first one untouched" diff -r --no-dereference "$TREE" "$T/r3/Fotos"
  wait_pid "$SPID" 20
else
  tap_result 1 "5: a third folder link" "$(cat "$T/s5.err")"
fi

# ---- 6. refusals -------------------------------------------------------------------------------------
expect_exit 2 "6: --link without a server: exit 2" "$F" send --link "$T/one.bin"
ok_if "6: … naming --server and --relay-token" contains "$ERR" "give it with --server URL (and its relay secret with --relay-token)"
expect_exit 1 "6: a wrong relay token: exit 1" "$F" send --link --server "$S" --relay-token wrong "$T/one.bin"
ok_if "6: … with the server's words and the way out" contains "$ERR" "the server refused the upload (HTTP 401)"
ok_if "6: … naming --relay-token" contains "$ERR" "--relay-token or FERRY_RELAY_TOKEN"
expect_exit 2 "6: --encrypt without --link: exit 2" "$F" send --encrypt --server "$S" "$T/one.bin"
expect_exit 11 "6: a link nobody uploads: exit 11" "$F" receive --out "$T/r6" "$S/r/nobody-here.bin"
ok_if "6: … with the server's words" contains "$ERR" "the server answered HTTP 404"
ok_if "6: … and no file or part left" test -z "$(ls -A "$T/r6" 2>/dev/null)"
expect_exit 2 "6: an http URL that is no ferry link: exit 2" "$F" receive --out "$T/r6" "$S/elsewhere/x"
ok_if "6: … saying what links look like" contains "$ERR" "links look like https://SERVER/r/NAME"
expect_exit 2 "6: a link with a broken key: exit 2" "$F" receive --out "$T/r6" "$S/r/x-one.bin#k=short"
ok_if "6: … saying the key is cut" contains "$ERR" "the key in the link has 5 characters, not 43"

# ---- 7. QR code on a terminal -----------------------------------------------------------------------
if command -v script >/dev/null; then
  script -qec "timeout 3 '$F' send --link --server '$S' --relay-token '$SECRET' '$T/tree/Fotos/hi.txt'" /dev/null >"$T/s7.tty" 2>&1 </dev/null
  ok_if "7: on a terminal the link comes with a QR code of half blocks" sh -c "grep -c '█' '$T/s7.tty' | awk '\$1 >= 10 { ok = 1 } END { exit !ok }'"
else
  tap_result 1 "7: script(1) from bsdutils is needed: run scripts/install-deps.sh"
fi

# ---- 8-10. against a stand-in that cuts and flips -------------------------------------------------
# origin NAME ARGS…: starts tests/link-origin.py serving ARGS; sets O_URL.
origin() {
  local name=$1 i port=""
  shift
  : >"$T/$name.log"
  python3 "$SRC/tests/link-origin.py" "$@" "$T/$name.log" >"$T/$name.port" 2>"$T/$name.py.err" &
  for ((i = 0; i < 100; i++)); do
    port=$(head -n1 "$T/$name.port" 2>/dev/null)
    [ -n "$port" ] && break
    sleep 0.05
  done
  O_URL=http://127.0.0.1:$port
}

# 8. a cut download of one file, then the same command again
origin o8 "$T/one.bin" cut.bin --cut 1000000
receive r8 "$O_URL/r/cut.bin"
ok_if "8: a download cut at 1000000 bytes fails with exit 5" test "$RC" = 5
ok_if "8: … saying what arrived is kept and how to continue" grep -q "what arrived is kept: run the same command again to continue" "$T/r8.err"
ok_if "8: … and keeps the part file with those bytes" cmp -n 1000000 "$T/one.bin" "$T/r8/.cut.bin.ferry-part"
receive r8 "$O_URL/r/cut.bin"
ok_if "8: the same command again exits 0" test "$RC" = 0
ok_if "8: … asking only for the rest (Range: bytes=1000000-)" grep -qx "bytes=1000000-" "$T/o8.log"
ok_if "8: … and the file is whole" cmp "$T/one.bin" "$T/r8/cut.bin"

# 9. the same with an encrypted link: ciphertext made by the sender's format
python3 - "$T/one.bin" "$T/sealed" <<'PY'
import sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
key = bytes(range(32)); a = AESGCM(key); H = b'FRYLNK01'; R = 65536
p = open(sys.argv[1], 'rb').read(); out = [H]; i = 0; at = 0
while len(p) - at >= R:
    out.append(a.encrypt(i.to_bytes(8, 'big') + (0).to_bytes(4, 'big'), p[at:at + R], H)); i += 1; at += R
out.append(a.encrypt(i.to_bytes(8, 'big') + (1).to_bytes(4, 'big'), p[at:], H))
open(sys.argv[2], 'wb').write(b''.join(out))
PY
KEY=$(python3 -c 'import base64; print(base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("="))')
origin o9 "$T/sealed" sealed.bin --cut $((8 + 2 * 65552 + 1000))
receive r9 "$O_URL/r/sealed.bin#k=$KEY"
ok_if "9: an encrypted download cut inside record 2 fails with exit 5" test "$RC" = 5
ok_if "9: … keeping exactly the two authenticated records" test "$(stat -c %s "$T/r9/.sealed.bin.ferry-part")" = 131072
receive r9 "$O_URL/r/sealed.bin#k=$KEY"
ok_if "9: the same command again exits 0" test "$RC" = 0
ok_if "9: … resuming at record 2 (Range: bytes=131112-)" grep -qx "bytes=131112-" "$T/o9.log"
ok_if "9: … and the plaintext is whole" cmp "$T/one.bin" "$T/r9/sealed.bin"

# 10. one flipped byte in the ciphertext
origin o10 "$T/sealed" sealed.bin --flip 200000
receive r10 "$O_URL/r/sealed.bin#k=$KEY"
ok_if "10: a flipped ciphertext byte: exit 9" test "$RC" = 9
ok_if "10: … saying it failed authentication" grep -q "failed authentication at record 3" "$T/r10.err"
ok_if "10: … and nothing is put in place as the file" test ! -e "$T/r10/sealed.bin"

reports=$(grep -l -E 'runtime error:|ERROR: (Address|Leak|Undefined)Sanitizer' "$T"/*.err 2>/dev/null)
ok_if "no sanitizer report from any process" test -z "$reports"
[ -z "$reports" ] || head -n 30 $reports | sed 's/^/# /'
done_testing
