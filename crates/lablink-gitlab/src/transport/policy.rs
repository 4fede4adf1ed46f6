//! The network policy against SSRF: an admin-typed GitLab URL must not become a way to reach
//! internal services. Addresses are checked after DNS resolution (a public-looking name can
//! resolve to 10.0.0.1) by a custom resolver, so every connection reqwest opens goes through it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What the operator allows besides public addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Allow `http://` for loopback hosts and connections to loopback addresses (local testing).
    pub allow_http_loopback: bool,
    /// Allow private, loopback, link-local (incl. cloud metadata) and other non-public addresses.
    pub allow_private_networks: bool,
}

/// The kind of an address, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    /// RFC 1918, CGNAT 100.64/10, IPv6 unique local fc00::/7.
    Private,
    /// 169.254/16 (incl. the 169.254.169.254 metadata service), fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8 and :: (connecting to them reaches the local host).
    Unspecified,
    /// Multicast, broadcast, documentation and other reserved ranges.
    Reserved,
}

impl AddressClass {
    pub fn of(ip: IpAddr) -> AddressClass {
        match ip {
            IpAddr::V4(v4) => classify_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| nat64_embedded(v6)) {
                Some(v4) => classify_v4(v4),
                None => classify_v6(v6),
            },
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private-network",
            AddressClass::LinkLocal => "link-local or cloud-metadata",
            AddressClass::Unspecified => "unspecified (0.0.0.0)",
            AddressClass::Reserved => "reserved",
        }
    }
}

/// `64:ff9b::/96` reaches the embedded IPv4 address through a NAT64 gateway.
fn nat64_embedded(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    })
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if a == 0 {
        AddressClass::Unspecified
    } else if ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a >= 240
        || (a == 198 && (18..20).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if first & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if first & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if ip.is_multicast() || first == 0x2001 && ip.segments()[1] == 0x0db8 {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

impl NetworkPolicy {
    /// May lablink connect to this address? `loopback_only` is set for `http://` instances,
    /// which are only ever allowed on the local host.
    pub fn permits(&self, ip: IpAddr, loopback_only: bool) -> bool {
        let class = AddressClass::of(ip);
        if loopback_only {
            return class == AddressClass::Loopback;
        }
        match class {
            AddressClass::Public => true,
            AddressClass::Loopback => self.allow_http_loopback || self.allow_private_networks,
            _ => self.allow_private_networks,
        }
    }
}

/// The refusal the resolver returns; found again in reqwest's error chain to report it plainly.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to addresses the network policy refuses ({address}, {})", class.describe())]
pub(crate) struct PolicyRefusal {
    pub(crate) host: String,
    pub(crate) address: IpAddr,
    pub(crate) class: AddressClass,
}

/// A DNS resolver that drops every address the policy refuses, and fails if none is left.
#[derive(Debug)]
pub(crate) struct PolicyResolver {
    pub(crate) policy: NetworkPolicy,
    pub(crate) loopback_only: bool,
}

type ResolveError = Box<dyn std::error::Error + Send + Sync>;

impl PolicyResolver {
    /// The addresses `host` resolves to that the policy allows; a refusal when it resolves only
    /// to refused ones. A literal address is checked as it is.
    pub(crate) async fn checked_addresses(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let resolved: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, 0))
                .await?
                .map(|a| a.ip())
                .collect(),
        };
        let (allowed, refused): (Vec<IpAddr>, Vec<IpAddr>) = resolved
            .into_iter()
            .partition(|ip| self.policy.permits(*ip, self.loopback_only));
        match (allowed.is_empty(), refused.first()) {
            (true, Some(first)) => Err(Box::new(PolicyRefusal {
                host: host.to_owned(),
                address: *first,
                class: AddressClass::of(*first),
            })),
            _ => Ok(allowed),
        }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = PolicyResolver {
            policy: self.policy,
            loopback_only: self.loopback_only,
        };
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let allowed = resolver.checked_addresses(&host).await?;
            Ok(Box::new(allowed.into_iter().map(|ip| SocketAddr::new(ip, 0))) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        AddressClass::of(s.parse().unwrap())
    }

    #[test]
    fn classifies_every_non_public_range() {
        for (addr, expected) in [
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::Private),
            ("100.127.255.254", AddressClass::Private),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.8.9.10", AddressClass::Loopback),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("169.254.1.1", AddressClass::LinkLocal),
            ("0.0.0.0", AddressClass::Unspecified),
            ("::1", AddressClass::Loopback),
            ("::", AddressClass::Unspecified),
            ("fc00::1", AddressClass::Private),
            ("fd00:ec2::254", AddressClass::Private),
            ("fe80::1", AddressClass::LinkLocal),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("64:ff9b::a00:1", AddressClass::Private),
            ("198.18.0.1", AddressClass::Reserved),
            ("224.0.0.1", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Reserved),
        ] {
            assert_eq!(class(addr), expected, "{addr}");
        }
    }

    #[test]
    fn classifies_public_addresses_and_range_edges() {
        for addr in [
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "34.74.90.64",
            "2606:4700::1111",
        ] {
            assert_eq!(class(addr), AddressClass::Public, "{addr}");
        }
    }

    #[test]
    fn default_policy_allows_only_public() {
        let policy = NetworkPolicy::default();
        assert!(policy.permits("8.8.8.8".parse().unwrap(), false));
        for addr in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "0.0.0.0",
        ] {
            assert!(!policy.permits(addr.parse().unwrap(), false), "{addr}");
        }
    }

    #[test]
    fn loopback_permission_does_not_open_private_networks() {
        let policy = NetworkPolicy {
            allow_http_loopback: true,
            allow_private_networks: false,
        };
        assert!(policy.permits("127.0.0.1".parse().unwrap(), false));
        assert!(policy.permits("::1".parse().unwrap(), true));
        assert!(!policy.permits("10.0.0.1".parse().unwrap(), false));
        assert!(!policy.permits("169.254.169.254".parse().unwrap(), false));
    }

    #[test]
    fn http_instances_reach_only_loopback_even_with_private_networks_allowed() {
        let policy = NetworkPolicy {
            allow_http_loopback: true,
            allow_private_networks: true,
        };
        assert!(policy.permits("10.0.0.1".parse().unwrap(), false));
        assert!(!policy.permits("10.0.0.1".parse().unwrap(), true));
        assert!(!policy.permits("8.8.8.8".parse().unwrap(), true));
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_to_loopback() {
        let resolver = PolicyResolver {
            policy: NetworkPolicy::default(),
            loopback_only: false,
        };
        let name: Name = "localhost".parse().unwrap();
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(err) => err,
        };
        let refusal = err
            .downcast_ref::<PolicyRefusal>()
            .expect("a policy refusal");
        assert_eq!(refusal.class, AddressClass::Loopback);
    }

    #[tokio::test]
    async fn resolver_keeps_loopback_when_allowed() {
        let resolver = PolicyResolver {
            policy: NetworkPolicy {
                allow_http_loopback: true,
                allow_private_networks: false,
            },
            loopback_only: true,
        };
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = match resolver.resolve(name).await {
            Ok(addrs) => addrs.collect(),
            Err(err) => panic!("localhost must be allowed: {err}"),
        };
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
