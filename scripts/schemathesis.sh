#!/usr/bin/env bash
# Property-based tests of the gateway's REST API from its own OpenAPI document: schemathesis
# (PyPI, pinned) generates requests for every operation and checks that no response is a 5xx
# and every response matches the document (status codes, content types, schemas). It runs
# against an `ordinaut dev` on a copy of two examples (a fresh database, the admin token,
# no rate limit), bounded in time.
#
#   bash scripts/schemathesis.sh          # 60 s
#   bash scripts/schemathesis.sh 300      # a longer run
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET=${1:-60}
ST_VERSION=4.32.5
TOOLS_DIR=${ORDINAUT_TOOLS_DIR:-/var/cache/ordinaut}
ST_VENV=$TOOLS_DIR/schemathesis
DB_ADMIN=${ORDINAUT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${ORDINAUT_TEST_REDIS_URL:-redis://127.0.0.1:6379}
say() { printf '==> %s\n' "$*" >&2; }

if [ "$("$ST_VENV/bin/st" --version 2>/dev/null | awk '{print $3}')" != "$ST_VERSION" ]; then
  say "pip install schemathesis==$ST_VERSION into $ST_VENV"
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi
BIN=${ORDINAUT_BIN:-}
if [ -z "$BIN" ]; then
  cargo build -q -p ordinaut
  BIN=${CARGO_TARGET_DIR:-target}/debug/ordinaut
fi

work=$(mktemp -d)
db="ordinaut_st_$(date +%s)_$$"
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  psql "$DB_ADMIN" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/manifests"
cp examples/agent.yaml examples/hello-every-minute.yaml "$work/manifests/"
psql "$DB_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
openssl rand -hex 32 >"$work/admin.token"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port

"$BIN" dev "$work/manifests" --database-url "${DB_ADMIN%/*}/$db" --redis-url "$REDIS" \
  --events-stream "st:$db" --data-dir "$work/data" --gateway-addr "127.0.0.1:$port" \
  --admin-token-file "$work/admin.token" --rate-limit 0 >"$work/dev.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do curl -fsS "$url/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "$url/readyz" >/dev/null || { cat "$work/dev.log"; say "ordinaut dev did not start"; exit 1; }

say "schemathesis against $url/openapi.json for ${BUDGET}s"
# In the scratch folder: schemathesis keeps a cache of crashes in `.schemathesis/` there.
cd "$work"
"$ST_VENV/bin/st" run "$url/openapi.json" \
  --header "Authorization: Bearer $(cat "$work/admin.token")" \
  --max-time "$BUDGET" --checks all --exclude-checks positive_data_acceptance,use_after_free \
  --suppress-health-check all --generation-database none
