//! Address ranges as people write them: CIDR (`203.0.113.0/24`, `2001:db8::/32`) or a single
//! address, IPv4 or IPv6, normalised to the network they name (`10.1.2.3/8` is `10.0.0.0/8`).

pub use ipnet::IpNet;

/// A range that does not parse, in words for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadIpRange(String);

/// Reads one range; a bare address is the range of that address alone.
pub fn parse_ip_range(text: &str) -> Result<IpNet, BadIpRange> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(addr) = text.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    let why = match text.split_once('/') {
        _ if text.is_empty() => "an empty range".to_owned(),
        Some((addr, bits)) if addr.parse::<std::net::IpAddr>().is_ok() => {
            let max = if addr.contains(':') { 128 } else { 32 };
            format!("`{text}` has a prefix length of `{bits}`; it must be a number from 0 to {max}")
        }
        _ => format!("`{text}` is not an address or a range"),
    };
    Err(BadIpRange(format!(
        "{why}: write a range like 203.0.113.0/24 or 2001:db8::/32, or a single address"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_addresses_of_both_families_are_normalised() {
        assert_eq!(
            parse_ip_range(" 10.1.2.3/8 ").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_ip_range("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            parse_ip_range("2001:DB8::1/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(parse_ip_range("::1").unwrap().to_string(), "::1/128");
    }

    #[test]
    fn bad_ranges_say_what_is_wrong_in_words() {
        let e = parse_ip_range("10.0.0.0/33").unwrap_err().to_string();
        assert!(e.contains("from 0 to 32"), "{e}");
        let e = parse_ip_range("2001:db8::/129").unwrap_err().to_string();
        assert!(e.contains("from 0 to 128"), "{e}");
        let e = parse_ip_range("example.com").unwrap_err().to_string();
        assert!(
            e.starts_with("`example.com` is not an address or a range"),
            "{e}"
        );
        assert!(
            parse_ip_range("")
                .unwrap_err()
                .to_string()
                .starts_with("an empty range")
        );
        assert!(parse_ip_range("300.1.1.1/8").is_err());
    }
}
