//! Agent memory through the gateway (`state_get`, `state_put`, `state_delete`, `state_list`;
//! REST under `/v1/state`): the store's key-value state (`ordinaut_store::state`) under API
//! scopes.
//!
//! Who may touch which key, in the caller's namespace:
//! * `state:read` / `state:write`: every key of the Agent's own (`agent:<self>`).
//! * `state:read:<glob>` / `state:write:<glob>`: the keys the glob matches. For the Agent's
//!   own keys the glob is matched against the key (`state:write:cursors/*`); for another
//!   owner's, against `<owner>/<key>` (`state:read:agent:planner/*`, `state:read:task:report/*`).
//!   Bare `state:read` never reaches another owner's keys.
//! * The admin: every key of every namespace (it names `owner`).
//!
//! Successful writes are audited by the store in their transaction (actor, key, old and new
//! version, correlation id); refusals are audited here.

use std::time::Duration;

use ordinaut_api::agent::api_scope;
use ordinaut_store::{StateError, StateOwner, StatePut, StateQuery, StateRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Call, Ops, limit};
use crate::auth::Identity;
use crate::problem::OpError;

/// Names a key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateKeyInput {
    /// The key: letters, digits, `.`, `_`, `-` and `/`, e.g. `cursors/inbox`.
    pub key: String,
    /// Whose key: `agent:<name>` or `task:<name>`. Agents default to their own keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Agents act in their own namespace and may leave it out; the admin defaults to
    /// `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Writes a key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatePutInput {
    /// The key: letters, digits, `.`, `_`, `-` and `/`, e.g. `cursors/inbox`.
    pub key: String,
    /// Any JSON value (at most 64 KiB).
    pub value: Value,
    /// Compare-and-set: write only if the key is at this version (from `state_get`); 0
    /// writes only if the key is missing. Without it the write is unconditional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_version: Option<i64>,
    /// The key expires this long after the write (`30m`, `7d`); without it, never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Whose key: `agent:<name>` or `task:<name>`. Agents default to their own keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Body of `PUT /v1/state/{namespace}/{owner}/{key}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatePutBody {
    /// Any JSON value (at most 64 KiB).
    pub value: Value,
    /// Compare-and-set: write only at this version; 0: only if missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_version: Option<i64>,
    /// Expire this long after the write (`30m`, `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Deletes a key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateDeleteInput {
    pub key: String,
    /// Delete only if the key is at this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `?ifVersion=` of a REST delete.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IfVersionQuery {
    pub if_version: Option<i64>,
}

/// Which keys to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateListInput {
    /// Only keys starting with this, e.g. `cursors/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Whose keys. Agents default to their own; the admin lists every owner's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// At most this many (1 to 500, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A key with its value.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateItem {
    pub namespace: String,
    /// `agent:<name>` or `task:<name>`.
    pub owner: String,
    pub key: String,
    pub value: Value,
    /// 1 when first written, one more per write; pass it as `ifVersion` to write it next.
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Who wrote it last (`agent:team/bot`, `task:team/report`, `cli:alice`).
    pub updated_by: String,
}

/// A page of keys.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateList {
    pub items: Vec<StateItem>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What a delete did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateDeleted {
    pub namespace: String,
    pub owner: String,
    pub key: String,
    /// `false` when the key was already missing.
    pub deleted: bool,
    /// The version the delete made (a re-created key continues after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

fn item(e: ordinaut_store::StateEntry) -> StateItem {
    StateItem {
        namespace: e.namespace,
        owner: e.owner,
        key: e.key,
        value: e.value,
        version: e.version,
        expires_at: e.expires_at,
        updated_at: e.updated_at,
        updated_by: e.updated_by,
    }
}

fn state_error(e: StateError) -> OpError {
    match e {
        StateError::InvalidKey { .. } => OpError::invalid("key", e.to_string()),
        StateError::InvalidOwner { .. } => OpError::invalid("owner", e.to_string()),
        StateError::ValueTooLarge { .. } | StateError::NulInValue { .. } => {
            OpError::invalid("value", e.to_string())
        }
        StateError::InvalidVersion(_) => OpError::invalid("ifVersion", e.to_string()),
        StateError::InvalidTtl => OpError::invalid("ttl", e.to_string()),
        StateError::Conflict { .. } | StateError::TooManyKeys { .. } => {
            OpError::Conflict(e.to_string())
        }
        StateError::Store(s) => s.into(),
    }
}

/// Whether `who` may `scope` (`state:read` / `state:write`) the key `at` (see the module
/// doc). The admin may do anything.
pub fn state_allowed(who: &Identity, scope: &str, at: &StateRef) -> bool {
    let Some((_, me)) = who.agent_ref() else {
        return true;
    };
    let own = at.owner == StateOwner::Agent(me.to_string());
    let target = if own {
        at.key.clone()
    } else {
        format!("{}/{}", at.owner, at.key)
    };
    who.scopes.iter().any(|s| {
        (own && s == scope)
            || s.strip_prefix(scope)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|glob| ordinaut_tools::scope::glob_match(glob, &target))
    })
}

