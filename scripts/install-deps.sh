#!/usr/bin/env bash
# Installs what annals needs to build and test, and nothing that is already there.
# Debian packages with apt-get; Python test tools with pip into ./.venv.
# Idempotent: a second run does nothing but check.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential cmake ninja-build pkg-config
  libgrpc-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev protobuf-compiler
  libcmocka-dev libsqlite3-dev libssl-dev uuid-dev zlib1g-dev libzstd-dev
  librdkafka-dev libpq-dev libmicrohttpd-dev libjansson-dev
  postgresql-15 openjdk-17-jre-headless maven python3
  clang clang-format libclang-rt-14-dev llvm valgrind
  python3-venv
  chromium chromium-driver
)
missing=()
# Node.js and npm come with the machine; Debian's only where they are missing.
command -v npm >/dev/null || missing+=(nodejs npm)
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python test tools (the behavioural suite's client is grpcio: a client nobody here wrote).
REQ=tests/requirements.txt
STAMP=.venv/.req-$(sha256sum "$REQ" | cut -c1-16)
if [ ! -f "$STAMP" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r "$REQ"
  rm -f .venv/.req-*; touch "$STAMP"
fi

# The web viewer's front-end library (ansi_up, web/package-lock.json) from the npm registry,
# built into annalsd by src/http/assets.cmake.
WSTAMP=web/node_modules/.lock-$(sha256sum web/package-lock.json | cut -c1-16)
if [ ! -f "$WSTAMP" ]; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
  touch "$WSTAMP"
fi
