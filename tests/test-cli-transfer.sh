#!/usr/bin/env bash
# ferry send / receive / checkpoint as a user meets them, without a peer:
# help texts, bad flags and config files (exit 2 and what the message
# says), malformed codes, the checkpoint commands on an empty state
# directory, and a sender alone with a local ferry serve (its code line,
# --json, --ttl, Ctrl-C, the resume record).
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}
T=$TAP_TMP
export XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state
unset FERRY_SERVER FERRY_STUN_SERVER FERRY_TURN_SERVER
mkdir -p "$T/config/ferry" "$T/src"
echo hello >"$T/src/a.txt"
CONFIG=$T/config/ferry/config

# ---- help ---------------------------------------------------------------------
expect_exit 0 "ferry --help exits 0" "$F" --help
for c in send receive checkpoint host join; do
  ok_if "ferry --help lists $c" grep -Eq "^  $c " <<<"$OUT"
done
expect_exit 0 "send --help exits 0" "$F" send --help
for o in --server --stun-server --turn-server --force-relay --no-relay --max-receivers \
  --chunk-size --parallel --limit-rate --quic-cc --quic-conn-window --quic-stream-window --quic-max-streams \
  --quic-idle-timeout --quic-handshake-timeout --connect-timeout --code-words --ttl --keep \
  --resume --skip-errors --quiet --json --benchmark --verbose; do
  ok_if "send --help shows $o" contains "$OUT" "$o"
done
ok_if "send --help documents the exit statuses" contains "$OUT" "12 --ttl ran out"
ok_if "send --help names the config file" contains "$OUT" "ferry/config"
expect_exit 0 "host --help exits 0" "$F" host --help
ok_if "host is send under another name" contains "$OUT" "ferry host [OPTION…] PATH…"
expect_exit 0 "receive --help exits 0" "$F" receive --help
for o in --out --overwrite --yes --resume --json --quiet --server --turn-server; do
  ok_if "receive --help shows $o" contains "$OUT" "$o"
done
ok_if "receive --help has no sender options" test "$(grep -c -- '--max-receivers\|--chunk-size' <<<"$OUT")" = 0
ok_if "receive --help documents disk full" contains "$OUT" "7 disk full"
expect_exit 0 "join --help exits 0" "$F" join --help
ok_if "join is receive under another name" contains "$OUT" "ferry join [OPTION…] CODE"
expect_exit 0 "checkpoint --help exits 0" "$F" checkpoint --help
ok_if "checkpoint --help lists its actions" contains "$OUT" "clean-all"

# ---- bad flags ----------------------------------------------------------------
bad() { # name needle args…
  local name=$1 needle=$2
  shift 2
  expect_exit 2 "$name is a usage error" "$F" "$@"
  ok_if "$name: the message says '$needle'" contains "$ERR" "$needle"
}
bad "--parallel 0" "--parallel '0' is not a whole number from 1 to 64" send --parallel 0 "$T/src"
bad "--parallel abc" "--parallel 'abc' is not a whole number" send --parallel abc "$T/src"
bad "--chunk-size 3M" "--chunk-size: " send --chunk-size 3M "$T/src"
bad "--ttl 5x" "--ttl '5x' is not a duration" send --ttl 5x "$T/src"
bad "--quic-cc vegas" "is no congestion controller: use bbr, bbr-plain, bbr2, cubic or reno" send --quic-cc vegas "$T/src"
bad "--force-relay with --no-relay" "--force-relay and --no-relay contradict each other" send --force-relay --no-relay "$T/src"
bad "--code-words 9" "--code-words '9' is not a whole number from 2 to 8" send --code-words 9 "$T/src"
bad "--max-receivers 0" "--max-receivers '0' is not a whole number from 1 to 1000" send --max-receivers 0 "$T/src"
bad "--quiet with --json" "do not go together" send -q --json "$T/src"
bad "--connect-timeout 5" "--connect-timeout '5' is not a time from 100 to 3600000 ms" receive --connect-timeout 5 7-ocean-tiger-piano
bad "--quic-conn-window 1K" "is not a size from 64K to 4G" receive --quic-conn-window 1K 7-ocean-tiger-piano
bad "--limit-rate 10" "--limit-rate '10' is not a size from 1K to 1024G" send --limit-rate 10 "$T/src"
bad "an empty --server" "--server '' is empty" receive --server "" 7-ocean-tiger-piano
bad "an unknown option" "--help" send --no-such-flag "$T/src"
bad "send without paths" "name at least one file or folder to send" send --server http://127.0.0.1:9
bad "--resume with paths" "give --resume ID or paths, not both" send --resume 0123 "$T/src"
bad "--resume of no earlier send" "no earlier send with id 'abcd'" send --resume abcd
bad "--resume with a non-id" "'xyz!' is not a transfer id" send --resume 'xyz!'
bad "receive without a code" "give the code the sender shows" receive
bad "a misspelt code word" "did you mean 'tiger'" receive 7-ocean-tigr-piano
bad "a code without a number" "" receive ocean-tiger-piano
bad "receive --resume of no checkpoint" "no checkpoint has the id 'abcd'" receive --resume abcd 7-ocean-tiger-piano
expect_exit 8 "a missing path is a local file error (8)" "$F" send --server http://127.0.0.1:9 "$T/no-such-file"
ok_if "the message names the missing path" contains "$ERR" "no-such-file"
expect_exit 11 "no server anywhere: LAN mode finds no sender with the code (11)" "$F" receive -y 7-ocean-tiger-piano
ok_if "the message says how to give a server" contains "$ERR" "both sides need --server URL"

