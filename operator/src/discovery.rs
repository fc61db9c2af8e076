//! McpServer discovery: connect to the server the spec describes (Secret references resolved
//! through the context's secret source), list its tools, write them to the status with
//! `Ready`, and project the server for the workers.

use crate::reconcile::{Context, ReconcileError, key};
use crate::seam::{Kind, Notice, NoticeType};
use crate::status::{ConditionUpdate, Progress, is_news, kstatus_conditions, ready_of};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use ordinaut_api::McpServer;
use ordinaut_api::constants::{condition, reason};
use serde_json::json;

/// Discovers `m`'s tools and records the outcome. `Ok(true)` when the server answered.
pub async fn discover_and_project(
    ctx: &Context,
    m: &McpServer,
    old: &[Condition],
) -> Result<bool, ReconcileError> {
    let k = key(Kind::McpServer, &m.metadata);
    let now = ctx.clock.now();
    let generation = m.metadata.generation.unwrap_or(1);
    let previous_tools = m
        .status
        .as_ref()
        .map(|s| s.tools.clone())
        .unwrap_or_default();
    let outcome =
        match ordinaut_tools::secrets::resolve_server(&k.namespace, &m.spec, ctx.secrets.as_ref())
            .await
        {
            Err(e) => Err((reason::SECRET_NOT_FOUND, e.to_string())),
            Ok(server) => ordinaut_tools::mcp::discover(&server, ctx.discovery_timeout)
                .await
                .map_err(|e| (reason::DISCOVERY_FAILED, e.to_string())),
        };
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
        Err((why, message)) => (
            ConditionUpdate {
                type_: condition::READY,
                status: false,
                reason: (*why).into(),
                message: format!("{message}; retrying with backoff"),
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
        ctx.sink.notice(&k, &notice).await?;
    }
    // A server that does not answer (or whose Secret is missing) is retried with backoff:
    // the operator is still working on it, so kstatus reads it as in progress.
    let progress = if ready {
        Progress::Done
    } else {
        Progress::Reconciling
    };
    let conditions = kstatus_conditions(old, &update, progress, m.metadata.generation, now);
    let mut status =
        json!({ "conditions": conditions, "tools": tools, "observedGeneration": generation });
    if ready {
        status["lastDiscoveryTime"] = json!(now);
    } else if let Some(t) = m.status.as_ref().and_then(|s| s.last_discovery_time) {
        status["lastDiscoveryTime"] = json!(t);
    }
    ctx.sink.status(&k, status).await?;
    let spec = serde_json::to_value(&m.spec).unwrap_or_default();
    let tools_json = serde_json::to_value(&tools).unwrap_or_default();
    ctx.store
        .upsert_mcp_server(&k.namespace, &k.name, generation, &spec, &tools_json, ready)
        .await
        .map_err(|source| ReconcileError::Store {
            namespace: k.namespace.clone(),
            name: k.name.clone(),
            source,
        })?;
    match outcome {
        Ok(_) => Ok(true),
        Err((_, message)) => Err(ReconcileError::Discovery {
            namespace: k.namespace,
            name: k.name,
            message,
        }),
    }
}
