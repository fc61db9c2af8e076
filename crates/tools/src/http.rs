//! `http.request`: an HTTP call from a pipeline step, limited to an allow-list of hosts and
//! to the addresses the egress policy allows ([`crate::egress`]).
//!
//! Input: `method` (default `GET`), `url`, `headers` (object of strings), `body` (a string,
//! sent as is) or `json` (any JSON, sent as `application/json`), `timeout` (duration), and
//! `allowErrorStatus` (default false: a 4xx/5xx status fails the step; 5xx and 429 are
//! retryable). Output: `{"status": 200, "headers": {...}, "body": <JSON if the response is
//! JSON, else text>}`, with the values of credential headers (`Set-Cookie`, `Authorization`…)
//! replaced by `[redacted]`.
//!
//! Where a request may go: the host must match `--http-allow-hosts` (globs; `team-a=glob`
//! for one namespace's Tasks) and every address it connects to must pass the egress policy
//! (loopback, link-local, private… refused unless `--http-allow-networks` names them).
//! Redirects are followed (at most 5) and each target is checked the same way. A Task needs
//! an Agent whose scopes match `http.request` (it reaches the network), unless the worker
//! allows agent-less Tasks (`--http-allow-agentless`).

use crate::egress::{self, Cidr, EgressPolicy, NetworkRule, Refused};
use crate::scope::glob_match;
use crate::{CallContext, Tool, ToolError};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Limits for `http.request`, set by the worker's flags.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Host globs a step may reach (`api.example.com`, `*.example.com`; `host:port` to pin a
    /// port; `NAMESPACE=glob` for the Tasks of one namespace only). Empty: `http.request` is
    /// refused everywhere (secure default).
    pub allow_hosts: Vec<String>,
    /// Networks reachable although a default-denied range holds them (all namespaces or one).
    pub allow_networks: Vec<NetworkRule>,
    /// Networks refused on top of the default ranges (the cluster's pod and service CIDRs).
    pub deny_networks: Vec<Cidr>,
    /// Let Tasks without an Agent call `http.request` (the behaviour before scopes covered
    /// network built-ins).
    pub allow_agentless: bool,
    /// Timeout when the step gives none.
    pub default_timeout: Duration,
    /// Responses larger than this fail the step.
    pub max_response_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allow_hosts: Vec::new(),
            allow_networks: Vec::new(),
            deny_networks: Vec::new(),
            allow_agentless: false,
            default_timeout: Duration::from_secs(30),
            max_response_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Response headers whose values are credentials: kept out of step outputs.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "set-cookie2",
    "x-api-key",
    "x-auth-token",
    "x-amz-security-token",
    "x-csrf-token",
];

/// The placeholder that replaces a sensitive value.
pub const REDACTED: &str = "[redacted]";

/// The allow-list entries that apply to `namespace` (`None`: only the global ones).
fn hosts_for(allow_hosts: &[String], namespace: Option<&str>) -> Vec<String> {
    allow_hosts
        .iter()
        .filter_map(|entry| match entry.split_once('=') {
            Some((ns, glob)) => (Some(ns.trim()) == namespace).then(|| glob.trim().to_string()),
            None => Some(entry.clone()),
        })
        .collect()
}

/// Whether `url` may be reached under `allow_hosts`.
pub fn host_allowed(allow_hosts: &[String], url: &url::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let with_port = url
        .port_or_known_default()
        .map(|p| format!("{host}:{p}"))
        .unwrap_or_else(|| host.to_string());
    allow_hosts.iter().any(|pattern| {
        if pattern.contains(':') && !pattern.contains('[') && pattern.matches(':').count() == 1 {
            glob_match(pattern, &with_port)
        } else {
            glob_match(pattern, host)
        }
    })
}

/// `url` with the values of its query and its password replaced, for error messages: a
/// token in `?api_key=` must not reach run records, events or logs.
pub fn mask_url(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, _)| (k.into_owned(), "***".to_string()))
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.set_fragment(None);
    u.to_string()
}

