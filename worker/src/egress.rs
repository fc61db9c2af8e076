//! The egress flags shared by `ordinaut-worker` and `ordinaut dev`: where `http.request` and
//! MCP servers over streamable HTTP may connect (see `ordinaut_tools::egress`).

use ordinaut_tools::egress::{Cidr, EgressPolicy, NetworkRule};
use ordinaut_tools::http::HttpConfig;
use std::sync::Arc;

/// Where tools may connect.
#[derive(Debug, Clone, clap::Args)]
pub struct EgressFlags {
    /// Hosts `http.request` steps may reach (comma-separated globs such as `api.example.com`,
    /// `*.example.com`, `api.example.com:8443`); `NAMESPACE=GLOB` allows a host to the Tasks
    /// of one namespace only. Empty: `http.request` is refused.
    #[arg(long, env = "ORDINAUT_HTTP_ALLOW_HOSTS", value_delimiter = ',')]
    pub http_allow_hosts: Vec<String>,

    /// Networks `http.request` may connect to although they are refused by default
    /// (loopback, link-local, private, CGNAT, multicast, reserved): comma-separated CIDRs such
    /// as `10.20.0.0/16`; `NAMESPACE=CIDR` for the Tasks of one namespace only. The check is
    /// on the resolved address at connect time and on every redirect.
    #[arg(long, env = "ORDINAUT_HTTP_ALLOW_NETWORKS", value_delimiter = ',')]
    pub http_allow_networks: Vec<NetworkRule>,

    /// Further networks `http.request` may not connect to (comma-separated CIDRs): the
    /// cluster's pod and service ranges when they are not private addresses.
    #[arg(long, env = "ORDINAUT_HTTP_DENY_NETWORKS", value_delimiter = ',')]
    pub http_deny_networks: Vec<Cidr>,

    /// Let Tasks without an Agent call `http.request`. By default a Task needs an Agent
    /// whose scopes match `http.request`, as for any tool that reaches outside the worker.
    #[arg(long, env = "ORDINAUT_HTTP_ALLOW_AGENTLESS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub http_allow_agentless: bool,

    /// Largest `http.request` response body, in bytes; a larger one fails the step.
    #[arg(long, env = "ORDINAUT_HTTP_MAX_RESPONSE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub http_max_response_bytes: usize,

    /// Networks MCP servers over streamable HTTP may be reached at (comma-separated CIDRs;
    /// replaces the default). Link-local (cloud metadata), unspecified, multicast and reserved
    /// addresses are refused unless listed; redirects are never followed.
    #[arg(
        long,
        env = "ORDINAUT_MCP_ALLOW_NETWORKS",
        value_delimiter = ',',
        default_value = "127.0.0.0/8,::1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"
    )]
    pub mcp_allow_networks: Vec<Cidr>,
}

impl EgressFlags {
    /// `http.request`'s configuration, with `extra` networks allowed to every namespace
    /// (`ordinaut dev` adds loopback).
    pub fn http_config(&self, extra: &[Cidr]) -> HttpConfig {
        let mut allow_networks = self.http_allow_networks.clone();
        allow_networks.extend(extra.iter().map(|n| NetworkRule {
            namespace: None,
            network: *n,
        }));
        HttpConfig {
            allow_hosts: self.http_allow_hosts.clone(),
            allow_networks,
            deny_networks: self.http_deny_networks.clone(),
            allow_agentless: self.http_allow_agentless,
            max_response_bytes: self.http_max_response_bytes,
            ..HttpConfig::default()
        }
    }

    /// The MCP pool's egress policy.
    pub fn mcp_egress(&self) -> Arc<EgressPolicy> {
        Arc::new(EgressPolicy::allowing(self.mcp_allow_networks.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        egress: EgressFlags,
    }

    #[test]
    fn flags_parse_namespaced_rules_and_name_a_bad_network() {
        let cli = Cli::try_parse_from([
            "x",
            "--http-allow-hosts",
            "api.example.com,team-a=*.internal",
            "--http-allow-networks",
            "10.1.0.0/16,team-a=192.168.5.0/24",
            "--http-allow-agentless",
        ])
        .unwrap();
        let http = cli.egress.http_config(&[]);
        assert_eq!(http.allow_networks.len(), 2);
        assert_eq!(http.allow_networks[1].namespace.as_deref(), Some("team-a"));
        assert!(http.allow_agentless);
        let mcp = cli.egress.mcp_egress();
        assert!(mcp.check("10.96.0.1".parse().unwrap()).is_ok());
        assert!(mcp.check("169.254.169.254".parse().unwrap()).is_err());
        let err = Cli::try_parse_from(["x", "--http-allow-networks", "intranet"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("`intranet` is not a network in CIDR notation"),
            "{err}"
        );
    }
}
