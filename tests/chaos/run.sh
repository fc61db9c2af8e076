#!/usr/bin/env bash
# The chaos suite: real worker processes on a private PostgreSQL and Redis, under SIGKILL,
# PostgreSQL restarts, a Redis outage and SIGSTOP. One line per scenario.
#
#   bash tests/chaos/run.sh          # short form (what CI runs; a couple of minutes)
#   bash tests/chaos/run.sh --full   # full form (1,000 occurrences each, 60 s Redis outage)
#
# Needs PostgreSQL's initdb/pg_ctl (PATH or /usr/lib/postgresql/*/bin) and redis-server.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ "${1:-}" == "--full" ]]; then
  export ORDINAUT_CHAOS_FULL=1
fi
exec cargo test -p ordinaut-worker --test chaos -- --test-threads 1 --nocapture
