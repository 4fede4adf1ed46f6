//! The HTTP transport to one GitLab instance: URL validation, the network policy, a custom CA,
//! timeouts, and mapping transport failures to [`GitLabError`].

mod base_url;
mod call_metrics;
pub use base_url::parse as parse_base_url;
mod policy;
pub(crate) mod response;

use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use url::Url;

use crate::error::GitLabError;
pub use policy::{AddressClass, NetworkPolicy};
use policy::{PolicyRefusal, PolicyResolver};

/// Largest response body lablink reads; GitLab's pages of 100 items stay far below it.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// What lablink needs to talk to one GitLab instance.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    pub base_url: Url,
    /// PEM bundle of extra CAs for self-managed GitLab behind a private CA.
    pub ca_bundle_pem: Option<String>,
    pub policy: NetworkPolicy,
    /// Limit for one whole request (connect, send, read).
    pub timeout: Duration,
}

/// A validated GitLab instance and the HTTP client that reaches it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Instance {
    base_url: Url,
    client: Client,
    resolver: Arc<PolicyResolver>,
}

impl Instance {
    pub fn new(cfg: InstanceConfig) -> Result<Instance, GitLabError> {
        let base = base_url::validate(&cfg.base_url, &cfg.policy)?;
        let resolver = Arc::new(PolicyResolver {
            policy: cfg.policy,
            loopback_only: base.loopback_only,
        });
        let mut builder = Client::builder()
            .dns_resolver(Arc::clone(&resolver))
            // A proxy would resolve names itself, out of reach of the policy resolver.
            .no_proxy()
            // A redirect could lead anywhere, and reqwest keeps custom headers such as
            // PRIVATE-TOKEN across hosts; lablink reports redirects instead of following them.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!base.loopback_only)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("lablink/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = cfg.ca_bundle_pem.as_deref() {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| GitLabError::InvalidCaBundle(error_chain(&e)))?;
            if certs.is_empty() {
                return Err(GitLabError::InvalidCaBundle(
                    "no `-----BEGIN CERTIFICATE-----` block found".to_owned(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| GitLabError::InvalidCaBundle(error_chain(&e)))?;
        Ok(Instance {
            base_url: base.url,
            client,
            resolver,
        })
    }

    /// Where git may connect for a repository of this instance: `clone_url` must be on the
    /// instance itself (its scheme, host and port), and git is given the addresses its host
    /// resolves to that the network policy allows, so git goes nowhere the API client may not.
    /// Checked when a repository is stored and again before each use.
    pub async fn git_addresses(&self, clone_url: &str) -> Result<Vec<IpAddr>, GitLabError> {
        let url = Url::parse(clone_url)
            .map_err(|_| GitLabError::InvalidUrl(format!("`{clone_url}` is not a URL")))?;
        let same_origin = url.scheme() == self.base_url.scheme()
            && url.host_str() == self.base_url.host_str()
            && url.port_or_known_default() == self.base_url.port_or_known_default();
        if !same_origin || !url.username().is_empty() || url.password().is_some() {
            return Err(GitLabError::InvalidUrl(format!(
                "the repository URL {clone_url} is not on the GitLab instance {}; lablink clones \
                 only from the instance it talks to",
                self.base_url
            )));
        }
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        self.resolver.checked_addresses(&host).await.map_err(|e| {
            match e.downcast_ref::<PolicyRefusal>() {
                Some(refusal) => GitLabError::NetworkPolicy {
                    host: refusal.host.clone(),
                    address: refusal.address.to_string(),
                    class: refusal.class.describe(),
                },
                None => GitLabError::Unreachable {
                    host: host.clone(),
                    cause: plain_cause(e.as_ref(), &e.to_string()),
                },
            }
        })
    }

    /// The normalised base URL (always ends with `/`).
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Checks that the URL answers like GitLab: `GET /api/v4/user` without a token must give
    /// GitLab's `401 {"message":"401 Unauthorized"}`.
    pub async fn probe(&self) -> Result<(), GitLabError> {
        let response = self.send(self.client.get(self.api_url(&["user"]))).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response).await?;
        let is_gitlab_401 = response::ErrorBody::parse(&body)
            .message
            .is_some_and(|m| m.starts_with("401 Unauthorized"));
        let detail = match status {
            StatusCode::UNAUTHORIZED if is_gitlab_401 => return Ok(()),
            s if s.is_redirection() => format!(
                "it redirects to {} (enter that address, or check for a sign-in proxy in front \
                 of GitLab)",
                headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("somewhere unnamed")
            ),
            StatusCode::NOT_FOUND => "there is no GitLab API under /api/v4 (is the URL GitLab's \
                                      root, including any sub-path?)"
                .to_owned(),
            // Busy or broken, but possibly GitLab: say so instead of "not GitLab".
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
                return Err(response::api_error(status, &headers, &body));
            }
            s => format!(
                "/api/v4/user answered HTTP {} where GitLab answers 401 \
                 {{\"message\":\"401 Unauthorized\"}}",
                s.as_u16()
            ),
        };
        Err(GitLabError::NotGitLab {
            url: self.base_url.to_string(),
            detail,
        })
    }

    /// `<base>/api/v4/<segments…>`, each segment percent-encoded.
    pub(crate) fn api_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v4"]).extend(segments);
        }
        url
    }

    /// `<base>/<path>` for non-API paths such as `oauth/token`.
    pub(crate) fn web_url(&self, path: &str) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path.split('/'));
        }
        url
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Sends a request, turning transport failures into plain-words errors; counts it
    /// ([`call_metrics`]).
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<Response, GitLabError> {
        let (client, request) = request.build_split();
        let request = request.map_err(|e| self.transport_error(&e))?;
        let endpoint = call_metrics::endpoint(&self.base_url, request.url());
        let method = request.method().clone();
        let host = self.base_url.host_str().unwrap_or_default();
        let sent = client.execute(request).await;
        let status = sent.as_ref().ok().map(|r| r.status().as_u16());
        call_metrics::record(endpoint, method.as_str(), status, host);
        if let Ok(response) = &sent {
            call_metrics::record_rate_limit(response.headers(), host);
        }
        sent.map_err(|e| self.transport_error(&e))
    }

    fn transport_error(&self, err: &reqwest::Error) -> GitLabError {
        let host = self.base_url.host_str().unwrap_or_default().to_owned();
        let https = self.base_url.scheme() == "https";
        let mut is_tls = false;
        let mut source: Option<&(dyn StdError + 'static)> = Some(err);
        while let Some(current) = source {
            if let Some(refusal) = current.downcast_ref::<PolicyRefusal>() {
                return GitLabError::NetworkPolicy {
                    host: refusal.host.clone(),
                    address: refusal.address.to_string(),
                    class: refusal.class.describe(),
                };
            }
            // tokio-rustls wraps every TLS failure in an I/O error of kind `Other` (handshake)
            // or `InvalidData` (later) carrying the rustls error; OS socket errors carry none.
            // rustls is not a direct dependency, so its error type cannot be named here.
            is_tls |= https
                && current.downcast_ref::<std::io::Error>().is_some_and(|io| {
                    io.get_ref().is_some()
                        && matches!(
                            io.kind(),
                            std::io::ErrorKind::Other | std::io::ErrorKind::InvalidData
                        )
                });
            source = current.source();
        }
        if err.is_timeout() {
            return GitLabError::Timeout { host };
        }
        let cause = error_chain(err);
        if is_tls || cause.to_ascii_lowercase().contains("certificate") {
            GitLabError::Tls { host, cause }
        } else {
            GitLabError::Unreachable {
                host,
                cause: plain_cause(err, &cause),
            }
        }
    }
}

