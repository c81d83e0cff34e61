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
#   - a download cut short resumes with Range (curl -C -) while its bytes
#     are still held; a size not known yet cannot be resumed (416)
#   - downloads=2: two curls get the same bytes; a third is refused; one
#     that comes after byte 0 has left the window is refused (410)
#   - kind=folder: the tar comes back byte-exact as NAME.tar; encrypted=1
#     as NAME.ferry-enc; format=zip of an encrypted link is refused (409)
#   - ?status=1 streams ndjson lines from "waiting" to "done"
#   - --relay-ip-rate refuses with 429; SIGTERM refuses new uploads with
#     503, lets the running relay finish, and the server exits 0
#   - 4 GiB relayed (chunked upload) while the server's peak RSS (VmHWM)
#     stays under 64 MiB
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

start_server main --relay-secret "$SECRET" --relay-resume-wait 2s
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

# 7. 4 GiB (a chunked upload) with the server's memory bounded.
head -c 4G /dev/zero | curl -sS -T - "${AUTH[@]}" "$U/gig" -o /dev/null &
up=$!
sleep 0.3
curl -sS "$U/gig" | cmp - <(head -c 4G /dev/zero) >"$T/cmp7" 2>&1
rc=$?
wait $up
ok_if "4 GiB relayed in full, byte-exact ($(head -c 200 "$T/cmp7"))" test "$rc" = 0
hwm=$(awk '/^VmHWM/ {print $2}' /proc/"$PID_main"/status)
ok_if "the server's peak RSS stayed under 64 MiB (VmHWM ${hwm} kB)" test "$hwm" -lt 65536
metrics=$(curl -sS "$URL_main/metrics")
ok_if "/metrics counts relayed bytes" grep -Eq '^ferry_relay_bytes_total [0-9]{10}' <<<"$metrics"
ok_if "/metrics shows relays in progress" grep -q '^ferry_relays 0' <<<"$metrics"
ok_if "/metrics counts the cut relay as failed" grep -Eq '^ferry_relays_failed_total [1-9]' <<<"$metrics"

# 7b. several downloads, folders, encrypted links, the status stream.
head -c 6M /dev/urandom >"$T/f6"
curl -sS -T "$T/f6" "${AUTH[@]}" "$U/two?downloads=2" -o "$T/up7" -w '%{http_code}' >"$T/up7.code" 2>&1 &
up=$!
sleep 0.3
curl -sS -o "$T/got7a" "$U/two" &
da=$!
curl -sS -o "$T/got7b" "$U/two"
wait $da
code=$(curl -sS -o "$T/r7" -w '%{http_code}' "$U/two")
wait $up
ok_if "downloads=2: the first download is byte-exact" cmp "$T/f6" "$T/got7a"
ok_if "downloads=2: the second download is byte-exact" cmp "$T/f6" "$T/got7b"
ok_if "... a third is refused (410, then 404 once over: $code)" test "$code" = 410 -o "$code" = 404
ok_if "... and the uploader hears both were served" grep -q "delivered to 2 downloaders" "$T/up7"
curl -sS -T "$T/f64" "${AUTH[@]}" "$U/late2?downloads=2" -o /dev/null &
up=$!
sleep 0.3
curl -sS --limit-rate 40M -o /dev/null "$U/late2" &
da=$!
sleep 1
code=$(curl -sS -o "$T/r7" -w '%{http_code}' "$U/late2")
wait $da
wait $up
ok_if "a download after byte 0 left the window is refused with 410" test "$code" = 410
ok_if "... saying why" grep -q "start of late2 has already left this server" "$T/r7"

mkdir -p "$T/photos/sub"
head -c 100000 /dev/urandom >"$T/photos/a.jpg"
echo hello >"$T/photos/sub/b.txt"
tar -C "$T" -cf "$T/photos.tar" photos
curl -sS -T "$T/photos.tar" "${AUTH[@]}" "$U/photos?kind=folder" -o /dev/null &
up=$!
sleep 0.3
curl -sS -D "$T/h7" -o "$T/got7t" "$U/photos"
wait $up
ok_if "kind=folder: the tar comes back byte-exact" cmp "$T/photos.tar" "$T/got7t"
ok_if "... named photos.tar, as application/x-tar" \
  sh -c "grep -qi 'filename=\"photos.tar\"' '$T/h7' && grep -qi '^Content-Type: application/x-tar' '$T/h7'"
curl -sS -T "$T/photos.tar" "${AUTH[@]}" "$U/zipped?kind=folder" -o /dev/null &
up=$!
sleep 0.3
curl -sS -D "$T/h7z" -o "$T/got7.zip" "$U/zipped?download=1&format=zip"
wait $up
ok_if "format=zip: a valid zip named zipped.zip" \
  sh -c "grep -qi 'filename=\"zipped.zip\"' '$T/h7z' && grep -qi '^Content-Type: application/zip' '$T/h7z'"
ok_if "... whose files equal the folder's" python3 - "$T/got7.zip" "$T" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
base = sys.argv[2]
for name in ("photos/a.jpg", "photos/sub/b.txt"):
    assert z.read(name) == open(f"{base}/{name}", "rb").read(), name
