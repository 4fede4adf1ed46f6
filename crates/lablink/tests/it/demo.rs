//! `lablink demo` starts, prints working URLs and logins, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_working_urls_and_logins() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lablink"))
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    // A guard against a demo that never gets ready, not a timing assertion.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) {
        let done = line.contains("bob@jaffle.test");
        printed.push(line);
        if done {
            break;
        }
    }
    let text = printed.join("\n");
    let url_after = |label: &str| {
        printed
            .iter()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(label))
                    .then(|| words.next())
                    .flatten()
            })
            .find(|url| url.starts_with("http://"))
            .unwrap_or_else(|| panic!("no {label} URL in:\n{text}"))
            .trim_end_matches('/')
            .to_owned()
    };
    let lablink = url_after("lablink");
    let gitlab = url_after("GitLab");
    let metrics = url_after("metrics");
    assert!(
        text.contains("password for everyone: lablink-demo-password"),
        "{text}"
    );

    for email in ["admin@jaffle.test", "alice@jaffle.test", "bob@jaffle.test"] {
        let b = Browser::new(&lablink);
        let csrf = b.get("/login").await.csrf();
        let r = b
            .post_form(
                "/login",
                &[
                    ("csrf_token", &csrf),
                    ("email", email),
                    ("password", "lablink-demo-password"),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{email}: {}", r.body);
        let dashboard = b.get("/").await;
        assert!(dashboard.body.contains("Jaffle Shop Analytics"));
        assert!(dashboard.body.contains("Enterprise"));
    }
    let sim = Browser::new(&gitlab).get("/users/sign_in").await;
    assert_eq!(sim.status, 200);
    assert_eq!(Browser::new(&metrics).get("").await.status, 200);

    // SIGTERM: graceful shutdown, exit status 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