fn refuse(call: &Call, scope: &str, at: &StateRef) -> OpError {
    let verb = if scope == api_scope::STATE_WRITE {
        "write"
    } else {
        "read"
    };
    OpError::Forbidden(format!(
        "{} may not {verb} key `{}` of {} in `{}`: add `{scope}` (its own keys) or \
         `{scope}:<glob>` (e.g. `{scope}:{}/*` for another owner's) to the Agent's \
         spec.apiScopes",
        call.who.actor(),
        at.key,
        at.owner,
        at.namespace,
        at.owner,
    ))
}

fn ttl(text: Option<&str>) -> Result<Option<Duration>, OpError> {
    text.map(|t| {
        ordinaut_schedule::duration::parse_duration(t)
            .map_err(|e| OpError::invalid("ttl", format!("{e} (e.g. `30m`, `7d`)")))
    })
    .transpose()
}

impl Ops {
    /// The key a call names, its owner defaulting to the calling Agent.
    fn state_ref(
        &self,
        call: &Call,
        namespace: Option<&str>,
        owner: Option<&str>,
        key: &str,
    ) -> Result<StateRef, OpError> {
        let namespace = self.namespace(call, namespace)?;
        let owner = match (owner, call.who.agent_ref()) {
            (Some(o), _) => StateOwner::parse(o).map_err(state_error)?,
            (None, Some((_, me))) => StateOwner::Agent(me.to_string()),
            (None, None) => {
                return Err(OpError::invalid(
                    "owner",
                    "the admin names whose key: `agent:<name>` or `task:<name>`",
                ));
            }
        };
        Ok(StateRef::new(&namespace, owner, key))
    }

    /// Resolves the key and checks the caller's scope on it.
    fn state_target(
        &self,
        call: &Call,
        scope: &str,
        (namespace, owner, key): (Option<&str>, Option<&str>, &str),
    ) -> Result<StateRef, OpError> {
        call.who.require(scope)?;
        let at = self.state_ref(call, namespace, owner, key)?;
        if state_allowed(&call.who, scope, &at) {
            Ok(at)
        } else {
            Err(refuse(call, scope, &at))
        }
    }

    /// A key's value and version (404 when missing).
    pub async fn state_get(&self, call: &Call, input: StateKeyInput) -> Result<StateItem, OpError> {
        let target = (
            input.namespace.as_deref(),
            input.owner.as_deref(),
            input.key.as_str(),
        );
        let at = self.state_target(call, api_scope::STATE_READ, target)?;
        match self.store.state_get(&at).await.map_err(state_error)? {
            Some(e) => Ok(item(e)),
            None => Err(OpError::NotFound(format!(
                "no key `{}` of {} in `{}` (never written, deleted or expired); state_put \
                 with ifVersion 0 creates it",
                at.key, at.owner, at.namespace
            ))),
        }
    }

    /// Writes a key, compare-and-set with `ifVersion`.
    pub async fn state_put(&self, call: &Call, input: StatePutInput) -> Result<StateItem, OpError> {
        let subject = input.key.clone();
        let result = async {
            let target = (
                input.namespace.as_deref(),
                input.owner.as_deref(),
                input.key.as_str(),
            );
            let at = self.state_target(call, api_scope::STATE_WRITE, target)?;
            let actor = call.who.actor();
            let put = StatePut {
                at: &at,
                value: &input.value,
                if_version: input.if_version,
                ttl: ttl(input.ttl.as_deref())?,
                actor: &actor,
                correlation_id: Some(&call.correlation_id),
            };
            self.store.state_put(&put).await.map_err(state_error)
        }
        .await;
        self.audit_refusal(
            call,
            "state.put",
            input.namespace.as_deref(),
            &subject,
            &result,
        )
        .await;
        Ok(item(result?))
    }

