//! Who is calling: bearer tokens mapped to an [`Identity`] (an Agent, or the admin).
//!
//! Each Agent's token is read from the Secret its `spec.tokenSecretRef` names (the
//! Kubernetes API in a cluster, the `--secrets-dir` folder in `ordinaut dev`) and kept only
//! as its SHA-256 hash, in memory. A presented token is hashed and compared with every known
//! hash in constant time; tokens never reach a log or the database. The table is refreshed
//! from the `agents` projection every few seconds, and again (at most 4 times a second) when
//! an unknown token arrives, so a new Agent can call right after its Secret exists.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ordinaut_api::AgentSpec;
use ordinaut_api::agent::api_scope;
use ordinaut_store::Store;
use ordinaut_tools::secrets::SecretSource;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::problem::OpError;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The admin identity: every scope, every namespace.
    Admin,
    /// An Agent, by namespace and name.
    Agent { namespace: String, name: String },
}

/// A caller and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub principal: Principal,
    pub scopes: BTreeSet<String>,
}

impl Identity {
    /// The admin: every scope.
    pub fn admin() -> Self {
        Self {
            principal: Principal::Admin,
            scopes: api_scope::ALL.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// An Agent with its effective API scopes.
    pub fn agent(namespace: &str, name: &str, spec: &AgentSpec) -> Self {
        Self {
            principal: Principal::Agent {
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
            scopes: spec.effective_api_scopes().into_iter().collect(),
        }
    }

    /// How the audit log names the caller: `admin` or `agent:<namespace>/<name>`.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::Admin => "admin".into(),
            Principal::Agent { namespace, name } => format!("agent:{namespace}/{name}"),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.principal == Principal::Admin
    }

    /// The Agent's namespace and name; `None` for the admin.
    pub fn agent_ref(&self) -> Option<(&str, &str)> {
        match &self.principal {
            Principal::Admin => None,
            Principal::Agent { namespace, name } => Some((namespace, name)),
        }
    }

    /// Holds `scope`, or a narrowed form of it (`state:read:<glob>`; the operation then
    /// checks the glob).
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
            || self.scopes.iter().any(|s| {
                s.strip_prefix(scope)
                    .is_some_and(|rest| rest.starts_with(':'))
            })
    }

    /// `Ok` when the caller holds `scope`, else a 403 naming the scope and where to grant it.
    pub fn require(&self, scope: &str) -> Result<(), OpError> {
        if self.has(scope) {
            return Ok(());
        }
        let held: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        Err(OpError::Forbidden(format!(
            "{} lacks the API scope `{scope}` (it holds: {}); add `{scope}` to the Agent's \
             spec.apiScopes",
            self.actor(),
            if held.is_empty() {
                "none".to_string()
            } else {
                held.join(", ")
            }
        )))
    }
}

type Hash = [u8; 32];

fn hash(token: &str) -> Hash {
    Sha256::digest(token.as_bytes()).into()
}

/// The token table.
pub struct Tokens {
    admin: Option<Hash>,
    agents: RwLock<Vec<(Hash, Identity)>>,
    store: Store,
    secrets: Arc<dyn SecretSource>,
    last_refresh: Mutex<Option<Instant>>,
    /// Held while an unknown token waits for a reload.
    reloading: Mutex<()>,
}

/// The least time between two reloads caused by unknown tokens.
pub const MIN_REFRESH_GAP: Duration = Duration::from_millis(250);

/// Why a request carries no usable identity.
fn unauthorized(message: &str) -> OpError {
    OpError::Unauthorized(message.to_string())
}

impl Tokens {
    /// A table with the admin token (if any); call [`Tokens::refresh`] to load the Agents'.
    pub fn new(store: Store, secrets: Arc<dyn SecretSource>, admin_token: Option<&str>) -> Self {
        Self {
            admin: admin_token.map(hash),
            agents: RwLock::new(Vec::new()),
            store,
            secrets,
            last_refresh: Mutex::new(None),
            reloading: Mutex::new(()),
        }
    }

