#!/bin/sh
# The roles of the bundled PostgreSQL (postgresql.enabled), set at every start of its pod by
# the `roles` container (idempotent, so upgrades and password changes apply too):
#
#   OWNER  owns the database and its schema: the operator connects as it and applies the
#          migrations (DDL). No superuser, cannot create roles or databases.
#   APP    reads and writes rows (SELECT, INSERT, UPDATE, DELETE on every table and sequence
#          the owner creates, now and later): the workers and the gateway connect as it, with
#          --migrate false. No DDL, no superuser, so a leaked URL cannot run
#          `COPY … TO PROGRAM` or change the schema.
#
# The bootstrap superuser keeps no password: only a local socket inside the pod reaches it
# (`kubectl exec … -- psql -U postgres`).
#
# Environment: OWNER, OWNER_PASSWORD, APP, APP_PASSWORD, DB (names and passwords; read with
# psql's \getenv, so no password is ever on a command line), PGHOST (the socket directory).
set -eu

# Wait on TCP, not on the socket: on a first start the image's entrypoint runs a temporary
# server on the socket only (while it creates the database), then restarts it.
until pg_isready -q -h 127.0.0.1 -p "${PGPORT:-5432}"; do
  echo "roles: waiting for PostgreSQL"
  sleep 1
done

# The bootstrap superuser: `postgres` on a data directory this chart version initialised; the
# owner itself on one an earlier version initialised (POSTGRES_USER was the owner then).
# PostgreSQL 16 refuses to take superuser from the bootstrap user: such an owner stays one.
su=
for u in postgres "$OWNER"; do
  if [ "$(psql -X -q -U "$u" -d postgres -tAc 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user' 2>/dev/null)" = t ]; then
    su=$u
    break
  fi
done
if [ -z "$su" ]; then
  echo "roles: neither postgres nor $OWNER is a superuser reachable over the local socket" >&2
  exit 1
fi
if [ "$su" = "$OWNER" ]; then
  echo "roles: warning: $OWNER is this data directory's bootstrap superuser (initialised by an earlier chart version) and stays one; the workers and the gateway use $APP, which is not"
fi

psql -X -q -v ON_ERROR_STOP=1 -U "$su" -d postgres <<'SQL'
\getenv owner OWNER
\getenv owner_pw OWNER_PASSWORD
\getenv app APP
\getenv app_pw APP_PASSWORD
\getenv db DB
SELECT format('CREATE ROLE %I LOGIN', :'owner') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'app') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', :'owner') WHERE :'owner' <> current_user \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', :'app') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'owner', :'owner_pw') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'app', :'app_pw') \gexec
-- The superuser logs in over the local socket only (trust there, no password over TCP).
SELECT format('ALTER ROLE %I PASSWORD NULL', current_user) WHERE :'owner' <> current_user \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'owner') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'db', :'app') \gexec
\connect :db
-- PostgreSQL 15+ already keeps CREATE on `public` for its owner (the database owner).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SELECT format('ALTER SCHEMA public OWNER TO %I', :'owner') \gexec
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'app') \gexec
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', :'app') \gexec
SELECT format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO %I', :'app') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', :'owner', :'app') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I', :'owner', :'app') \gexec
SQL
echo "roles: $OWNER owns database $DB; $APP reads and writes its rows"
