#!/usr/bin/env bash
# ferry send and ferry receive end to end: real processes (a ferry serve,
# senders, receivers) on loopback, checked by the bytes on disk, the exit
# statuses and what the user is told. Covers issue 5's test list: edge
# sizes and a 1 GiB sparse file, a tree with unicode names, modes and a
# symlink, SIGKILL of either side and resume, a corrupted partial file,
# Ctrl-C, three receivers at once, disk full (tmpfs), declining, a wrong
# code, no server, unreadable sources, existing files, checkpoints.
# Under ASan (FERRY_EXE in a sanitizer build) the sparse file is smaller.
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}
T=$TAP_TMP
export XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state
unset FERRY_STUN_SERVER FERRY_TURN_SERVER
export LC_ALL=C.UTF-8

MOUNTS=()
# Kills this script's children not yet waited for (their ids cannot have
# been reused), unmounts the tmpfs, removes the files.
cleanup() {
  local p m
  for p in $(jobs -p); do
    kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done
  rm -rf "$TAP_TMP"
}
trap cleanup EXIT

if grep -qa __asan_init "$F" || ldd "$F" 2>/dev/null | grep -q asan; then
  SPARSE=256M LIMIT=120
else
  SPARSE=1G LIMIT=60
fi
MiB=1048576
# The file for the kill cases. A receiver saves its checkpoint once a
# second, so it must still be receiving well after a second: 300 MB, sent
# with a rate limit (LIMITED: 5 s at least) so that a fast machine does not
# finish first, and to receivers that advertise small QUIC windows (SLOW).
BIG=$((300 * 1000 * 1000))
LIMITED=(--limit-rate 60M)
SLOW=(--quic-conn-window 256K --quic-stream-window 64K)

# ---- helpers -------------------------------------------------------------------

# jget FILE EVENT KEY: KEY of the last JSON line of FILE whose event is EVENT.
jget() {
  python3 - "$@" <<'PY'
import json, sys
path, event, key = sys.argv[1:4]
val = None
for line in open(path, encoding="utf-8", errors="replace"):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if isinstance(o, dict) and o.get("event") == event:
        val = o.get(key)
print("" if val is None else (str(val).lower() if isinstance(val, bool) else val))
PY
}

