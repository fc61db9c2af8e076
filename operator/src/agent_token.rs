//! An Agent's Ready condition beyond its spec. It is Ready only when the Secret holding its
//! gateway token exists (read through the context's secret source: the Kubernetes API in a
//! cluster, the secrets folder in `ordinaut dev`); an Agent without `tokenSecretRef` stays
//! Ready (its Tasks run, it just cannot call the gateway). A Ready Agent with budgets says
//! in its message how much of them is in use and how many occurrences have waited.
use crate::reconcile::Context;
use crate::validate::Problem;
use ordinaut_api::AgentSpec;
use ordinaut_api::constants::reason;

/// Why the Agent's token Secret makes it not Ready, if it does. A Secret that cannot be read
/// (the API server unreachable) counts too; the Agent is checked again at its next reconcile.
pub async fn token_problem(ctx: &Context, namespace: &str, spec: &AgentSpec) -> Option<Problem> {
    let r = spec.token_secret_ref.as_ref()?;
    let message = match ctx.secrets.get(namespace, &r.name, &r.key).await {
        Ok(Some(token)) if !token.trim().is_empty() => return None,
        Ok(Some(_)) => format!(
            "key `{}` of Secret `{}` in namespace `{namespace}` is empty; put the agent's token there \
             (e.g. kubectl create secret generic {} --from-literal={}=\"$(openssl rand -hex 32)\"). \
             Its Tasks still run; the gateway refuses the agent until then",
            r.key, r.name, r.name, r.key
        ),
        Ok(None) => format!(
            "Secret `{}` with key `{}` does not exist in namespace `{namespace}`; create it \
             (kubectl create secret generic {} --from-literal={}=\"$(openssl rand -hex 32)\") or fix \
             spec.tokenSecretRef. Its Tasks still run; the gateway refuses the agent until then",
            r.name, r.key, r.name, r.key
        ),
        Err(e) => format!("{e}; retrying at the next reconcile"),
    };
    Some(Problem {
        path: "spec.tokenSecretRef".into(),
        message,
        reason: reason::TOKEN_SECRET_NOT_FOUND,
    })
}

/// The Ready message of a valid Agent with budgets: its budget use now and how many
/// occurrences have waited for it (from the workers' records in PostgreSQL). `None` without
/// budgets, or when the counts cannot be read (the plain message is used then).
pub async fn budget_summary(
    ctx: &Context,
    namespace: &str,
    name: &str,
    spec: &AgentSpec,
) -> Option<String> {
    let budgets = spec.budgets?;
    if budgets.concurrent_runs.is_none() && budgets.runs_per_hour.is_none() {
        return None;
    }
    let (active, in_hour, waits) = match ctx.store.agent_budget_usage(namespace, name).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(namespace, agent = name, error = %e, "reading the Agent's budget use failed");
            return None;
        }
    };
    let mut parts = Vec::new();
    if let Some(c) = budgets.concurrent_runs {
        parts.push(format!("{active} of {c} concurrentRuns going"));
    }
    if let Some(h) = budgets.runs_per_hour {
        parts.push(format!(
            "{in_hour} of {h} runsPerHour started in the last hour"
        ));
    }
    Some(format!(
        "the Agent is valid; budgets: {}; {waits} occurrence(s) have waited for a budget (they wait, they are not skipped)",
        parts.join(", ")
    ))
}
