#!/usr/bin/env bash
# The HTTP relay of ferry serve (issue 8, first slice), as curl meets it:
# a real `ferry serve` on loopback, uploads with curl -T (PUT) and curl -F
# (multipart POST), downloads with curl. Checked by the bytes that arrive,
# the HTTP statuses and the words of each refusal:
#   - 64 MiB of random bytes, PUT; the upload starts first and waits for
#     the download; byte-exact, with Content-Length and Content-Disposition
#   - a multipart POST with a text field before the file, byte-exact
#   - refusals: no or a wrong secret (401), a bad name (400), a name in use
#     (409), too large (413), relay off (404), a second download (410),
#     nobody downloads within --relay-ttl (408)
#   - a browser (Accept: text/html) gets a landing page with the name and
#     a ?download=1 link, which then gives the bytes
#   - a downloader that leaves halfway: the uploader hears 502 and why; a
#     new relay works afterwards. An uploader that dies: curl reports an
#     incomplete download
#   - 1 GiB relayed while the server's peak RSS (VmHWM) stays under 64 MiB
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}
T=$TAP_TMP
SECRET=relay-test-secret
# ASan's quarantine would keep freed chunks and count against the RSS bound.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"

cleanup() {
  local p
  for p in $(jobs -p); do
    kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  rm -rf "$TAP_TMP"
}
trap cleanup EXIT

# start_server NAME ARGS…: runs ferry serve on a free loopback port; sets
# PID_NAME and URL_NAME (http://127.0.0.1:PORT).
start_server() {
  local name=$1 port="" i
  shift
  "$F" serve --listen 127.0.0.1:0 --no-stun --quiet "$@" >"$T/$name.out" 2>"$T/$name.err" &
  eval "PID_$name=$!"
  for i in $(seq 100); do
    port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$T/$name.out")
    [ -n "$port" ] && break
    sleep 0.1
  done
  eval "URL_$name=http://127.0.0.1:$port"
}

start_server main --relay-secret "$SECRET"
U=$URL_main/r
AUTH=(-H "Authorization: Bearer $SECRET")
head -c 64M /dev/urandom >"$T/f64"
head -c 3M /dev/urandom >"$T/f3"

# 1. PUT upload, curl download of 64 MiB, byte-exact.
curl -sS -T "$T/f64" "${AUTH[@]}" "$U/photos.tar" -o "$T/up1" -w '%{http_code}' >"$T/up1.code" 2>&1 &
up=$!
sleep 0.5
curl -sS -D "$T/h1" -o "$T/got1" "$U/photos.tar"
wait $up
ok_if "PUT 64 MiB, curl download: byte-exact" cmp "$T/f64" "$T/got1"
ok_if "the uploader hears 200 once the downloader has it all" grep -qx 200 "$T/up1.code"
ok_if "the uploader is told how many bytes were delivered" grep -q "photos.tar: 67108864 bytes delivered" "$T/up1"
ok_if "the download has a Content-Length" grep -qi "^Content-Length: 67108864" "$T/h1"
ok_if "the download has Content-Disposition: attachment with the name" \
  grep -qi '^Content-Disposition: attachment; filename="photos.tar"' "$T/h1"

# 2. multipart POST with a field before the file.
curl -sS -F note=hello -F "file=@$T/f3" "${AUTH[@]}" "$U/form.bin" -o "$T/up2" -w '%{http_code}' >"$T/up2.code" 2>&1 &
up=$!
sleep 0.5
curl -sS -o "$T/got2" "$U/form.bin"
wait $up
ok_if "multipart POST, curl download: byte-exact" cmp "$T/f3" "$T/got2"
ok_if "the form's uploader hears 200" grep -qx 200 "$T/up2.code"

# 3. refusals.
code=$(curl -sS -T "$T/f3" "$U/nosecret" -o "$T/r3" -w '%{http_code}')
ok_if "an upload without the secret is refused with 401" test "$code" = 401
ok_if "... and told to give the secret" grep -q "needs its secret: add -H 'Authorization: Bearer SECRET'" "$T/r3"
code=$(curl -sS -T "$T/f3" -H "Authorization: Bearer wrong" "$U/wrong" -o /dev/null -w '%{http_code}')
ok_if "a wrong secret is refused with 401" test "$code" = 401
code=$(curl -sS -T "$T/f3" "$U/bad%20name?token=$SECRET" -o "$T/r3" -w '%{http_code}')
ok_if "a bad name is refused with 400 (?token= works as the secret)" test "$code" = 400
ok_if "... naming what a name may hold" grep -q "NAME being 1 to 64 letters, digits" "$T/r3"
code=$(curl -sS "$U/nobody" -o "$T/r3" -w '%{http_code}')
ok_if "a download of a name nobody uploads is 404 with the way out" \
  test "$code" = 404 -a -n "$(grep 'ask the sender for a new link' "$T/r3")"

