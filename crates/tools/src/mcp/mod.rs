//! The MCP bridge: pipeline steps `uses: <mcpserver>.<tool>` call tools of MCP servers.
//!
//! * [`ResolvedServer`]: how to reach one McpServer, with Secret values already read by the
//!   caller ([`ResolvedServer::from_spec`]).
//! * [`discover`]: connect once, list the tools (the operator writes them to the McpServer
//!   status).
//! * [`McpPool`]: one live session per McpServer per worker, shared by concurrent runs,
//!   restarted with backoff, closed on [`McpPool::shutdown`]; it is the registry's
//!   [`crate::ToolProvider`] for MCP tools ([`McpTool`]).
//!
//! Secrets (env values and header values) never appear in logs, errors or outputs: the
//! `Debug` of a transport prints names only, and secret values are masked in any error text
//! that could echo them (a server's stderr, an HTTP error body).

mod discover;
mod pool;
mod result;
mod session;
mod tool;

pub use discover::discover;
pub use pool::{McpPool, PoolConfig};
pub use result::render_result;
pub use tool::McpTool;

use ordinaut_api::{McpServerSpec, SecretKeyRef};
use std::time::Duration;

/// A name and a value, for an environment variable or an HTTP header. `secret` values (read
/// from a Secret) are masked wherever error text could echo them.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedVar {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

impl ResolvedVar {
    /// A literal (non-secret) value.
    pub fn literal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            secret: false,
        }
    }

    /// A value read from a Secret.
    pub fn secret(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            secret: true,
        }
    }
}

impl std::fmt::Debug for ResolvedVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values may be secrets, and literal ones are rarely worth a log line.
        write!(f, "{}=<{} bytes>", self.name, self.value.len())
    }
}

/// How to reach an MCP server, with every value resolved. `Debug` shows no values and no
/// URL credentials or query.
#[derive(Clone, PartialEq, Eq)]
pub enum ResolvedTransport {
    /// A child process of the worker speaking MCP on stdin/stdout. It gets only `env` and a
    /// few harmless variables of the worker ([`INHERITED_ENV`]), never the worker's own
    /// environment (database URLs, tokens).
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<ResolvedVar>,
        working_dir: Option<String>,
    },
    /// MCP streamable HTTP at `url`, sending `headers` with every request.
    Http {
        url: String,
        headers: Vec<ResolvedVar>,
    },
}

impl std::fmt::Debug for ResolvedTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolvedTransport::Stdio {
                command,
                args,
                env,
                working_dir,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", env)
                .field("working_dir", working_dir)
                .finish(),
            ResolvedTransport::Http { url, headers } => f
                .debug_struct("Http")
                .field("url", &redact_url(url))
                .field("headers", headers)
                .finish(),
        }
    }
}

/// Variables of the worker's environment a stdio server inherits (when set).
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// One McpServer, ready to connect to.
#[derive(Clone, PartialEq, Debug)]
pub struct ResolvedServer {
    pub transport: ResolvedTransport,
    /// Default limit of one tool call (the McpServer's `timeout`); a step's own timeout, given
    /// through [`crate::CallContext::timeout`], wins.
    pub timeout: Option<Duration>,
}