# ---- the config file ----------------------------------------------------------
badconf() { # name text needle
  printf '%b' "$2" >"$CONFIG"
  expect_exit 2 "config: $1 is an error" "$F" receive -y 7-ocean-tiger-piano
  ok_if "config: $1: the message says '$3'" contains "$ERR" "$3"
}
badconf "an unknown key" "[ferry]\nparalel=3\n" "$CONFIG:2: unknown key 'paralel'"
badconf "another group" "# mine\n[ferri]\nserver=x\n" "$CONFIG:2: unknown group [ferri]: ferry reads only [ferry]"
badconf "a key before any group" "server=x\n" "$CONFIG:1: 'server=x' comes before any group: put a line [ferry] above it"
badconf "a line that is no key" "[ferry]\n\njunk here\n" "$CONFIG:3: 'junk here' is neither [group], key=value nor a # comment"
badconf "a bad boolean" "[ferry]\nforce-relay=maybe\n" "$CONFIG:2: force-relay 'maybe' is neither true nor false"
badconf "resume" "[ferry]\nresume=abc\n" "$CONFIG:2: 'resume' cannot be set in the config file"
badconf "a bad number" "[ferry]\nserver=http://127.0.0.1:9\nconnect-timeout=soon\n" "$CONFIG:3: connect-timeout 'soon' is not a time"
badconf "contradicting flags" "[ferry]\nforce-relay=true\nno-relay=yes\n" "$CONFIG:2: force-relay and $CONFIG:3: no-relay contradict each other"
badconf "a bad STUN server" "[ferry]\nserver=http://127.0.0.1:9\nstun-server=a b\n" "stun"
printf '[ferry]\nserver=ftp://from-file\nparallel=0\n' >"$CONFIG"
expect_exit 2 "a sender setting in the file is checked by send" "$F" send "$T/src"
ok_if "… naming the file and line" contains "$ERR" "$CONFIG:3: parallel '0'"
expect_exit 2 "the config file's server is used" "$F" receive -y 7-ocean-tiger-piano
ok_if "… as the library's message shows" contains "$ERR" "ftp://from-file"
FERRY_SERVER=ftp://from-env expect_exit 2 "FERRY_SERVER beats the file" "$F" receive -y 7-ocean-tiger-piano
ok_if "… as the message shows" contains "$ERR" "ftp://from-env"
FERRY_SERVER=ftp://from-env expect_exit 2 "--server beats FERRY_SERVER" "$F" receive --server ftp://from-flag -y 7-ocean-tiger-piano
ok_if "… as the message shows" contains "$ERR" "ftp://from-flag"
printf '[ferry]\nparallel=0\n' >"$CONFIG"
expect_exit 2 "--parallel beats the file" "$F" send --parallel 2 --server ftp://x "$T/src"
ok_if "… so the file's bad value is not looked at" contains "$ERR" "ftp://x"
rm -f "$CONFIG"

