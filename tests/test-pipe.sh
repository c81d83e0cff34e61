#!/usr/bin/env bash
# examples/ferry-pipe: 1 MiB of random bytes through `send` and `receive`
# with a real ferry serve, both ways at once, compared by SHA-256.
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}
P=${FERRY_PIPE:?FERRY_PIPE must point at the ferry-pipe example}
T=$TAP_TMP

"$F" serve --listen 127.0.0.1:0 --no-stun >"$T/server.out" 2>"$T/server.err" &
server=$!
port=
for _ in $(seq 100); do
  port=$(grep -o '(port [0-9]*' "$T/server.out" 2>/dev/null | head -n1 | grep -o '[0-9]*$')
  [ -n "$port" ] && break
  sleep 0.05
done
export FERRY_SERVER=http://127.0.0.1:$port
head -c 1048576 /dev/urandom >"$T/a"
head -c 1048576 /dev/urandom >"$T/b"

timeout 30 "$P" send <"$T/a" >"$T/b.got" 2>"$T/send.err" &
sender=$!
code=
for _ in $(seq 200); do
  code=$(head -n1 "$T/send.err" 2>/dev/null)
  [ -n "$code" ] && break
  sleep 0.05
done
ok_if "the sender prints a code" grep -Eqx '[1-9][0-9]*(-[a-z]{3,6}){3}' <<<"$code"
rc=0
FERRY_PIPE_VERBOSE=1 timeout 30 "$P" receive "$code" <"$T/b" >"$T/a.got" 2>"$T/receive.err" || rc=$?
ok_if "the receiver exits 0" test "$rc" = 0
ok_if "the receiver reports a direct path" grep -q '^ferry-pipe: direct: ' "$T/receive.err"
rc=0
wait "$sender" || rc=$?
ok_if "the sender exits 0" test "$rc" = 0
ok_if "sender → receiver: 1 MiB byte-exact" test "$(sha256sum <"$T/a")" = "$(sha256sum <"$T/a.got")"
ok_if "receiver → sender: 1 MiB byte-exact" test "$(sha256sum <"$T/b")" = "$(sha256sum <"$T/b.got")"

expect_exit 1 "a mistyped code fails" "$P" receive "1-ocean-tigre-piano"
ok_if "with a did-you-mean" grep -q "did you mean 'tiger'" <<<"$ERR"

kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
done_testing
