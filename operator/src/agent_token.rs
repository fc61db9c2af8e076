//! An Agent is Ready only when the Secret holding its gateway token exists (read through the
//! context's secret source: the Kubernetes API in a cluster, the secrets folder in
//! `ordinaut dev`). An Agent without `tokenSecretRef` stays Ready: its Tasks run, it just
//! cannot call the gateway.

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
