//! An account's IP restrictions: allow and deny rules of address ranges, and the decision for one
//! address. The most specific matching range decides (a deny of a country with an allow of one
//! city in it lets the city in); with allow rules, an address no rule matches is denied; with
//! deny rules only, it is allowed. The same range on both lists is refused when the rules are
//! built, naming both rules.
//!
//! Deciding costs one hash lookup per distinct prefix length in use (at most 33 for IPv4 and 129
//! for IPv6), whatever the number of rules.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

crate::text_enum! {
    /// What a rule does with the addresses in its ranges.
    pub enum RuleKind ("rule kind") {
        Allow = "allow",
        Deny = "deny",
    }
}

/// A rule as stored: its ranges are already normalised (see [`crate::ip_range`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub kind: RuleKind,
    pub ranges: Vec<IpNet>,
}

/// Why a set of rules cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{range} is both allowed (rule “{allow}”) and denied (rule “{deny}”); a range can be on one list only"
)]
pub struct RangeOnBothLists {
    pub range: IpNet,
    pub allow: String,
    pub deny: String,
}

/// Which rule decided, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule and range that matched most specifically; `None` when no rule matched.
    pub by: Option<(Rule, IpNet)>,
}

impl Decision {
    /// The decision in words, for the address tester and refusals.
    pub fn explain(&self) -> String {
        match (&self.by, self.allowed) {
            (Some((rule, range)), true) => format!("allowed by rule “{}” ({range})", rule.name),
            (Some((rule, range)), false) => format!("denied by rule “{}” ({range})", rule.name),
            (None, true) => "allowed: no rule matches, and there are no allow rules".to_owned(),
            (None, false) => "denied: no allow rule matches this address".to_owned(),
        }
    }
}

/// The rules, indexed for deciding.
#[derive(Debug, Clone, Default)]
pub struct IpRules {
    rules: Vec<Rule>,
    /// Per (family is IPv6, prefix length), longest first: the network → the rule's index.
    tables: Vec<((bool, u8), HashMap<IpNet, usize>)>,
    has_allow: bool,
}

