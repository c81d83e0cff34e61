#!/usr/bin/env bash
# Installs the Debian 12 packages ferry needs to build, test and run,
# skipping the apt round trip when everything is already there.
set -eu
pkgs=(
  meson ninja-build pkg-config gcc clang libclang-rt-14-dev
  libglib2.0-dev libgnutls28-dev libsodium-dev
  libsoup-3.0-dev libjson-glib-dev libnice-dev libngtcp2-dev libngtcp2-crypto-gnutls-dev
  python3-websockets glib-networking openssl
  python3 coreutils coturn libhiredis-dev redis-server
  iproute2 nftables util-linux bsdutils curl
  libqrencode-dev zlib1g-dev chromium chromium-driver python3-selenium python3-cryptography
  iperf3 unzip
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "ferry: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
