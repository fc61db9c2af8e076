-- The worker's hot path writes, per run, a run record, its step records and its events. Profiled
-- with EXPLAIN (ANALYZE, WAL) on batches of 256 runs, a quarter of PostgreSQL's time went to
-- foreign-key triggers (one SPI lookup with a row lock per inserted row and key) and to index
-- entries no query needs. These go; what they guaranteed holds by construction:
--
-- * outbox.task_uid and task_runs.task_uid: every value comes from a due_work row in the same
--   transaction, and due_work.task_uid references tasks (that key stays). Task rows are never
--   deleted (a deleted Task keeps its projection row with deleted_at set), so the ON DELETE
--   actions of these keys never fired.
-- * step_runs.run_id: step records are inserted with their run record, in the same
--   transaction, from the same batch. Run records are never deleted today; pruning, when it
--   comes, deletes a run's steps with it.
-- * due_work_task (task_uid, scheduled_for) duplicated the leading columns of the unique key
--   due_work_occurrence (task_uid, scheduled_for, trigger), which serves the same lookups; it
--   cost an index entry on every lease and every result.
--
-- task_runs.due_work_id keeps its key: withdrawing a re-queued occurrence sets it to NULL.
ALTER TABLE outbox DROP CONSTRAINT outbox_task_uid_fkey;
ALTER TABLE task_runs DROP CONSTRAINT task_runs_task_uid_fkey;
ALTER TABLE step_runs DROP CONSTRAINT step_runs_run_id_fkey;
DROP INDEX due_work_task;

-- Event payloads are written once, read once by the relay (which sends them on as text) and
-- never queried inside PostgreSQL: store them as `json`, which is checked on the way in but
-- not converted to the binary `jsonb` form, which cost every event a second parse.
ALTER TABLE outbox ALTER COLUMN payload TYPE json USING payload::json;
