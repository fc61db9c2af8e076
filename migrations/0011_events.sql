-- Event-driven Tasks (`spec.schedule.on`): a Task on a topic runs once per event published on
-- it; a Task on `taskFinished` runs once per finished run of another Task. See
-- crates/store/src/triggers.rs and crates/store/src/chains.rs.

-- The occurrence key of an event-started run: the event's id (a topic event's `id`, or
-- `run:<uuid>` for a finished run). A redelivered, replayed or duplicated event inserts
-- nothing. `scheduled_for` of such a row is the event's publish time, moved on by a
-- microsecond when another event of the same Task took that instant, so the older unique
-- key (task_uid, scheduled_for, trigger) holds too.
ALTER TABLE due_work ADD COLUMN event_id text;
CREATE UNIQUE INDEX due_work_event ON due_work (task_uid, event_id) WHERE event_id IS NOT NULL;

-- Who listens to what: the Tasks on a topic, and the Tasks chained after another Task.
CREATE INDEX tasks_on_topic ON tasks ((spec #>> '{schedule,on,topic}'))
    WHERE deleted_at IS NULL AND schedule_kind = 'on';
CREATE INDEX tasks_on_finished ON tasks (namespace, (spec #>> '{schedule,on,taskFinished,name}'))
    WHERE deleted_at IS NULL AND schedule_kind = 'on';

-- Per Task: events received, runs started, events filtered out by `on.filter`, events dropped
-- (Task suspended or snoozed, chain too deep), and the last event's time. `started` counts
-- inserted occurrences, so it is exact; the other counters are at least once (an event
-- redelivered after a worker crashed between its commit and its acknowledgement is
-- counted again).
CREATE TABLE task_event_counts (
    task_uid        uuid        PRIMARY KEY REFERENCES tasks (uid) ON DELETE CASCADE,
    received        bigint      NOT NULL DEFAULT 0,
    started         bigint      NOT NULL DEFAULT 0,
    filtered        bigint      NOT NULL DEFAULT 0,
    dropped         bigint      NOT NULL DEFAULT 0,
    last_drop       text,
    last_event_at   timestamptz
);