# start_send NAME ARGS…: a `ferry send --json` in the background; sets
# SPID and CODE (empty when no code came). Output in $T/NAME.out/.err.
start_send() {
  local name=$1 i
  shift
  "$F" send --json "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null &
  SPID=$!
  CODE=
  for ((i = 0; i < LIMIT * 20; i++)); do
    CODE=$(jget "$T/$name.out" code code 2>/dev/null)
    [ -n "$CODE" ] && return 0
    kill -0 "$SPID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# start_recv NAME ARGS…: a `ferry receive` in the background; sets RPID.
start_recv() {
  local name=$1
  shift
  "$F" receive "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null &
  RPID=$!
}

# recv NAME ARGS…: a `ferry receive` in the foreground; sets RC, OUT, ERR.
recv() {
  start_recv "$@"
  RC=0
  wait_pid "$RPID" || RC=$?
  OUT=$(cat "$T/$1.out")
  ERR=$(cat "$T/$1.err")
}

# verified: the most bytes any checkpoint in $XDG_STATE_HOME holds verified.
verified() {
  "$F" checkpoint list --json 2>/dev/null | grep -o '"bytes_verified":[0-9]*' | cut -d: -f2 |
    sort -n | tail -n1 | grep . || echo 0
}

# kill_when_verified PID BYTES SIGNAL: sends SIGNAL to PID once its
# checkpoint holds BYTES verified. Fails when PID ended first.
kill_when_verified() {
  local pid=$1 want=$2 sig=$3 i
  for ((i = 0; i < LIMIT * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if [ "$(verified)" -ge "$want" ]; then
      kill -"$sig" "$pid"
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# tree_sig DIR: every entry below DIR with its type, mode and link target,
# and every file's SHA-256 (no mtimes).
tree_sig() {
  (cd "$1" && find . -mindepth 1 -printf '%y %m %p -> %l\n' | sort &&
    find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
}

# mtime_sig DIR: files' and folders' mtimes in whole seconds.
mtime_sig() {
  (cd "$1" && find . -mindepth 1 ! -type l -exec stat -c '%n %Y' {} + | sort)
}

same_tree() { # a b
  local a b
  a=$(tree_sig "$1")
  b=$(tree_sig "$2")
  [ -n "$a" ] && [ "$a" = "$b" ] && return 0
  diff <(echo "$a") <(echo "$b") | head -n 20 >&2
  return 1
}

same_mtimes() {
  local a b
  a=$(mtime_sig "$1")
  b=$(mtime_sig "$2")
  [ "$a" = "$b" ] && return 0
  diff <(echo "$a") <(echo "$b") | head -n 20 >&2
  return 1
}

# says HAYSTACK NEEDLE…: every needle is in the haystack (else prints
# what is missing and the haystack, for the TAP diagnostics).
says() {
  local hay=$1 needle
  shift
  for needle in "$@"; do
    if ! contains "$hay" "$needle"; then
      printf 'missing: %s\nin: %s\n' "$needle" "$hay" >&2
      return 1
    fi
  done
}

no_partials() { # dir: no .ferry-part left anywhere below it
  [ -z "$(find "$1" -name '*.ferry-part' 2>/dev/null)" ]
}

# sender_lacks_space STATUS: the sender ended (not killed by wait_pid)
# with a failure that names the receiver's lack of disk space.
sender_lacks_space() {
  [ "$1" != 0 ] && [ "$1" != 124 ] && says "$(cat "$T/c8s.err")" "disk space"
}

new_state() { # a fresh checkpoint directory for case $1
  echo "# case $1 at $SECONDS s"
  export XDG_STATE_HOME=$T/state-$1
}

# ---- the server -----------------------------------------------------------------

"$F" serve --listen 127.0.0.1:0 --no-stun --ip-connect-rate 0 --ip-session-rate 0 \
  --ip-join-rate 0 --message-rate 0 >"$T/server.out" 2>"$T/server.err" </dev/null &
port=
for _ in $(seq 200); do
  port=$(grep -o '(port [0-9]*' "$T/server.out" 2>/dev/null | head -n1 | grep -o '[0-9]*$')
  [ -n "$port" ] && break
  sleep 0.05
done
ok_if "ferry serve starts on a free port" test -n "$port"
export FERRY_SERVER=http://127.0.0.1:$port

# ---- 11. no server (slow to give up: runs beside the other cases) ---------------

new_state 11
echo "nobody gets this" >"$T/c11.txt"
"$F" receive -y --server http://127.0.0.1:1 1-omelet-rodent-thank >"$T/c11r.out" \
  2>"$T/c11r.err" </dev/null &
C11R=$!
"$F" send --no-lan --server http://127.0.0.1:1 "$T/c11.txt" >"$T/c11s.out" 2>"$T/c11s.err" </dev/null &
C11S=$!

# ---- 1. edge sizes and a sparse file, chunk size 64K ---------------------------

new_state 1
S1=$T/c1/sizes
mkdir -p "$S1"
: >"$S1/empty"
head -c 1 /dev/urandom >"$S1/one"
head -c 65535 /dev/urandom >"$S1/chunk-1"
head -c 65536 /dev/urandom >"$S1/chunk"
head -c 65537 /dev/urandom >"$S1/chunk+1"
truncate -s "$SPARSE" "$S1/sparse"
printf 'tail' | dd of="$S1/sparse" bs=1 seek=$(($(stat -c %s "$S1/sparse") - 4)) conv=notrunc 2>/dev/null
if start_send c1s --chunk-size 64K "$S1"; then
  recv c1r -y --json --out "$T/c1/out" "$CODE"
  ok_if "1: the receiver exits 0" test "$RC" = 0
  ok_if "1: the done event says verified, 6 files" test "$(jget "$T/c1r.out" "done" verified)/$(jget "$T/c1r.out" "done" files)" = "true/6"
  for f in empty one chunk-1 chunk chunk+1; do
    ok_if "1: $f ($(stat -c %s "$S1/$f") B) is byte-exact" cmp "$S1/$f" "$T/c1/out/sizes/$f"
  done
  ok_if "1: the $SPARSE sparse file is byte-exact" cmp "$S1/sparse" "$T/c1/out/sizes/sparse"
  rc=0
  wait_pid "$SPID" || rc=$?
  ok_if "1: the sender exits 0" test "$rc" = 0
  [ "$rc" = 0 ] || grep -v '^{' "$T/c1s.err" | head -n 5 | sed 's/^/# sender: /'
  ok_if "1: no partial file is left" no_partials "$T/c1/out"
else
  tap_result 1 "1: the sender prints a code" "$(cat "$T/c1s.err")"
fi
rm -rf "$T/c1"

# ---- 2. a tree: unicode names, an empty folder, modes, a symlink --------------

new_state 2
S2="$T/c2/Ünïcödé tree"
mkdir -p "$S2/日本語/空" "$S2/emoji 🚀" "$S2/private"
printf 'grüße\n' >"$S2/日本語/ファイル.txt"
head -c 200000 /dev/urandom >"$S2/emoji 🚀/data ✓.bin"
printf 'secret\n' >"$S2/private/notes.txt"
printf '#!/bin/sh\n' >"$S2/run.sh"
ln -s "日本語/ファイル.txt" "$S2/link → file"
chmod 0640 "$S2/private/notes.txt"
chmod 0750 "$S2/private"
chmod 0755 "$S2/run.sh"
touch -d '2001-02-03 04:05:06' "$S2/日本語/ファイル.txt" "$S2/日本語/空"
if start_send c2s "$S2"; then
  recv c2r -y --out "$T/c2/out" "$CODE"
  ok_if "2: the receiver exits 0" test "$RC" = 0
  ok_if "2: the receiver's summary says verified" says "$ERR" "verified"
  ok_if "2: names, types, modes, sizes, link target and bytes match" same_tree "$S2" "$T/c2/out/Ünïcödé tree"
  ok_if "2: the empty folder arrived" test -d "$T/c2/out/Ünïcödé tree/日本語/空"
  ok_if "2: 0640 file and 0750 folder kept their modes" test "$(stat -c %a "$T/c2/out/Ünïcödé tree/private/notes.txt" "$T/c2/out/Ünïcödé tree/private" | tr '\n' ' ')" = "640 750 "
  ok_if "2: the symlink is a symlink with the same target" test "$(readlink "$T/c2/out/Ünïcödé tree/link → file")" = "日本語/ファイル.txt"
  ok_if "2: mtimes are kept" same_mtimes "$S2" "$T/c2/out/Ünïcödé tree"
  rc=0
  wait_pid "$SPID" || rc=$?
  ok_if "2: the sender exits 0" test "$rc" = 0
else
  tap_result 1 "2: the sender prints a code" "$(cat "$T/c2s.err")"
fi

# the big file for the kill cases
BIGF=$T/big/big.bin
mkdir -p "$T/big"
head -c "$BIG" /dev/urandom >"$BIGF"
THRESH=$((BIG / 5))

# ---- 3. SIGKILL of the receiver, then the same code again ----------------------

new_state 3
if start_send c3s "${LIMITED[@]}" "$BIGF"; then
  start_recv c3r1 -y --json "${SLOW[@]}" --out "$T/c3" "$CODE"
  if kill_when_verified "$RPID" "$THRESH" KILL; then
    wait "$RPID" 2>/dev/null
    part=$(find "$T/c3" -name '.big.bin.*.ferry-part' | head -n1)
    ok_if "3: the killed receiver left its partial file .big.bin.ID.ferry-part" test -n "$part"
    had=$(verified)
    ok_if "3: its checkpoint holds verified bytes" test "$had" -gt 0
    recv c3r2 -y --json --out "$T/c3" "$CODE"
    ok_if "3: the receiver run again with the same code exits 0" test "$RC" = 0
    ok_if "3: the file is byte-exact" cmp "$BIGF" "$T/c3/big.bin"
    got=$(jget "$T/c3r2.out" "done" bytes_resumed)
    ok_if "3: done shows bytes_resumed > 0" test "${got:-0}" -gt 0
    ok_if "3: bytes_resumed ($got) = the checkpoint's verified bytes ($had)" test "${got:-0}" = "$had"
    ok_if "3: no partial file or checkpoint is left" test -z "$(find "$T/c3" -name '*.ferry-part')" -a "$(verified)" = 0
    # its one receiver is served: the dead first connection must not hold it
    rc=0
    wait_pid "$SPID" 5 || rc=$?
    ok_if "3: the sender exits 0 within 5 s once the second receiver has everything" test "$rc" = 0
    [ "$rc" = 0 ] || sed 's/^/# sender: /' "$T/c3s.err"
  else
    tap_result 1 "3: the receiver was killed mid-transfer" "it ended before $THRESH bytes were verified: $(cat "$T/c3r1.err")"
    kill -9 "$SPID" 2>/dev/null
  fi
else
  tap_result 1 "3: the sender prints a code" "$(cat "$T/c3s.err")"
fi
rm -rf "$T/c3"

# ---- 4. SIGKILL of the sender, a new sender, the receiver again ----------------

new_state 4
if start_send c4s1 "${LIMITED[@]}" "$BIGF"; then
  start_recv c4r1 -y --json "${SLOW[@]}" --quic-idle-timeout 5000 --max-retries 0 --out "$T/c4" "$CODE"
  # (--max-retries 0: no automatic reconnect, which test-reconnect.sh covers)
  # signal 0 to the receiver: only waits for the checkpoint; then the sender dies
  if kill_when_verified "$RPID" "$THRESH" 0 && kill -9 "$SPID"; then
    wait "$SPID" 2>/dev/null
    RC=0
    wait_pid "$RPID" 30 || RC=$?
    ERR=$(cat "$T/c4r1.err")
    ok_if "4: the receiver exits 5 (sender vanished)" test "$RC" = 5
    ok_if "4: it says the verified part is kept and how to continue" says "$ERR" "verified so far are kept: run \`ferry receive"
    had=$(verified)
    if start_send c4s2 "$BIGF"; then
      recv c4r2 -y --json --out "$T/c4" "$CODE"
      ok_if "4: the receiver with the new sender's code exits 0" test "$RC" = 0
      ok_if "4: the file is byte-exact" cmp "$BIGF" "$T/c4/big.bin"
      got=$(jget "$T/c4r2.out" "done" bytes_resumed)
      ok_if "4: done shows bytes_resumed > 0" test "${got:-0}" -gt 0
      ok_if "4: bytes_resumed ($got) = the checkpoint's verified bytes ($had)" test "${got:-0}" = "$had"
      rc=0
      wait_pid "$SPID" 30 || rc=$?
      ok_if "4: the second sender exits 0" test "$rc" = 0
    else
      tap_result 1 "4: the second sender prints a code" "$(cat "$T/c4s2.err")"
    fi
  else
    tap_result 1 "4: the sender was killed mid-transfer" "the receiver ended first: $(cat "$T/c4r1.err")"
    kill -9 "$SPID" 2>/dev/null
  fi
else
  tap_result 1 "4: the sender prints a code" "$(cat "$T/c4s1.err")"
fi
rm -rf "$T/c4"

# ---- 5. a corrupted partial file -----------------------------------------------

new_state 5
if start_send c5s "${LIMITED[@]}" "$BIGF"; then
  start_recv c5r1 -y --json "${SLOW[@]}" --out "$T/c5" "$CODE"
  if kill_when_verified "$RPID" "$THRESH" KILL; then
    wait "$RPID" 2>/dev/null
    part=$(find "$T/c5" -name '.big.bin.*.ferry-part' | head -n1)
    had=$(verified)
    # chunks 1 and 3 (1 MiB chunks) are verified long before a fifth of the file
    printf 'CORRUPTED' | dd of="$part" bs=1 seek=$((1 * MiB + 4321)) conv=notrunc 2>/dev/null
    printf 'CORRUPTED' | dd of="$part" bs=1 seek=$((3 * MiB + 9)) conv=notrunc 2>/dev/null
    recv c5r2 -y --json --out "$T/c5" "$CODE"
    ok_if "5: the resumed receiver exits 0" test "$RC" = 0
    ok_if "5: the file is byte-exact despite the corrupted partial" cmp "$BIGF" "$T/c5/big.bin"
    got=$(jget "$T/c5r2.out" "done" bytes_resumed)
    ok_if "5: the good part was resumed (bytes_resumed $got > 0)" test "${got:-0}" -gt 0
    ok_if "5: the two corrupted chunks moved again (bytes_resumed $got <= $had - 2 MiB)" test "${got:-0}" -le $((had - 2 * MiB))
    rc=0
    wait_pid "$SPID" 5 || rc=$?
    ok_if "5: the sender exits 0 within 5 s" test "$rc" = 0
  else
    tap_result 1 "5: the receiver was killed mid-transfer" "$(cat "$T/c5r1.err")"
    kill -9 "$SPID" 2>/dev/null
  fi
else
  tap_result 1 "5: the sender prints a code" "$(cat "$T/c5s.err")"
fi
rm -rf "$T/c5"

# ---- 6. Ctrl-C of the receiver -------------------------------------------------

new_state 6
if start_send c6s "${LIMITED[@]}" "$BIGF"; then
  start_recv c6r1 -y "${SLOW[@]}" --out "$T/c6" "$CODE"
  if kill_when_verified "$RPID" "$THRESH" INT; then
    RC=0
    wait_pid "$RPID" 20 || RC=$?
    ERR=$(cat "$T/c6r1.err")
    ok_if "6: Ctrl-C exits 10 (interrupted)" test "$RC" = 10
    ok_if "6: the message says interrupted and a checkpoint was saved" says "$ERR" "interrupted: " "checkpoint saved"
    ok_if "6: the message says how to continue" says "$ERR" "run the same \`ferry receive\`"
    had=$(verified)
    ok_if "6: the checkpoint holds verified bytes" test "$had" -gt 0
    recv c6r2 -y --out "$T/c6" "$CODE"
    ok_if "6: the receive run again exits 0" test "$RC" = 0
    ok_if "6: it says it is resuming" says "$ERR" "resuming: "
    ok_if "6: the file is byte-exact" cmp "$BIGF" "$T/c6/big.bin"
    rc=0
    wait_pid "$SPID" 30 || rc=$?
    ok_if "6: the sender exits 0" test "$rc" = 0
    got=$(jget "$T/c6s.out" "done" bytes_resumed)
    ok_if "6: the sender's done event counts the resumed bytes ($got = $had)" test "${got:-0}" = "$had"
  else
    tap_result 1 "6: the receiver was interrupted mid-transfer" "$(cat "$T/c6r1.err")"
    kill -9 "$SPID" 2>/dev/null
  fi
else
  tap_result 1 "6: the sender prints a code" "$(cat "$T/c6s.err")"
fi
rm -rf "$T/c6"

# ---- 7. three receivers at once -----------------------------------------------

new_state 7
head -c $((BIG / 10)) /dev/urandom >"$S2/emoji 🚀/bigger.bin"
if start_send c7s --max-receivers 3 "$S2"; then
  r7=()
  for n in a b c; do
    start_recv "c7$n" -y --json --out "$T/c7/$n" "$CODE"
    r7+=("$RPID")
  done
  i=0
  for n in a b c; do
    rc=0
    wait_pid "${r7[$i]}" || rc=$?
    i=$((i + 1))
    ok_if "7: receiver $n exits 0" test "$rc" = 0
    ok_if "7: receiver $n's tree is byte-exact" same_tree "$S2" "$T/c7/$n/Ünïcödé tree"
  done
  rc=0
  wait_pid "$SPID" 30 || rc=$?
  ok_if "7: the sender exits 0 after three receivers" test "$rc" = 0
  ok_if "7: the sender saw three done events" test "$(grep -c '"event":"done"' "$T/c7s.out")" = 3
else
  tap_result 1 "7: the sender prints a code" "$(cat "$T/c7s.err")"
fi
rm -rf "$T/c7" "$S2/emoji 🚀/bigger.bin"

# ---- 8. disk full ---------------------------------------------------------------

new_state 8
M8=$T/c8/small
M8B=$T/c8/mid
mkdir -p "$M8" "$M8B"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=8m ferry-e2e "$M8" 2>/dev/null; then
  MOUNTS+=("$M8")
  echo "keep me" >"$M8/other.txt"
  head -c $((20 * 1000 * 1000)) /dev/urandom >"$T/c8/f20.bin"
  if start_send c8s "$T/c8/f20.bin"; then
    recv c8r -y --out "$M8/out" "$CODE"
    ok_if "8: a 20 MB file into an 8 MiB tmpfs exits 7 (disk full)" test "$RC" = 7
    ok_if "8: the message says not enough space, needed and free" says "$ERR" "not enough space in $M8/out: the transfer needs 19.1" " is free; free some space or choose another folder with --out"
    ok_if "8: the other file on the tmpfs is untouched" test "$(cat "$M8/other.txt")" = "keep me"
    ok_if "8: nothing was written (no files, no partials)" test -z "$(ls -A "$M8/out" 2>/dev/null)"
    rc=0
    wait_pid "$SPID" 20 || rc=$?
    ok_if "8: the sender ends (exit $rc) and says the receiver lacks disk space" sender_lacks_space "$rc"
  else
    tap_result 1 "8: the sender prints a code" "$(cat "$T/c8s.err")"
  fi

  # mid-transfer: the file fits when accepted; another file fills the disk
  if mount -t tmpfs -o size=48m ferry-e2e "$M8B" 2>/dev/null; then
    MOUNTS+=("$M8B")
    head -c $((40 * 1000 * 1000)) /dev/urandom >"$T/c8/f40.bin"
    if start_send c8bs "$T/c8/f40.bin"; then
      start_recv c8br -y "${SLOW[@]}" --out "$M8B/out" "$CODE"
      filled=
      for ((i = 0; i < LIMIT * 200; i++)); do
        kill -0 "$RPID" 2>/dev/null || break
        part=$(find "$M8B/out" -name '.f40.bin.*.ferry-part' 2>/dev/null | head -n1)
        if [ -n "$part" ] && [ "$(($(stat -c %b "$part") * $(stat -c %B "$part")))" -ge $((4 * MiB)) ]; then
          avail=$(df -B1 --output=avail "$M8B" | tail -n1)
          fallocate -l $((avail - 512 * 1024)) "$M8B/filler" 2>/dev/null || head -c $((avail - 512 * 1024)) /dev/zero >"$M8B/filler" 2>/dev/null
          filled=1
          break
        fi
        sleep 0.005
      done
      RC=0
      wait_pid "$RPID" || RC=$?
      ERR=$(cat "$T/c8br.err")
      if [ -z "$filled" ] || [ "$RC" = 0 ]; then
        tap_result 0 "8: mid-transfer disk full # SKIP the transfer ended before the tmpfs could be filled"
      else
        ok_if "8: disk full mid-transfer exits 7" test "$RC" = 7
        ok_if "8: the message says disk full with free and needed bytes" says "$ERR" "disk full: $M8B/out has " " free and the transfer needs "
        ok_if "8: the message says the verified part is kept" says "$ERR" "verified part is kept"
        ok_if "8: the file that filled the disk is untouched" test -f "$M8B/filler"
        rm -f "$M8B/filler"
        recv c8br2 -y --json --out "$M8B/out" "$CODE"
        ok_if "8: with space freed, the same code resumes and exits 0" test "$RC" = 0
        ok_if "8: the file is byte-exact" cmp "$T/c8/f40.bin" "$M8B/out/f40.bin"
        got=$(jget "$T/c8br2.out" "done" bytes_resumed)
        ok_if "8: bytes_resumed > 0 after disk full" test "${got:-0}" -gt 0
      fi
      kill -9 "$SPID" 2>/dev/null
      wait "$SPID" 2>/dev/null
    else
      tap_result 1 "8: the sender prints a code (mid-transfer)" "$(cat "$T/c8bs.err")"
    fi
  fi
else
  tap_result 0 "8: disk full # SKIP cannot mount a tmpfs (needs root)"
fi

# ---- 9. declined --------------------------------------------------------------

new_state 9
echo "decline me" >"$T/small.txt"
if start_send c9s "$T/small.txt"; then
  recv c9r --out "$T/c9" "$CODE"
  ok_if "9: without -y and without a terminal the receiver exits 6 (declined)" test "$RC" = 6
  ok_if "9: it says to use -y" says "$ERR" "standard input is not a terminal; run again with -y"
  rc=0
  wait_pid "$SPID" 20 || rc=$?
  ok_if "9: the sender exits 6 (declined)" test "$rc" = 6
  ok_if "9: the sender says the receiver declined" says "$(cat "$T/c9s.err")" "the receiver declined"
  [ "$rc" = 6 ] || sed 's/^/# sender: /' "$T/c9s.err"
  ok_if "9: nothing was written" test ! -e "$T/c9/small.txt"
else
  tap_result 1 "9: the sender prints a code" "$(cat "$T/c9s.err")"
fi
if command -v script >/dev/null && start_send c9bs "$T/small.txt"; then
  RC=0
  (sleep 1; echo n) | script -qec "'$F' receive --out '$T/c9' $CODE" /dev/null >"$T/c9br.out" 2>&1 || RC=$?
  OUT=$(cat "$T/c9br.out")
  ok_if "9: answering n at the prompt exits 6" test "$RC" = 6
  ok_if "9: the prompt was shown and the decline said so" says "$OUT" "Accept? [y/N]" "declined: nothing was received"
  rc=0
  wait_pid "$SPID" 20 || rc=$?
  ok_if "9: the sender exits 6 (declined by answer n)" test "$rc" = 6
  [ "$rc" = 6 ] || sed 's/^/# sender: /' "$T/c9bs.err"
  ok_if "9: nothing was written (answer n)" test ! -e "$T/c9/small.txt"
fi

# ---- 10. wrong code -----------------------------------------------------------

new_state 10
if start_send c10s "$T/small.txt"; then
  words=$("$F" code 2>/dev/null)
  while [ "${CODE#*-}" = "$words" ]; do words=$("$F" code 2>/dev/null); done
  recv c10r -y --out "$T/c10" "${CODE%%-*}-$words"
  ok_if "10: a wrong code exits 3" test "$RC" = 3
  ok_if "10: the message says the code did not match" grep -qi "code did not match\|wrong code" <<<"$ERR"
  [ "$RC" = 3 ] || echo "# receiver: $ERR"
  ok_if "10: nothing was written" test ! -e "$T/c10/small.txt"
  recv c10r2 -y --out "$T/c10" "$CODE"
  ok_if "10: the sender still serves the right code" test "$RC" = 0 -a "$(cat "$T/c10/small.txt")" = "decline me"
  rc=0
  wait_pid "$SPID" 20 || rc=$?
  ok_if "10: the sender exits 0" test "$rc" = 0
  ok_if "10: the sender warned about the wrong code" says "$(cat "$T/c10s.err")" "someone tried a wrong code"
else
  tap_result 1 "10: the sender prints a code" "$(cat "$T/c10s.err")"
fi

# ---- 12. an unreadable source file (as an unprivileged user) -------------------

new_state 12
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
  setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
  U=$T/c12
  mkdir -p "$U/tree/sub" "$U/state"
  echo a >"$U/tree/a.txt"
  echo b >"$U/tree/sub/b.txt"
  echo secret >"$U/tree/secret.txt"
  chmod 000 "$U/tree/secret.txt"
  chown 65534 "$U/state"
  chmod 0755 "$T" "$U" "$U/tree" "$U/tree/sub"
  chmod 0644 "$U/tree/a.txt" "$U/tree/sub/b.txt"
  NB=(setpriv --reuid=65534 --regid=65534 --clear-groups env XDG_STATE_HOME="$U/state" XDG_CONFIG_HOME="$U/state")
  rc=0
  "${NB[@]}" "$F" send "$U/tree" >"$T/c12s.out" 2>"$T/c12s.err" </dev/null || rc=$?
  ok_if "12: an unreadable file stops the sender with exit 8" test "$rc" = 8
  ok_if "12: the message names the file and --skip-errors" says "$(cat "$T/c12s.err")" "tree/secret.txt" "Permission denied" "--skip-errors"
  ok_if "12: no code was offered" test ! -s "$T/c12s.out"
  "${NB[@]}" "$F" send --json --skip-errors "$U/tree" >"$T/c12bs.out" 2>"$T/c12bs.err" </dev/null &
  SPID=$!
  CODE=
  for ((i = 0; i < LIMIT * 20; i++)); do
    CODE=$(jget "$T/c12bs.out" code code)
    [ -n "$CODE" ] && break
    sleep 0.05
  done
  recv c12r -y --out "$U/out" "$CODE"
  ok_if "12: with --skip-errors the receiver exits 0" test "$RC" = 0
  ok_if "12: tree/a.txt arrived byte-exact" cmp "$U/tree/a.txt" "$U/out/tree/a.txt"
  ok_if "12: tree/sub/b.txt arrived byte-exact" cmp "$U/tree/sub/b.txt" "$U/out/tree/sub/b.txt"
  ok_if "12: the unreadable file is not there" test ! -e "$U/out/tree/secret.txt"
  rc=0
  wait_pid "$SPID" 20 || rc=$?
  ok_if "12: the sender with --skip-errors exits 0" test "$rc" = 0
  ok_if "12: and warned that it skipped the file" says "$(cat "$T/c12bs.err")" "skipped tree/secret.txt"
else
  tap_result 0 "12: unreadable source # SKIP needs root and setpriv to run the sender as nobody"
fi

# ---- 13. an existing different file ---------------------------------------------

new_state 13
mkdir -p "$T/c13"
echo "old content" >"$T/c13/small.txt"
if start_send c13s "$T/small.txt"; then
  recv c13r -y --out "$T/c13" "$CODE"
  ok_if "13: the receiver exits 0" test "$RC" = 0
  ok_if "13: the existing file is kept" test "$(cat "$T/c13/small.txt")" = "old content"
  ok_if "13: the new one lands as 'small (1).txt'" cmp "$T/small.txt" "$T/c13/small (1).txt"
  ok_if "13: the user is told where it went" says "$ERR" "small.txt exists and differs: saved as small (1).txt"
  wait_pid "$SPID" 20
fi
if start_send c13bs "$T/small.txt"; then
  rm -f "$T/c13/small (1).txt"
  recv c13br -y --overwrite --out "$T/c13" "$CODE"
  ok_if "13: with --overwrite the receiver exits 0" test "$RC" = 0
  ok_if "13: with --overwrite the file is replaced" cmp "$T/small.txt" "$T/c13/small.txt"
  ok_if "13: with --overwrite no renamed copy is made" test ! -e "$T/c13/small (1).txt"
  wait_pid "$SPID" 20
fi

# ---- 14. ferry checkpoint on a killed receiver's checkpoint --------------------

new_state 14
if start_send c14s --ttl 5m "${LIMITED[@]}" "$BIGF"; then
  start_recv c14r1 -y "${SLOW[@]}" --out "$T/c14" "$CODE"
  if kill_when_verified "$RPID" 1 KILL; then
    wait "$RPID" 2>/dev/null
    id=$(jget "$T/c14s.out" code id)
    expect_exit 0 "14: checkpoint list exits 0" "$F" checkpoint list
    ok_if "14: list shows the transfer id and its output directory" says "$OUT" "$id" "$T/c14"
    expect_exit 0 "14: checkpoint clean (older than 7d) exits 0" "$F" checkpoint clean
    ok_if "14: clean keeps a fresh checkpoint" says "$("$F" checkpoint list)" "$id"
    expect_exit 0 "14: checkpoint delete with an id prefix exits 0" "$F" checkpoint delete "${id:0:6}"
    ok_if "14: delete says what it deleted" says "$OUT" "deleted checkpoint ${id:0:6}"
    ok_if "14: the partial file is gone" no_partials "$T/c14"
    expect_exit 0 "14: list after delete exits 0" "$F" checkpoint list
    ok_if "14: list says there are none" says "$OUT" "no checkpoints in"
    expect_exit 1 "14: deleting it again exits 1" "$F" checkpoint delete "$id"
    ok_if "14: and says how to see the checkpoints" says "$ERR" "ferry checkpoint list"

    start_recv c14r2 -y "${SLOW[@]}" --out "$T/c14" "$CODE"
    if kill_when_verified "$RPID" 1 KILL; then
      wait "$RPID" 2>/dev/null
      ok_if "14: a second kill left a partial file" test -n "$(find "$T/c14" -name '*.ferry-part')"
      expect_exit 0 "14: checkpoint clean-all exits 0" "$F" checkpoint clean-all
      ok_if "14: clean-all says it deleted one checkpoint" says "$OUT" "deleted 1 checkpoint"
      ok_if "14: the partial file is gone after clean-all" no_partials "$T/c14"
      ok_if "14: list is empty after clean-all" says "$("$F" checkpoint list)" "no checkpoints in"
    else
      tap_result 1 "14: the second receiver was killed mid-transfer" "$(cat "$T/c14r2.err")"
    fi
  else
    tap_result 1 "14: the receiver was killed mid-transfer" "$(cat "$T/c14r1.err")"
  fi
  kill -9 "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
else
  tap_result 1 "14: the sender prints a code" "$(cat "$T/c14s.err")"
fi

# ---- 15. --limit-rate ------------------------------------------------------------

new_state 15
head -c $((30 * 1000 * 1000)) /dev/urandom >"$T/c15.bin"
if start_send c15s --limit-rate 10M "$T/c15.bin"; then
  recv c15r -y --json --out "$T/c15" "$CODE"
  ok_if "15: with --limit-rate 10M the receiver exits 0" test "$RC" = 0
  ok_if "15: the file is byte-exact" cmp "$T/c15.bin" "$T/c15/c15.bin"
  secs=$(jget "$T/c15r.out" done seconds)
  # 30 MB at 10 MiB/s is ~2.9 s (a quarter second's worth, and a chunk, may go at once)
  ok_if "15: 30 MB took at least 2 s (took ${secs:-?} s; unlimited: well under 1 s)" awk -v s="${secs:-0}" 'BEGIN { exit !(s >= 2) }'
  wait_pid "$SPID" 20
fi

# ---- 11. (collected) no server --------------------------------------------------

new_state 11
recv c11t -y --server http://127.0.0.1:1 --connect-timeout 2000 1-omelet-rodent-thank
ok_if "11: receiver, no server, --connect-timeout 2000: exit 4" test "$RC" = 4
ok_if "11: the message names the server (--connect-timeout)" says "$ERR" "127.0.0.1:1"
[ "$RC" = 4 ] || echo "# receiver: $ERR"
rc=0
wait_pid "$C11R" 90 || rc=$?
ERR=$(cat "$T/c11r.err")
ok_if "11: receiver, no server: exit 4" test "$rc" = 4
ok_if "11: the receiver's message names the server and the way out" says "$ERR" "cannot connect to the server at ws://127.0.0.1:1/v1" "check the server address"
rc=0
wait_pid "$C11S" 90 || rc=$?
ERR=$(cat "$T/c11s.err")
ok_if "11: sender, no server, --no-lan: exit 4" test "$rc" = 4
ok_if "11: the sender's message names the server and the way out" says "$ERR" "cannot connect to the server at ws://127.0.0.1:1/v1" "check the server address"

# ---- every process: no sanitizer report ----------------------------------------

reports=$(grep -l -E 'runtime error:|ERROR: (Address|Leak|Undefined)Sanitizer' "$T"/*.err 2>/dev/null)
ok_if "no process printed a sanitizer report" test -z "$reports"
for r in $reports; do
  echo "# ${r##*/}:"
  grep -v '^{' "$r" | sed 's/^/# /' | head -n 30
done

done_testing