/// Reads a response body up to [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(mut response: Response) -> Result<Bytes, GitLabError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| GitLabError::Decode {
        context: "reading the response".to_owned(),
        cause: error_chain(&e),
    })? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(GitLabError::Decode {
                context: "reading the response".to_owned(),
                cause: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// An error and its causes on one line, without the request URL reqwest adds at the top.
/// Why a connection failed, in a person's words: the socket error's kind when there is one (the
/// library's own text reads like "tcp connect error: Connection refused (os error 111)"), else
/// the library's chain.
fn plain_cause(err: &(dyn StdError + 'static), chain: &str) -> String {
    use std::io::ErrorKind;
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            let plain = match io.kind() {
                ErrorKind::ConnectionRefused => {
                    "the connection was refused (nothing listens there)"
                }
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                    "the connection was closed by the other side"
                }
                ErrorKind::HostUnreachable => "the host is unreachable",
                ErrorKind::NetworkUnreachable => "the network is unreachable",
                ErrorKind::TimedOut => "the connection timed out",
                ErrorKind::AddrNotAvailable => "the address is not available",
                _ => "",
            };
            if !plain.is_empty() {
                return plain.to_owned();
            }
        }
        source = current.source();
    }
    if chain.contains("dns error") || chain.contains("failed to lookup address") {
        return "the name does not resolve".to_owned();
    }
    chain.to_owned()
}

fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(current) = source {
        parts.push(current.to_string());
        source = current.source();
    }
    if parts.is_empty() {
        parts.push(err.to_string());
    }
    parts.dedup();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(url: &str) -> Instance {
        Instance::new(InstanceConfig {
            base_url: Url::parse(url).unwrap(),
            ca_bundle_pem: None,
            policy: NetworkPolicy {
                allow_http_loopback: true,
                allow_private_networks: false,
            },
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    #[test]
    fn builds_api_urls_under_sub_paths_with_encoding() {
        let gl = instance("https://example.org/gitlab");
        assert_eq!(
            gl.api_url(&["projects", "group/sub", "hooks"]).as_str(),
            "https://example.org/gitlab/api/v4/projects/group%2Fsub/hooks"
        );
        assert_eq!(
            gl.web_url("oauth/token").as_str(),
            "https://example.org/gitlab/oauth/token"
        );
        let root = instance("https://gitlab.com/");
        assert_eq!(
            root.api_url(&["user"]).as_str(),
            "https://gitlab.com/api/v4/user"
        );
    }

    #[test]
    fn rejects_a_ca_bundle_without_certificates() {
        let err = Instance::new(InstanceConfig {
            base_url: Url::parse("https://gitlab.example.com").unwrap(),
            ca_bundle_pem: Some("not a certificate".to_owned()),
            policy: NetworkPolicy::default(),
            timeout: Duration::from_secs(5),
        })
        .unwrap_err();
        assert!(matches!(err, GitLabError::InvalidCaBundle(_)), "{err:?}");
    }
}