    /// Deletes a key (`deleted: false` when it was missing).
    pub async fn state_delete(
        &self,
        call: &Call,
        input: StateDeleteInput,
    ) -> Result<StateDeleted, OpError> {
        let result = async {
            let target = (
                input.namespace.as_deref(),
                input.owner.as_deref(),
                input.key.as_str(),
            );
            let at = self.state_target(call, api_scope::STATE_WRITE, target)?;
            let actor = call.who.actor();
            let version = self
                .store
                .state_delete(&at, input.if_version, &actor, Some(&call.correlation_id))
                .await
                .map_err(state_error)?;
            Ok(StateDeleted {
                namespace: at.namespace,
                owner: at.owner.to_string(),
                key: at.key,
                deleted: version.is_some(),
                version,
            })
        }
        .await;
        let ns = input.namespace.as_deref();
        self.audit_refusal(call, "state.delete", ns, &input.key, &result)
            .await;
        result
    }

    /// Keys by owner and key, those the caller may read. The page's `nextCursor` is the last
    /// key returned, so it never names a key the caller may not read.
    pub async fn state_list(
        &self,
        call: &Call,
        input: StateListInput,
    ) -> Result<StateList, OpError> {
        call.who.require(api_scope::STATE_READ)?;
        let limit = limit(input.limit)?;
        let namespace = self.namespace(call, input.namespace.as_deref())?;
        let owner = match (&input.owner, call.who.agent_ref()) {
            (Some(o), _) => Some(StateOwner::parse(o).map_err(state_error)?),
            (None, Some((_, me))) => Some(StateOwner::Agent(me.to_string())),
            (None, None) => None,
        };
        for (field, text) in [("prefix", &input.prefix), ("cursor", &input.cursor)] {
            if text.as_deref().is_some_and(|t| t.contains('\0')) {
                return Err(OpError::invalid(field, "contains a NUL character"));
            }
        }
        let after = match &input.cursor {
            None => None,
            Some(c) => Some(
                c.split_once('\n')
                    .map(|(o, k)| (o.to_string(), k.to_string()))
                    .ok_or_else(|| {
                        OpError::invalid(
                            "cursor",
                            "pass `nextCursor` of the previous page unchanged",
                        )
                    })?,
            ),
        };
        let query = StateQuery {
            namespace,
            owner,
            prefix: input.prefix.clone(),
            after,
            limit: limit + 1,
        };
        let page = usize::try_from(limit).unwrap_or(usize::MAX);
        let (rows, more) = self.readable_rows(&call.who, query, page).await?;
        let next_cursor = more
            .then(|| rows.last().map(|r| format!("{}\n{}", r.owner, r.key)))
            .flatten();
        Ok(StateList {
            items: rows.into_iter().map(item).collect(),
            next_cursor,
        })
    }

    /// The first `page` rows of `query` that `who` may read, and whether a readable row
    /// follows them. Rows it may not read are skipped, reading on until the page is full
    /// (an owner holds at most 10,000 keys, so this ends).
    async fn readable_rows(
        &self,
        who: &Identity,
        mut query: StateQuery,
        page: usize,
    ) -> Result<(Vec<ordinaut_store::StateEntry>, bool), OpError> {
        let readable = |e: &ordinaut_store::StateEntry| {
            StateOwner::parse(&e.owner).is_ok_and(|o| {
                let at = StateRef::new(&e.namespace, o, &e.key);
                state_allowed(who, api_scope::STATE_READ, &at)
            })
        };
        let mut out = Vec::new();
        loop {
            let rows = self.store.state_list(&query).await.map_err(state_error)?;
            let last_round = usize::try_from(query.limit).is_ok_and(|l| rows.len() < l);
            if let Some(last) = rows.last() {
                query.after = Some((last.owner.clone(), last.key.clone()));
            }
            out.extend(rows.into_iter().filter(|e| readable(e)));
            if out.len() > page {
                out.truncate(page);
                return Ok((out, true));
            }
            if last_round {
                return Ok((out, false));
            }
            // Skipped rows: read on in larger steps.
            query.limit = i64::from(super::MAX_LIMIT) + 1;
        }
    }

    /// Audits a refused state write (successful ones are audited by the store, in their
    /// transaction).
    async fn audit_refusal<T>(
        &self,
        call: &Call,
        action: &str,
        namespace: Option<&str>,
        key: &str,
        result: &Result<T, OpError>,
    ) {
        if let Err(e) = result {
            let ns = self.target_namespace(call, namespace);
            self.audit(call, action, (&ns, key), Err(e)).await;
        }
    }
}
