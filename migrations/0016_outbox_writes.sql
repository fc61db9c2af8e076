-- Issue 20 (fewer writes per run): the events of one write (a batch of run results, a state
-- change, a batch of missed runs...) are stored together, several to a row, instead of one
-- row each. A one-step run's three events cost three heap tuples and six index entries when
-- written and as many again when the relay marked them published; a row now holds up to
-- about 1.8 kB of events (under PostgreSQL's 2 kB TOAST threshold, so never compressed or
-- moved out of line), eight or so of a run's events.
--
-- Every event still has its own id from the same sequence, in the order the events were
-- given, and the relay still sends each as its own stream entry with that `outbox_id`. A row
-- is published as a whole (the relay sends all of its events, then marks it).
--
-- The table is now `outbox_rows`. `outbox` is a read-only view with the columns and values
-- it had, one row per event, so queries written against it keep working.
ALTER TABLE outbox RENAME TO outbox_rows;
ALTER TABLE outbox_rows
    ALTER COLUMN event_type DROP NOT NULL,
    ALTER COLUMN payload DROP NOT NULL,
    ALTER COLUMN stream DROP NOT NULL,
    -- The events' ids, in order; `id` is the first.
    ADD COLUMN ids bigint[],
    -- The events, in order: objects with `type`, `payload` and, when set, `stream` and
    -- `task_uid`.
    ADD COLUMN events json,
    -- A row written before this migration holds one event in the columns above instead.
    ADD CONSTRAINT outbox_rows_one_form CHECK (
        (events IS NULL AND ids IS NULL AND event_type IS NOT NULL AND payload IS NOT NULL
             AND stream IS NOT NULL)
        OR (events IS NOT NULL AND ids IS NOT NULL AND ids[1] = id));

CREATE VIEW outbox AS
SELECT o.id, o.stream, o.event_type, o.task_uid, o.payload, o.created_at, o.published_at
FROM outbox_rows o
WHERE o.events IS NULL
UNION ALL
SELECT o.ids[e.n]                                      AS id,
       coalesce(e.v ->> 'stream', 'ordinaut:events')   AS stream,
       e.v ->> 'type'                                  AS event_type,
       (e.v ->> 'task_uid')::uuid                      AS task_uid,
       e.v -> 'payload'                                AS payload,
       o.created_at,
       o.published_at
FROM outbox_rows o
CROSS JOIN LATERAL json_array_elements(o.events) WITH ORDINALITY AS e(v, n)
WHERE o.events IS NOT NULL;
