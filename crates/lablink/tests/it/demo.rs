//! `lablink demo` starts, prints working URLs and logins, shows a finished CI run of a sample
//! merge request (real dbt) with its note of what changed against production, and stops cleanly
//! on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

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
    // A guard against a demo that never gets ready (the CI run is real dbt), not a timing
    // assertion. The CI showcase prints its run after the logins, or says why it has none.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(300)) {
        let done = [
            "MR note",
            "CI          the CI showcase failed",
            "CI          no CI run",
        ]
        .iter()
        .any(|end| line.trim_start().starts_with(end));
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
                    .then(|| words.find(|w| w.starts_with("http://")))
                    .flatten()
            })
            .next()
            .unwrap_or_else(|| panic!("no {label} URL in:\n{text}"))
            .trim_end_matches('/')
            .to_owned()
    };
    let lablink = url_after("lablink");
    let gitlab = url_after("GitLab");
    let metrics = url_after("metrics");
    let run = url_after("CI");
    assert!(run.starts_with(&format!("{lablink}/runs/")), "{text}");
    let merge_request = url_after("MR");
    assert!(merge_request.starts_with(&gitlab), "{text}");
    // The demo ran production first, so the note compares with it.
    let note = printed
        .iter()
        .find(|l| l.trim_start().starts_with("MR note"))
        .unwrap_or_else(|| panic!("no note in:\n{text}"));
    for expected in [
        "lablink/ci: success",
        "1 model changed",
        "`customer_orders`: -2 rows",
        "`customer_orders`: column `largest_order` added",
    ] {
        assert!(note.contains(expected), "`{expected}` missing from: {note}");
    }
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

    // The run's page is there for the admin, and GitLab holds its successful commit status on
    // the merge request's head commit.
    let admin = Browser::new(&lablink);
    let csrf = admin.get("/login").await.csrf();
    admin
        .post_form(
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", "admin@jaffle.test"),
                ("password", "lablink-demo-password"),
            ],
        )
        .await;
    let run_page = admin.get(&run).await;
    assert_eq!(run_page.status, 200, "{}", run_page.body);
    assert!(run_page.body.contains("lablink/ci"), "{}", run_page.body);
    assert!(run_page.body.contains("What changed"), "{}", run_page.body);
    let state = Browser::new(&gitlab).get("/-/sim/state").await.json();
    let heads: Vec<&Value> = state["merge_requests"]
        .as_object()
        .unwrap()
        .values()
        .map(|mr| &mr["sha"])
        .collect();
    assert_eq!(heads.len(), 1, "{state:#}");
    let statuses: Vec<&Value> = state["commit_statuses"]
        .as_object()
        .unwrap()
        .values()
        .filter(|s| &s["sha"] == heads[0])
        .collect();
    assert!(
        statuses.iter().any(|s| s["status"] == "success"
            && s["name"].as_str().unwrap().starts_with("lablink/")
            && s["target_url"] == run.as_str()),
        "{statuses:#?}"
    );

    // SIGTERM: graceful shutdown, exit status 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
