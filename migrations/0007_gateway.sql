-- The gateway (agents' door, MCP and REST): a correlation id on audit entries, shared with
-- the gateway's logs, and the indexes behind its lists (an agent's Tasks, its audit trail).

ALTER TABLE audit_log ADD COLUMN correlation_id text;
CREATE INDEX audit_log_correlation ON audit_log (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX audit_log_namespace ON audit_log (namespace, id DESC);

-- "The live Tasks an agent owns" (`spec.agentRef` in its namespace), listed by name.
CREATE INDEX tasks_agent ON tasks (namespace, (spec->>'agentRef'), name)
    WHERE deleted_at IS NULL;
