//! A stdio McpServer's pod in a cluster (pure): the Deployment and Service the operator
//! applies for a server with `spec.transport.stdio.image`, and the streamable-HTTP spec that
//! discovery and the workers use instead of starting the command themselves.
//!
//! The pod runs the tenant's image. An init container (Ordinaut's image) copies the
//! `ordinaut-mcp-bridge` binary into an `emptyDir`; the server container runs the bridge with
//! the tenant's command as arguments, and the bridge serves it on `:8080/mcp`. Secret values
//! reach the pod as `env[].valueFrom.secretKeyRef`: Kubernetes delivers them, Ordinaut never
//! reads them. Both objects carry an owner reference to the McpServer, so Kubernetes' garbage
//! collector deletes them with it (the operator's finalizer deletes them too).

use ordinaut_api::constants::API_VERSION;
use ordinaut_api::{HttpTransport, McpServer, McpServerSpec, McpTransport, StdioTransport};
use serde_json::{Value, json};

use crate::validate::Problem;

/// The port (and its name) the bridge serves MCP, `/healthz`, `/readyz` and `/metrics` on.
pub const BRIDGE_PORT: u16 = 8080;
/// Where the init container puts the bridge, inside the shared `emptyDir`.
pub const BRIDGE_DIR: &str = "/ordinaut-bridge";
/// The bridge's path in Ordinaut's image.
pub const BRIDGE_IN_IMAGE: &str = "/usr/local/bin/ordinaut-mcp-bridge";
/// Label naming the McpServer a pod serves.
pub const SERVER_LABEL: &str = "ordinaut.dev/mcpserver";
/// Longest McpServer name with an image: `<name>-mcp` must be a DNS label (a Service name).
pub const MAX_NAME_WITH_IMAGE: usize = 63 - "-mcp".len();

/// Name of the Deployment and the Service of McpServer `name`.
pub fn object_name(name: &str) -> String {
    format!("{name}-mcp")
}

/// The in-cluster URL of McpServer `name`'s pod.
pub fn service_url(namespace: &str, name: &str) -> String {
    format!(
        "http://{}.{namespace}.svc:{BRIDGE_PORT}/mcp",
        object_name(name)
    )
}

/// The stdio transport of `spec` when it names an image (the server runs in its own pod).
pub fn pod_transport(spec: &McpServerSpec) -> Option<(&StdioTransport, &str)> {
    let stdio = spec.transport.stdio.as_ref()?;
    let image = stdio.image.as_deref()?;
    Some((stdio, image))
}

/// What is wrong with `spec` in a cluster: a stdio server needs an image (the operator and
/// the workers never run tenant commands in their own pods), and a name short enough for
/// its Service.
pub fn cluster_problems(name: &str, spec: &McpServerSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(stdio) = &spec.transport.stdio else {
        return out;
    };
    if stdio.image.is_none() {
        out.push(Problem {
            path: "spec.transport.stdio.image".into(),
            message: format!(
                "required in a cluster: the operator and workers do not run `{}` in their own \
                 pods; name an image that holds it (e.g. node:22-alpine for npx), and the \
                 operator runs it in a pod of its own",
                stdio.command
            ),
            reason: ordinaut_api::constants::reason::INVALID_SPEC,
        });
    } else if name.len() > MAX_NAME_WITH_IMAGE {
        out.push(Problem {
            path: "metadata.name".into(),
            message: format!(
                "at most {MAX_NAME_WITH_IMAGE} characters for a stdio McpServer with an image \
                 (its Service is named <name>-mcp, a DNS label of at most 63)"
            ),
            reason: ordinaut_api::constants::reason::INVALID_SPEC,
        });
    }
    out
}

/// The spec discovery and the workers use for a server running in its pod: streamable HTTP
/// at its Service, no headers (its Secrets are the pod's environment), the same timeout.
pub fn http_spec(namespace: &str, name: &str, spec: &McpServerSpec) -> McpServerSpec {
    McpServerSpec {
        transport: McpTransport {
            stdio: None,
            http: Some(HttpTransport {
                url: service_url(namespace, name),
                headers: Vec::new(),
            }),
        },
        timeout: spec.timeout.clone(),
    }
}

fn labels(name: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "ordinaut-mcp-server",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": "ordinaut-operator",
        SERVER_LABEL: name,
    })
}

fn selector(name: &str) -> Value {
    json!({ "app.kubernetes.io/name": "ordinaut-mcp-server", SERVER_LABEL: name })
}

