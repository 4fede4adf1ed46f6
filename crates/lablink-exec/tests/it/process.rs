use std::sync::Arc;
use std::time::Duration;

use lablink_exec::process::LINE_TRUNCATED;
use lablink_exec::{LogLine, ProcessSpec, Redactor, Stream, Termination, run};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::assert_group_gone;

fn sh(dir: &tempfile::TempDir, script: &str, timeout: Duration) -> ProcessSpec {
    ProcessSpec::new("/bin/sh", dir.path(), timeout).args(["-c", script])
}

async fn run_collect(spec: &ProcessSpec) -> (Termination, Vec<LogLine>) {
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let collect = async move {
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        lines
    };
    let (termination, lines) = tokio::join!(run(spec, tx, &cancel), collect);
    (termination.unwrap(), lines)
}

fn first_pid(lines: &[LogLine]) -> i32 {
    lines[0].line.parse().unwrap()
}

#[tokio::test]
async fn streams_both_streams_and_reports_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sh(
        &dir,
        "echo out; echo err >&2; pwd; exit 3",
        Duration::from_secs(60),
    );
    let (termination, lines) = run_collect(&spec).await;
    assert_eq!(termination.code(), Some(3));
    assert!(!termination.success());
    let line = |stream, line: &str| LogLine {
        stream,
        line: line.to_owned(),
    };
    assert!(lines.contains(&line(Stream::Stdout, "out")));
    assert!(lines.contains(&line(Stream::Stderr, "err")));
    let cwd = dir.path().canonicalize().unwrap();
    assert!(lines.contains(&line(Stream::Stdout, cwd.to_str().unwrap())));
}

#[tokio::test]
async fn environment_is_only_the_allow_list_and_explicit_values() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ProcessSpec::new("/usr/bin/env", dir.path(), Duration::from_secs(60))
        .env("DBT_PROFILES_DIR", "/profiles");
    let (termination, lines) = run_collect(&spec).await;
    assert!(termination.success());
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.line.split_once('=').unwrap().0)
        .collect();
    assert!(names.contains(&"DBT_PROFILES_DIR"));
    assert!(names.contains(&"PATH"));
    for name in names {
        assert!(
            ["DBT_PROFILES_DIR", "PATH", "LANG", "LC_ALL", "TZ", "TMPDIR"].contains(&name),
            "unexpected variable {name}"
        );
    }
}

#[tokio::test]
async fn secrets_are_redacted_even_when_split_across_reads() {
    let dir = tempfile::tempdir().unwrap();
    // The pauses make the shell write the secret in two separate pieces.
    let script = "printf 'token=s3cr'; sleep 0.2; printf '3t-value and more\\n'; \
                  echo 's3cr3t-value' >&2; printf 'no newline s3cr3t-value'";
    let spec = sh(&dir, script, Duration::from_secs(60))
        .redactor(Arc::new(Redactor::new(["s3cr3t-value"])));
    let (termination, lines) = run_collect(&spec).await;
    assert!(termination.success());
    let text: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    assert!(text.contains(&"token=[REDACTED] and more"), "{text:?}");
    assert!(text.contains(&"[REDACTED]"), "{text:?}");
    assert!(text.contains(&"no newline [REDACTED]"), "{text:?}");
    assert!(lines.iter().all(|l| !l.line.contains("s3cr")));
}

#[tokio::test]
async fn long_lines_are_cut_without_leaking_a_secret_at_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = sh(
        &dir,
        "printf '%s' 0123456789; echo 'topsecretvalue and more'; echo short",
        Duration::from_secs(60),
    )
    .redactor(Arc::new(Redactor::new(["topsecretvalue"])));
    spec.max_line_bytes = 12;
    let (termination, lines) = run_collect(&spec).await;
    assert!(termination.success());
    assert_eq!(
        lines[0].line,
        format!("0123456789[REDACTED]{LINE_TRUNCATED}")
    );
    assert_eq!(lines[1].line, "short");
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sh(
        &dir,
        "echo $$; sleep 30 & sleep 30 & wait",
        Duration::from_millis(500),
    );
    let (termination, lines) = run_collect(&spec).await;
    assert_eq!(termination, Termination::TimedOut);
    assert_group_gone(first_pid(&lines)).await;
}

#[tokio::test]
async fn cancellation_kills_the_whole_group_even_when_sigterm_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = sh(
        &dir,
        "trap '' TERM; echo $$; sh -c 'trap \"\" TERM; sleep 30' & sleep 30 & wait",
        Duration::from_secs(600),
    );
    spec.kill_grace = Duration::from_millis(200);
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let watcher = {
        let cancel = cancel.clone();
        async move {
            let first = rx.recv().await.unwrap();
            cancel.cancel();
            while rx.recv().await.is_some() {}
            first
        }
    };
    let (termination, first) = tokio::join!(run(&spec, tx, &cancel), watcher);
    assert_eq!(termination.unwrap(), Termination::Cancelled);
    assert_group_gone(first.line.parse().unwrap()).await;
}

#[tokio::test]
async fn descendants_left_behind_by_a_finished_process_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sh(
        &dir,
        "echo $$; sleep 30 & echo started",
        Duration::from_secs(600),
    );
    let (termination, lines) = run_collect(&spec).await;
    assert!(termination.success());
    assert_eq!(lines[1].line, "started");
    assert_group_gone(first_pid(&lines)).await;
}

#[tokio::test]
async fn a_missing_program_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ProcessSpec::new("/nonexistent/dbt", dir.path(), Duration::from_secs(5));
    let (tx, _rx) = mpsc::channel(1);
    let err = run(&spec, tx, &CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/dbt"), "{err}");
}

#[tokio::test]
async fn a_descendant_that_leaves_the_group_cannot_hold_the_run_open() {
    let dir = tempfile::tempdir().unwrap();
    // setsid puts the sleeper in its own session and group, out of reach of the group kill, but
    // it still holds the stdout pipe: without the grace limit this run would never end.
    let mut spec = sh(
        &dir,
        "setsid sleep 100000 & echo $!; echo done",
        Duration::from_secs(600),
    );
    spec.kill_grace = Duration::from_millis(200);
    let (termination, lines) = run_collect(&spec).await;
    assert!(termination.success());
    assert!(lines.iter().any(|l| l.line == "done"));
    // Not ours to leave running: the test cleans up the escaped process itself.
    let escaped = first_pid(&lines);
    std::process::Command::new("kill")
        .arg(escaped.to_string())
        .status()
        .unwrap();
}