# ---- checkpoints --------------------------------------------------------------
expect_exit 0 "checkpoint list with none exits 0" "$F" checkpoint list
ok_if "… and says there are none" contains "$OUT" "no checkpoints in $T/state/ferry/checkpoints"
expect_exit 0 "checkpoint list --json with none exits 0" "$F" checkpoint list --json
ok_if "… and prints nothing" test -z "$OUT"
expect_exit 1 "checkpoint delete of an unknown id fails" "$F" checkpoint delete 0123abcd
ok_if "… pointing at checkpoint list" contains "$ERR" "ferry checkpoint list"
expect_exit 2 "checkpoint delete without an id is a usage error" "$F" checkpoint delete
expect_exit 0 "checkpoint clean exits 0" "$F" checkpoint clean
ok_if "… and says what it deleted" contains "$OUT" "deleted 0 checkpoints and 0 send records older than 7d"
expect_exit 0 "checkpoint clean --ttl 3h exits 0" "$F" checkpoint clean --ttl 3h
ok_if "… and names the age" contains "$OUT" "older than 3h"
expect_exit 2 "checkpoint clean --ttl soon is a usage error" "$F" checkpoint clean --ttl soon
expect_exit 2 "--ttl with list is a usage error" "$F" checkpoint list --ttl 3h
expect_exit 0 "checkpoint clean-all exits 0" "$F" checkpoint clean-all
expect_exit 2 "an unknown action is a usage error" "$F" checkpoint frobnicate
ok_if "… naming the actions" contains "$ERR" "use list, delete ID, clean or clean-all"
expect_exit 2 "no action is a usage error" "$F" checkpoint

# ---- a sender alone with a local server ---------------------------------------
"$F" serve --listen 127.0.0.1:0 --no-stun -q >"$T/server.out" 2>"$T/server.err" &
server=$!
port=
for _ in $(seq 100); do
  port=$(grep -o '(port [0-9]*' "$T/server.out" 2>/dev/null | head -n1 | grep -o '[0-9]*$')
  [ -n "$port" ] && break
  sleep 0.05
done
S=http://127.0.0.1:$port

# wait_line FILE: until FILE has a first line (at most 10 s)
wait_line() {
  for _ in $(seq 200); do
    [ -s "$1" ] && return 0
    sleep 0.05
  done
  return 1
}

mkdir -p "$T/odd"
odd="$T/odd/semi;colon and space"
printf 'x' >"$odd"
odd2="$T/$(printf 'latin1-\xe9')/b.txt"
mkdir -p "$(dirname "$odd2")"
printf 'y' >"$odd2"
"$F" send -q --server "$S" "$T/src" "$odd" "$odd2" >"$T/q.out" 2>"$T/q.err" &
pid=$!
wait_line "$T/q.out"
ok_if "send -q prints just the code on stdout" grep -Eqx '[1-9][0-9]*(-[a-z]{3,6}){3}' "$T/q.out"
ok_if "send -q prints nothing on stderr" test ! -s "$T/q.err"
kill -INT $pid
rc=0
wait $pid || rc=$?
ok_if "Ctrl-C ends send with 10" test "$rc" = 10
ok_if "… saying how to resume" grep -q "interrupted: 0 of 1 receivers served; run the same ferry send (or --resume" "$T/q.err"
ids=$(ls "$T/state/ferry/sends")
ok_if "send saved one resume record" test "$(wc -w <<<"$ids")" = 1
id=$ids

"$F" send --server "$S" --resume "${id:0:6}" >"$T/r.out" 2>"$T/r.err" &
pid=$!
wait_line "$T/r.out"
kill -INT $pid
wait $pid
ok_if "send --resume PREFIX sends the same transfer again" grep -q "^transfer $id: resume with \`ferry send --resume ${id:0:8}\` or the same paths" "$T/r.err"
ok_if "… the same paths, odd bytes included" grep -q "Sending 3 files, 1 folder, 8 B: src, semi;colon and space, b.txt" "$T/r.err"
ok_if "… and prints the code and what to run" grep -Eq "^On the other side run: ferry receive --server $S [1-9][0-9]*(-[a-z]{3,6}){3}\$" "$T/r.out"

"$F" send --json --server "$S" "$T/src" >"$T/j.out" 2>"$T/j.err" &
pid=$!
wait_line "$T/j.out"
kill -INT $pid
wait $pid
ok_if "send --json prints only JSON objects on stdout" python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
events = [json.loads(l) for l in lines]
assert events[0]["event"] == "code" and len(events[0]["id"]) == 16, events
assert events[0]["code"].split("-")[0].isdigit(), events
assert events[-1] == {"event": "error", "exit": 10, "message": events[-1]["message"]}, events
' "$T/j.out"

expect_exit 12 "send --ttl 1 ends with 12 when nobody came" timeout 20 "$F" send --server "$S" --ttl 1 "$T/src"
ok_if "… naming the ttl and the way out" contains "$ERR" "the code expired (--ttl 1s) with 0 of 1 receivers served"
expect_exit 11 "receive of a number nobody holds ends with 11" timeout 20 "$F" receive --server "$S" -y 999999-ocean-tiger-piano
ok_if "… saying so" contains "$ERR" "no sender is waiting"

kill $server 2>/dev/null
wait $server 2>/dev/null
done_testing
