#!/usr/bin/env bash
# bench/transfer.sh [BUILD_DIR]: issue 5's benchmark. On loopback, with all
# data on a tmpfs this script mounts (source and destination alike), it
# measures in one run, next to each other:
#   1 GiB      one random file: scp, rsync over ssh, tar c | ssh tar x,
#              nginx -> curl over HTTPS, magic-wormhole, ferry (MB/s)
#   10k files  10,000 files of 10 KiB in 100 folders: tar c | ssh tar x,
#              rsync -a over ssh, scp -r, magic-wormhole, ferry (files/s)
#   first byte a 1-byte file, the sender already waiting: the time from
#              starting the receiving command to the byte on disk, and to
#              the command's exit: scp, magic-wormhole, ferry
# Every copy is compared with its source (cmp, diff -r); a copy that
# differs is reported as failed, never as a speed. The servers (sshd with
# its own host key, nginx, the wormhole mailbox server and transit relay,
# ferry serve) are private copies started here on 127.0.0.1 and stopped on
# exit, failures included. About 3-6 minutes. Install the other tools with
# scripts/install-bench-deps.sh; a missing one is left out and named.
# Environment: RUNS (3) and TTFB_RUNS (5) runs per figure, SKIP_SLOW=1
# leaves magic-wormhole out, BIG_BYTES (1 GiB) the size of the large file,
# SSH_PORT (2222) and NGINX_PORT (8443) the preferred ports, TOOLS (e.g.
# "ferry nginx") runs only the tools named.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
build=${1:-build}
ferry=$build/src/cli/ferry
runs=${RUNS:-3}
ttfb_runs=${TTFB_RUNS:-5}
skip_slow=${SKIP_SLOW:-0}
big_bytes=${BIG_BYTES:-1073741824}
small_dirs=100
small_per_dir=100
small_size=10240
small_files=$((small_dirs * small_per_dir))
limit=${RUN_TIMEOUT:-120} # seconds one command may take before it counts as failed
python=/usr/bin/python3    # Debian's, where apt puts twisted and magic-wormhole
me=bench/transfer.sh

note() { echo "$me: $*" >&2; }
fail() {
  note "$*"
  exit 1
}
case "$runs$ttfb_runs" in *[!0-9]*) fail "RUNS and TTFB_RUNS must be whole numbers" ;; esac
if [ "$runs" -lt 1 ] || [ "$ttfb_runs" -lt 1 ]; then fail "RUNS and TTFB_RUNS must be at least 1"; fi

# Which tools can run here; why[TOOL] says why not.
declare -A why=()
root=0
[ "$(id -u)" = 0 ] && root=1
for exe in sshd:/usr/sbin/sshd ssh:ssh scp:scp ssh-keygen:ssh-keygen; do
  command -v "${exe#*:}" >/dev/null || why[ssh]="not installed (no ${exe%%:*}; run scripts/install-bench-deps.sh)"
done
if [ -z "${why[ssh]:-}" ] && [ "$root" = 1 ] && [ ! -d /run/sshd ]; then
  why[ssh]="sshd run as root needs /run/sshd (run scripts/install-bench-deps.sh)"
fi
why[scp]=${why[ssh]:-}
why[tar]=${why[ssh]:-}
why[rsync]=${why[ssh]:-}
command -v rsync >/dev/null || why[rsync]="not installed (run scripts/install-bench-deps.sh)"
for exe in nginx curl openssl; do
  command -v "$exe" >/dev/null || PATH=$PATH:/usr/sbin command -v "$exe" >/dev/null ||
    why[nginx]="not installed (no $exe; run scripts/install-bench-deps.sh)"
done
nginx_exe=$(PATH=$PATH:/usr/sbin command -v nginx || true)
if [ "$skip_slow" = 1 ]; then
  why[wormhole]="skipped (SKIP_SLOW=1)"
elif ! command -v wormhole >/dev/null; then
  why[wormhole]="not installed (run scripts/install-bench-deps.sh)"
