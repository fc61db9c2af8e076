//! Where Secret values referenced by McpServers (`valueFrom.secretKeyRef`) come from: the
//! Kubernetes API in a cluster, a directory laid out like mounted Secrets elsewhere. Values
//! are read when a server is (re)started and never logged or stored.

use crate::mcp::{McpError, ResolvedServer};
use async_trait::async_trait;
use ordinaut_api::McpServerSpec;
use std::collections::HashMap;
use std::path::PathBuf;

/// Reads one key of one Secret.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// `Ok(None)` when the Secret or the key does not exist; `Err` when it could not be read.
    async fn get(&self, namespace: &str, name: &str, key: &str) -> Result<Option<String>, String>;
}

/// No Secrets available: every reference is reported as missing.
pub struct NoSecrets;

#[async_trait]
impl SecretSource for NoSecrets {
    async fn get(&self, _: &str, _: &str, _: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
}

/// Secrets as files `<root>/<namespace>/<secret>/<key>` (the layout of mounted Secrets, one
/// folder per namespace), for `ordinaut dev` and workers that mount their Secrets.
pub struct DirSecrets {
    root: PathBuf,
}

impl DirSecrets {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

fn safe_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\'])
}

#[async_trait]
impl SecretSource for DirSecrets {
    async fn get(&self, namespace: &str, name: &str, key: &str) -> Result<Option<String>, String> {
        if ![namespace, name, key].iter().all(|c| safe_component(c)) {
            return Err("invalid namespace, Secret name or key".into());
        }
        let path = self.root.join(namespace).join(name).join(key);
        match tokio::fs::read_to_string(&path).await {
            Ok(v) => Ok(Some(v.trim_end_matches(['\n', '\r']).to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }
}

/// Resolves an McpServer spec of `namespace`: fetches every referenced Secret key from
/// `source`, then builds the server. A missing Secret or key is an error naming the field.
pub async fn resolve_server(
    namespace: &str,
    spec: &McpServerSpec,
    source: &dyn SecretSource,
) -> Result<ResolvedServer, McpError> {
    let mut refs = Vec::new();
    if let Some(s) = &spec.transport.stdio {
        refs.extend(
            s.env
                .iter()
                .filter_map(|e| e.value_from.as_ref().map(|f| &f.secret_key_ref)),
        );
    }
    if let Some(h) = &spec.transport.http {
        refs.extend(
            h.headers
                .iter()
                .filter_map(|e| e.value_from.as_ref().map(|f| &f.secret_key_ref)),
        );
    }
    let mut values: HashMap<(String, String), Result<String, String>> = HashMap::new();
    for r in refs {
        let k = (r.name.clone(), r.key.clone());
        if values.contains_key(&k) {
            continue;
        }
        let v = match source.get(namespace, &r.name, &r.key).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(format!(
                "Secret `{}` or its key `{}` does not exist in namespace `{namespace}`",
                r.name, r.key
            )),
            Err(e) => Err(e),
        };
        values.insert(k, v);
    }
    ResolvedServer::from_spec(spec, |r| {
        values
            .get(&(r.name.clone(), r.key.clone()))
            .cloned()
            .unwrap_or_else(|| Err("not fetched".into()))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn dir_secrets_read_mounted_layout_and_refuse_path_tricks() {
        let dir = std::env::temp_dir().join(format!("ordinaut-secrets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("default/weather")).unwrap();
        std::fs::write(dir.join("default/weather/token"), "abc123\n").unwrap();
        let s = DirSecrets::new(&dir);
        assert_eq!(
            s.get("default", "weather", "token")
                .await
                .unwrap()
                .as_deref(),
            Some("abc123")
        );
        assert_eq!(s.get("default", "weather", "missing").await.unwrap(), None);
        assert!(s.get("default", "..", "token").await.is_err());
        assert!(s.get("../etc", "x", "y").await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn resolving_a_spec_names_the_missing_secret() {
        let spec: McpServerSpec = serde_yaml::from_str(
            "transport:\n  stdio:\n    command: x\n    env:\n      - name: TOKEN\n        valueFrom: {secretKeyRef: {name: creds, key: token}}\n",
        )
        .unwrap();
        let err = resolve_server("default", &spec, &NoSecrets)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("creds") && msg.contains("token") && msg.contains("env"),
            "{msg}"
        );
    }
}
