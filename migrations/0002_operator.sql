-- The operator's bookkeeping (crates/store/src/operator.rs).

-- A scheduled occurrence's first attempt may start until start_deadline; after that it is
-- "missed" and only the operator's catch-up policy decides whether it still runs (as a
-- 'catchup' row). The lease query skips never-leased rows past their deadline, so workers
-- coming back after an outage do not start a herd of stale runs. NULL: no deadline
-- (manual, backfill, catch-up and event rows).
ALTER TABLE due_work ADD COLUMN start_deadline timestamptz;

ALTER TABLE tasks
    -- The last `ordinaut.dev/run-now` annotation value turned into a manual occurrence,
    -- written in the transaction that inserts it, so a retried reconcile cannot run it twice.
    ADD COLUMN handled_run_now  text,
    -- Occurrences the catch-up policy dropped, counted in the transaction that drops them.
    ADD COLUMN missed_total     bigint NOT NULL DEFAULT 0,
    -- Highest outbox id the status feed has seen for this task (feed lag and dedupe).
    ADD COLUMN feed_outbox_id   bigint;