impl ResolvedServer {
    /// A stdio server running `command args…`.
    pub fn stdio(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            transport: ResolvedTransport::Stdio {
                command: command.into(),
                args: args.into_iter().map(Into::into).collect(),
                env: Vec::new(),
                working_dir: None,
            },
            timeout: None,
        }
    }

    /// A streamable HTTP server at `url`.
    pub fn http(url: impl Into<String>) -> Self {
        Self {
            transport: ResolvedTransport::Http {
                url: url.into(),
                headers: Vec::new(),
            },
            timeout: None,
        }
    }

    /// Adds an environment variable (stdio) or a header (HTTP).
    pub fn with_var(mut self, var: ResolvedVar) -> Self {
        match &mut self.transport {
            ResolvedTransport::Stdio { env, .. } => env.push(var),
            ResolvedTransport::Http { headers, .. } => headers.push(var),
        }
        self
    }

    /// Builds a server from its spec; `secret` reads one Secret key (the caller fetched the
    /// Secrets of the McpServer's namespace) and returns `Err(reason)` when it cannot.
    pub fn from_spec(
        spec: &McpServerSpec,
        mut secret: impl FnMut(&SecretKeyRef) -> Result<String, String>,
    ) -> Result<Self, McpError> {
        let mut resolve = |field: String,
                           name: &str,
                           value: &Option<String>,
                           from: Option<&SecretKeyRef>|
         -> Result<ResolvedVar, McpError> {
            match (value, from) {
                (Some(v), None) => Ok(ResolvedVar::literal(name, v.clone())),
                (None, Some(r)) => secret(r)
                    .map(|v| ResolvedVar::secret(name, v))
                    .map_err(|e| {
                        McpError::Spec(format!(
                            "{field}: cannot read key `{}` of Secret `{}`: {e}",
                            r.key, r.name
                        ))
                    }),
                _ => Err(McpError::Spec(format!(
                    "{field}: set exactly one of value or valueFrom"
                ))),
            }
        };
        let transport = match (&spec.transport.stdio, &spec.transport.http) {
            (Some(s), None) => ResolvedTransport::Stdio {
                command: s.command.clone(),
                args: s.args.clone(),
                env: s
                    .env
                    .iter()
                    .map(|e| {
                        resolve(
                            format!("spec.transport.stdio.env[{}]", e.name),
                            &e.name,
                            &e.value,
                            e.value_from.as_ref().map(|f| &f.secret_key_ref),
                        )
                    })
                    .collect::<Result<_, _>>()?,
                working_dir: s.working_dir.clone(),
            },
            (None, Some(h)) => ResolvedTransport::Http {
                url: h.url.clone(),
                headers: h
                    .headers
                    .iter()
                    .map(|e| {
                        resolve(
                            format!("spec.transport.http.headers[{}]", e.name),
                            &e.name,
                            &e.value,
                            e.value_from.as_ref().map(|f| &f.secret_key_ref),
                        )
                    })
                    .collect::<Result<_, _>>()?,
            },
            _ => {
                return Err(McpError::Spec(
                    "spec.transport: set exactly one of stdio or http".into(),
                ));
            }
        };
        let timeout = spec
            .timeout
            .as_deref()
            .map(|t| {
                ordinaut_schedule::duration::parse_duration(t)
                    .map_err(|e| McpError::Spec(format!("spec.timeout `{t}`: {e}")))
            })
            .transpose()?;
        Ok(Self { transport, timeout })
    }

    /// What to call the server in messages: the command, or the URL without credentials or
    /// query string.
    pub fn target(&self) -> String {
        match &self.transport {
            ResolvedTransport::Stdio { command, .. } => format!("stdio server `{command}`"),
            ResolvedTransport::Http { url, .. } => format!("HTTP server {}", redact_url(url)),
        }
    }

    /// Masks every secret value in `text`.
    pub(crate) fn mask(&self, text: &str) -> String {
        let vars = match &self.transport {
            ResolvedTransport::Stdio { env, .. } => env,
            ResolvedTransport::Http { headers, .. } => headers,
        };
        let mut out = text.to_string();
        if let ResolvedTransport::Http { url, .. } = &self.transport {
            // Error text of the HTTP client quotes the URL, which may carry credentials.
            let clean = redact_url(url);
            out = out.replace(url.as_str(), &clean);
            if let Ok(parsed) = url::Url::parse(url) {
                out = out.replace(parsed.as_str(), &clean);
            }
        }
        for v in vars.iter().filter(|v| v.secret && !v.value.is_empty()) {
            out = out.replace(&v.value, "***");
            // `Authorization: Bearer xyz` is often echoed as just the token.
            if let Some(token) = v.value.strip_prefix("Bearer ")
                && !token.is_empty()
            {
                out = out.replace(token, "***");
            }
        }
        out
    }
}

