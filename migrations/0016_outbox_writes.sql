-- Issue 20 (fewer writes per run): the events of one write (a batch of run results, a state
-- change, a batch of missed runs...) are stored together, several to a row, instead of one
-- row each. A one-step run's three events cost three heap tuples and six index entries when
-- written and as many again when the relay marked them published; a row now holds up to
-- about 1.8 kB of events (under PostgreSQL's 2 kB TOAST threshold, so never compressed or
-- moved out of line): about three of a run's events, more of smaller ones.
--
-- Every event still has its own id from the same sequence (`outbox_id_seq`), in the order
-- the events were given, and the relay still sends each as its own stream entry with that
-- `outbox_id`. A row is published as a whole (the relay sends all of its events, then marks
-- it).
--
-- The table is now `outbox_rows`. `outbox` is a read-only view with the columns and values
-- it had, one row per event, so queries written against it keep working. Rows written before
-- this migration become rows of one event each.
ALTER TABLE outbox RENAME TO outbox_rows;
ALTER TABLE outbox_rows
    -- The events' ids, in order; `id` is the first.
    ADD COLUMN ids bigint[],
    -- The events, in order: objects with `type`, `payload` and, when set, `stream` and
    -- `task_uid`.
    ADD COLUMN events json;

UPDATE outbox_rows
SET ids = ARRAY[id],
    events = json_build_array(json_build_object(
        'type', event_type, 'stream', stream, 'task_uid', task_uid, 'payload', payload));

ALTER TABLE outbox_rows
    ALTER COLUMN ids SET NOT NULL,
    ALTER COLUMN events SET NOT NULL,
    DROP COLUMN stream,
    DROP COLUMN event_type,
    DROP COLUMN task_uid,
    DROP COLUMN payload,
    ADD CONSTRAINT outbox_rows_first_id CHECK (ids[1] = id);

CREATE VIEW outbox AS
SELECT o.ids[e.n]                                      AS id,
       coalesce(e.v ->> 'stream', 'ordinaut:events')   AS stream,
       e.v ->> 'type'                                  AS event_type,
       (e.v ->> 'task_uid')::uuid                      AS task_uid,
       e.v -> 'payload'                                AS payload,
       o.created_at,
       o.published_at
FROM outbox_rows o
CROSS JOIN LATERAL json_array_elements(o.events) WITH ORDINALITY AS e(v, n);
