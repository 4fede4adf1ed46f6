//! Merge request opened in GitLab → lablink's `pending` commit status visible in GitLab, through
//! the real path: gitlab-sim fires the Merge Request Hook (asynchronously, as GitLab does) at
//! `POST /webhooks/gitlab/{repository_id}`, intake stores the delivery, a CI worker loop creates
//! the run, the status outbox posts `pending` to the simulator's commit status API. lablink runs
//! in process with all its workers (`Application`); the simulator's state is polled directly.
//!
//! Baselines of the same run, for every merge request: a no-op receiver registered as a second
//! project hook (the simulator's own webhook latency), and one commit status POST to the
//! simulator with a user's token (the simulator's own status API latency).
//!
//! The repository holds no dbt project, so every run fails at setup right after its checkout and
//! dbt never starts; and the next merge request is opened only once the previous run's final
//! status has reached the simulator. So no run executes while a measurement is taken except the
//! measured merge request's own run starting (claim, git fetch, checkout), as in production.
//!
//! Run: `cargo bench -p lablink --bench mr_pending` (SQLite, then PostgreSQL at
//! 127.0.0.1:5432; results go to BENCHMARKS.md by hand).

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use serde_json::{Value, json};
use tokio::sync::mpsc;

// Shared with the other benchmarks, which use the parts this one does not.
#[allow(dead_code)]
#[path = "support/ci_world.rs"]
mod ci_world;
mod support;
use ci_world::{CiWorld, Setup};

/// Measured merge requests per backend, after the warm-up ones.
const MERGE_REQUESTS: usize = 40;
/// The first merge requests fill caches (the run's bare clone, connections) and are not counted.
const WARM_UP: usize = 3;
/// How often the simulator's state is looked at while waiting for the status.
const POLL: Duration = Duration::from_millis(1);
/// Quiet time before each merge request, so the push hook of its branch is handled by then.
const SETTLE: Duration = Duration::from_millis(300);
/// Upper bound for anything awaited; not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// The CI world, and the no-op receiver's hook arrivals.
struct World {
    ci: CiWorld,
    /// Merge request hooks as they reach the no-op receiver: (when, MR IID).
    baseline_hooks: mpsc::UnboundedReceiver<(Instant, u64)>,
}