elif ! "$python" -c 'import twisted, wormhole_mailbox_server, wormhole_transit_relay' 2>/dev/null; then
  why[wormhole]="no local mailbox server or transit relay (run scripts/install-bench-deps.sh)"
fi
if [ ! -x "$ferry" ]; then
  why[ferry]="not built yet (no $ferry; meson compile -C $build)"
elif ! "$ferry" send --help >/dev/null 2>&1 || ! "$ferry" receive --help >/dev/null 2>&1; then
  why[ferry]="not built yet (this ferry has no send/receive)"
fi
if [ -n "${TOOLS:-}" ]; then
  for t in scp rsync tar nginx wormhole ferry; do
    case " $TOOLS " in *" $t "*) ;; *) why[$t]="left out (TOOLS=$TOOLS)" ;; esac
  done
  case " $TOOLS " in *" scp "* | *" rsync "* | *" tar "*) ;; *) why[ssh]="left out (TOOLS=$TOOLS)" ;; esac
fi
avail() { [ -z "${why[$1]:-}" ]; }

# The tmpfs both sides use; room for the large file twice plus the trees.
tmpfs_mib=$((big_bytes * 2 / 1048576 + 640))
tmp=$(mktemp -d /tmp/ferry-bench-XXXXXX)
mounted=0
pids=()
cleanup() {
  set +e
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null
  done
  if [ "$mounted" = 1 ]; then
    umount "$tmp" 2>/dev/null || umount -l "$tmp"
    rmdir "$tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
if mount -t tmpfs -o "size=${tmpfs_mib}m,mode=0700" ferry-bench "$tmp" 2>/dev/null; then
  mounted=1
elif [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
  rmdir "$tmp"
  tmp=$(mktemp -d /dev/shm/ferry-bench-XXXXXX)
  note "could not mount a tmpfs (it needs root): data goes to $tmp on /dev/shm"
else
  fail "could not mount a tmpfs on $tmp (run as root) and /dev/shm is not a tmpfs"
fi
src=$tmp/src
dst=$tmp/dst
logs=$tmp/log
res=$tmp/res
mkdir -p "$src" "$dst" "$logs" "$res" "$tmp/home" "$tmp/xdg-state" "$tmp/xdg-config" "$tmp/xdg-cache" "$tmp/tmpdir"
# Nothing a tool keeps for later lands outside the temporary directory.
export XDG_STATE_HOME=$tmp/xdg-state XDG_CONFIG_HOME=$tmp/xdg-config XDG_CACHE_HOME=$tmp/xdg-cache
export TMPDIR=$tmp/tmpdir
unset SSH_AUTH_SOCK

# forget PID: a process that was waited for is no longer ours to stop.
forget() {
  local keep=() p
  for p in "${pids[@]}"; do
    [ "$p" = "$1" ] || keep+=("$p")
  done
  pids=("${keep[@]}")
}

# wait_for FILE PATTERN TRIES: polls FILE every 50 ms for PATTERN.
wait_for() {
  local _
  for _ in $(seq "$3"); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port PREFERRED: PREFERRED if free, else a free one at random.
pick_port() {
  local p=$1
  while ! port_free "$p"; do
    p=$((20000 + RANDOM % 40000))
  done
  echo "$p"
}

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
tail_of() { tail -c 400 "$1" 2>/dev/null | tr '\n' ' '; }

# ---------------------------------------------------------------- data
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "$me: $(nproc) CPUs, load average at start: $load_start; data on $tmp" >&2
echo "$me: writing the test data: $big_bytes random bytes, $small_files files of $small_size bytes, 1 byte" >&2
head -c "$big_bytes" /dev/urandom >"$src/big"
for d in $(seq -w 0 $((small_dirs - 1))); do
  mkdir -p "$src/tree/d$d"
  head -c $((small_per_dir * small_size)) /dev/urandom | split -a 3 -d -b "$small_size" - "$src/tree/d$d/f"
done
printf 'x' >"$src/one"
[ "$(find "$src/tree" -type f | wc -l)" = "$small_files" ] || fail "the small-file tree was not written in full"

# --------------------------------------------------------------- servers
ssh_cfg=$tmp/ssh/config
start_sshd() {
  mkdir -p "$tmp/ssh"
  ssh-keygen -q -t ed25519 -N '' -f "$tmp/ssh/host_key" -C ferry-bench-host
  ssh-keygen -q -t ed25519 -N '' -f "$tmp/ssh/client_key" -C ferry-bench-client
  cp "$tmp/ssh/client_key.pub" "$tmp/ssh/authorized_keys"
  # The remote shell gets an empty HOME: the account's shell start-up
  # files (a pyenv init costs 130 ms per command on the machine this was
  # written on) would otherwise be timed as part of every ssh tool.
  local user try port pid
  user=$(id -un)
  for try in 1 2 3 4 5; do
    port=$(pick_port "${SSH_PORT:-2222}")
    [ "$try" = 1 ] || port=$(pick_port $((20000 + RANDOM % 40000)))
    cat >"$tmp/ssh/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $tmp/ssh/host_key
PidFile $tmp/ssh/sshd.pid
AuthorizedKeysFile $tmp/ssh/authorized_keys
AllowUsers $user
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PrintMotd no
MaxStartups 100:30:200
Subsystem sftp /usr/lib/openssh/sftp-server
SetEnv HOME=$tmp/home
EOF
    : >"$logs/sshd.log"
    /usr/sbin/sshd -f "$tmp/ssh/sshd_config" -D -e >>"$logs/sshd.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    if wait_for "$logs/sshd.log" "Server listening" 100; then
      ssh_port=$port
      break
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
  done
  [ -n "${ssh_port:-}" ] || return 1
  echo "[127.0.0.1]:$ssh_port $(cut -d' ' -f1-2 "$tmp/ssh/host_key.pub")" >"$tmp/ssh/known_hosts"
  cat >"$ssh_cfg" <<EOF
Host bench
  HostName 127.0.0.1
  Port $ssh_port
  User $user
  IdentityFile $tmp/ssh/client_key
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile $tmp/ssh/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ControlMaster no
  ControlPath none
  LogLevel ERROR
EOF
  ssh -F "$ssh_cfg" bench true 2>"$logs/ssh-probe.err"
}

start_nginx() {
  mkdir -p "$tmp/nginx"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
    -keyout "$tmp/nginx/key.pem" -out "$tmp/nginx/cert.pem" 2>"$logs/openssl.err" || return 1
  nginx_port=$(pick_port "${NGINX_PORT:-8443}")
  local user_line=""
  [ "$root" = 1 ] && user_line="user root;"
  # One worker: curl needs the other CPU. Operators' defaults otherwise
  # (sendfile does not apply to TLS without kTLS).
  cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
$user_line
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $logs/nginx-error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $tmp/nginx/cert.pem;
    ssl_certificate_key $tmp/nginx/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $src;
  }
}
EOF
  "$nginx_exe" -e "$logs/nginx-error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" >"$logs/nginx.out" 2>&1 &
  pids+=("$!")
  local _
  for _ in $(seq 100); do
    curl -k -s -o /dev/null --fail "https://127.0.0.1:$nginx_port/one" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# twisted_port LOG PATTERN PID: the port a twisted plugin logged.
twisted_port() {
  local _ port
  for _ in $(seq 300); do
    port=$(sed -n "s/.*$2 starting on \([0-9]*\).*/\1/p" "$1" | head -1)
    [ -n "$port" ] && { echo "$port"; return 0; }
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

start_wormhole_servers() {
  # Its operators' settings: channel database in memory (no disk timed),
  # access times blurred.
  (cd "$tmp" && exec "$python" -m twisted wormhole-mailbox --port=tcp:0:interface=127.0.0.1 \
    --channel-db=:memory: --blur-usage=3600) >"$logs/mailbox.log" 2>&1 &
  local mpid=$!
  pids+=("$mpid")
  (cd "$tmp" && exec "$python" -m twisted transitrelay --port=tcp:0:interface=127.0.0.1) >"$logs/transit.log" 2>&1 &
  local tpid=$!
  pids+=("$tpid")
  mailbox_port=$(twisted_port "$logs/mailbox.log" Site "$mpid") || return 1
  transit_port=$(twisted_port "$logs/transit.log" Transit "$tpid") || return 1
  wormhole_args=(--relay-url "ws://127.0.0.1:$mailbox_port/v1" --transit-helper "tcp:127.0.0.1:$transit_port")
}

start_ferry_serve() {
  # Rate limits off: every run here comes from one address.
  local flags=() flag port
  for flag in --quiet --ip-connect-rate=0 --ip-session-rate=0 --ip-join-rate=0 --message-rate=0; do
    "$ferry" serve --help 2>/dev/null | grep -q -- "${flag%%=*}" && flags+=("$flag")
  done
  "$ferry" serve --listen 127.0.0.1:0 --no-stun "${flags[@]}" >"$logs/serve.out" 2>"$logs/serve.err" &
  pids+=("$!")
  wait_for "$logs/serve.out" "(port " 100 || return 1
  port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$logs/serve.out" | head -1)
  export FERRY_SERVER=ws://127.0.0.1:$port
}

if avail ssh; then
  start_sshd || {
    why[ssh]="sshd did not start: $(tail_of "$logs/sshd.log") $(tail_of "$logs/ssh-probe.err")"
    why[scp]=${why[ssh]} why[rsync]=${why[ssh]} why[tar]=${why[ssh]}
  }
fi
if avail nginx; then
  start_nginx || why[nginx]="nginx did not start: $(tail_of "$logs/nginx-error.log") $(tail_of "$logs/nginx.out")"
fi
if avail wormhole; then
  start_wormhole_servers || why[wormhole]="the mailbox server or transit relay did not start: $(tail_of "$logs/mailbox.log")"
fi
if avail ferry; then
  start_ferry_serve || why[ferry]="ferry serve did not start: $(tail_of "$logs/serve.err")"
fi
for t in scp rsync tar nginx wormhole ferry; do
  avail "$t" || note "$t: ${why[$t]}"
done

# ------------------------------------------------------------ one run
# Each run_TEST_TOOL sets secs (wall time) and extra (a note) or reason
# (why it failed) and returns non-zero on failure. The destination is
# empty when it starts.

# run_cmd LOG CMD...: runs CMD with a time limit; sets secs, or reason.
run_cmd() {
  local log=$1 t0 rc=0
  shift
  t0=$(now)
  timeout -k 10 "$limit" "$@" >"$log.out" 2>"$log.err" || rc=$?
  secs=$(elapsed "$t0" "$(now)")
  [ "$rc" = 0 ] && return 0
  reason="$(basename "$1") exited $rc: $(tail_of "$log.err")"
  return 1
}

# run_shell LOG SCRIPT: as run_cmd for a shell pipeline.
run_shell() {
  local log=$1
  run_cmd "$log" bash -o pipefail -c "$2"
}

# reap_sender PID RECEIVER_RC: waits for a sender and sets src_rc to its
# exit code; one whose receiver failed gets 5 s to notice, then is stopped
# (else it would wait for a receiver until its time limit).
reap_sender() {
  local _
  if [ "$2" != 0 ]; then
    for _ in $(seq 100); do
      kill -0 "$1" 2>/dev/null || break
      sleep 0.05
    done
    kill "$1" 2>/dev/null || true
  fi
  src_rc=0
  wait "$1" || src_rc=$?
  forget "$1"
}

# wormhole_pair LOG CODE SRC_PATH OUT_PATH: wormhole send and receive
# started together with a fixed code; secs from the sender's start to the
# receiver's exit, extra = receive command alone and the path it used.
wormhole_pair() {
  local log=$1 code=$2 t0 tr spid rc=0
  t0=$(now)
  timeout -k 10 "$limit" wormhole "${wormhole_args[@]}" send --hide-progress --code "$code" "$3" \
    >"$log.send.out" 2>"$log.send.err" &
  spid=$!
  pids+=("$spid")
  tr=$(now)
  timeout -k 10 "$limit" wormhole "${wormhole_args[@]}" receive --hide-progress --accept-file -o "$4" "$code" \
    >"$log.recv.out" 2>"$log.recv.err" || rc=$?
  local t1 rsecs
  t1=$(now)
  secs=$(elapsed "$t0" "$t1")
  rsecs=$(elapsed "$tr" "$t1")
  reap_sender "$spid" "$rc"
  [ "$rc" = 0 ] || { reason="wormhole receive exited $rc: $(tail_of "$log.recv.err")"; return 1; }
  [ "$src_rc" = 0 ] || { reason="wormhole send exited $src_rc: $(tail_of "$log.send.err")"; return 1; }
  extra="receive alone ${rsecs} s; $(grep -o 'Receiving ([^)]*)' "$log.recv.err" "$log.recv.out" 2>/dev/null | head -1 | sed 's/^[^:]*://')"
}

# ferry_sender LOG PATH...: starts `ferry send` and waits for its code;
# sets code and spid.
ferry_sender() {
  local log=$1
  shift
  timeout -k 10 "$limit" "$ferry" send --json "$@" >"$log.send.out" 2>"$log.send.err" &
  spid=$!
  pids+=("$spid")
  local _ line
  code=
  # Read in the shell: a grep every 5 ms would be load on the CPUs the
  # transfer is about to use.
  for _ in $(seq 2000); do
    if [ -s "$log.send.out" ]; then
      while IFS= read -r line; do
        [[ $line =~ \"event\"\ *:\ *\"code\" ]] || continue
        [[ $line =~ \"code\"\ *:\ *\"([^\"]*)\" ]] && code=${BASH_REMATCH[1]}
      done <"$log.send.out"
      [ -n "$code" ] && return 0
    fi
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.005
  done
  reason="ferry send printed no code: $(tail_of "$log.send.err")"
  reap_sender "$spid" 1
  return 1
}

# ferry_finish LOG RC: checks the receiver's exit code RC and last event
# and the sender's exit; sets extra to the path and the rate ferry saw.
ferry_finish() {
  local log=$1 rc=$2
  reap_sender "$spid" "$rc"
  [ "$rc" = 0 ] || {
    reason="ferry receive exited $rc: $(tail_of "$log.recv.err"); ferry send exited $src_rc: $(tail_of "$log.send.err") $(tail -n 1 "$log.send.out" 2>/dev/null)"
    return 1
  }
  local last
  last=$(tail -n 1 "$log.recv.out")
  case "$last" in
    *'"event"'*'"done"'*) ;;
    *) reason="ferry receive's last event is not done: $last"; return 1 ;;
  esac
  [ "$src_rc" = 0 ] || { reason="ferry send exited $src_rc: $(tail_of "$log.send.err")"; return 1; }
  extra="$extra; path $(echo "$last" | sed -n 's/.*"path" *: *"\([^"]*\)".*/\1/p')"
}

# ferry_pair LOG OUT_DIR PATH: send and receive; secs from the sender's
# start to the receiver's exit.
ferry_pair() {
  local log=$1 out=$2 t0 tr rc=0
  shift 2
  t0=$(now)
  ferry_sender "$log" "$@" || return 1
  tr=$(now)
  timeout -k 10 "$limit" "$ferry" receive --json -y --out "$out" "$code" >"$log.recv.out" 2>"$log.recv.err" || rc=$?
  local t1
  t1=$(now)
  secs=$(elapsed "$t0" "$t1")
  extra="receive alone $(elapsed "$tr" "$t1") s"
  ferry_finish "$log" "$rc"
}

run_big_scp() { run_cmd "$1" scp -q -F "$ssh_cfg" "$src/big" "bench:$dst/big"; }
run_big_rsync() { run_cmd "$1" rsync -e "ssh -F $ssh_cfg" "$src/big" "bench:$dst/big"; }
run_big_tar() { run_shell "$1" "tar -C '$src' -cf - big | ssh -F '$ssh_cfg' bench \"tar -C '$dst' -xf -\""; }
run_big_nginx() { run_cmd "$1" curl -k -sS --fail -o "$dst/big" "https://127.0.0.1:$nginx_port/big"; }
run_big_wormhole() { wormhole_pair "$1" "$((RANDOM % 900 + 100))-big-run" "$src/big" "$dst/big"; }
run_big_ferry() { ferry_pair "$1" "$dst" "$src/big"; }
check_big() { cmp -s "$src/big" "$dst/big" || { reason="the copy differs from the source (cmp)"; return 1; }; }

run_small_tar() { run_shell "$1" "tar -C '$src' -cf - tree | ssh -F '$ssh_cfg' bench \"tar -C '$dst' -xf -\""; }
run_small_rsync() { run_cmd "$1" rsync -a -e "ssh -F $ssh_cfg" "$src/tree" "bench:$dst/"; }
run_small_scp() { run_cmd "$1" scp -q -r -F "$ssh_cfg" "$src/tree" "bench:$dst/"; }
run_small_wormhole() { wormhole_pair "$1" "$((RANDOM % 900 + 100))-small-run" "$src/tree" "$dst/tree"; }
run_small_ferry() { ferry_pair "$1" "$dst" "$src/tree"; }
check_small() { diff -r "$src/tree" "$dst/tree" >/dev/null 2>&1 || { reason="the copy differs from the source (diff -r)"; return 1; }; }

# The first-byte timer: starts the receiving command, polls for the file
# every 0.5 ms, prints "EXIT FIRST_BYTE_S COMMAND_S".
cat >"$tmp/ttfb.py" <<'EOF'
import os, subprocess, sys, time
path, size, log, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
cmd = sys.argv[5:]
with open(log + ".out", "wb") as out, open(log + ".err", "wb") as err:
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=out, stderr=err)
    first = None
    while True:
        if first is None:
            try:
                if os.stat(path).st_size >= size:
                    first = time.monotonic()
            except FileNotFoundError:
                pass
        rc = p.poll()
        if rc is not None:
            break
        if time.monotonic() - t0 > limit:
            p.kill()
            rc = p.wait()
            break
        time.sleep(0.0005)
    t1 = time.monotonic()
if first is None and os.path.exists(path) and os.stat(path).st_size >= size:
    first = t1
print(rc, "%.4f" % (first - t0) if first is not None else "-", "%.4f" % (t1 - t0))
EOF

# ttfb LOG CMD...: sets secs (first byte) and extra (command), or reason.
ttfb() {
  local log=$1 line rc first cmd
  shift
  line=$(python3 "$tmp/ttfb.py" "$dst/one" 1 "$log" "$limit" "$@")
  read -r rc first cmd <<<"$line"
  [ "$rc" = 0 ] || { reason="$(basename "$1") exited $rc: $(tail_of "$log.err")"; return 1; }
  [ "$first" != - ] || { reason="no file appeared"; return 1; }
  secs=$first
  extra=$cmd
}

run_ttfb_scp() { ttfb "$1" scp -q -F "$ssh_cfg" "bench:$src/one" "$dst/one"; }
run_ttfb_wormhole() {
  local log=$1 code spid
  code="$((RANDOM % 900 + 100))-first-byte"
  timeout -k 10 "$limit" wormhole "${wormhole_args[@]}" send --hide-progress --code "$code" "$src/one" \
    >"$log.send.out" 2>"$log.send.err" &
  spid=$!
  pids+=("$spid")
  wait_for "$log.send.err" "Wormhole code is" 200 || {
    reason="wormhole send printed no code: $(tail_of "$log.send.err")"
    reap_sender "$spid" 1
    return 1
  }
  sleep 1 # the sender is waiting on the mailbox server
  ttfb "$log" wormhole "${wormhole_args[@]}" receive --hide-progress --accept-file -o "$dst/one" "$code" || {
    reap_sender "$spid" 1
    return 1
  }
  reap_sender "$spid" 0
  [ "$src_rc" = 0 ] || { reason="wormhole send exited $src_rc: $(tail_of "$log.send.err")"; return 1; }
}
run_ttfb_ferry() {
  local log=$1 rc=0
  ferry_sender "$log" "$src/one" || return 1
  sleep 1 # the sender is waiting
  ttfb "$log.recv" "$ferry" receive --json -y --out "$dst" "$code" || rc=$?
  local first_extra=$extra
  extra=""
  ferry_finish "$log" "$rc" || return 1
  extra=$first_extra
}
check_ttfb() { cmp -s "$src/one" "$dst/one" || { reason="the copy differs from the source (cmp)"; return 1; }; }

# series TEST RUNS TOOL...: RUNS rounds, each tool once per round (so a
# burst of load elsewhere hits them alike). Per tool: $res/TEST.TOOL has
# "secs|extra" per run; $res/TEST.TOOL.fail the reason of a failure, after
# which that tool runs no more in this test.
series() {
  local test=$1 n=$2 i tool
  shift 2
  for i in $(seq "$n"); do
    for tool in "$@"; do
      avail "$tool" || continue
      [ -e "$res/$test.$tool.fail" ] && continue
      rm -rf "$dst"
      mkdir -p "$dst"
      secs="" extra="" reason=""
      if "run_${test}_$tool" "$logs/$test-$tool-$i" && "check_$test"; then
        echo "$secs|$extra" >>"$res/$test.$tool"
        printf '  %-6s %-9s run %d: %8s s  %s\n' "$test" "$tool" "$i" "$secs" "$extra" >&2
      else
        echo "in run $i: $reason" >"$res/$test.$tool.fail"
        printf '  %-6s %-9s run %d: FAILED: %s\n' "$test" "$tool" "$i" "$reason" >&2
      fi
    done
  done
  rm -rf "$dst"
  mkdir -p "$dst"
}

echo "$me: 1 GiB file, $runs rounds" >&2
series big "$runs" scp rsync tar nginx wormhole ferry
echo "$me: $small_files small files, $runs rounds" >&2
series small "$runs" tar rsync scp wormhole ferry
echo "$me: first byte of a 1-byte file, $ttfb_runs rounds" >&2
series ttfb "$ttfb_runs" scp wormhole ferry

# ------------------------------------------------------------- report
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
meets() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { if (v == "-") print "-"; else if ((op == ">=" && v + 0 >= t) || (op == "<=" && v + 0 <= t)) print "yes"; else print "NO" }'; }

# figure TEST TOOL SCALE: the median over runs of SCALE / secs (a rate),
# or of secs when SCALE is empty; "-" when there is none.
figure() {
  local f=$res/$1.$2
  if [ -n "${why[$2]:-}" ] || [ -e "$f.fail" ] || [ ! -s "$f" ]; then
    echo -
  elif [ -n "$3" ]; then
    cut -d'|' -f1 "$f" | awk -v s="$3" '{ printf "%.1f\n", s / $1 }' | median
  else
    cut -d'|' -f1 "$f" | median | awk '{ printf "%.3f\n", $1 }'
  fi
}
# problem TEST TOOL: why a figure is missing, or nothing.
problem() {
  local f=$res/$1.$2
  if [ -n "${why[$2]:-}" ]; then
    echo "${why[$2]}"
  elif [ -e "$f.fail" ]; then
    local earlier=""
    [ -s "$f" ] && earlier=" (earlier runs: $(cut -d'|' -f1 "$f" | sed 's/$/ s/' | paste -sd, - | sed 's/,/, /g'))"
    echo "FAILED $(cat "$f.fail")$earlier"
  fi
}
# status TEST TOOL: why a figure is missing, or the note of the median run.
status() {
  local f=$res/$1.$2
  if [ -n "$(problem "$1" "$2")" ]; then
    problem "$1" "$2"
  else
    # the run whose time is the median one (the middle line, sorted)
    sort -t'|' -k1,1g "$f" | sed -n "$((($(wc -l <"$f") + 1) / 2))p" | cut -d'|' -f2- | sed 's/^; //'
  fi
}
cmd_median() { # the median of the TTFB runs' command times
  local f=$res/ttfb.$1
  if [ -n "${why[$1]:-}" ] || [ -e "$f.fail" ] || [ ! -s "$f" ]; then echo -; else cut -d'|' -f2 "$f" | median | awk '{ printf "%.3f\n", $1 }'; fi
}
label() {
  case $1 in
    scp) echo "scp" ;;
    rsync) echo "rsync over ssh" ;;
    tar) echo "tar c | ssh tar x" ;;
    nginx) echo "nginx -> curl (HTTPS)" ;;
    wormhole) echo "magic-wormhole" ;;
    ferry) echo "ferry" ;;
  esac
}
show() { [ "$1" = - ] && echo "-" || echo "$1 $2"; }

