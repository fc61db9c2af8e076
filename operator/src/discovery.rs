//! McpServer discovery: connect to the server the spec describes (Secret references resolved
//! through the context's secret source), list its tools, write them to the status with
//! `Ready`, and project the server for the workers.
//!
//! In a cluster a stdio server with an image runs in a pod of its own ([`crate::mcp_pod`]):
//! the operator applies its Deployment and Service first, waits for a ready pod, then
//! discovers (and projects, for the workers) the server at its Service URL, over streamable
//! HTTP. Its Secrets are the pod's environment; the operator reads none of them.

use crate::mcp_pod;
use crate::reconcile::{Context, ReconcileError, key};
use crate::seam::{Kind, Notice, NoticeType, ObjectKey};
use crate::status::{ConditionUpdate, Progress, is_news, kstatus_conditions, ready_of};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use ordinaut_api::constants::{condition, reason};
use ordinaut_api::{DiscoveredTool, McpPodStatus, McpServer, McpServerSpec};
use serde_json::json;

/// Why discovery did not list tools: the condition reason, the message, and whether it is
/// a pod still starting (checked again shortly) rather than a failure (backoff).
struct Failure {
    reason: &'static str,
    message: String,
    waiting: bool,
}

/// Discovers `m`'s tools and records the outcome. `Ok(true)` when the server answered.
pub async fn discover_and_project(
    ctx: &Context,
    m: &McpServer,
    old: &[Condition],
) -> Result<bool, ReconcileError> {
    let k = key(Kind::McpServer, &m.metadata);
    let (spec, pod, outcome) = match prepare_pod(ctx, m, &k).await? {
        Some(Err(failure)) => (m.spec.clone(), None, Err(failure)),
        Some(Ok(pod)) if !pod.ready => {
            let message = format!(
                "waiting for Deployment {}/{}: {} of {} pods ready",
                k.namespace, pod.deployment, pod.ready_replicas, pod.replicas
            );
            let failure = Failure {
                reason: reason::POD_NOT_READY,
                message,
                waiting: true,
            };
            (m.spec.clone(), Some(pod), Err(failure))
        }
        Some(Ok(pod)) => {
            let spec = mcp_pod::http_spec(&k.namespace, &k.name, &m.spec);
            let outcome = discover(ctx, &k, &spec).await;
            (spec, Some(pod), outcome)
        }
        None => {
            let outcome = discover(ctx, &k, &m.spec).await;
            (m.spec.clone(), None, outcome)
        }
    };
    record(ctx, m, old, &k, &spec, pod, outcome).await
}

/// In a cluster, a stdio server with an image: its Deployment and Service, applied.
/// `None` when the server is not one (a pod left from an earlier spec is removed).
async fn prepare_pod(
    ctx: &Context,
    m: &McpServer,
    k: &ObjectKey,
) -> Result<Option<Result<McpPodStatus, Failure>>, ReconcileError> {
    let Some(pods) = &ctx.mcp_pods else {
        return Ok(None);
    };
    if !ctx.still_leads(k, "pod") {
        return Ok(None);
    }
    if mcp_pod::pod_transport(&m.spec).is_none() {
        if m.status.as_ref().is_some_and(|s| s.pod.is_some()) {
            pods.remove(&k.namespace, &k.name).await?;
        }
        return Ok(None);
    }
    Ok(Some(pods.apply(m).await.map_err(|e| Failure {
        reason: reason::POD_APPLY_FAILED,
        message: e.to_string(),
        waiting: false,
    })))
}

/// Removes the pod of McpServer `k` when the context runs pods (idempotent).
pub(crate) async fn remove_pod(ctx: &Context, k: &ObjectKey) -> Result<(), ReconcileError> {
    if let Some(pods) = &ctx.mcp_pods
        && ctx.still_leads(k, "pod")
    {
        pods.remove(&k.namespace, &k.name).await?;
    }
    Ok(())
}

