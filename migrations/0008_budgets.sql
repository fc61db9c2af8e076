-- Agent budgets (`spec.budgets` of an Agent: `concurrentRuns`, `runsPerHour`), enforced by
-- the worker where runs start, across all workers (crates/store/src/budgets.rs).
--
-- A leased occurrence of a Task whose Agent has budgets is admitted in a transaction that
-- holds the Agent's `agents` row (FOR UPDATE), so admissions of one agent are serialized
-- across every worker while other agents and agent-less Tasks never wait for it. Admitted
-- runs are recorded here; an admission that would break a budget hands the occurrence back
-- to the queue (its attempt restored) with `run_at` moved to when it may be tried again.

-- One row per admitted run (an attempt: a retry is admitted, and counted, again).
-- * Going runs: rows whose due_work row is still at this attempt, not done and leased.
--   An expired lease (a crashed worker) stops counting without anyone cleaning up. A run
--   seen not going is marked `ended` (a later lease is a later attempt, so it never goes
--   again), so each admission looks up only the runs not yet seen to end.
-- * Runs started in the sliding hour: rows with started_at > now() - 1 hour.
-- Ended rows outside the hour are pruned at the agent's next admission.
CREATE TABLE agent_runs (
    namespace   text        NOT NULL,
    agent       text        NOT NULL,
    due_work_id bigint      NOT NULL,
    attempt     integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended       boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (namespace, agent, due_work_id, attempt)
);
CREATE INDEX agent_runs_window ON agent_runs (namespace, agent, started_at);

-- Occurrences that had to wait for their agent's budget, counted once per wait (not once
-- per re-check), for the Agent's status.
ALTER TABLE agents ADD COLUMN budget_waits bigint NOT NULL DEFAULT 0;

-- Why a queued occurrence is waiting (NULL: it is not): e.g. "budget: Agent default/assistant
-- has 2 of 2 concurrentRuns going". Cleared when the occurrence is admitted.
ALTER TABLE due_work ADD COLUMN waiting_reason text;
