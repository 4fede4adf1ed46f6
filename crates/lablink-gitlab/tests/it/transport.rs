use std::time::Duration;

use lablink_gitlab::{GitLabError, Instance, InstanceConfig, NetworkPolicy};
use url::Url;

use crate::server::{Reply, serve};

#[tokio::test]
async fn probe_accepts_gitlabs_unauthenticated_answer() {
    let server = serve(|_, _| Reply::json(401, r#"{"message":"401 Unauthorized"}"#)).await;
    server.instance().probe().await.unwrap();
    let requests = server.requests();
    assert_eq!(requests[0].path, "/api/v4/user");
    assert_eq!(requests[0].header("authorization"), None);
}

#[tokio::test]
async fn probe_explains_answers_that_are_not_gitlab() {
    let server = serve(|_, _| Reply {
        status: 200,
        headers: vec![("content-type", "text/html".to_owned())],
        body: "<html>hello</html>".to_owned(),
    })
    .await;
    let err = server.instance().probe().await.unwrap_err();
    assert!(matches!(err, GitLabError::NotGitLab { .. }), "{err:?}");
    assert!(err.to_string().contains("HTTP 200"), "{err}");

    let redirecting =
        serve(|_, _| Reply::json(302, "").with_header("location", "https://sso.example.com/login"))
            .await;
    let err = redirecting.instance().probe().await.unwrap_err();
    assert!(
        err.to_string().contains("https://sso.example.com/login"),
        "{err}"
    );
    assert_eq!(
        redirecting.requests().len(),
        1,
        "redirects are not followed"
    );

    let missing = serve(|_, _| Reply::json(404, r#"{"error":"404 Not Found"}"#)).await;
    let err = missing.instance().probe().await.unwrap_err();
    assert!(err.to_string().contains("/api/v4"), "{err}");
}

#[tokio::test]
async fn unreachable_instances_say_so() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let instance = Instance::new(InstanceConfig {
        base_url: Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        ca_bundle_pem: None,
        policy: NetworkPolicy {
            allow_http_loopback: true,
            allow_private_networks: false,
        },
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let err = instance.probe().await.unwrap_err();
    assert!(matches!(err, GitLabError::Unreachable { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn names_resolving_to_loopback_are_refused_after_dns() {
    let instance = Instance::new(InstanceConfig {
        base_url: Url::parse("https://localhost:9/").unwrap(),
        ca_bundle_pem: None,
        policy: NetworkPolicy::default(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let err = instance.probe().await.unwrap_err();
    match &err {
        GitLabError::NetworkPolicy { host, class, .. } => {
            assert_eq!(host, "localhost");
            assert_eq!(*class, "loopback");
        }
        other => panic!("expected a policy refusal, got {other:?}"),
    }
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn tls_failures_are_reported_as_tls() {
    // A plain-HTTP server spoken to over https fails in the TLS handshake.
    let server = serve(|_, _| Reply::json(200, "{}")).await;
    let mut url = server.url.clone();
    url.set_scheme("https").unwrap();
    let instance = Instance::new(InstanceConfig {
        base_url: url,
        ca_bundle_pem: None,
        policy: NetworkPolicy {
            allow_http_loopback: true,
            allow_private_networks: false,
        },
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let err = instance.probe().await.unwrap_err();
    assert!(matches!(err, GitLabError::Tls { .. }), "{err:?}");
}

fn instance(url: &str, policy: NetworkPolicy) -> Instance {
    Instance::new(InstanceConfig {
        base_url: Url::parse(url).unwrap(),
        ca_bundle_pem: None,
        policy,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

/// git goes only where the API client may: to the instance's own origin, at addresses the
/// network policy allows.
#[tokio::test]
async fn git_reaches_only_the_instance_at_allowed_addresses() {
    let local = NetworkPolicy {
        allow_http_loopback: true,
        allow_private_networks: false,
    };
    let gitlab = instance("http://127.0.0.1:8929", local);
    assert_eq!(
        gitlab
            .git_addresses("http://127.0.0.1:8929/group/project.git")
            .await
            .unwrap(),
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    for foreign in [
        "http://127.0.0.1:9999/group/project.git",
        "https://127.0.0.1:8929/group/project.git",
        "http://169.254.169.254:8929/latest/meta-data",
        "http://evil.example:8929/group/project.git",
        "http://user:pw@127.0.0.1:8929/group/project.git",
        "file:///etc/passwd",
        "not a url",
    ] {
        let err = gitlab.git_addresses(foreign).await.unwrap_err();
        assert!(
            matches!(err, GitLabError::InvalidUrl(_)),
            "{foreign}: {err:?}"
        );
    }
    // A name that resolves to a refused address is refused after resolution.
    let strict = instance("https://localhost", NetworkPolicy::default());
    let err = strict
        .git_addresses("https://localhost/group/project.git")
        .await
        .unwrap_err();
    assert!(matches!(err, GitLabError::NetworkPolicy { .. }), "{err:?}");
}