ssh_cipher=-
avail ssh && ssh_cipher=$(ssh -F "$ssh_cfg" -o LogLevel=DEBUG1 bench true 2>&1 | sed -n 's/.*kex: server->client cipher: \([^ ]*\).*/\1/p' | head -1)
ferry_version=-
avail ferry && ferry_version=$("$ferry" version 2>/dev/null | head -1)

echo
echo "Issue 5 transfer benchmark: loopback, $(nproc) CPUs, data on tmpfs on both sides, every copy verified byte-exact"
echo "Versions: $(ssh -V 2>&1 | cut -d, -f1) (cipher $ssh_cipher); $(rsync --version 2>/dev/null | head -1 | awk '{print $1, $3}');" \
  "$("$nginx_exe" -v 2>&1 | sed 's/.*: //'); $(curl --version 2>/dev/null | head -1 | awk '{print $1, $2, $5}');" \
  "magic-wormhole $(wormhole --version 2>/dev/null | awk '{print $NF}'); $ferry_version"
echo
big_mb=$(awk -v b="$big_bytes" 'BEGIN { printf "%.6f", b / 1e6 }')
echo "1. One random file of $big_bytes bytes; MB/s = 10^6 bytes/s over the whole command, median of $runs"
echo "   (magic-wormhole and ferry: from the sender's start to the receiver's exit)"
printf '   %-24s %15s  %s\n' "tool" "rate" "notes"
for t in scp rsync tar nginx wormhole ferry; do
  printf '   %-24s %15s  %s\n' "$(label "$t")" "$(show "$(figure big "$t" "$big_mb")" MB/s)" "$(status big "$t")"