# 4. landing page, name in use, ?download=1, second download.
curl -sS -T "$T/f3" "${AUTH[@]}" "$U/page.txt" -o /dev/null -w '%{http_code}' >"$T/up4.code" 2>&1 &
up=$!
sleep 0.5
code=$(curl -sS -T "$T/f3" "${AUTH[@]}" "$U/page.txt" -o "$T/r4" -w '%{http_code}')
ok_if "a name in use is refused with 409" test "$code" = 409
curl -sS -H 'Accept: text/html,application/xhtml+xml,*/*;q=0.8' -D "$T/h4" -o "$T/page.html" "$U/page.txt"
ok_if "a browser gets an HTML landing page" grep -qi "^Content-Type: text/html" "$T/h4"
ok_if "... showing the name" grep -q "<h1>page.txt</h1>" "$T/page.html"
ok_if "... and the size" grep -q "3145728 bytes" "$T/page.html"
ok_if "... with a ?download=1 link" grep -q 'href="?download=1"' "$T/page.html"
ok_if "... and no external assets or scripts" sh -c "! grep -Eq '<script|src=|https?://' '$T/page.html'"
curl -sS -H 'Accept: text/html' -o "$T/got4" "$U/page.txt?download=1"
wait $up
ok_if "the page's link gives the bytes" cmp "$T/f3" "$T/got4"
code=$(curl -sS "$U/page.txt" -o /dev/null -w '%{http_code}')
ok_if "a link works once" test "$code" = 404

# 5. a downloader that leaves halfway.
curl -sS -T "$T/f64" "${AUTH[@]}" "$U/cut.bin" -o "$T/up5" -w '%{http_code}' >"$T/up5.code" 2>&1 &
up=$!
sleep 0.5
curl -sS "$U/cut.bin" 2>/dev/null | head -c 20000000 >/dev/null
wait $up
ok_if "an uploader whose downloader left hears 502" grep -qx 502 "$T/up5.code"
ok_if "... and why, and what to do" grep -q "the downloader of cut.bin disconnected after .* upload again" "$T/up5"
curl -sS -T "$T/f3" "${AUTH[@]}" "$U/after-cut" -o /dev/null &
up=$!
sleep 0.3
curl -sS -o "$T/got5" "$U/after-cut"
wait $up
ok_if "the server relays again afterwards" cmp "$T/f3" "$T/got5"

# 6. an uploader that dies halfway: the download is reported incomplete.
mkfifo "$T/fifo"
curl -sS -T - "${AUTH[@]}" "$U/dies" -o /dev/null <"$T/fifo" 2>/dev/null &
up=$!
exec 7>"$T/fifo"
head -c 5M /dev/urandom >&7
curl -sS -o "$T/got6" "$U/dies" 2>"$T/err6" &
down=$!
sleep 1
kill -9 $up
wait $up 2>/dev/null
exec 7>&-
rc=0
wait $down || rc=$?
ok_if "a downloader whose uploader died gets an error, not a short file (curl exit $rc)" test "$rc" != 0

# 7. 1 GiB with the server's memory bounded.
head -c 1G /dev/zero | curl -sS -T - "${AUTH[@]}" "$U/gig" -o /dev/null &
up=$!
sleep 0.3
n=$(curl -sS "$U/gig" | wc -c)
wait $up
ok_if "1 GiB relayed in full" test "$n" = 1073741824
hwm=$(awk '/^VmHWM/ {print $2}' /proc/"$PID_main"/status)
ok_if "the server's peak RSS stayed under 64 MiB (VmHWM ${hwm} kB)" test "$hwm" -lt 65536
metrics=$(curl -sS "$URL_main/metrics")
ok_if "/metrics counts relayed bytes" grep -Eq '^ferry_relay_bytes_total [0-9]{10}' <<<"$metrics"
ok_if "/metrics shows relays in progress" grep -q '^ferry_relays 0' <<<"$metrics"
ok_if "/metrics counts the cut relay as failed" grep -Eq '^ferry_relays_failed_total [1-9]' <<<"$metrics"

# 8. relay off; --relay-ttl.
start_server off
code=$(curl -sS -T "$T/f3" "$URL_off/r/x" -o "$T/r8" -w '%{http_code}')
ok_if "without --relay-secret the relay is off: 404" test "$code" = 404
ok_if "... and the message says how to turn it on" grep -q -- "--relay-secret SECRET" "$T/r8"
start_server ttl --relay-anonymous --relay-ttl 1s --relay-max-size 2M
code=$(curl -sS -T "$T/f3" "$URL_ttl/r/huge" -o "$T/r8" -w '%{http_code}')
ok_if "a file over --relay-max-size is refused with 413" test "$code" = 413
ok_if "... naming the limit" grep -q -- "--relay-max-size" "$T/r8"
code=$(head -c 3M /dev/zero | curl -sS -T - "$URL_ttl/r/huge2" -o "$T/r8" -w '%{http_code}')
ok_if "a streamed upload that grows over --relay-max-size is stopped with 413" test "$code" = 413
head -c 1M /dev/zero >"$T/f1"
code=$(curl -sS -T "$T/f1" "$URL_ttl/r/late" -o "$T/r8" -w '%{http_code}')
ok_if "--relay-anonymous takes uploads; nobody downloads within --relay-ttl: 408" test "$code" = 408
ok_if "... saying to share the link sooner" grep -q "share the link sooner" "$T/r8"

done_testing
