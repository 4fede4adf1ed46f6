//! The cost of the merge request note's data comparison against the build it describes, in the
//! same run: a project with two 1,000,000-row models (`orders`, keyed by `order_id`, and
//! `orders_enriched` on top of it), production built by the merge job, then merge requests that
//! change `orders` (so both models are rebuilt and compared with production, by key). For each
//! run, from lablink's own record of it:
//! - build: the run's dbt steps (first step started → last step finished);
//! - compare: the log line that starts the comparison → the line with its result.
//!
//! Run: `cargo bench -p lablink --bench what_changed` (results go to BENCHMARKS.md by hand).

use std::path::Path;
use std::time::{Duration, Instant};

use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use lablink_service::ci::jobs::CiJobForm;
use serde_json::json;

// Shared with the other CI benchmarks, which use the parts this one does not.
#[allow(dead_code)]
#[path = "support/ci_world.rs"]
mod ci_world;
mod support;
use ci_world::{CiWorld, Setup};

/// Measured merge requests, after one warm-up.
const RUNS: usize = 5;
const PATIENCE: Duration = Duration::from_secs(900);
const ROWS: u32 = 1_000_000;

const PROJECT: &str = "name: bench\nversion: \"1.0.0\"\nconfig-version: 2\nprofile: bench\n\
    models:\n  bench:\n    +materialized: table\n";

const SCHEMA: &str = "version: 2\nmodels:\n  - name: orders\n    columns:\n      - name: order_id\n\
    \x20       data_tests: [unique, not_null]\n  - name: orders_enriched\n    columns:\n\
    \x20     - name: order_id\n        data_tests: [unique, not_null]\n";

const ENRICHED: &str = "select o.*, o.amount * 1.2 as amount_with_tax, \
    case when o.amount > 500 then 'large' else 'small' end as size \
    from {{ ref('orders') }} o\n";

/// `orders` with every `skip`-th order left out (0: none).
fn orders(skip: u32) -> String {
    let filter = if skip == 0 {
        String::new()
    } else {
        format!(" where i % {skip} <> 0")
    };
    format!(
        "select i as order_id, i % 50000 as customer_id, (i * 7919) % 1000 as amount, \
         date '2024-01-01' + cast(i % 365 as integer) as order_date \
         from range({ROWS}) t(i){filter}\n"
    )
}

fn seed(dir: &Path) {
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::write(dir.join("dbt_project.yml"), PROJECT).unwrap();
    std::fs::write(dir.join("models/schema.yml"), SCHEMA).unwrap();
    std::fs::write(dir.join("models/orders.sql"), orders(0)).unwrap();
    std::fs::write(dir.join("models/orders_enriched.sql"), ENRICHED).unwrap();
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Commits `orders.sql` to `branch`; the head SHA.
async fn commit(world: &CiWorld, branch: &str, start: Option<&str>, content: String) -> String {
    world
        .gl()
        .commit_files(
            world.gitlab_project,
            CommitRequest {
                branch: branch.into(),
                start_branch: start.map(str::to_owned),
                message: format!("Change on {branch}"),
                files: vec![FileChange {
                    path: "models/orders.sql".into(),
                    content: Some(content.into_bytes()),
                }],
                user_id: world.author,
                author: None,
            },
        )
        .await
        .unwrap()
}

/// The finished run of `sha` (waits for it).
async fn finished_run(world: &CiWorld, sha: &str) -> String {
    let started = Instant::now();
    loop {
        let runs = world
            .services
            .list_runs(&world.principal, &world.project_id, None)
            .await
            .unwrap();
        if let Some(run) = runs.iter().find(|r| r.sha == sha && r.state.is_terminal()) {
            assert_eq!(run.state.as_str(), "success", "{run:?}");
            return run.id.clone();
        }
        assert!(started.elapsed() < PATIENCE, "no finished run for {sha}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (build, compare) in seconds, from the run's steps and log.
async fn timings(world: &CiWorld, run: &str) -> (f64, f64) {
    let detail = world
        .services
        .run_detail(&world.principal, run, 10)
        .await
        .unwrap();
    let first = detail.steps.iter().map(|s| s.started_at).min().unwrap();
    let last = detail
        .steps
        .iter()
        .filter_map(|s| s.finished_at)
        .max()
        .unwrap();
    let log = world
        .services
        .run_log(&world.principal, run, 0, 5000)
        .await
        .unwrap();
    let at = |marker: &str| {
        log.iter()
            .find(|l| l.line.contains(marker))
            .unwrap_or_else(|| panic!("no `{marker}` in the log of {run}"))
            .at
    };
    let compare_start = at("[lablink] comparing ");
    let compare_end = at("[lablink] what changed: ");
    let report = detail.report.expect("the run has a report");
    assert_eq!(report.data.len(), 2, "both models compared: {report:?}");
    assert!(report.data.iter().all(|d| d.keyed.is_some()), "{report:?}");
    let secs = |ms: i64| ms as f64 / 1000.0;
    (secs(last - first), secs(compare_end - compare_start))
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let world = CiWorld::start(Setup {
        postgres: false,
        settings: &[],
        seed: dir.path(),
    })
    .await;
    let merge: CiJobForm = serde_json::from_value(json!({
        "name": "production", "kind": "merge", "timeout_secs": 900,
        "warehouse": {"type": "duckdb"},
    }))
    .unwrap();
    world
        .services
        .create_ci_job(&world.principal, &world.project_id, merge)
        .await
        .unwrap();
    // Production: the merge job on a push to main.
    let main = commit(
        &world,
        "main",
        None,
        orders(0).replace(" as order_date", " as order_date "),
    )
    .await;
    let production = finished_run(&world, &main).await;
    println!("production built by run {production}");

    let (mut builds, mut compares, mut shares) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..=RUNS {
        let branch = format!("change-{n}");
        let sha = commit(
            &world,
            &branch,
            Some("main"),
            orders(97 + u32::try_from(n).unwrap()),
        )
        .await;
        world
            .gl()
            .open_merge_request(
                world.gitlab_project,
                world.author,
                &branch,
                "main",
                &branch,
                "",
            )
            .await
            .unwrap();
        let run = finished_run(&world, &sha).await;
        let (build, compare) = timings(&world, &run).await;
        println!("run {n}: build {build:.2} s, compare {compare:.2} s");
        if n > 0 {
            builds.push(build);
            compares.push(compare);
            shares.push(compare / build);
        }
    }
    world.stop().await;
    println!("\n| median of {RUNS} merge requests | value |");
    println!("|---|---:|");
    println!(
        "| build (dbt steps of the run) | {:.2} s |",
        median(&builds)
    );
    println!(
        "| compare (2 models × 1,000,000 rows, by key) | {:.2} s |",
        median(&compares)
    );
    println!("| compare ÷ build (per run) | {:.2} |", median(&shares));
}
