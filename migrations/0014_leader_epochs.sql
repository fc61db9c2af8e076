-- Leader fencing (issue 18): the operator that becomes leader takes the next epoch of its
-- election here (crates/store/src/fence.rs), and every operator write checks, in its own
-- transaction and under a share lock on this row, that its epoch is still the current one.
-- A deposed leader whose Lease lapsed while a call hung therefore cannot write after the
-- new leader has taken over: its transaction is refused and changes nothing.
CREATE TABLE leader_epochs (
    name        text        PRIMARY KEY,
    epoch       bigint      NOT NULL,
    holder      text        NOT NULL,
    taken_at    timestamptz NOT NULL DEFAULT now()
);

-- Retention (crates/store/src/retention.rs) reads only what it deletes:
-- runs by age, and per Task the newest runs of each outcome class (kept) then the rest.
CREATE INDEX task_runs_finished ON task_runs (finished_at);
CREATE INDEX task_runs_task_finished
    ON task_runs (task_uid, (status = 'succeeded'), finished_at DESC);
-- Finished occurrences and relayed events by age (the queued / unrelayed ones are not in
-- these indexes, so they cost nothing on the hot path's inserts beyond one entry on finish).
CREATE INDEX due_work_done ON due_work (done_at) WHERE done_at IS NOT NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
-- The few Tasks with an age limit of their own (spec.runsHistoryMaxAge).
CREATE INDEX tasks_runs_history_max_age ON tasks (uid) WHERE spec ? 'runsHistoryMaxAge';
