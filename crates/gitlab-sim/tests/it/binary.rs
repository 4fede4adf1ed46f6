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

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN).arg("--help").output().expect("help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--state-file",
        "--gitlab-com-free",
        "--help",
        "--version",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}
