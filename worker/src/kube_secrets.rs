//! `${secrets.<secret>.<key>}` read through the Kubernetes API (`--secrets-from-api`), for
//! workers that do not mount their Secrets: one `get` of the named Secret in the Task's own
//! namespace (never list or watch, never another namespace: the caller passes the Task's),
//! kept in memory for a short time so a Task running every second does not read it every
//! second. Values are returned to the caller only, never logged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use ordinaut_tools::secrets::SecretSource;

/// How long a Secret read through the API is used before it is read again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// A Secret's keys and raw values, or `None` when it does not exist.
type Entry = (Instant, Option<BTreeMap<String, Vec<u8>>>);

/// Secrets read with `get` through the API, cached per (namespace, name) for `ttl`.
pub struct KubeSecrets {
    client: Client,
    ttl: Duration,
    cache: Mutex<HashMap<(String, String), Entry>>,
}

impl KubeSecrets {
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, namespace: &str, name: &str) -> Option<Option<BTreeMap<String, Vec<u8>>>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (at, data) = cache.get(&(namespace.to_string(), name.to_string()))?;
        (at.elapsed() < self.ttl).then(|| data.clone())
    }

    async fn fetch(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        let api = Api::<Secret>::namespaced(self.client.clone(), namespace);
        let secret = api.get_opt(name).await.map_err(|e| match e {
            kube::Error::Api(s) if s.code == 403 => format!(
                "the worker may not read Secret {name} in namespace {namespace}: grant its \
                 service account `get` on secrets in {namespace} (a Role and RoleBinding there), \
                 or mount the Secret and use --secrets-dir instead"
            ),
            e => format!("reading Secret {namespace}/{name} through the Kubernetes API: {e}"),
        })?;
        let data = secret.map(|s| {
            let mut out: BTreeMap<String, Vec<u8>> = s
                .string_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            out.extend(
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            out
        });
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Entries of Secrets no Task reads any more go with the next expiry sweep.
        cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
        cache.insert(
            (namespace.to_string(), name.to_string()),
            (Instant::now(), data.clone()),
        );
        Ok(data)
    }
}

#[async_trait]
impl SecretSource for KubeSecrets {
    async fn get(&self, namespace: &str, name: &str, key: &str) -> Result<Option<String>, String> {
        let data = match self.cached(namespace, name) {
            Some(data) => data,
            None => self.fetch(namespace, name).await?,
        };
        let Some(value) = data.as_ref().and_then(|d| d.get(key)) else {
            return Ok(None);
        };
        String::from_utf8(value.clone())
            .map(Some)
            .map_err(|_| format!("key `{key}` of Secret {namespace}/{name} is not UTF-8 text"))
    }
}
