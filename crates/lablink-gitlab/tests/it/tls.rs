//! A real TLS server (`openssl s_server`) with a certificate from a private CA: refused without
//! the CA bundle (reported as a TLS problem), accepted with it.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lablink_gitlab::{GitLabError, Instance, InstanceConfig, NetworkPolicy};
use url::Url;

struct TlsServer {
    child: Child,
    port: u16,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl {args:?}");
}

fn start_tls_server() -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=lablink test CA",
    ]);
    openssl(path, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(path, &csr);
    std::fs::write(
        path.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        path,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("openssl")
        .args([
            "s_server", "-quiet", "-www", "-cert", "leaf.pem", "-key", "leaf.key",
        ])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .current_dir(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Bounded wait for the listener; the tests below assert on answers, not on time.
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    TlsServer {
        child,
        port,
        ca_pem: std::fs::read_to_string(path.join("ca.pem")).unwrap(),
        _dir: dir,
    }
}

fn instance(server: &TlsServer, ca_bundle_pem: Option<String>) -> Instance {
    Instance::new(InstanceConfig {
        base_url: Url::parse(&format!("https://localhost:{}/", server.port)).unwrap(),
        ca_bundle_pem,
        policy: NetworkPolicy {
            allow_http_loopback: true,
            allow_private_networks: false,
        },
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

#[tokio::test]
async fn private_ca_needs_its_bundle() {
    let server = start_tls_server();
    let err = instance(&server, None).probe().await.unwrap_err();
    assert!(matches!(err, GitLabError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("CA"), "{err}");

    // With the bundle the TLS handshake succeeds and the answer (openssl's status page) is
    // judged on its merits: not GitLab.
    let err = instance(&server, Some(server.ca_pem.clone()))
        .probe()
        .await
        .unwrap_err();
    assert!(matches!(err, GitLabError::NotGitLab { .. }), "{err:?}");
}
