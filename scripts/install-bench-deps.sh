#!/usr/bin/env bash
# Installs the Debian 12 packages bench/transfer.sh compares ferry with:
# an ssh server (scp, rsync, tar over ssh), rsync, nginx (HTTPS to curl) and
# magic-wormhole with its transit relay and mailbox server. A package the
# archive does not have is skipped with a note; the benchmark then leaves
# that tool's rows out and says why. The system sshd and nginx are not
# started or configured (only /run/sshd is made, which any sshd run as root
# needs): the benchmark runs its own copies on loopback.
set -eu
pkgs=(
  openssh-server openssh-client rsync nginx curl openssl
  magic-wormhole magic-wormhole-transit-relay python3-magic-wormhole-mailbox-server
)
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -qq
available=()
for p in "${pkgs[@]}"; do
  candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')
  if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    echo "install-bench-deps: $p is not in the package archive; skipped (bench/transfer.sh leaves its rows out)"
  else
    available+=("$p")
  fi
done
missing=()
for p in "${available[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-bench-deps: installing ${missing[*]}"
  # policy-rc.d keeps the packages' own services (sshd, nginx) from being
  # started on the system: the benchmark starts private copies.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    made_policy=1
  fi
  rc=0
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ "$made_policy" = 0 ] || $sudo rm -f "$policy"
  [ "$rc" = 0 ] || { echo "install-bench-deps: apt-get install failed ($rc)" >&2; exit "$rc"; }
fi
# sshd started as root insists on its privilege-separation directory, which
# the system service would create at boot (Debian's tmpfiles.d/sshd.conf).
if [ -x /usr/sbin/sshd ] && [ ! -d /run/sshd ]; then
  $sudo install -d -m 0755 /run/sshd
fi
echo "install-bench-deps: all available benchmark packages are installed"
