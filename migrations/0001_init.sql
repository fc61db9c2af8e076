-- Ordinaut's schema. Definitions live in the Kubernetes API; this database holds what derives
-- from them (tasks, due_work) and what happens at run time (task_runs, step_runs, outbox,
-- audit_log). See crates/store for the leasing protocol these tables serve.

-- The projection of each Task custom resource, keyed by the object's uid.
CREATE TABLE tasks (
    uid                 uuid PRIMARY KEY,
    namespace           text        NOT NULL,
    name                text        NOT NULL,
    generation          bigint      NOT NULL,
    spec                jsonb       NOT NULL,
    schedule_kind       text        NOT NULL
        CHECK (schedule_kind IN ('rrule', 'cron', 'at', 'every', 'on')),
    schedule            text        NOT NULL,
    timezone            text        NOT NULL DEFAULT 'UTC',
    next_run_at         timestamptz,
    materialized_until  timestamptz,
    suspended           boolean     NOT NULL DEFAULT false,
    snooze_until        timestamptz,
    priority            integer     NOT NULL DEFAULT 0,
    concurrency_policy  text        NOT NULL DEFAULT 'Allow'
        CHECK (concurrency_policy IN ('Allow', 'Forbid', 'Replace')),
    status              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
-- One live projection per namespace/name; a deleted Task keeps its row (and history) and a
-- new Task of the same name gets a new uid.
CREATE UNIQUE INDEX tasks_live_name ON tasks (namespace, name) WHERE deleted_at IS NULL;
-- The materializer's periodic tick looks for live tasks whose horizon needs extending.
CREATE INDEX tasks_horizon ON tasks (materialized_until) WHERE deleted_at IS NULL;

-- One row per occurrence to run. The unique key is the "once" guarantee: the same
-- occurrence inserted twice is one row. Rows stay after they finish (done_at set) so a
-- re-materialized past occurrence can never run again; old finished rows are pruned.
CREATE TABLE due_work (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_uid        uuid        NOT NULL REFERENCES tasks (uid) ON DELETE CASCADE,
    scheduled_for   timestamptz NOT NULL,
    run_at          timestamptz NOT NULL,
    priority        integer     NOT NULL DEFAULT 0,
    attempt         integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    trigger         text        NOT NULL DEFAULT 'schedule'
        CHECK (trigger IN ('schedule', 'catchup', 'manual', 'backfill', 'event')),
    payload         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    locked_until    timestamptz,
    locked_by       text,
    leased_at       timestamptz,
    -- Set when a run of a Forbid/Replace task starts, so other workers can see it is active.
    running_since   timestamptz,
    -- Set by a Replace run: the holder cancels this run at its next heartbeat.
    cancel_requested boolean    NOT NULL DEFAULT false,
    done_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT due_work_occurrence UNIQUE (task_uid, scheduled_for, trigger),
    CONSTRAINT due_work_lock_pair CHECK ((locked_until IS NULL) = (locked_by IS NULL))
);
-- Serves the lease query: only queued rows (not leased, not done), in lease order.
CREATE INDEX due_work_lease ON due_work (priority DESC, run_at)
    WHERE locked_until IS NULL AND done_at IS NULL;
-- Serves "when is the next queued occurrence due" (how long an idle worker may sleep).
CREATE INDEX due_work_earliest ON due_work (run_at)
    WHERE locked_until IS NULL AND done_at IS NULL;
-- Serves the reaper and heartbeats: only leased rows.
CREATE INDEX due_work_leased ON due_work (locked_until)
    WHERE locked_until IS NOT NULL;
-- Serves withdrawal and per-task queries.
CREATE INDEX due_work_task ON due_work (task_uid, scheduled_for);

-- One row per attempt of an occurrence (a retried occurrence has several).
CREATE TABLE task_runs (
    id              uuid        PRIMARY KEY,
    task_uid        uuid        NOT NULL REFERENCES tasks (uid) ON DELETE CASCADE,
    due_work_id     bigint      REFERENCES due_work (id) ON DELETE SET NULL,
    scheduled_for   timestamptz NOT NULL,
    trigger         text        NOT NULL,
    attempt         integer     NOT NULL,
    status          text        NOT NULL
        CHECK (status IN ('succeeded', 'failed', 'retrying', 'cancelled', 'skipped')),
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    worker          text        NOT NULL,
    output          jsonb,
    error           text,
    CONSTRAINT task_runs_attempt UNIQUE (due_work_id, attempt)
);
CREATE INDEX task_runs_task ON task_runs (task_uid, started_at DESC);
CREATE INDEX task_runs_status ON task_runs (status, started_at DESC);

-- One row per step of a run; inputs are stored with secrets redacted by the worker.
CREATE TABLE step_runs (
    run_id          uuid        NOT NULL REFERENCES task_runs (id) ON DELETE CASCADE,
    idx             integer     NOT NULL,
    step_id         text        NOT NULL,
    uses            text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('succeeded', 'failed', 'skipped')),
    attempts        integer     NOT NULL DEFAULT 1,
    input           jsonb,
    output          jsonb,
    error           text,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    PRIMARY KEY (run_id, idx)
);

-- Events, written in the transaction that makes the change they report, relayed to Redis
-- Streams afterwards (published_at set), so a Redis outage delays events and loses none.
CREATE TABLE outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream          text        NOT NULL DEFAULT 'ordinaut:events',
    event_type      text        NOT NULL,
    task_uid        uuid        REFERENCES tasks (uid) ON DELETE SET NULL,
    payload         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Security-relevant decisions (scope checks, tokens, manual triggers), append-only.
CREATE TABLE audit_log (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text        NOT NULL,
    action          text        NOT NULL,
    allowed         boolean     NOT NULL,
    namespace       text,
    task_uid        uuid        REFERENCES tasks (uid) ON DELETE SET NULL,
    subject         text,
    detail          jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at DESC);

-- Wake waiting workers when work is queued: one notification per statement (not per row),
-- carrying the earliest run_at so a worker can sleep exactly until then.
CREATE FUNCTION ordinaut_notify_due_work() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    earliest timestamptz;
BEGIN
    SELECT min(run_at) INTO earliest FROM new_rows WHERE locked_until IS NULL AND done_at IS NULL;
    IF earliest IS NOT NULL THEN
        PERFORM pg_notify('ordinaut_due_work', to_char(earliest AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER due_work_notify_insert
    AFTER INSERT ON due_work
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ordinaut_notify_due_work();
-- Rows returned to the queue (retry later, reaped or handed back leases) wake workers too.
CREATE TRIGGER due_work_notify_update
    AFTER UPDATE ON due_work
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ordinaut_notify_due_work();

-- Wake the outbox relay when events are appended (one notification per statement).
CREATE FUNCTION ordinaut_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ordinaut_outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify_insert
    AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION ordinaut_notify_outbox();
