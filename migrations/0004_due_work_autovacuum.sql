-- due_work churns (every lease and every result updates a row): vacuum and analyze it after
-- 5 % of its rows changed rather than the default 20 % / 10 %, so plans follow its size.
ALTER TABLE due_work SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);