PY
curl -sS -T "$T/f3" "${AUTH[@]}" "$U/secret?encrypted=1" -o /dev/null &
up=$!
sleep 0.3
code=$(curl -sS -o "$T/r7" -w '%{http_code}' "$U/secret?format=zip")
ok_if "format=zip of an encrypted link is refused with 409" test "$code" = 409
ok_if "... as relay-zip-encrypted" grep -q "encrypted end to end" "$T/r7"
curl -sS -D "$T/h7" -o "$T/got7e" "$U/secret"
wait $up
ok_if "encrypted=1: the ciphertext comes as secret.ferry-enc" \
  sh -c "grep -qi 'filename=\"secret.ferry-enc\"' '$T/h7' && cmp -s '$T/f3' '$T/got7e'"

curl -sS -T "$T/f3" "${AUTH[@]}" "$U/watched" -o /dev/null &
up=$!
sleep 0.3
code=$(curl -sS -o /dev/null -w '%{http_code}' "$U/watched?status=1")
ok_if "the status stream needs the upload's secret (401)" test "$code" = 401
timeout 20 curl -sS -N "$U/watched?status=1&token=$SECRET" -o "$T/status7" &
st=$!
sleep 1.2
curl -sS -o "$T/got7w" "$U/watched"
wait $up
rc=0
wait $st || rc=$?
ok_if "the status stream ends with the relay (curl exit $rc)" test "$rc" = 0
ok_if "... its first line says waiting" sh -c "head -1 '$T/status7' | grep -q '\"state\":\"waiting\"'"
ok_if "... it sends a line about every 0.5 s ($(wc -l <"$T/status7") lines)" test "$(wc -l <"$T/status7")" -ge 3
ok_if "... and its last says done with every byte delivered" \
  sh -c "tail -1 '$T/status7' | grep -q '\"state\":\"done\",\"received\":3145728,\"delivered\":3145728,\"downloads_started\":1,\"downloads_done\":1,\"size\":3145728'"

# 7c. resume after a cut (a window large enough to hold what was in flight).
start_server resume --relay-secret "$SECRET" --relay-window 64M --relay-resume-wait 30s
curl -sS -T "$T/f64" "${AUTH[@]}" "$URL_resume/r/big" -o "$T/up7r" -w '%{http_code}' >"$T/up7r.code" 2>&1 &
up=$!
sleep 0.3
curl -sS "$URL_resume/r/big" 2>/dev/null | head -c 20000000 >"$T/part"
sleep 0.3
curl -sS -C - -D "$T/h7r" -o "$T/part" "$URL_resume/r/big"
wait $up
ok_if "a cut download resumes with curl -C -: byte-exact" cmp "$T/f64" "$T/part"
ok_if "... answered 206 with Content-Range" \
  sh -c "grep -q '^HTTP/1.1 206' '$T/h7r' && grep -qi '^Content-Range: bytes 20000000-67108863/67108864' '$T/h7r'"
ok_if "... and the uploader hears 200" grep -qx 200 "$T/up7r.code"
(head -c 1M /dev/zero; sleep 2) | curl -sS -T - "${AUTH[@]}" "$URL_resume/r/chunky" -o /dev/null &
up=$!
sleep 0.3
code=$(curl -sS -r 100- -o "$T/r7" -w '%{http_code}' "$URL_resume/r/chunky")
ok_if "a Range request for a size not known yet is refused with 416" test "$code" = 416
ok_if "... saying plainly it cannot resume" grep -q "cannot resume a download" "$T/r7"
curl -sS -o /dev/null "$URL_resume/r/chunky"
wait $up

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


# 9. --relay-ip-rate; draining on SIGTERM.
start_server rate --relay-anonymous --relay-ip-rate 1 --relay-ttl 1s
curl -sS -T "$T/f1" "$URL_rate/r/one" -o /dev/null &
up=$!
sleep 0.3
code=$(curl -sS -T "$T/f1" -D "$T/h9" "$URL_rate/r/two" -o "$T/r9" -w '%{http_code}')
wait $up
ok_if "a second upload within the minute over --relay-ip-rate 1 is refused with 429" test "$code" = 429
ok_if "... with Retry-After and the flag named" \
  sh -c "grep -qi '^Retry-After: [0-9]' '$T/h9' && grep -q -- '--relay-ip-rate' '$T/r9'"
ok_if "... and counted in ferry_refusals_total" \
  sh -c "curl -sS '$URL_rate/metrics' | grep -q 'ferry_refusals_total{reason=\"relay-rate-limited\"} 1'"
start_server drain --relay-anonymous --drain-timeout 20
curl -sS -T "$T/f3" "$URL_drain/r/going" -o /dev/null -w '%{http_code}' >"$T/up9.code" 2>&1 &
up=$!
sleep 0.3
kill -TERM "$PID_drain"
sleep 0.3
code=$(curl -sS -T "$T/f1" "$URL_drain/r/new" -o "$T/r9" -w '%{http_code}')
ok_if "while draining a new upload is refused with 503" test "$code" = 503
ok_if "... as relay-draining" grep -q "shutting down and takes no new uploads" "$T/r9"
curl -sS -o "$T/got9" "$URL_drain/r/going"
wait $up
ok_if "... while the relay in progress finishes byte-exact" cmp "$T/f3" "$T/got9"
rc=0
wait "$PID_drain" || rc=$?
ok_if "... and the server then exits 0 (exit $rc)" test "$rc" = 0

done_testing
