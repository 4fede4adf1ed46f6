//! Which address a request comes from: the peer's, unless the peer is one of the operator's
//! `trusted_proxies`; then the rightmost hop of `Forwarded` (or, without it, `X-Forwarded-For`)
//! that is not itself a trusted proxy. Everything that cares about the client's address (sign-in
//! throttling, the audit log, IP restrictions) asks this one function.
//!
//! Headers from any other peer are ignored: anyone can send `X-Forwarded-For`, and only the
//! hops a trusted proxy appended can be believed. Hops left of the first untrusted one may be
//! made up by the client, so they are never used.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed (setting `trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    pub fn new(ranges: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(ranges.into())
    }

    pub(crate) fn trusts(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.iter().any(|net| net.contains(&addr))
    }
}

/// The client's address for a request that reached us from `peer`.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.trusts(peer) {
        return peer;
    }
    let hops = forwarded_hops(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A hop we cannot read ends the walk: what is left of it cannot be trusted either.
        let Some(addr) = hop else { break };
        client = canonical(*addr);
        if !trusted.trusts(client) {
            break;
        }
    }
    client
}

/// The hops of `Forwarded` (RFC 7239 `for=`), or of `X-Forwarded-For` when there is no
/// `Forwarded`, left to right over all header lines; `None` for a hop that is not an address
/// (`unknown`, an obfuscated name, garbage).
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|line| line.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or
/// `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            node.strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .and_then(|n| n.parse().ok())
        })
}

/// IPv4 addresses that arrive mapped into IPv6 (a dual-stack listener) as plain IPv4, so rules
/// written for IPv4 match them.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn proxies(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::new(ranges.iter().map(|r| r.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            client_address(ip("203.0.113.9"), &h, &proxies(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(ip("203.0.113.9"), &h, &TrustedProxies::default()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        // The client made up 6.6.6.6; the proxy chain appended the real address and itself.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &h, &trusted),
            ip("198.51.100.7")
        );
        // Several header lines count as one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "2001:db8::5"),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &h, &trusted),
            ip("2001:db8::5")
        );
        // Forwarded wins over X-Forwarded-For, ports and quotes are understood.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::9]:4711\";proto=https, for=10.1.1.1",
            ),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &h, &trusted),
            ip("2001:db8::9")
        );
        let h = headers(&[("x-forwarded-for", "192.0.2.1:8080")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &h, &trusted),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn garbage_or_missing_hops_leave_the_last_trusted_address() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.2.3.4, unknown")]);
        assert_eq!(client_address(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.1"));
        assert_eq!(
            client_address(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        // A chain of trusted proxies only: the leftmost one is as far as we can see.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.2")]);
        assert_eq!(client_address(ip("10.0.0.1"), &h, &trusted), ip("10.9.9.9"));
    }

    #[test]
    fn ipv4_mapped_peers_are_ipv4() {
        let trusted = proxies(&["127.0.0.1/32"]);
        let h = headers(&[("x-forwarded-for", "::ffff:198.51.100.1")]);
        assert_eq!(
            client_address(ip("::ffff:127.0.0.1"), &h, &trusted),
            ip("198.51.100.1")
        );
    }
}
