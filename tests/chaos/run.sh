#!/usr/bin/env bash
# The chaos suite: real worker processes on a private PostgreSQL and Redis, under SIGKILL,
# PostgreSQL restarts, a Redis outage and SIGSTOP (tests/chaos/main.rs); real operator
# processes against the fake Kubernetes API, SIGKILLed mid-materialization and with the
# leader's API connection stalled (tests/chaos/operator.rs). One line per scenario.
#
#   bash tests/chaos/run.sh          # short form (what CI runs; a couple of minutes)
#   bash tests/chaos/run.sh --full   # full form (1,000 occurrences each, 60 s Redis outage,
#                                    # 20,000 Tasks for the operator SIGKILL)
#
# Needs PostgreSQL's initdb/pg_ctl (PATH or /usr/lib/postgresql/*/bin) and redis-server; the
# operator scenarios use ORDINAUT_TEST_DATABASE_URL's server for a database of their own.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ "${1:-}" == "--full" ]]; then
  export ORDINAUT_CHAOS_FULL=1
fi
cargo test -p ordinaut-worker --test chaos -- --test-threads 1 --nocapture
cargo test -p ordinaut-operator --test chaos_operator -- --test-threads 1 --nocapture
