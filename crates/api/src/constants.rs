//! Names shared by the operator, the worker, the gateway and the CLI: API group, finalizer,
//! annotations, field manager, condition types and reasons, run outcomes.

/// API group of every Ordinaut custom resource.
pub const GROUP: &str = "ordinaut.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Ordinaut object.
pub const API_VERSION: &str = "ordinaut.dev/v1alpha1";
/// The `kubectl get ordinaut` category every Ordinaut CRD belongs to.
pub const CATEGORY: &str = "ordinaut";

/// Finalizer the operator puts on Tasks so that their rows in PostgreSQL (projection and
/// pending occurrences) are removed before the object goes away.
pub const FINALIZER: &str = "tasks.ordinaut.dev/cleanup";
/// Finalizer the operator puts on McpServers so that, before one goes away, its projection is
/// removed from PostgreSQL and the workers stop starting and calling it.
pub const MCP_SERVER_FINALIZER: &str = "mcpservers.ordinaut.dev/cleanup";
/// Finalizer the operator puts on Agents so that, before one goes away, its projection (the
/// scopes workers check) is removed from PostgreSQL.
pub const AGENT_FINALIZER: &str = "agents.ordinaut.dev/cleanup";
/// Annotation that asks for one manual run: set it to any new value. The operator records the
/// value it handled in `status.handledRunNow` and never writes spec.
pub const RUN_NOW_ANNOTATION: &str = "ordinaut.dev/run-now";
/// Annotation that asks for a backfill: `FROM/TO`, two RFC 3339 instants (the range, both
/// included, not in the future). The operator queues the occurrences the schedule had in the
/// range (those that ran or are queued are skipped), records the value it handled in
/// `status.handledBackfill` and never writes spec; set a new value for another range.
pub const BACKFILL_ANNOTATION: &str = "ordinaut.dev/backfill";
/// Server-side apply field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "ordinaut-operator";

/// `type` of the conditions the operator sets.
pub mod condition {
    /// True when the object is valid and everything it refers to exists.
    pub const READY: &str = "Ready";
    /// True when the object cannot make progress without a change from a person (an invalid
    /// spec, a reference to an object or tool that does not exist or is not allowed). Absent
    /// otherwise (kstatus: an "abnormal-true" condition).
    pub const STALLED: &str = "Stalled";
    /// True while the operator is still working towards the spec (waiting for an McpServer's
    /// first tool discovery, retrying an unreachable server). Absent otherwise.
    pub const RECONCILING: &str = "Reconciling";
}

/// `reason` of conditions and Events (PascalCase, as Kubernetes expects).
pub mod reason {
    /// The spec passed validation and its references resolve.
    pub const VALID: &str = "Valid";
    /// The schedule is malformed, can never fire, or names an unknown timezone.
    pub const INVALID_SCHEDULE: &str = "InvalidSchedule";
    /// The pipeline (inline or referenced) is malformed: templates, conditions, steps.
    pub const INVALID_PIPELINE: &str = "InvalidPipeline";
    /// `params` do not satisfy the pipeline's params schema.
    pub const INVALID_PARAMS: &str = "InvalidParams";
    /// Any other invalid field (durations, exactly-one rules, …).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// `pipelineRef` names a Pipeline that does not exist.
    pub const PIPELINE_NOT_FOUND: &str = "PipelineNotFound";
    /// `agentRef` names an Agent that does not exist.
    pub const AGENT_NOT_FOUND: &str = "AgentNotFound";
    /// A step `uses` an McpServer that does not exist.
    pub const MCP_SERVER_NOT_FOUND: &str = "McpServerNotFound";
    /// A step `uses` a tool its McpServer does not offer.
    pub const TOOL_NOT_FOUND: &str = "ToolNotFound";
    /// A step `uses` a tool outside the Agent's scopes.
    pub const SCOPE_DENIED: &str = "ScopeDenied";
    /// A step `uses` an McpServer that has not listed its tools yet: the tool check waits
    /// for its discovery (`Reconciling=True`).
    pub const MCP_SERVER_NOT_READY: &str = "McpServerNotReady";
    /// The schedule has no occurrence left (`at` in the past, `UNTIL`/`COUNT` reached, `endAt`).
    pub const SCHEDULE_EXHAUSTED: &str = "ScheduleExhausted";
    /// The Task is suspended (`spec.suspend`).
    pub const SUSPENDED: &str = "Suspended";
    /// The Task is snoozed (`spec.snoozeUntil` in the future).
    pub const SNOOZED: &str = "Snoozed";
    /// The McpServer answered tool discovery.
    pub const DISCOVERED: &str = "Discovered";
    /// The McpServer could not be reached or did not answer tool discovery.
    pub const DISCOVERY_FAILED: &str = "DiscoveryFailed";
    /// A stdio McpServer's pod (Deployment `<name>-mcp`) has no ready pod yet.
    pub const POD_NOT_READY: &str = "PodNotReady";
    /// The operator could not create or update a stdio McpServer's Deployment or Service
    /// (most often RBAC: the chart grants them per namespace).
    pub const POD_APPLY_FAILED: &str = "PodApplyFailed";
    /// A referenced Secret or key is missing.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// The Secret (or key) an Agent's `tokenSecretRef` names is missing or empty: the Agent is
    /// not Ready and the gateway refuses it (its Tasks still run).
    pub const TOKEN_SECRET_NOT_FOUND: &str = "TokenSecretNotFound";
    /// A transient error; the operator retries with backoff.
    pub const RECONCILE_ERROR: &str = "ReconcileError";
}

/// Values of `Task.status.lastRunStatus`.
pub mod run_status {
    /// The run is queued or in progress.
    pub const RUNNING: &str = "Running";
    /// Every step succeeded or was skipped (or failed with `continueOnError`).
    pub const SUCCEEDED: &str = "Succeeded";
    /// A step failed after its retries, or the run timed out.
    pub const FAILED: &str = "Failed";
    /// The run was cancelled (`concurrencyPolicy: Replace`, or by a person).
    pub const CANCELLED: &str = "Cancelled";
    /// The occurrence was missed (outside the catch-up policy).
    pub const MISSED: &str = "Missed";
    /// The occurrence was skipped because a run was still going (`concurrencyPolicy: Forbid`).
    pub const SKIPPED: &str = "Skipped";
}
