#!/usr/bin/env bash
# The first command on a fresh Debian or Ubuntu machine: installs what `ordinaut dev` needs
# when it is missing (PostgreSQL and Redis from Debian's packages; `ordinaut dev` starts
# private instances of them itself when none is running), builds Ordinaut, and runs
# `ordinaut dev` on a folder of manifests (default: examples/).
#
#   bash scripts/dev.sh [DIR] [more `ordinaut dev` flags]
#
# ORDINAUT_BIN=path runs that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

has_postgres() {
  command -v initdb >/dev/null 2>&1 || command -v pg_ctlcluster >/dev/null 2>&1 ||
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
if ! has_postgres; then
  say "installing PostgreSQL (Debian package postgresql)"
  apt_install postgresql
fi
if ! command -v redis-server >/dev/null 2>&1; then
  say "installing Redis (Debian package redis-server)"
  apt_install redis-server
fi
if ! command -v cargo >/dev/null 2>&1 && [ -z "${ORDINAUT_BIN:-}" ]; then
  say "Rust is missing: install it from https://rustup.rs (1.95 or newer), then run this again"
  exit 1
fi

dir=${1:-examples/}
[ $# -gt 0 ] && shift
if [ -n "${ORDINAUT_BIN:-}" ]; then
  bin=$ORDINAUT_BIN
else
  say "building ordinaut (release; the first build takes a while)"
  cargo build --release --locked -p ordinaut
  bin=${CARGO_TARGET_DIR:-target}/release/ordinaut
fi
say "running: ordinaut dev $dir $*"
exec "$bin" dev "$dir" "$@"