/// The owner reference to `m`: Kubernetes deletes the objects with it.
fn owner(m: &McpServer) -> Value {
    json!([{
        "apiVersion": API_VERSION,
        "kind": "McpServer",
        "name": m.metadata.name.clone().unwrap_or_default(),
        "uid": m.metadata.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

/// The server container's environment: literal values, and Secret keys by reference.
fn env(stdio: &StdioTransport) -> Value {
    stdio
        .env
        .iter()
        .map(|v| match (&v.value, &v.value_from) {
            (_, Some(from)) => json!({
                "name": v.name,
                "valueFrom": { "secretKeyRef": {
                    "name": from.secret_key_ref.name,
                    "key": from.secret_key_ref.key,
                }},
            }),
            (value, None) => json!({ "name": v.name, "value": value.clone().unwrap_or_default() }),
        })
        .collect()
}

fn probe(path: &str, period: u32) -> Value {
    json!({
        "httpGet": { "path": path, "port": "http" },
        "periodSeconds": period,
        "failureThreshold": 3,
    })
}

/// The bridge's arguments: where to listen, then the tenant's command and its arguments.
fn bridge_args(stdio: &StdioTransport) -> Vec<String> {
    let mut args = vec![
        "--listen".to_string(),
        format!("0.0.0.0:{BRIDGE_PORT}"),
        "--".to_string(),
        stdio.command.clone(),
    ];
    args.extend(stdio.args.iter().cloned());
    args
}

/// The Deployment running `m` (which must have an image), as a server-side apply body.
/// `bridge_image` is Ordinaut's image (the init container copies the bridge out of it).
pub fn deployment(m: &McpServer, bridge_image: &str) -> Option<Value> {
    let (stdio, image) = pod_transport(&m.spec)?;
    let name = m.metadata.name.clone().unwrap_or_default();
    let bridge = format!("{BRIDGE_DIR}/ordinaut-mcp-bridge");
    let restricted = json!({
        "allowPrivilegeEscalation": false,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    });
    let mut server = json!({
        "name": "server",
        "image": image,
        "command": [bridge],
        "args": bridge_args(stdio),
        "env": env(stdio),
        "ports": [{ "name": "http", "containerPort": BRIDGE_PORT, "protocol": "TCP" }],
        "readinessProbe": probe("/readyz", 5),
        "livenessProbe": probe("/healthz", 20),
        "volumeMounts": [{ "name": "bridge", "mountPath": BRIDGE_DIR, "readOnly": true }],
        "securityContext": restricted,
    });
    if let Some(dir) = &stdio.working_dir {
        server["workingDir"] = json!(dir);
    }
    Some(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": object_name(&name),
            "namespace": m.metadata.namespace.clone().unwrap_or_default(),
            "labels": labels(&name),
            "ownerReferences": owner(m),
        },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": selector(&name) },
            "template": {
                "metadata": { "labels": labels(&name) },
                "spec": {
                    // The tenant's server needs no Kubernetes API access.
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "initContainers": [{
                        "name": "bridge",
                        "image": bridge_image,
                        "command": [BRIDGE_IN_IMAGE, "install", bridge],
                        "volumeMounts": [{ "name": "bridge", "mountPath": BRIDGE_DIR }],
                        "securityContext": restricted,
                    }],
                    "containers": [server],
                    "volumes": [{ "name": "bridge", "emptyDir": { "sizeLimit": "64Mi" } }],
                },
            },
        },
    }))
}

/// The Service in front of `m`'s pod, as a server-side apply body.
pub fn service(m: &McpServer) -> Value {
    let name = m.metadata.name.clone().unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": object_name(&name),
            "namespace": m.metadata.namespace.clone().unwrap_or_default(),
            "labels": labels(&name),
            "ownerReferences": owner(m),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector(&name),
            "ports": [{ "name": "http", "port": BRIDGE_PORT, "targetPort": "http", "protocol": "TCP" }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(yaml: &str) -> McpServer {
        let mut m: McpServer = serde_yaml::from_str(yaml).unwrap();
        m.metadata.uid = Some("u-1".into());
        m
    }

    const FS: &str = r#"
apiVersion: ordinaut.dev/v1alpha1
kind: McpServer
metadata: { name: fs, namespace: team-a }
spec:
  transport:
    stdio:
      image: node:22-alpine
      command: npx
      args: ["-y", "@modelcontextprotocol/server-filesystem", "/data"]
      env:
        - { name: MODE, value: ro }
        - name: TOKEN
          valueFrom: { secretKeyRef: { name: fs-creds, key: token } }
"#;

    #[test]
    fn the_deployment_runs_the_bridge_in_the_tenant_image_with_secret_refs() {
        let d = deployment(&server(FS), "ordinaut:1.2").unwrap();
        assert_eq!(d["metadata"]["name"], "fs-mcp");
        assert_eq!(d["metadata"]["ownerReferences"][0]["uid"], "u-1");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["initContainers"][0]["image"], "ordinaut:1.2");
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "node:22-alpine");
        assert_eq!(c["command"][0], "/ordinaut-bridge/ordinaut-mcp-bridge");
        assert_eq!(c["args"][3], "npx");
        assert_eq!(c["args"][6], "/data");
        assert_eq!(c["env"][0]["value"], "ro");
        assert_eq!(c["env"][1]["valueFrom"]["secretKeyRef"]["name"], "fs-creds");
        assert_eq!(pod["automountServiceAccountToken"], false);
    }

    #[test]
    fn a_stdio_server_without_an_image_is_refused_in_a_cluster() {
        let mut m = server(FS);
        m.spec.transport.stdio.as_mut().unwrap().image = None;
        let p = cluster_problems("fs", &m.spec);
        assert_eq!(p[0].path, "spec.transport.stdio.image");
        assert!(deployment(&m, "x").is_none());
        assert!(cluster_problems(&"a".repeat(60), &server(FS).spec)[0].path == "metadata.name");
        assert!(cluster_problems(&"a".repeat(59), &server(FS).spec).is_empty());
    }

    #[test]
    fn discovery_reaches_the_pod_through_its_service() {
        let m = server(FS);
        let spec = http_spec("team-a", "fs", &m.spec);
        let http = spec.transport.http.unwrap();
        assert_eq!(http.url, "http://fs-mcp.team-a.svc:8080/mcp");
        assert!(spec.transport.stdio.is_none());
    }
}
