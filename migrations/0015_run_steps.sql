-- Issue 20 (fewer writes per run): a run's step records live in its run record, as a JSON
-- array in run order, instead of one `step_runs` row each. Finishing a one-step run wrote two
-- heap tuples and three index entries for them; it now writes one tuple. `step_runs` stays
-- readable, with the same columns and values, as a view over the arrays, so queries written
-- against it (the CLI's, the gateway's, users' own) keep working; it cannot be written.
--
-- Each element is an object with `step_id`, `uses`, `status`, `attempts`, `started_at`,
-- `finished_at` (RFC 3339, microseconds) and, when present, `input`, `output` and `error`
-- (a missing key reads as SQL NULL; a JSON null `output` stays a JSON null).
ALTER TABLE task_runs ADD COLUMN steps jsonb NOT NULL DEFAULT '[]'::jsonb;

UPDATE task_runs r SET steps = s.steps
FROM (
    SELECT run_id,
           jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                   'step_id', step_id, 'uses', uses, 'status', status, 'attempts', attempts,
                   'error', error,
                   'started_at', to_char(started_at AT TIME ZONE 'UTC',
                                         'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   'finished_at', to_char(finished_at AT TIME ZONE 'UTC',
                                          'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))
                     -- input / output added after stripping, so a JSON null output stays
                     || CASE WHEN input IS NULL THEN '{}'::jsonb
                             ELSE jsonb_build_object('input', input) END
                     || CASE WHEN output IS NULL THEN '{}'::jsonb
                             ELSE jsonb_build_object('output', output) END
                     ORDER BY idx) AS steps
    FROM step_runs GROUP BY run_id
) s
WHERE r.id = s.run_id;

DROP TABLE step_runs;

CREATE VIEW step_runs AS
SELECT r.id                                     AS run_id,
       (s.n - 1)::integer                       AS idx,
       s.e ->> 'step_id'                        AS step_id,
       s.e ->> 'uses'                           AS uses,
       s.e ->> 'status'                         AS status,
       coalesce((s.e ->> 'attempts')::integer, 1) AS attempts,
       s.e -> 'input'                           AS input,
       s.e -> 'output'                          AS output,
       s.e ->> 'error'                          AS error,
       (s.e ->> 'started_at')::timestamptz      AS started_at,
       (s.e ->> 'finished_at')::timestamptz     AS finished_at
FROM task_runs r
CROSS JOIN LATERAL jsonb_array_elements(r.steps) WITH ORDINALITY AS s(e, n);
