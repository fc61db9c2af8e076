-- Projections of the McpServer and Agent resources the workers need at run time: which MCP
-- servers exist (spec with Secret references only, never values) with their discovered
-- tools, and each Agent's scopes. Written by the operator, read by workers.

CREATE TABLE mcp_servers (
    namespace   text        NOT NULL,
    name        text        NOT NULL,
    generation  bigint      NOT NULL,
    spec        jsonb       NOT NULL,
    tools       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    ready       boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
);

CREATE TABLE agents (
    namespace   text        NOT NULL,
    name        text        NOT NULL,
    generation  bigint      NOT NULL,
    spec        jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
);
