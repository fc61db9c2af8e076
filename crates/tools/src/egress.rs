//! Egress policy: which IP addresses tools may connect to. Decided by the address a name
//! resolves to, at connect time (a DNS resolver that drops denied addresses), so a name that
//! resolves to a private address — or is rebound to one after a check — is refused too.
//!
//! Denied unless allowed: loopback, link-local (cloud metadata at 169.254.169.254),
//! private (RFC 1918, fc00::/7), carrier-grade NAT, unspecified, multicast, broadcast and
//! reserved ranges, plus any configured network (the cluster's pod and service ranges).
//! IPv4 addresses embedded in IPv6 (`::ffff:a.b.c.d`, `64:ff9b::/96`, `2002::/16`) are judged
//! as the IPv4 address they carry.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A network that is not CIDR notation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a network in CIDR notation (such as `10.0.0.0/8`, `fd00::/8` or one address)"
)]
pub struct CidrError(pub String);

impl std::str::FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let err = || CidrError(s.to_string());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Cidr {
            addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }
    const fn v6(first: u16, prefix: u8) -> Self {
        Cidr {
            addr: IpAddr::V6(Ipv6Addr::new(first, 0, 0, 0, 0, 0, 0, 0)),
            prefix,
        }
    }

    /// Whether `ip` is inside this network (an IPv4 network never holds an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Ranges refused by default, with the name a refusal gives.
const DENIED: &[(Cidr, &str)] = &[
    (Cidr::v4(0, 0, 0, 0, 8), "unspecified"),
    (Cidr::v4(10, 0, 0, 0, 8), "private"),
    (Cidr::v4(100, 64, 0, 0, 10), "carrier-grade NAT"),
    (Cidr::v4(127, 0, 0, 0, 8), "loopback"),
    (Cidr::v4(169, 254, 0, 0, 16), "link-local"),
    (Cidr::v4(172, 16, 0, 0, 12), "private"),
    (Cidr::v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (Cidr::v4(192, 168, 0, 0, 16), "private"),
    (Cidr::v4(198, 18, 0, 0, 15), "benchmarking"),
    (Cidr::v4(224, 0, 0, 0, 4), "multicast"),
    (Cidr::v4(240, 0, 0, 0, 4), "reserved or broadcast"),
    (
        Cidr {
            addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            prefix: 128,
        },
        "unspecified",
    ),
    (
        Cidr {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            prefix: 128,
        },
        "loopback",
    ),
    (Cidr::v6(0xfc00, 7), "private (unique local)"),
    (Cidr::v6(0xfe80, 10), "link-local"),
    (Cidr::v6(0xfec0, 10), "site-local"),
    (Cidr::v6(0xff00, 8), "multicast"),
];

/// The IPv4 address an IPv6 address carries (mapped, NAT64 well-known prefix, 6to4).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let from = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(from(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(from(s[1], s[2]));
    }
    None
}

/// Where tools may connect: everything public, plus `allow`, minus `deny`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Networks reachable even though a default range holds them (`127.0.0.0/8` for a local
    /// test server, the subnet of an internal API).
    pub allow: Vec<Cidr>,
    /// Further networks refused (the cluster's pod and service ranges when they are public
    /// addresses); `allow` wins over it.
    pub deny: Vec<Cidr>,
}

/// An address the policy refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is a {kind} address")]
pub struct AddressDenied {
    pub ip: IpAddr,
    pub kind: String,
}

impl EgressPolicy {
    /// A policy allowing `allow` in addition to public addresses.
    pub fn allowing(allow: Vec<Cidr>) -> Self {
        Self {
            allow,
            deny: Vec::new(),
        }
    }

    /// Loopback (IPv4 and IPv6) allowed: `ordinaut dev`'s default, on the developer's machine.
    pub fn loopback() -> Vec<Cidr> {
        vec![
            Cidr::v4(127, 0, 0, 0, 8),
            Cidr {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ]
    }

    /// This policy with `more` allowed too.
    pub fn with_allowed(&self, more: &[Cidr]) -> Self {
        let mut p = self.clone();
        p.allow.extend_from_slice(more);
        p
    }

    /// Whether a connection to `ip` may be made.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressDenied> {
        let judged = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let holds = |n: &Cidr| n.contains(ip) || n.contains(judged);
        if self.allow.iter().any(holds) {
            return Ok(());
        }
        let denied = |kind: &str| {
            Err(AddressDenied {
                ip,
                kind: kind.to_string(),
            })
        };
        if let Some(n) = self.deny.iter().find(|n| holds(n)) {
            return denied(&format!("denied-network ({n})"));
        }
        match DENIED.iter().find(|(n, _)| holds(n)) {
            Some((_, kind)) => denied(kind),
            None => Ok(()),
        }
    }
}