impl IpRules {
    pub fn new(rules: Vec<Rule>) -> Result<IpRules, RangeOnBothLists> {
        let mut by_range: HashMap<IpNet, usize> = HashMap::new();
        for (index, rule) in rules.iter().enumerate() {
            for range in &rule.ranges {
                let range = range.trunc();
                match by_range.get(&range) {
                    Some(&other) if rules[other].kind != rule.kind => {
                        let (allow, deny) = if rule.kind == RuleKind::Allow {
                            (rule, &rules[other])
                        } else {
                            (&rules[other], rule)
                        };
                        return Err(RangeOnBothLists {
                            range,
                            allow: allow.name.clone(),
                            deny: deny.name.clone(),
                        });
                    }
                    Some(_) => {}
                    None => {
                        by_range.insert(range, index);
                    }
                }
            }
        }
        let mut tables: HashMap<(bool, u8), HashMap<IpNet, usize>> = HashMap::new();
        for (range, index) in by_range {
            let family = matches!(range, IpNet::V6(_));
            tables
                .entry((family, range.prefix_len()))
                .or_default()
                .insert(range, index);
        }
        let mut tables: Vec<_> = tables.into_iter().collect();
        tables.sort_by_key(|((_, len), _)| std::cmp::Reverse(*len));
        Ok(IpRules {
            has_allow: rules.iter().any(|r| r.kind == RuleKind::Allow),
            rules,
            tables,
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn decide(&self, address: IpAddr) -> Decision {
        // An IPv4 client seen through an IPv6 socket is the IPv4 address.
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        let v6 = address.is_ipv6();
        for ((family, len), table) in &self.tables {
            if *family != v6 {
                continue;
            }
            let Ok(network) = IpNet::new(address, *len) else {
                continue;
            };
            if let Some(&index) = table.get(&network.trunc()) {
                let rule = &self.rules[index];
                return Decision {
                    allowed: rule.kind == RuleKind::Allow,
                    by: Some((rule.clone(), network.trunc())),
                };
            }
        }
        Decision {
            allowed: !self.has_allow,
            by: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip_range::parse_ip_range;

    fn rule(name: &str, kind: RuleKind, ranges: &[&str]) -> Rule {
        Rule {
            id: name.to_owned(),
            name: name.to_owned(),
            kind,
            ranges: ranges.iter().map(|r| parse_ip_range(r).unwrap()).collect(),
        }
    }

    fn allowed(rules: &IpRules, address: &str) -> bool {
        rules.decide(address.parse().unwrap()).allowed
    }

    #[test]
    fn the_more_specific_range_wins_both_ways() {
        // The USA/NY examples, with documentation ranges standing in for them.
        let deny_usa_allow_ny = IpRules::new(vec![
            rule("usa", RuleKind::Deny, &["198.51.0.0/16"]),
            rule("ny", RuleKind::Allow, &["198.51.100.0/24"]),
        ])
        .unwrap();
        assert!(allowed(&deny_usa_allow_ny, "198.51.100.7"));
        assert!(!allowed(&deny_usa_allow_ny, "198.51.7.7"));
        // An allow rule exists, so an address no rule matches is denied.
        let no_match = deny_usa_allow_ny.decide("203.0.113.1".parse().unwrap());
        assert!(!no_match.allowed && no_match.by.is_none());

        let allow_usa_deny_ny = IpRules::new(vec![
            rule("usa", RuleKind::Allow, &["198.51.0.0/16"]),
            rule("ny", RuleKind::Deny, &["198.51.100.0/24"]),
        ])
        .unwrap();
        assert!(!allowed(&allow_usa_deny_ny, "198.51.100.7"));
        assert!(allowed(&allow_usa_deny_ny, "198.51.7.7"));
        assert_eq!(
            allow_usa_deny_ny
                .decide("198.51.100.7".parse().unwrap())
                .explain(),
            "denied by rule “ny” (198.51.100.0/24)"
        );
    }

    #[test]
    fn ipv6_and_mapped_ipv4_addresses() {
        let rules = IpRules::new(vec![
            rule(
                "office",
                RuleKind::Allow,
                &["2001:db8::/32", "192.0.2.0/24"],
            ),
            rule("lab", RuleKind::Deny, &["2001:db8:1::/48"]),
        ])
        .unwrap();
        assert!(allowed(&rules, "2001:db8:2::1"));
        assert!(!allowed(&rules, "2001:db8:1::1"));
        assert!(allowed(&rules, "::ffff:192.0.2.9"));
        assert!(!allowed(&rules, "2001:db9::1"));
    }

    #[test]
    fn deny_rules_alone_let_everyone_else_in() {
        let rules = IpRules::new(vec![rule("bad", RuleKind::Deny, &["203.0.113.0/24"])]).unwrap();
        assert!(allowed(&rules, "192.0.2.1"));
        assert!(!allowed(&rules, "203.0.113.200"));
        assert!(allowed(&IpRules::default(), "192.0.2.1"));
    }

    #[test]
    fn the_same_range_on_both_lists_is_refused() {
        let err = IpRules::new(vec![
            rule("a", RuleKind::Allow, &["10.0.0.0/8"]),
            rule("b", RuleKind::Deny, &["10.1.2.3/8"]),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "10.0.0.0/8 is both allowed (rule “a”) and denied (rule “b”); a range can be on one list only"
        );
        // The same range twice on one list is harmless.
        IpRules::new(vec![
            rule("a", RuleKind::Allow, &["10.0.0.0/8"]),
            rule("b", RuleKind::Allow, &["10.0.0.0/8"]),
        ])
        .unwrap();
    }

    #[test]
    fn a_thousand_rules_decide_like_a_scan_of_them_all() {
        // Property check against the definition: the longest matching prefix decides.
        let mut rules = Vec::new();
        for i in 0..1000u32 {
            let kind = if i % 3 == 0 {
                RuleKind::Deny
            } else {
                RuleKind::Allow
            };
            let len = 8 + (i % 17);
            let address = std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761));
            let range = IpNet::new(IpAddr::V4(address), len as u8).unwrap().trunc();
            rules.push(Rule {
                id: i.to_string(),
                name: format!("r{i}"),
                kind,
                ranges: vec![range],
            });
        }
        // Drop ranges that collide across kinds (the constructor would refuse them).
        let mut seen: HashMap<IpNet, RuleKind> = HashMap::new();
        rules.retain(|r| *seen.entry(r.ranges[0]).or_insert(r.kind) == r.kind);
        let indexed = IpRules::new(rules.clone()).unwrap();
        for probe in 0..5000u32 {
            let address = IpAddr::V4(std::net::Ipv4Addr::from(probe.wrapping_mul(40_503) << 7));
            let best = rules
                .iter()
                .filter(|r| r.ranges[0].contains(&address))
                .max_by_key(|r| r.ranges[0].prefix_len());
            let expected = best.is_some_and(|r| r.kind == RuleKind::Allow);
            assert_eq!(indexed.decide(address).allowed, expected, "{address}");
        }
    }
}