done
fb=$(figure big ferry "$big_mb")
nb=$(figure big nginx "$big_mb")
wb=$(figure big wormhole "$big_mb")
echo "   ferry / nginx-HTTPS: $(ratio "$fb" "$nb") (target >= 1.0: $(meets "$(ratio "$fb" "$nb")" 1.0 '>='))," \
  "ferry / magic-wormhole: $(ratio "$fb" "$wb") (target >= 4.0: $(meets "$(ratio "$fb" "$wb")" 4.0 '>='))"
echo
echo "2. $small_files files of $small_size bytes in $small_dirs folders; files/s over the whole command, median of $runs"
printf '   %-24s %15s  %s\n' "tool" "rate" "notes"
for t in tar rsync scp wormhole ferry; do
  printf '   %-24s %15s  %s\n' "$(label "$t")" "$(show "$(figure small "$t" "$small_files")" files/s)" "$(status small "$t")"
done
fs=$(figure small ferry "$small_files")
ts=$(figure small tar "$small_files")
echo "   ferry / tar-over-ssh: $(ratio "$fs" "$ts") (target >= 1.0: $(meets "$(ratio "$fs" "$ts")" 1.0 '>='))"
echo
echo "3. First byte of a 1-byte file: from starting the receiving command (sender already waiting) to the byte"
echo "   on disk, and to the command's exit; median of $ttfb_runs"
printf '   %-24s %10s %10s  %s\n' "tool" "first byte" "command" "notes"
for t in scp wormhole ferry; do
  printf '   %-24s %10s %10s  %s\n' "$(label "$t")" "$(show "$(figure ttfb "$t" "")" s)" "$(show "$(cmd_median "$t")" s)" "$(problem ttfb "$t")"
done
ft=$(figure ttfb ferry "")
echo "   ferry first byte: target <= 0.15 s: $(meets "$ft" 0.15 '<='); ferry / scp: $(ratio "$ft" "$(figure ttfb scp "")")"
echo
echo "Load average at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