/// Whether the host of `url` and (for an IP literal) its address may be reached.
fn check_target(hosts: &[String], policy: &EgressPolicy, url: &url::Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http and https are supported".into());
    }
    if !host_allowed(hosts, url) {
        return Err(format!(
            "host `{}` is not in the worker's HTTP allow-list (--http-allow-hosts)",
            url.host_str().unwrap_or("")
        ));
    }
    if let Some(ip) = egress::literal_ip(url)
        && let Err(d) = policy.check(ip)
    {
        return Err(format!(
            "{d}: refused by the egress policy (allow it with --http-allow-networks)"
        ));
    }
    Ok(())
}

/// A client for one policy: names resolved through the filtering resolver, every redirect
/// target checked like the first URL (at most 5).
fn build_client(hosts: Vec<String>, policy: Arc<EgressPolicy>) -> Result<reqwest::Client, String> {
    let checked = policy.clone();
    egress::client_builder(policy)
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error(Refused("more than 5 redirects".into()));
            }
            match check_target(&hosts, &checked, attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(why) => {
                    let msg = format!("redirect to {} refused: {why}", mask_url(attempt.url()));
                    attempt.error(Refused(msg))
                }
            }
        }))
        .build()
        .map_err(|e| e.to_string())
}

/// A namespace's policy and the client that enforces it.
type PolicyClient = (Arc<EgressPolicy>, reqwest::Client);

/// The `http.request` tool.
pub struct HttpRequest {
    config: HttpConfig,
    /// One client per namespace with rules of its own; `None`: the global one.
    clients: Mutex<HashMap<Option<String>, PolicyClient>>,
    schema: Value,
}