    /// Reloads the Agents' token hashes. Returns how many Agents have a token.
    pub async fn refresh(&self) -> Result<usize, OpError> {
        *self.last_refresh.lock().await = Some(Instant::now());
        let mut table = Vec::new();
        for row in self.store.agents().await? {
            // Tolerant: an Agent projected by a newer operator still authenticates.
            let Ok((spec, _)) = ordinaut_api::tolerant::agent_spec_from_value(&row.spec) else {
                continue;
            };
            let Some(r) = &spec.token_secret_ref else {
                continue;
            };
            match self.secrets.get(&row.namespace, &r.name, &r.key).await {
                Ok(Some(token)) if !token.is_empty() => table.push((
                    hash(&token),
                    Identity::agent(&row.namespace, &row.name, &spec),
                )),
                Ok(_) => tracing::debug!(
                    agent = %format!("{}/{}", row.namespace, row.name),
                    secret = %r.name,
                    "the Agent's token Secret (or its key) does not exist yet"
                ),
                Err(e) => tracing::warn!(
                    agent = %format!("{}/{}", row.namespace, row.name),
                    error = %e,
                    "cannot read the Agent's token Secret"
                ),
            }
        }
        let n = table.len();
        *self.agents.write().await = table;
        Ok(n)
    }

    /// Reloads the table once at least [`MIN_REFRESH_GAP`] has passed since the last reload
    /// (waiting for it when needed); callers arriving meanwhile share that reload.
    async fn refresh_soon(&self) -> Result<(), OpError> {
        let asked = Instant::now();
        let _turn = self.reloading.lock().await;
        let last = *self.last_refresh.lock().await;
        if last.is_some_and(|t| t >= asked) {
            return Ok(()); // another caller reloaded after we asked
        }
        if let Some(t) = last {
            tokio::time::sleep(MIN_REFRESH_GAP.saturating_sub(t.elapsed())).await;
        }
        self.refresh().await.map(|_| ())
    }

    /// Refreshes every `every` until `stop`.
    pub async fn run(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        loop {
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "refreshing Agent tokens failed");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// The identity of an `Authorization` header value: 401 when it is missing, not a bearer
    /// token, or no one's token.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, OpError> {
        let Some(value) = authorization else {
            return Err(unauthorized(
                "no bearer token: send `Authorization: Bearer <token>` with the token from your \
                 Agent's token Secret",
            ));
        };
        let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Err(unauthorized(
                "the Authorization header is not a bearer token: send `Authorization: Bearer <token>`",
            ));
        };
        let presented = hash(token);
        if let Some(id) = self.lookup(&presented).await {
            return Ok(id);
        }
        // A token of an Agent created since the last refresh: reload once, no sooner than
        // MIN_REFRESH_GAP after the last reload (so unknown tokens cannot hammer the
        // database), then look again.
        self.refresh_soon().await?;
        if let Some(id) = self.lookup(&presented).await {
            return Ok(id);
        }
        Err(unauthorized(
            "the bearer token is not valid: use the token stored in your Agent's \
             spec.tokenSecretRef Secret (or the admin token)",
        ))
    }

    /// Compares with every hash (no early exit), in constant time each.
    async fn lookup(&self, presented: &Hash) -> Option<Identity> {
        let mut found = None;
        if let Some(admin) = &self.admin
            && bool::from(admin.ct_eq(presented))
        {
            found = Some(Identity::admin());
        }
        for (h, id) in self.agents.read().await.iter() {
            if bool::from(h.ct_eq(presented)) && found.is_none() {
                found = Some(id.clone());
            }
        }
        found
    }
}

/// A new random token (244 random bits from the OS: two v4 UUIDs), e.g. the dev admin token.
pub fn generate_token() -> String {
    format!(
        "ordt_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn require_names_the_missing_scope_and_where_to_grant_it() {
        let spec: AgentSpec =
            serde_json::from_value(serde_json::json!({"apiScopes": ["tasks:read"]})).unwrap();
        let id = Identity::agent("team", "bot", &spec);
        assert!(id.require("tasks:read").is_ok());
        let err = id.require("tasks:write").unwrap_err().to_string();
        assert!(err.contains("`tasks:write`"), "{err}");
        assert!(err.contains("spec.apiScopes"), "{err}");
        assert!(err.contains("agent:team/bot"), "{err}");
    }

    #[test]
    fn an_agent_without_api_scopes_gets_the_defaults() {
        let spec: AgentSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        let id = Identity::agent("team", "bot", &spec);
        for s in api_scope::DEFAULT {
            assert!(id.has(s), "{s}");
        }
        assert!(!id.has(api_scope::AUDIT_READ));
    }
}
