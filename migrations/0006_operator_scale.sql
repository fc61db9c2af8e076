-- Operator scale (100,000 Tasks, 4 million queued occurrences): a cheaper check per inserted
-- occurrence, and an index for the one per-Task read that had none.

-- (due_work_task, which repeated the leading columns of the unique key, is dropped by 0005.)

-- "The latest manual occurrence of a task", read by every reconcile: without it the scan
-- walks all of the task's rows to find there is none.
CREATE INDEX due_work_manual ON due_work (task_uid, scheduled_for) WHERE trigger = 'manual';

-- The foreign key due_work.task_uid -> tasks ran one lookup query per inserted occurrence
-- (13 % of PostgreSQL's time while materializing 100,000 Tasks, found with perf: RI_FKey
-- checks through SPI). The same rule is checked once per statement, over all of its rows.
-- task_uid is never updated (no trigger for that), and tasks are only soft-deleted by
-- Ordinaut; a hard delete still removes the task's occurrences, as ON DELETE CASCADE did.
-- Unlike the key, the check takes no lock on the task row: a task hard-deleted by hand while
-- an operator inserts its occurrences could leave those behind.
ALTER TABLE due_work DROP CONSTRAINT due_work_task_uid_fkey;

CREATE FUNCTION ordinaut_due_work_task_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing uuid;
BEGIN
    SELECT n.task_uid INTO missing FROM (SELECT DISTINCT task_uid FROM new_rows) n
     WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.uid = n.task_uid) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert into due_work: task % is not present in table "tasks"', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER due_work_task_exists
    AFTER INSERT ON due_work
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ordinaut_due_work_task_exists();

CREATE FUNCTION ordinaut_tasks_delete_due_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM due_work d USING old_rows o WHERE d.task_uid = o.uid;
    RETURN NULL;
END;
$$;
CREATE TRIGGER tasks_delete_due_work
    AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ordinaut_tasks_delete_due_work();
