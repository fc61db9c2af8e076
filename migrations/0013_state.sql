-- Agent memory: durable key-value state that agents and pipelines share across runs and
-- sessions (crates/store/src/state.rs has the rules; README "Agent memory" the user's view).
--
-- A key belongs to an owner in a namespace: an Agent (`agent:<name>`) or a Task
-- (`task:<name>`). Values are JSON. Each key has a version, 1 on creation and one more per
-- write; writers compare-and-set on it (`ifVersion`).
--
-- A deleted or expired key stays as a tombstone (value NULL) so its version keeps counting:
-- a writer holding version 3 of a key that was deleted and created again can never mistake
-- the new key's version for its own. Tombstones are removed a week after they were written
-- (Store::prune_state), with their history.
CREATE TABLE state_entries (
    namespace   text        NOT NULL,
    owner       text        NOT NULL,
    key         text        NOT NULL,
    -- NULL: deleted or expired (a tombstone).
    value       jsonb,
    version     bigint      NOT NULL CHECK (version >= 1),
    -- After this instant the key reads as missing; the pruner turns it into a tombstone.
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- The actor of the last write (`agent:team/bot`, `task team/report`, `cli:alice`, `expiry`).
    updated_by  text        NOT NULL,
    PRIMARY KEY (namespace, owner, key)
);
-- The pruner's two scans: live keys past their TTL, and old tombstones.
CREATE INDEX state_entries_expiry ON state_entries (expires_at)
    WHERE expires_at IS NOT NULL AND value IS NOT NULL;
CREATE INDEX state_entries_tombstones ON state_entries (updated_at) WHERE value IS NULL;

-- The last few versions of each key (state::HISTORY_VERSIONS), the current one included;
-- a delete or an expiry is a version with a NULL value.
CREATE TABLE state_history (
    namespace   text        NOT NULL,
    owner       text        NOT NULL,
    key         text        NOT NULL,
    version     bigint      NOT NULL,
    value       jsonb,
    op          text        NOT NULL CHECK (op IN ('put', 'delete', 'expire')),
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    PRIMARY KEY (namespace, owner, key, version)
);
