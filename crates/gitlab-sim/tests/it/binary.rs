//! The `gitlab-sim` binary: prints its URL first and documents every flag.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_gitlab-sim");

#[tokio::test]
async fn starts_on_port_zero_and_prints_its_url() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let url = line
        .trim()
        .strip_prefix("gitlab-sim listening on ")
        .expect("prefix")
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let response = reqwest::get(format!("{url}/api/v4/user"))
        .await
        .expect("request");
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("json");
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(body, serde_json::json!({"message": "401 Unauthorized"}));
}

/// The second line names the SSH URL and host key; the key is the same on the next start with
/// the same data directory.
#[test]
fn prints_its_ssh_url_and_keeps_the_host_key_per_data_dir() {
    let data = tempfile::tempdir().expect("tempdir");
    let start = || {
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let http = lines.next().expect("first line").expect("line");
        let ssh = lines.next().expect("second line").expect("line");
        child.kill().expect("kill");
        child.wait().expect("wait");
        (http, ssh)
    };
    let (http, ssh) = start();
    assert!(
        http.starts_with("gitlab-sim listening on http://127.0.0.1:"),
        "{http}"
    );
    let rest = ssh
        .strip_prefix("gitlab-sim ssh on ssh://git@127.0.0.1:")
        .unwrap_or_else(|| panic!("{ssh}"));
    let (_, key) = rest.split_once(" host key ").expect("host key");
    assert!(key.starts_with("ssh-ed25519 AAAA"), "{key}");
    let (_, again) = start();
    assert_eq!(again.split_once(" host key ").map(|(_, k)| k), Some(key));
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN).arg("--help").output().expect("help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--ssh-listen",
        "--data-dir",
        "--state-file",
        "--gitlab-com-free",
        "--help",
        "--version",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}
