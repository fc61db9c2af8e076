-- Retention (issue 18): finished runs are pruned by age and per-Task count
-- (crates/store/src/retention.rs). A Task's status counts runs since it was created, so the
-- runs pruned are counted here, by outcome, in the statement that deletes them; the status
-- queries add them to what task_runs still holds.
ALTER TABLE tasks
    ADD COLUMN pruned_succeeded bigint NOT NULL DEFAULT 0,
    ADD COLUMN pruned_failed    bigint NOT NULL DEFAULT 0,
    ADD COLUMN pruned_skipped   bigint NOT NULL DEFAULT 0;