async fn discover(
    ctx: &Context,
    k: &ObjectKey,
    spec: &McpServerSpec,
) -> Result<Vec<DiscoveredTool>, Failure> {
    let failure = |reason, message: String| Failure {
        reason,
        message,
        waiting: false,
    };
    match ordinaut_tools::secrets::resolve_server(&k.namespace, spec, ctx.secrets.as_ref()).await {
        Err(e) => Err(failure(reason::SECRET_NOT_FOUND, e.to_string())),
        Ok(server) => ordinaut_tools::mcp::discover(&server, ctx.discovery_timeout)
            .await
            .map_err(|e| failure(reason::DISCOVERY_FAILED, e.to_string())),
    }
}

/// Writes the status (Ready, tools, pod), one Event on a change, and the projection.
async fn record(
    ctx: &Context,
    m: &McpServer,
    old: &[Condition],
    k: &ObjectKey,
    spec: &McpServerSpec,
    pod: Option<McpPodStatus>,
    outcome: Result<Vec<DiscoveredTool>, Failure>,
) -> Result<bool, ReconcileError> {
    let now = ctx.clock.now();
    let generation = m.metadata.generation.unwrap_or(1);
    let previous_tools = m
        .status
        .as_ref()
        .map(|s| s.tools.clone())
        .unwrap_or_default();
    let (update, tools, ready) = match &outcome {
        Ok(tools) => (
            ConditionUpdate {
                type_: condition::READY,
                status: true,
                reason: reason::DISCOVERED.into(),
                message: format!("{} tools discovered", tools.len()),
            },
            tools.clone(),
            true,
        ),
        Err(f) => (
            ConditionUpdate {
                type_: condition::READY,
                status: false,
                reason: f.reason.into(),
                message: if f.waiting {
                    f.message.clone()
                } else {
                    format!("{}; retrying with backoff", f.message)
                },
            },
            previous_tools,
            false,
        ),
    };
    if is_news(ready_of(old), &update) {
        let notice = Notice {
            type_: if update.status {
                NoticeType::Normal
            } else {
                NoticeType::Warning
            },
            reason: update.reason.clone(),
            message: update.message.clone(),
            action: "Discover".into(),
        };
        ctx.sink.notice(k, &notice).await?;
    }
    // A server that does not answer (or whose Secret is missing, or whose pod is starting)
    // is retried: the operator is still working on it, so kstatus reads it as in progress.
    let progress = if ready {
        Progress::Done
    } else {
        Progress::Reconciling
    };
    let conditions = kstatus_conditions(old, &update, progress, m.metadata.generation, now);
    let mut status =
        json!({ "conditions": conditions, "tools": tools, "observedGeneration": generation });
    if let Some(pod) = &pod {
        status["pod"] = json!(pod);
    }
    if ready {
        status["lastDiscoveryTime"] = json!(now);
    } else if let Some(t) = m.status.as_ref().and_then(|s| s.last_discovery_time) {
        status["lastDiscoveryTime"] = json!(t);
    }
    // Projected (in a pod: its Service URL) before the status may say Discovered.
    let spec = serde_json::to_value(spec).unwrap_or_default();
    let tools_json = serde_json::to_value(&tools).unwrap_or_default();
    ctx.store
        .upsert_mcp_server(&k.namespace, &k.name, generation, &spec, &tools_json, ready)
        .await
        .map_err(|source| ReconcileError::Store {
            namespace: k.namespace.clone(),
            name: k.name.clone(),
            source,
        })?;
    ctx.leader_status(k, status).await?;
    let (namespace, name) = (k.namespace.clone(), k.name.clone());
    match outcome {
        Ok(_) => Ok(true),
        Err(f) if f.waiting => Err(ReconcileError::PodNotReady {
            namespace,
            name,
            message: f.message,
        }),
        Err(f) => Err(ReconcileError::Discovery {
            namespace,
            name,
            message: f.message,
        }),
    }
}
