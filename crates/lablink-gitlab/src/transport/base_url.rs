//! Validation of an admin-typed GitLab base URL.

use std::net::IpAddr;

use url::{Host, Url};

use super::policy::{AddressClass, NetworkPolicy};
use crate::error::GitLabError;

/// A checked base URL: scheme, host and path are acceptable and the path ends with `/`.
pub(crate) struct BaseUrl {
    pub(crate) url: Url,
    /// `http://` instances may only ever connect to the local host.
    pub(crate) loopback_only: bool,
}

/// Reads a GitLab address typed by a person; what is wrong is said in plain words, not in the
/// URL parser's.
pub fn parse(text: &str) -> Result<Url, GitLabError> {
    use url::ParseError;
    Url::parse(text.trim()).map_err(|e| {
        GitLabError::InvalidUrl(
            match e {
                ParseError::RelativeUrlWithoutBase => {
                    "it is not a full address: start it with https://, like https://gitlab.example.com"
                }
                ParseError::EmptyHost => "it has no host name",
                ParseError::InvalidPort => "its port is not a number from 1 to 65535",
                ParseError::InvalidIpv4Address | ParseError::InvalidIpv6Address => {
                    "the IP address in it is not valid"
                }
                ParseError::IdnaError | ParseError::InvalidDomainCharacter => {
                    "its host name has characters a host name cannot have"
                }
                _ => "it is not a valid web address",
            }
            .to_owned(),
        )
    })
}

pub(crate) fn validate(url: &Url, policy: &NetworkPolicy) -> Result<BaseUrl, GitLabError> {
    let invalid = |why: &str| Err(GitLabError::InvalidUrl(why.to_owned()));
    if !url.username().is_empty() || url.password().is_some() {
        return invalid("remove the user name and password from the URL; lablink uses OAuth");
    }
    if url.query().is_some() {
        return invalid("remove the `?…` query from the URL; give GitLab's base address");
    }
    if url.fragment().is_some() {
        return invalid("remove the `#…` fragment from the URL");
    }
    let Some(host) = url.host() else {
        return invalid("the URL has no host name");
    };
    let literal_ip = match host {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) => None,
    };
    let loopback_host = match (&host, literal_ip) {
        (_, Some(ip)) => AddressClass::of(ip) == AddressClass::Loopback,
        (Host::Domain(name), None) => name.eq_ignore_ascii_case("localhost"),
        _ => false,
    };
    let loopback_only = match url.scheme() {
        "https" => false,
        "http" if policy.allow_http_loopback && loopback_host => true,
        "http" if policy.allow_http_loopback => {
            return invalid("use https://; plain http:// is allowed only for localhost");
        }
        "http" => return invalid("use https://; plain http:// is not allowed"),
        _ => return invalid("the URL must start with https://"),
    };
    // Names are checked after DNS resolution by the resolver; literal addresses never reach it.
    if let Some(ip) = literal_ip
        && !policy.permits(ip, loopback_only)
    {
        return Err(GitLabError::NetworkPolicy {
            host: ip.to_string(),
            address: ip.to_string(),
            class: AddressClass::of(ip).describe(),
        });
    }
    let mut normalised = url.clone();
    if !normalised.path().ends_with('/') {
        let path = format!("{}/", normalised.path());
        normalised.set_path(&path);
    }
    Ok(BaseUrl {
        url: normalised,
        loopback_only,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn typed_addresses_are_refused_in_plain_words() {
        for (typed, words) in [
            ("gitlab.example.com", "start it with https://"),
            ("https://", "no host name"),
            ("https://gitlab.example.com:99999", "port"),
            ("https://[::1", "IP address"),
        ] {
            let e = super::parse(typed).unwrap_err().to_string();
            assert!(e.contains(words), "{typed}: {e}");
            assert!(!e.contains("relative URL"), "{e}");
        }
        assert!(super::parse(" https://gitlab.com ").is_ok());
    }

    use super::*;

    const STRICT: NetworkPolicy = NetworkPolicy {
        allow_http_loopback: false,
        allow_private_networks: false,
    };
    const LOCAL_HTTP: NetworkPolicy = NetworkPolicy {
        allow_http_loopback: true,
        allow_private_networks: false,
    };

    fn check(url: &str, policy: NetworkPolicy) -> Result<BaseUrl, GitLabError> {
        validate(&Url::parse(url).unwrap(), &policy)
    }

    #[test]
    fn accepts_https_and_normalises_the_trailing_slash() {
        let base = check("https://gitlab.com", STRICT).unwrap();
        assert_eq!(base.url.as_str(), "https://gitlab.com/");
        assert!(!base.loopback_only);
        let base = check("https://example.org/gitlab", STRICT).unwrap();
        assert_eq!(base.url.as_str(), "https://example.org/gitlab/");
        let base = check("https://example.org/gitlab/", STRICT).unwrap();
        assert_eq!(base.url.as_str(), "https://example.org/gitlab/");
    }

    #[test]
    fn refuses_credentials_query_fragment_and_other_schemes() {
        for url in [
            "https://user:pw@gitlab.com",
            "https://user@gitlab.com",
            "https://gitlab.com/?x=1",
            "https://gitlab.com/#frag",
            "ftp://gitlab.com",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(check(url, LOCAL_HTTP), Err(GitLabError::InvalidUrl(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn http_only_for_loopback_and_only_when_allowed() {
        assert!(matches!(
            check("http://127.0.0.1:8080", STRICT),
            Err(GitLabError::InvalidUrl(_))
        ));
        assert!(
            check("http://127.0.0.1:8080", LOCAL_HTTP)
                .unwrap()
                .loopback_only
        );
        assert!(
            check("http://localhost:8080", LOCAL_HTTP)
                .unwrap()
                .loopback_only
        );
        assert!(
            check("http://[::1]:8080", LOCAL_HTTP)
                .unwrap()
                .loopback_only
        );
        assert!(matches!(
            check("http://gitlab.com", LOCAL_HTTP),
            Err(GitLabError::InvalidUrl(_))
        ));
        assert!(matches!(
            check("http://10.0.0.1", LOCAL_HTTP),
            Err(GitLabError::InvalidUrl(_))
        ));
    }

    #[test]
    fn literal_private_addresses_are_refused_by_policy() {
        for url in [
            "https://10.0.0.1",
            "https://172.16.5.4",
            "https://192.168.0.1",
            "https://127.0.0.1",
            "https://169.254.169.254",
            "https://[::1]",
            "https://[fd00::1]",
            "https://[fe80::1]",
            "https://0.0.0.0",
            "https://100.64.1.1",
        ] {
            assert!(
                matches!(check(url, STRICT), Err(GitLabError::NetworkPolicy { .. })),
                "{url}"
            );
        }
        let open = NetworkPolicy {
            allow_http_loopback: false,
            allow_private_networks: true,
        };
        assert!(check("https://10.0.0.1", open).is_ok());
    }
}