impl HttpRequest {
    pub fn new(config: HttpConfig) -> Self {
        Self {
            config,
            clients: Mutex::new(HashMap::new()),
            schema: json!({
                "type": "object",
                "required": ["url"],
                "properties": {
                    "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]},
                    "url": {"type": "string"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "body": {"type": "string"},
                    "json": {},
                    "timeout": {"type": "string"},
                    "allowErrorStatus": {"type": "boolean"}
                },
                "not": {"required": ["body", "json"]}
            }),
        }
    }

    /// The key of the client for `namespace`: its own when some rule names it.
    fn key(&self, namespace: &str) -> Option<String> {
        let named = |ns: &str| ns.trim() == namespace;
        let own_host = self
            .config
            .allow_hosts
            .iter()
            .any(|h| h.split_once('=').is_some_and(|(ns, _)| named(ns)));
        let own_net = self
            .config
            .allow_networks
            .iter()
            .any(|r| r.namespace.as_deref().is_some_and(named));
        (own_host || own_net).then(|| namespace.to_string())
    }

    /// The host list, policy and client for a Task in `namespace`.
    fn client_for(
        &self,
        namespace: &str,
    ) -> Result<(Vec<String>, Arc<EgressPolicy>, reqwest::Client), ToolError> {
        let key = self.key(namespace);
        let hosts = hosts_for(&self.config.allow_hosts, key.as_deref());
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((policy, client)) = clients.get(&key) {
            return Ok((hosts, policy.clone(), client.clone()));
        }
        let policy = Arc::new(EgressPolicy {
            allow: egress::networks_for(&self.config.allow_networks, key.as_deref()),
            deny: self.config.deny_networks.clone(),
        });
        let client =
            build_client(hosts.clone(), policy.clone()).map_err(|e| ToolError::Failed {
                message: format!("http client unavailable: {e}"),
                retryable: false,
            })?;
        clients.insert(key, (policy.clone(), client.clone()));
        Ok((hosts, policy, client))
    }
}

#[async_trait]
impl Tool for HttpRequest {
    fn name(&self) -> &str {
        "http.request"
    }
    fn description(&self) -> &str {
        "Makes an HTTP request to an allowed host and returns status, headers and body."
    }
    fn input_schema(&self) -> Option<&Value> {
        Some(&self.schema)
    }
    async fn call(&self, input: Value, ctx: &CallContext) -> Result<Value, ToolError> {
        if ctx.agent.is_none() && !self.config.allow_agentless {
            return Err(ToolError::Denied(
                "`http.request` reaches the network, so it needs an Agent: set the Task's spec.agentRef to an Agent whose scopes include `http.request` (or `http.*`), or start the worker with --http-allow-agentless".into(),
            ));
        }
        let (hosts, policy, client) = self.client_for(&ctx.namespace)?;
        let url_text = input
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| ToolError::InvalidInput("`url` is required".into()))?;
        let url = url::Url::parse(url_text).map_err(|e| {
            ToolError::InvalidInput(format!(
                "url: {e} (the url is not shown: it may hold secrets)"
            ))
        })?;
        check_target(&hosts, &policy, &url)
            .map_err(|why| ToolError::Denied(format!("{}: {why}", mask_url(&url))))?;
        let method_text = input.get("method").and_then(Value::as_str).unwrap_or("GET");
        let method = reqwest::Method::from_bytes(method_text.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                ToolError::InvalidInput(format!("method `{method_text}` is not an HTTP method"))
            })?;
        let timeout = match input.get("timeout").and_then(Value::as_str) {
            Some(t) => ordinaut_schedule::duration::parse_duration(t)
                .map_err(|e| ToolError::InvalidInput(format!("timeout: {e}")))?,
            None => self.config.default_timeout,
        };
        let masked = mask_url(&url);
        let mut req = client.request(method, url).timeout(timeout);
        if let Some(headers) = input.get("headers").and_then(Value::as_object) {
            for (k, v) in headers {
                let v = v.as_str().ok_or_else(|| {
                    ToolError::InvalidInput(format!("headers.{k} must be a string"))
                })?;
                let mut value = reqwest::header::HeaderValue::from_str(v).map_err(|_| {
                    ToolError::InvalidInput(format!("headers.{k} is not a valid header value"))
                })?;
                value.set_sensitive(true);
                req = req.header(k.as_str(), value);
            }
        }
        req = req.header("Idempotency-Key", ctx.idempotency_key.as_str());
        if let Some(body) = input.get("body").and_then(Value::as_str) {
            req = req.body(body.to_string());
        } else if let Some(j) = input.get("json") {
            req = req.json(j);
        }
        let classify = |e| classify(e, &masked);
        let send = async {
            let resp = req.send().await.map_err(classify)?;
            let status = resp.status();
            let headers = output_headers(resp.headers());
            let is_json = headers
                .get("content-type")
                .and_then(Value::as_str)
                .is_some_and(|ct| ct.contains("json"));
            let bytes = read_limited(resp, self.config.max_response_bytes, &masked).await?;
            let body = if is_json {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            } else {
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            };
            Ok::<_, ToolError>((status, headers, body))
        };
        let (status, headers, body) = tokio::select! {
            r = send => r?,
            _ = ctx.cancel.cancelled() => return Err(ToolError::Cancelled),
        };
        let allow_error = input
            .get("allowErrorStatus")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !allow_error && (status.is_client_error() || status.is_server_error()) {
            return Err(ToolError::Failed {
                message: format!("HTTP {status} from {masked}"),
                retryable: status.is_server_error() || status.as_u16() == 429,
            });
        }
        Ok(json!({"status": status.as_u16(), "headers": headers, "body": body}))
    }
}

/// Response headers as JSON, credential values replaced.
fn output_headers(headers: &reqwest::header::HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in headers {
        let name = k.as_str();
        if SENSITIVE_HEADERS.contains(&name) {
            out.insert(name.to_string(), Value::String(REDACTED.into()));
        } else if let Ok(v) = v.to_str() {
            out.insert(name.to_string(), Value::String(v.to_string()));
        }
    }
    out
}