/// `scheme://host[:port]/path` of `url`: no user info, no query, no fragment.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                port,
                u.path()
            )
        }
        Err(_) => "<invalid URL>".to_string(),
    }
}

/// Why connecting to, or talking to, an MCP server failed. Messages name the server and say
/// what happened; they never contain secret values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum McpError {
    /// The McpServer spec cannot be used (a missing Secret, a bad timeout).
    #[error("invalid McpServer spec: {0}")]
    Spec(String),
    /// The process could not be started.
    #[error("{target}: cannot start the process: {reason}")]
    Spawn { target: String, reason: String },
    /// The process exited before or while it was being talked to.
    #[error("{target}: the process exited ({status}){}", stderr_suffix(.stderr))]
    Exited {
        target: String,
        /// `exit code 1`, `killed by signal 9`.
        status: String,
        /// The last lines the process wrote to stderr.
        stderr: String,
    },
    /// The server could not be reached or answered wrongly (HTTP status, refused
    /// connection, a protocol error).
    #[error("{target}: {what} failed: {reason}{}", stderr_suffix(.stderr))]
    Protocol {
        target: String,
        what: String,
        reason: String,
        stderr: String,
    },
    /// The server did not answer in time.
    #[error("{target}: no answer to {what} within {timeout:?}{}", stderr_suffix(.stderr))]
    Timeout {
        target: String,
        what: String,
        timeout: Duration,
        stderr: String,
    },
    /// The pool has no McpServer of this name (not configured, or removed).
    #[error("unknown McpServer `{0}`")]
    UnknownServer(String),
    /// The pool is shutting down.
    #[error("the MCP pool is shut down")]
    ShutDown,
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; stderr:\n{}", stderr.trim_end())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(yaml: &str) -> McpServerSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn from_spec_resolves_literals_and_secrets_and_debug_hides_values() {
        let s = spec(
            r#"
transport:
  stdio:
    command: node
    args: [server.js]
    env:
      - {name: MODE, value: fast}
      - {name: API_KEY, valueFrom: {secretKeyRef: {name: weather, key: apiKey}}}
timeout: 45s
"#,
        );
        let r = ResolvedServer::from_spec(&s, |k| {
            assert_eq!((k.name.as_str(), k.key.as_str()), ("weather", "apiKey"));
            Ok("s3cr3t-value".into())
        })
        .unwrap();
        assert_eq!(r.timeout, Some(Duration::from_secs(45)));
        let ResolvedTransport::Stdio { env, .. } = &r.transport else {
            panic!("stdio expected")
        };
        assert_eq!(env[1], ResolvedVar::secret("API_KEY", "s3cr3t-value"));
        let debug = format!("{r:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(!debug.contains("fast"), "{debug}");
        assert!(debug.contains("API_KEY"), "{debug}");
        assert_eq!(
            r.mask("boom: key s3cr3t-value rejected"),
            "boom: key *** rejected"
        );
    }

    #[test]
    fn from_spec_names_the_field_of_a_missing_secret() {
        let s = spec(
            r#"
transport:
  http:
    url: https://u:p@mcp.example.com/mcp?token=abc
    headers:
      - {name: Authorization, valueFrom: {secretKeyRef: {name: tok, key: bearer}}}
"#,
        );
        let err = ResolvedServer::from_spec(&s, |_| Err("Secret not found".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid McpServer spec: spec.transport.http.headers[Authorization]: cannot read key `bearer` of Secret `tok`: Secret not found"
        );
        let r = ResolvedServer::from_spec(&s, |_| Ok("Bearer t0ken".into())).unwrap();
        assert_eq!(r.target(), "HTTP server https://mcp.example.com/mcp");
        let debug = format!("{r:?}");
        assert!(
            !debug.contains("t0ken") && !debug.contains("abc") && !debug.contains("u:p"),
            "{debug}"
        );
        assert_eq!(r.mask("401 for t0ken"), "401 for ***");
    }
}
