#!/bin/sh
# Installs the Debian packages vlm needs to build, test and run, only those missing.
# The WordPress, MariaDB, php-fpm and Chromium packages are for the browser tests;
# clang and libclang-rt-14-dev (libFuzzer, only "recommended" by clang) for the fuzz smoke.
# Idempotent: a second run with everything present does nothing and prints nothing.
set -eu

packages="build-essential cmake ninja-build pkg-config check
libjansson-dev libpcre2-dev libjpeg62-turbo-dev libpng-dev libwebp-dev
libgif-dev libexif-dev libcurl4-openssl-dev libssl-dev python3 python3-venv nginx nginx-dev libhiredis-dev redis-server wrk
wordpress wordpress-theme-twentytwentythree mariadb-server php-fpm php-cli php-mysql php-gd php-curl
php-xml php-mbstring php-intl chromium chromium-driver
clang libclang-rt-14-dev"

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

echo "install-deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# A stale package list makes apt-get install fail with 404s; refresh once.
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