/// A reqwest error as a tool error: the URL masked (reqwest's own message carries it whole),
/// a refusal by the egress policy as `Denied`.
fn classify(e: reqwest::Error, masked_url: &str) -> ToolError {
    if let Some(refusal) = egress::refusal_in(&e) {
        return ToolError::Denied(format!(
            "{masked_url}: {refusal}: refused by the egress policy (allow it with --http-allow-networks)"
        ));
    }
    let timeout = e.is_timeout();
    let retryable = timeout || e.is_connect() || e.is_request();
    let e = e.without_url();
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = format!("{cause}: {s}");
        source = s.source();
    }
    let what = if timeout { "timed out" } else { "failed" };
    ToolError::Failed {
        message: format!("request to {masked_url} {what}: {cause}"),
        retryable,
    }
}

async fn read_limited(
    mut resp: reqwest::Response,
    max: usize,
    masked_url: &str,
) -> Result<Vec<u8>, ToolError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify(e, masked_url))? {
        if out.len() + chunk.len() > max {
            return Err(ToolError::Failed {
                message: format!(
                    "response larger than {max} bytes (the worker's --http-max-response-bytes)"
                ),
                retryable: false,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn allow(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn nets(list: &[&str]) -> Vec<NetworkRule> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    /// Hosts `*`, networks as given: the address policy alone decides.
    fn tool(networks: &[&str]) -> HttpRequest {
        HttpRequest::new(HttpConfig {
            allow_hosts: allow(&["*"]),
            allow_networks: nets(networks),
            ..HttpConfig::default()
        })
    }

    #[test]
    fn allow_list_matches_hosts_and_optional_ports() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(host_allowed(
            &allow(&["api.example.com"]),
            &u("https://api.example.com/x")
        ));
        assert!(!host_allowed(
            &allow(&["api.example.com"]),
            &u("https://evil.com/api.example.com")
        ));
        assert!(host_allowed(
            &allow(&["*.example.com"]),
            &u("http://a.b.example.com")
        ));
        assert!(!host_allowed(
            &allow(&["*.example.com"]),
            &u("http://example.com.evil.io")
        ));
        assert!(host_allowed(
            &allow(&["127.0.0.1:8080"]),
            &u("http://127.0.0.1:8080/")
        ));
        assert!(!host_allowed(
            &allow(&["127.0.0.1:8080"]),
            &u("http://127.0.0.1:9090/")
        ));
        assert!(!host_allowed(&[], &u("http://127.0.0.1/")));
        let entries = allow(&["api.example.com", "team-a=*.team-a.example"]);
        assert_eq!(
            hosts_for(&entries, Some("team-a")),
            ["api.example.com", "*.team-a.example"]
        );
        assert_eq!(hosts_for(&entries, Some("team-b")), ["api.example.com"]);
    }

    #[test]
    fn masked_urls_keep_keys_and_hide_values_and_passwords() {
        let u =
            url::Url::parse("https://user:pw@api.example.com/v1?api_key=CANARY&q=x#frag").unwrap();
        assert_eq!(
            mask_url(&u),
            "https://user:***@api.example.com/v1?api_key=***&q=***"
        );
    }

    /// A one-shot HTTP/1.1 server on `ip` answering `response` (status line and headers
    /// before the body); returns the port and the request it read.
    async fn serve_raw(ip: &str, response: String) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = sock.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            sock.write_all(response.as_bytes()).await.unwrap();
            request
        });
        (port, handle)
    }

    /// A loopback HTTP/1.1 server answering once with `status` and a JSON body.
    async fn serve_once(
        status: &'static str,
        body: &'static str,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        serve_raw(
            "127.0.0.1",
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nset-cookie: session=CANARY\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await
    }

    /// A listener that must never be connected to: non-blocking, so `assert_untouched`
    /// sees a connection the kernel accepted without waiting for one.
    struct Untouched(std::net::TcpListener);

    impl Untouched {
        fn bind() -> (Self, u16) {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            let port = l.local_addr().unwrap().port();
            (Untouched(l), port)
        }
        fn assert_untouched(&self) {
            match self.0.accept() {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => panic!("the refused listener was connected to: {other:?}"),
            }
        }
    }

    async fn get(tool: &HttpRequest, url: &str) -> Result<Value, ToolError> {
        tool.call(json!({ "url": url }), &CallContext::for_test("s"))
            .await
    }

    #[tokio::test]
    async fn request_to_an_allowed_host_returns_status_headers_and_json_body() {
        let (port, server) = serve_once("200 OK", r#"{"temp": 21.5}"#).await;
        let tool = HttpRequest::new(HttpConfig {
            allow_hosts: allow(&["127.0.0.1"]),
            allow_networks: nets(&["127.0.0.0/8"]),
            ..HttpConfig::default()
        });
        let out = tool
            .call(
                json!({"method": "POST", "url": format!("http://127.0.0.1:{port}/w"), "json": {"q": 1}, "headers": {"x-trace": "t1"}}),
                &CallContext::for_test("get"),
            )
            .await
            .unwrap();
        assert_eq!(out["status"], 200);
        assert_eq!(out["body"], json!({"temp": 21.5}));
        assert_eq!(out["headers"]["set-cookie"], REDACTED);
        assert!(!out.to_string().contains("CANARY"), "{out}");
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /w HTTP/1.1"), "{request}");
        assert!(request.to_ascii_lowercase().contains("x-trace: t1"));
        assert!(
            request
                .to_ascii_lowercase()
                .contains("idempotency-key: test:get")
        );
        assert!(request.ends_with(r#"{"q":1}"#));
    }

    #[tokio::test]
    async fn error_status_fails_the_step_and_5xx_is_retryable() {
        let (port, _server) = serve_once("503 Service Unavailable", "{}").await;
        let err = get(
            &tool(&["127.0.0.0/8"]),
            &format!("http://127.0.0.1:{port}/?token=CANARY"),
        )
        .await
        .unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("503"), "{err}");
        assert!(!err.to_string().contains("CANARY"), "{err}");
    }

    #[tokio::test]
    async fn connection_errors_mask_the_query_string() {
        let (listener, port) = Untouched::bind();
        drop(listener);
        let err = get(
            &tool(&["127.0.0.0/8"]),
            &format!("http://127.0.0.1:{port}/x?api_key=CANARY"),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("api_key=***"), "{text}");
        assert!(!text.contains("CANARY"), "{text}");
        assert!(err.is_retryable(), "{err}");
    }

    #[tokio::test]
    async fn hosts_outside_the_allow_list_are_refused_without_a_request() {
        let tool = HttpRequest::new(HttpConfig::default());
        let err = get(&tool, "http://127.0.0.1:1/").await.unwrap_err();
        assert!(matches!(err, ToolError::Denied(_)), "{err}");
        let err = get(&tool, "file:///etc/passwd").await.unwrap_err();
        assert!(matches!(err, ToolError::Denied(_)), "{err}");
        assert!(err.to_string().contains("only http and https"), "{err}");
    }

    #[tokio::test]
    async fn loopback_by_address_is_refused_by_default_and_allowed_by_configuration() {
        let (listener, port) = Untouched::bind();
        let url = format!("http://127.0.0.1:{port}/");
        let err = get(&tool(&[]), &url).await.unwrap_err();
        assert!(matches!(err, ToolError::Denied(_)), "{err}");
        assert!(
            err.to_string()
                .contains("127.0.0.1 is a loopback address: refused by the egress policy"),
            "{err}"
        );
        let err = get(&tool(&["10.0.0.0/8"]), &url).await.unwrap_err();
        assert!(matches!(err, ToolError::Denied(_)), "{err}");
        listener.assert_untouched();
        drop(listener);

        let (port, server) = serve_once("200 OK", "{}").await;
        let out = get(
            &tool(&["127.0.0.1/32"]),
            &format!("http://127.0.0.1:{port}/"),
        )
        .await
        .unwrap();
        assert_eq!(out["status"], 200);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_connect_time_unless_allowed() {
        let (listener, port) = Untouched::bind();
        let err = get(&tool(&[]), &format!("http://localhost:{port}/?k=CANARY"))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ToolError::Denied(_)), "{err}");
        assert!(
            text.contains("`localhost` resolves only to refused addresses"),
            "{text}"
        );
        assert!(!text.contains("CANARY"), "{text}");
        listener.assert_untouched();
        drop(listener);

        let (port, server) = serve_once("200 OK", r#"{"ok": true}"#).await;
        let out = get(
            &tool(&["127.0.0.0/8", "::1"]),
            &format!("http://localhost:{port}/"),
        )
        .await
        .unwrap();
        assert_eq!(out["body"], json!({"ok": true}));
        server.await.unwrap();
    }

    /// A redirect from an allowed place (127.0.0.2, allowed explicitly) to a refused one
    /// (127.0.0.1 by address, `localhost` by name) is not followed.
    #[tokio::test]
    async fn redirects_to_refused_addresses_are_not_followed() {
        for target_host in ["127.0.0.1", "localhost"] {
            let (listener, target_port) = Untouched::bind();
            let location = format!("http://{target_host}:{target_port}/secret");
            let (port, origin) = serve_raw(
                "127.0.0.2",
                format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
            )
            .await;
            let err = get(
                &tool(&["127.0.0.2/32"]),
                &format!("http://127.0.0.2:{port}/"),
            )
            .await
            .unwrap_err();
            assert!(matches!(err, ToolError::Denied(_)), "{err}");
            assert!(err.to_string().contains("refused"), "{err}");
            origin.await.unwrap();
            listener.assert_untouched();
        }
    }

    #[tokio::test]
    async fn redirects_to_allowed_addresses_are_followed() {
        let (target_port, target) = serve_once("200 OK", r#"{"landed": true}"#).await;
        let (port, origin) = serve_raw(
            "127.0.0.2",
            format!("HTTP/1.1 302 Found\r\nlocation: http://localhost:{target_port}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
        )
        .await;
        let out = get(
            &tool(&["127.0.0.0/8", "::1"]),
            &format!("http://127.0.0.2:{port}/"),
        )
        .await
        .unwrap();
        assert_eq!(out["body"], json!({"landed": true}));
        origin.await.unwrap();
        target.await.unwrap();
    }

    #[tokio::test]
    async fn namespace_rules_apply_only_to_that_namespace() {
        let tool = HttpRequest::new(HttpConfig {
            allow_hosts: allow(&["team-a=127.0.0.1"]),
            allow_networks: nets(&["team-a=127.0.0.0/8"]),
            ..HttpConfig::default()
        });
        let (listener, port) = Untouched::bind();
        let mut ctx = CallContext::for_test("s");
        ctx.namespace = "team-b".into();
        let url = format!("http://127.0.0.1:{port}/");
        let err = tool.call(json!({ "url": url }), &ctx).await.unwrap_err();
        assert!(err.to_string().contains("allow-list"), "{err}");
        listener.assert_untouched();
        drop(listener);

        let (port, server) = serve_once("200 OK", "{}").await;
        ctx.namespace = "team-a".into();
        let url = format!("http://127.0.0.1:{port}/");
        let out = tool.call(json!({ "url": url }), &ctx).await.unwrap();
        assert_eq!(out["status"], 200);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn tasks_without_an_agent_may_not_reach_the_network_unless_allowed() {
        let mut ctx = CallContext::for_test("s");
        ctx.agent = None;
        let (listener, port) = Untouched::bind();
        let url = format!("http://127.0.0.1:{port}/");
        let err = tool(&["127.0.0.0/8"])
            .call(json!({ "url": url }), &ctx)
            .await
            .unwrap_err();
        assert!(matches!(err, ToolError::Denied(_)), "{err}");
        assert!(err.to_string().contains("--http-allow-agentless"), "{err}");
        listener.assert_untouched();
        drop(listener);

        let (port, server) = serve_once("200 OK", "{}").await;
        let tool = HttpRequest::new(HttpConfig {
            allow_hosts: allow(&["*"]),
            allow_networks: nets(&["127.0.0.0/8"]),
            allow_agentless: true,
            ..HttpConfig::default()
        });
        let url = format!("http://127.0.0.1:{port}/");
        assert_eq!(
            tool.call(json!({ "url": url }), &ctx).await.unwrap()["status"],
            200
        );
        server.await.unwrap();
    }
}