/// An allowed network, for every namespace (`10.1.0.0/16`) or for the Tasks of one
/// (`team-a=10.1.0.0/16`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRule {
    pub namespace: Option<String>,
    pub network: Cidr,
}

impl std::str::FromStr for NetworkRule {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        match s.split_once('=') {
            Some((ns, net)) => Ok(NetworkRule {
                namespace: Some(ns.trim().to_string()),
                network: net.parse()?,
            }),
            None => Ok(NetworkRule {
                namespace: None,
                network: s.parse()?,
            }),
        }
    }
}

/// The networks of `rules` that apply to `namespace` (`None`: the rules for everyone).
pub fn networks_for(rules: &[NetworkRule], namespace: Option<&str>) -> Vec<Cidr> {
    rules
        .iter()
        .filter(|r| r.namespace.is_none() || r.namespace.as_deref() == namespace)
        .map(|r| r.network)
        .collect()
}

/// A connection the policy refused: a name that resolved only to refused addresses, or a
/// redirect to a refused place. Travels through reqwest's error chain; [`refusal_in`] finds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A reqwest DNS resolver that resolves with the system resolver and keeps only addresses
/// the policy allows. reqwest connects only to what it returns, so the check holds at connect
/// time (no window between a check and a second lookup).
pub struct EgressResolver {
    policy: Arc<EgressPolicy>,
}

impl EgressResolver {
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (ok, refused): (Vec<_>, Vec<_>) = resolved
                .into_iter()
                .partition(|a| policy.check(a.ip()).is_ok());
            if ok.is_empty() && !refused.is_empty() {
                let reasons = refused
                    .iter()
                    .filter_map(|a| policy.check(a.ip()).err())
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Box::new(Refused(format!(
                    "`{host}` resolves only to refused addresses ({reasons})"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The IP address of a URL whose host is an IP literal (reqwest does not resolve those, so
/// they are checked before the request and on every redirect).
pub fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// A reqwest client builder that connects only where `policy` allows: the filtering
/// resolver, no proxy from the environment (a proxy would resolve the target itself).
pub fn client_builder(policy: Arc<EgressPolicy>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(EgressResolver::new(policy)))
}

/// Finds a refusal in an error's source chain.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cur {
        if let Some(d) = e.downcast_ref::<Refused>() {
            return Some(d.to_string());
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_policy_refuses_internal_ranges_and_allows_public_addresses() {
        let p = EgressPolicy::default();
        for denied in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(p.check(ip(denied)).is_err(), "{denied} should be refused");
        }
        for allowed in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111"] {
            assert!(p.check(ip(allowed)).is_ok(), "{allowed} should be allowed");
        }
        assert_eq!(
            p.check(ip("169.254.169.254")).unwrap_err().to_string(),
            "169.254.169.254 is a link-local address"
        );
    }

    #[test]
    fn allowed_networks_open_a_range_and_denied_networks_close_one() {
        let p = EgressPolicy {
            allow: vec![
                "127.0.0.0/8".parse().unwrap(),
                "10.1.0.0/16".parse().unwrap(),
            ],
            deny: vec!["93.184.0.0/16".parse().unwrap()],
        };
        assert!(p.check(ip("127.0.0.1")).is_ok());
        assert!(p.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(p.check(ip("10.1.200.3")).is_ok());
        assert!(p.check(ip("10.2.0.1")).is_err());
        assert!(p.check(ip("::1")).is_err(), "IPv6 loopback was not allowed");
        assert!(p.check(ip("93.184.216.34")).is_err());
    }

    #[test]
    fn cidr_parsing_names_the_bad_value() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        for bad in ["10.0.0.0/33", "example.com", "10.0.0/8", "::/129", ""] {
            let err = bad.parse::<Cidr>().unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
        let zero: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(zero.contains(ip("1.2.3.4")));
        assert!(!zero.contains(ip("::1")));
    }
}
