//! The cost of the sandbox, measured in one run:
//! - one CI run of the sample dbt project (`examples/jaffle_shop_duckdb`), merge request opened
//!   in gitlab-sim → the run's final status visible there, with the sandbox (bubblewrap) and
//!   without it (`run_isolation = "none"`), each in a lablink of its own;
//! - the baseline: a bare `dbt build` of the same files in a shell, as in a fresh checkout (the
//!   same virtualenv, a DuckDB profile of its own, no `target/` left from the build before);
//! - starting one process (`/bin/true`) in the sandbox against starting it directly, through
//!   lablink's own process runner.
//!
//! Run: `cargo bench -p lablink --bench ci_run` (results go to BENCHMARKS.md by hand).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use lablink_core::run::RunState;
use lablink_exec::dbt::DbtInstall;
use lablink_exec::limits::Limits;
use lablink_exec::sandbox::{Isolation, Sandbox};
use lablink_exec::{ProcessSpec, Termination};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

// Shared with the other benchmarks, which use the parts this one does not.
#[allow(dead_code)]
#[path = "support/ci_world.rs"]
mod ci_world;
mod support;
use ci_world::{CiWorld, Setup};

/// Measured runs per configuration, after one warm-up run (the bare cache, dbt's first parse).
const RUNS: usize = 5;
const PROCESS_STARTS: usize = 30;
const PATIENCE: Duration = Duration::from_secs(600);
const MODEL: &str = "models/staging/stg_orders.sql";

fn sample_project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jaffle_shop_duckdb")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn median(values: &[Duration]) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

/// Merge request opened → final status, for `RUNS` merge requests after one warm-up.
async fn lablink_runs(isolation: &str, seed: &Path) -> Vec<Duration> {
    let world = CiWorld::start(Setup {
        postgres: false,
        settings: &[("run_isolation", isolation)],
        seed,
    })
    .await;
    let original = std::fs::read_to_string(seed.join(MODEL)).unwrap();
    let mut times = Vec::new();
    for n in 0..=RUNS {
        let branch = format!("change-{n}");
        let sha = world
            .gl()
            .commit_files(
                world.gitlab_project,
                CommitRequest {
                    branch: branch.clone(),
                    start_branch: Some("main".into()),
                    message: format!("Change {n}"),
                    files: vec![FileChange {
                        path: MODEL.into(),
                        content: Some(format!("{original}\n-- change {n}\n").into_bytes()),
                    }],
                    user_id: world.author,
                    author: None,
                },
            )
            .await
            .unwrap();
        // The branch's push hook is handled before the merge request is opened.
        while world.lablink_deliveries("push_hooks").len() <= n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        world
            .gl()
            .open_merge_request(
                world.gitlab_project,
                world.author,
                &branch,
                "main",
                &format!("Change {n}"),
                "",
            )
            .await
            .unwrap();
        while !world.final_status_of(&sha) {
            assert!(started.elapsed() < PATIENCE, "no final status for {sha}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed();
        // What GitLab's API shows for the commit (as a reviewer's tools read it).
        let statuses: serde_json::Value = world
            .http
            .get(format!(
                "{}/api/v4/projects/{}/repository/commits/{sha}/statuses",
                world.sim.base_url(),
                world.gitlab_project
            ))
            .header("PRIVATE-TOKEN", &world.author_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            statuses
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == world.status_name.as_str() && s["status"] == "success"),
            "{statuses:#}"
        );
        let run = world
            .services
            .list_runs(&world.principal, &world.project_id, None)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.sha == sha)
            .unwrap();
        assert_eq!(run.state, RunState::Success, "{run:?}");
        if n > 0 {
            times.push(elapsed);
        }
    }
    world.stop().await;
    times
}

/// A bare `dbt build` of the sample project in a shell, `RUNS` times after one warm-up.
fn bare_dbt_builds(install: &DbtInstall, seed: &Path) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    copy_tree(seed, &project);
    let profiles = dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("profiles.yml"),
        format!(
            "lablink:\n  target: default\n  outputs:\n    default:\n      type: duckdb\n      \
             path: {}\n      schema: bench\n      threads: 4\n",
            dir.path().join("warehouse.duckdb").display()
        ),
    )
    .unwrap();
    let mut times = Vec::new();
    for n in 0..=RUNS {
        // A fresh checkout has no `target/`: no partial parse either (lablink gives every run a
        // fresh target path, so no run can leave parse state to another).
        if project.join("target").exists() {
            std::fs::remove_dir_all(project.join("target")).unwrap();
        }
        let started = Instant::now();
        let out = std::process::Command::new(install.dbt())
            .args(["build", "--profile", "lablink", "--profiles-dir"])
            .arg(&profiles)
            .current_dir(&project)
            .env("DO_NOT_TRACK", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        if n > 0 {
            times.push(started.elapsed());
        }
    }
    times
}

/// `/bin/true` through lablink's process runner, directly and in the sandbox a run gets.
async fn process_starts(install: &DbtInstall, sandboxed: bool) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox {
        isolation: Isolation::Bubblewrap,
        read_only: install.toolchain_dirs(),
        writable: vec![dir.path().to_owned()],
        protected: vec![],
        network: false,
        limits: Limits::default(),
    };
    let plain = ProcessSpec::new("/bin/true", dir.path(), PATIENCE);
    let spec = if sandboxed {
        sandbox.wrap(plain)
    } else {
        plain
    };
    let mut times = Vec::new();
    for _ in 0..PROCESS_STARTS {
        let (sink, mut lines) = mpsc::channel(16);
        let drain = tokio::spawn(async move { while lines.recv().await.is_some() {} });
        let started = Instant::now();
        let end = lablink_exec::run(&spec, sink, &CancellationToken::new())
            .await
            .unwrap();
        times.push(started.elapsed());
        drain.await.unwrap();
        assert!(
            matches!(end, Termination::Exited(s) if s.success()),
            "{end:?}"
        );
    }
    times
}

#[tokio::main]
async fn main() {
    let install = DbtInstall::locate().expect("dbt is installed (run scripts/test.sh once)");
    let seed = sample_project();
    let direct = process_starts(&install, false).await;
    let sandboxed = process_starts(&install, true).await;
    let bare = bare_dbt_builds(&install, &seed);
    let without = lablink_runs("none", &seed).await;
    let with = lablink_runs("bubblewrap", &seed).await;

    let start_cost = median(&sandboxed).saturating_sub(median(&direct));
    let overhead = median(&with).as_secs_f64() / median(&without).as_secs_f64() - 1.0;
    println!("\n| measured (median of {RUNS}; process starts of {PROCESS_STARTS}) | ms |");
    println!("|---|---:|");
    for (label, values) in [
        ("process start, direct", &direct),
        ("process start, in the sandbox", &sandboxed),
        ("bare `dbt build` in a shell", &bare),
        ("MR opened → final status, no sandbox", &without),
        ("MR opened → final status, sandbox", &with),
    ] {
        println!("| {label} | {} |", ms(median(values)));
    }
    println!("| sandbox cost per process start | {} |", ms(start_cost));
    println!(
        "| MR → final status (sandbox) − bare dbt build | {} |",
        ms(median(&with).saturating_sub(median(&bare)))
    );
    println!("\nsandbox overhead on the run: {:.1} %", overhead * 100.0);
}
