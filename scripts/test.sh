#!/usr/bin/env bash
# Ordinaut's whole test suite, as CI runs it: installs and starts what the tests need
# (PostgreSQL, Redis, the Python reference peers), then checks formatting and lints and runs
# every test. Safe to run again; it only installs what is missing.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -p ordinaut-store   # extra arguments go to `cargo nextest run`
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# Build output lives outside the clone so a fresh clone reuses earlier builds.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  if mkdir -p /var/cache/ordinaut/target 2>/dev/null && [ -w /var/cache/ordinaut/target ]; then
    export CARGO_TARGET_DIR=/var/cache/ordinaut/target
  fi
fi
# A one-off build (CI on a fresh clone) gains nothing from incremental state: skip writing it.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
TOOLS_DIR=${ORDINAUT_TOOLS_DIR:-/var/cache/ordinaut}
mkdir -p "$TOOLS_DIR" 2>/dev/null || TOOLS_DIR=$PWD/.ordinaut/tools

# --- PostgreSQL -----------------------------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null 2>&1; then
  say "installing PostgreSQL"
  apt_install postgresql
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  say "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for v in $(ls /etc/postgresql); do
      as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
  fi
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432 || { say "PostgreSQL did not start"; exit 1; }
fi
if [ -z "${ORDINAUT_TEST_DATABASE_URL:-}" ]; then
  ORDINAUT_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
  if ! psql "$ORDINAUT_TEST_DATABASE_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; then
    # Debian's default asks for a password on TCP: give the postgres role one for tests.
    say "setting a password for the postgres role (TCP connections need one here)"
    as_root su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'postgres'\"" >/dev/null
    ORDINAUT_TEST_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres
  fi
  export ORDINAUT_TEST_DATABASE_URL
fi
psql "$ORDINAUT_TEST_DATABASE_URL" -qtAc 'SELECT 1' >/dev/null

# --- Redis ----------------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  say "installing Redis"
  apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 40); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.25; done
fi
export ORDINAUT_TEST_REDIS_URL=${ORDINAUT_TEST_REDIS_URL:-redis://127.0.0.1:6379}

# --- Reference peers ------------------------------------------------------------------
# python-dateutil is the independent reference the schedule engine is checked against.
VENV=$TOOLS_DIR/venv
if ! "$VENV/bin/python" -c 'import dateutil' >/dev/null 2>&1; then
  say "creating the Python reference venv in $VENV"
  python3 -m venv "$VENV" || { apt_install python3-venv; python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q python-dateutil
fi
export ORDINAUT_PYTHON=$VENV/bin/python
# Real MCP servers (npm and PyPI) for the MCP bridge's tests.
bash scripts/install-test-peers.sh

# --- Checks ---------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "tests"
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@" || status=$?
else
  cargo test --workspace --locked --no-fail-fast "$@" || status=$?
fi
# The Helm chart: lint, render, schema-validate, and check it against the binaries' --help
# (after the tests, so the binaries are built).
say "chart checks"
bash scripts/chart-checks.sh || status=$?
# The gateway's REST API against its OpenAPI document (schemathesis, 30 s) on `ordinaut dev`.
say "schemathesis"
ORDINAUT_BIN="${CARGO_TARGET_DIR:-target}/debug/ordinaut" bash scripts/schemathesis.sh 30 || status=$?
exit $status