/// The no-op webhook receiver: records when each merge request hook arrives and answers 200.
async fn start_receiver() -> (String, mpsc::UnboundedReceiver<(Instant, u64)>) {
    async fn hook(State(tx): State<mpsc::UnboundedSender<(Instant, u64)>>, body: Bytes) {
        let at = Instant::now();
        let payload: Value = serde_json::from_slice(&body).unwrap_or_default();
        if let Some(iid) = payload["object_attributes"]["iid"].as_u64() {
            let _ = tx.send((at, iid));
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

impl World {
    /// The repository holds no dbt project: runs stop at setup.
    async fn start(postgres: bool) -> World {
        let seed = tempfile::tempdir().unwrap();
        std::fs::write(
            seed.path().join("README.md"),
            "Not a dbt project: runs stop at setup.\n",
        )
        .unwrap();
        let ci = CiWorld::start(Setup {
            postgres,
            settings: &[],
            seed: seed.path(),
        })
        .await;
        let (receiver_url, baseline_hooks) = start_receiver().await;
        let res = ci
            .http
            .post(format!(
                "{}/api/v4/projects/{}/hooks",
                ci.sim.base_url(),
                ci.gitlab_project
            ))
            .header("PRIVATE-TOKEN", &ci.author_token)
            .json(&json!({"url": receiver_url, "push_events": false,
                          "merge_requests_events": true}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "cannot add the no-op hook");
        World { ci, baseline_hooks }
    }

    /// The first status named like the job for `sha`.
    fn status_of(&self, sha: &str) -> Option<FirstStatus> {
        let state = self.ci.gl().lock();
        state
            .commit_statuses
            .values()
            .filter(|s| s.sha == sha && s.name == self.ci.status_name)
            .min_by_key(|s| s.id)
            .map(|s| FirstStatus {
                state: s.status.as_str(),
                // GitLab sets `started_at` when a job turns `running`: at its creation when it
                // never was `pending`.
                pending_skipped: s.started_at == Some(s.created_at),
                created_at: s.created_at,
            })
    }
}

/// lablink's status for a head SHA as the simulator first shows it.
struct FirstStatus {
    state: &'static str,
    /// Created as `running`: the run started before the outbox posted `pending`.
    pending_skipped: bool,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// Times of one merge request, from the start of the call that opens it.
struct Sample {
    /// The first status lablink's job has for the head SHA is seen by the poll.
    status_visible: Duration,
    /// The same status's `created_at` in the simulator (independent of the poll; µs).
    status_created: Duration,
    /// How the poll first saw it: `pending`, else `running`.
    first_state: &'static str,
    pending_skipped: bool,
    /// The hook reached the no-op receiver.
    baseline_hook: Duration,
    /// lablink answered its hook (the simulator's delivery log; ms resolution).
    lablink_answered: Duration,
    /// lablink created the run (its `created_at`; ms resolution).
    run_created: Duration,
    /// The call that opens the merge request returned.
    open_call: Duration,
    /// One commit status POST to the simulator, alone (measured after the run).
    status_post: Duration,
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn since(start: chrono::DateTime<chrono::Utc>, at: chrono::DateTime<chrono::Utc>) -> Duration {
    (at - start).to_std().unwrap_or_default()
}

async fn one_merge_request(world: &mut World, n: usize) -> Sample {
    let gl = world.ci.gl().clone();
    let branch = format!("change-{n}");
    let sha = gl
        .commit_files(
            world.ci.gitlab_project,
            CommitRequest {
                branch: branch.clone(),
                start_branch: Some("main".into()),
                message: format!("Change {n}"),
                files: vec![FileChange {
                    path: format!("changes/{n}.txt"),
                    content: Some(format!("change {n}\n").into_bytes()),
                }],
                user_id: world.ci.author,
                author: None,
            },
        )
        .await
        .unwrap();
    // The branch's push hook: answered, then handled by lablink during the quiet time.
    wait_for("the push hook", || {
        world.ci.lablink_deliveries("push_hooks").len() > n
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    while world.baseline_hooks.try_recv().is_ok() {}

    let wall = chrono::Utc::now();
    let started = Instant::now();
    let mr = gl
        .open_merge_request(
            world.ci.gitlab_project,
            world.ci.author,
            &branch,
            "main",
            &format!("Change {n}"),
            "",
        )
        .await
        .unwrap();
    let open_call = started.elapsed();
    assert_eq!(mr.sha, sha);
    let (status_visible, first) = loop {
        if let Some(first) = world.status_of(&sha) {
            break (started.elapsed(), first);
        }
        assert!(started.elapsed() < PATIENCE, "no commit status for {sha}");
        tokio::time::sleep(POLL).await;
    };

    let baseline_hook = loop {
        let (at, iid) = tokio::time::timeout(PATIENCE, world.baseline_hooks.recv())
            .await
            .expect("the no-op receiver got no hook")
            .unwrap();
        if iid == mr.iid {
            break at - started;
        }
    };
    let answered = world
        .ci
        .lablink_deliveries("merge_request_hooks")
        .into_iter()
        .find(|d| d.request_data["object_attributes"]["iid"].as_u64() == Some(mr.iid))
        .expect("lablink's merge request hook is logged")
        .created_at;
    let run = world
        .ci
        .services
        .list_runs(&world.ci.principal, &world.ci.project_id, None)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.sha == sha)
        .expect("lablink has the run");
    let run_created = chrono::DateTime::from_timestamp_millis(run.created_at).unwrap();

    // Nothing may run during the next measurement.
    wait_for("the run's final status", || world.ci.final_status_of(&sha)).await;
    let probe = Instant::now();
    let res = world
        .ci
        .http
        .post(format!(
            "{}/api/v4/projects/{}/statuses/{sha}",
            world.ci.sim.base_url(),
            world.ci.gitlab_project
        ))
        .header("PRIVATE-TOKEN", &world.ci.author_token)
        .json(&json!({"state": "pending", "name": "bench/probe", "ref": branch}))
        .send()
        .await
        .unwrap();
    res.bytes().await.unwrap();
    let status_post = probe.elapsed();
    Sample {
        status_visible,
        status_created: since(wall, first.created_at),
        first_state: first.state,
        pending_skipped: first.pending_skipped,
        baseline_hook,
        lablink_answered: since(wall, answered),
        run_created: since(wall, run_created),
        open_call,
        status_post,
    }
}

/// Nearest-rank percentile.
fn pct(values: &[Duration], q: f64) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

async fn bench(postgres: bool) {
    let backend = if postgres { "PostgreSQL" } else { "SQLite" };
    let mut world = World::start(postgres).await;
    let mut samples = Vec::new();
    for n in 0..WARM_UP + MERGE_REQUESTS {
        let sample = one_merge_request(&mut world, n).await;
        if n >= WARM_UP {
            samples.push(sample);
        }
    }
    world.ci.stop().await;

    let seen_pending = samples
        .iter()
        .filter(|s| s.first_state == "pending")
        .count();
    let skipped = samples.iter().filter(|s| s.pending_skipped).count();
    let lablink_share: Vec<Duration> = samples
        .iter()
        .map(|s| s.status_visible.saturating_sub(s.baseline_hook))
        .collect();
    let rows: [(&str, Vec<Duration>); 9] = [
        (
            "MR opened → status visible in GitLab (poll)",
            samples.iter().map(|s| s.status_visible).collect(),
        ),
        (
            "MR opened → status created in GitLab (its created_at)",
            samples.iter().map(|s| s.status_created).collect(),
        ),
        (
            "… only MRs whose first status was `pending` (poll)",
            samples
                .iter()
                .filter(|s| !s.pending_skipped)
                .map(|s| s.status_visible)
                .collect(),
        ),
        (
            "baseline: hook reaches a no-op receiver",
            samples.iter().map(|s| s.baseline_hook).collect(),
        ),
        ("lablink's share (total − baseline hook)", lablink_share),
        (
            "… lablink answered its hook (sim log, ms)",
            samples.iter().map(|s| s.lablink_answered).collect(),
        ),
        (
            "… run created (runs.created_at, ms)",
            samples.iter().map(|s| s.run_created).collect(),
        ),
        (
            "open-MR call returned",
            samples.iter().map(|s| s.open_call).collect(),
        ),
        (
            "baseline: one status POST to the sim, alone",
            samples.iter().map(|s| s.status_post).collect(),
        ),
    ];
    println!(
        "\n{backend}: {} merge requests (after {WARM_UP} warm-up), poll every {} ms; \
         first status seen `pending` {seen_pending}, `pending` never posted (created as \
         `running`) {skipped}",
        samples.len(),
        POLL.as_millis(),
    );
    println!("| {backend} (ms) | p50 | p90 | max |");
    println!("|---|---:|---:|---:|");
    for (label, values) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        println!(
            "| {label} | {} | {} | {} |",
            ms(pct(values, 0.5)),
            ms(pct(values, 0.9)),
            ms(pct(values, 1.0))
        );
    }
}

#[tokio::main]
async fn main() {
    bench(false).await;
    bench(true).await;
}
