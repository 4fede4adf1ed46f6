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
use gitlab_sim::state::{Namespace, NewGroup, NewProject, NewUser, SimHandle};
use gitlab_sim::{Sim, SimConfig};
use lablink::startup::Application;
use lablink_core::{Plan, Role};
use lablink_service::accounts::UserInput;
use lablink_service::ci::jobs::CiJobForm;
use lablink_service::links::CallbackQuery;
use lablink_service::projects::ProjectInput;
use lablink_service::{Principal, Services};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod support;
use lablink_testkit::{ThrowawayDatabase, free_port};
use support::{drop_pg_database, pg_database};

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
const SESSION: &str = "bench-browser-session";

/// gitlab-sim and lablink wired together, with a connected repository and one CI job.
struct World {
    sim: Sim,
    services: Services,
    principal: Principal,
    /// The lablink project.
    project_id: String,
    gitlab_project: u64,
    author: u64,
    author_token: String,
    status_name: String,
    /// Where lablink's hook points (to tell its deliveries from the no-op receiver's).
    lablink_hook_url: String,
    /// Merge request hooks as they reach the no-op receiver: (when, MR IID).
    baseline_hooks: mpsc::UnboundedReceiver<(Instant, u64)>,
    http: reqwest::Client,
    stop: CancellationToken,
    postgres: Option<ThrowawayDatabase>,
    _dir: tempfile::TempDir,
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
    async fn start(postgres: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let sim = Sim::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: Some(dir.path().join("gitlab")),
            state_file: None,
        })
        .await
        .unwrap();
        let gl = sim.handle().clone();
        let port = free_port();
        let public_url = format!("http://127.0.0.1:{port}");
        let (oauth_app, oauth_secret) = gl
            .create_oauth_application(
                "lablink",
                vec![format!("{public_url}/complete/gitlab")],
                vec!["api".into()],
                true,
            )
            .unwrap();
        let pg = if postgres {
            Some(pg_database().await)
        } else {
            None
        };
        let database_url = match &pg {
            Some(database) => database.url.clone(),
            None => format!("sqlite://{}", dir.path().join("lablink.db").display()),
        };
        let settings = lablink::config::from_pairs(&[
            ("database_url", &database_url),
            ("listen", &format!("127.0.0.1:{port}")),
            ("metrics_listen", "127.0.0.1:0"),
            (
                "data_dir",
                &dir.path().join("lablink").display().to_string(),
            ),
            ("public_url", &public_url),
            ("gitlab_url", sim.base_url()),
            ("gitlab_app_id", &oauth_app.uid),
            ("gitlab_app_secret", &oauth_secret),
            ("allow_http_loopback_gitlab", "true"),
        ])
        .unwrap();
        let app = Application::build(settings).await.unwrap();
        let services = app.services().clone();
        let stop = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(stop.clone()));

        // GitLab: a Maintainer and a group project whose repository holds no dbt project.
        let (author, author_token) = gl
            .create_user(NewUser {
                username: "alice".into(),
                name: Some("Alice".into()),
                email: Some("alice@example.com".into()),
                ..NewUser::default()
            })
            .unwrap();
        let group = gl
            .create_group(NewGroup {
                path: "analytics".into(),
                ..NewGroup::default()
            })
            .unwrap();
        gl.add_group_member(group.id, author.id, 40).unwrap();
        let project = gl
            .create_project(NewProject {
                path: "warehouse".into(),
                name: None,
                namespace: Namespace::Group(group.id),
                visibility: None,
                description: None,
                default_branch: None,
                archived: false,
            })
            .await
            .unwrap();
        let seed = dir.path().join("seed");
        std::fs::create_dir_all(&seed).unwrap();
        std::fs::write(
            seed.join("README.md"),
            "Not a dbt project: runs stop at setup.\n",
        )
        .unwrap();
        gl.seed_project(project.id, &seed, author.id).await.unwrap();

        // lablink: a developer links alice's GitLab account, connects the repository, adds a job.
        let (account, user) = services
            .create_user_in_account(
                "bench",
                Plan::Enterprise,
                UserInput {
                    email: "dev@bench.test".into(),
                    username: "dev".into(),
                    password: SecretString::from("bench-password-0123456789"),
                    role: Role::Developer,
                },
            )
            .await
            .unwrap();
        let principal = Principal {
            user_id: user.id,
            email: user.email,
            username: user.username,
            role: user.role,
            account_id: account.id,
            account_name: account.name,
            plan: account.plan,
        };
        link_gitlab(&services, &principal, &gl, author.id, oauth_app.id).await;
        let lablink_project = services
            .create_project(
                &principal,
                &ProjectInput {
                    name: "Warehouse".into(),
                    subdirectory: String::new(),
                    target_branch: "main".into(),
                },
            )
            .await
            .unwrap();
        let repository = services
            .connect_repository(
                &principal,
                &lablink_project.id,
                i64::try_from(project.id).unwrap(),
                None,
            )
            .await
            .unwrap();
        let form: CiJobForm = serde_json::from_value(json!({
            "name": "ci",
            "timeout_secs": 600,
            "warehouse": {"type": "duckdb"},
        }))
        .unwrap();
        let job = services
            .create_ci_job(&principal, &lablink_project.id, form)
            .await
            .unwrap();

        let http = reqwest::Client::new();
        let (receiver_url, baseline_hooks) = start_receiver().await;
        let res = http
            .post(format!(
                "{}/api/v4/projects/{}/hooks",
                sim.base_url(),
                project.id
            ))
            .header("PRIVATE-TOKEN", &author_token)
            .json(&json!({"url": receiver_url, "push_events": false,
                          "merge_requests_events": true}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "cannot add the no-op hook");
        World {
            lablink_hook_url: format!("{public_url}/webhooks/gitlab/{}", repository.id),
            sim,
            services,
            principal,
            project_id: lablink_project.id,
            gitlab_project: project.id,
            author: author.id,
            author_token,
            status_name: job.status_name,
            baseline_hooks,
            http,
            stop,
            postgres: pg,
            _dir: dir,
        }
    }

    fn gl(&self) -> &SimHandle {
        self.sim.handle()
    }

    /// lablink's hook deliveries of `trigger` logged by the simulator.
    fn lablink_deliveries(&self, trigger: &str) -> Vec<gitlab_sim::state::HookDelivery> {
        let state = self.gl().lock();
        state
            .hooks_of(self.gitlab_project)
            .filter(|h| h.url == self.lablink_hook_url)
            .flat_map(|h| h.deliveries.iter())
            .filter(|d| d.trigger == trigger)
            .cloned()
            .collect()
    }

    /// The first status named like the job for `sha`.
    fn status_of(&self, sha: &str) -> Option<FirstStatus> {
        let state = self.gl().lock();
        state
            .commit_statuses
            .values()
            .filter(|s| s.sha == sha && s.name == self.status_name)
            .min_by_key(|s| s.id)
            .map(|s| FirstStatus {
                state: s.status.as_str(),
                // GitLab sets `started_at` when a job turns `running`: at its creation when it
                // never was `pending`.
                pending_skipped: s.started_at == Some(s.created_at),
                created_at: s.created_at,
            })
    }

    fn final_status_of(&self, sha: &str) -> bool {
        let state = self.gl().lock();
        state
            .commit_statuses
            .values()
            .any(|s| s.sha == sha && s.name == self.status_name && s.status.is_terminal())
    }

    async fn stop(self) {
        self.stop.cancel();
        drop(self.sim);
        if let Some(database) = self.postgres {
            drop_pg_database(database).await;
        }
    }
}

/// Profile → Linked accounts → Link, at the service level: GitLab (pre-approved, signed in)
/// redirects back at once with a code, which lablink exchanges.
async fn link_gitlab(
    services: &Services,
    principal: &Principal,
    gl: &SimHandle,
    gitlab_user: u64,
    oauth_app: u64,
) {
    gl.preapprove_oauth(gitlab_user, oauth_app);
    let cookie = gl.create_web_session(gitlab_user);
    let authorize = services
        .start_gitlab_link(principal, SESSION)
        .await
        .unwrap();
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(authorize)
        .header("Cookie", format!("_gitlab_session={cookie}"))
        .send()
        .await
        .unwrap();
    let back: url::Url = res.headers()["location"].to_str().unwrap().parse().unwrap();
    let param = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let query = CallbackQuery {
        code: param("code"),
        state: param("state"),
        ..CallbackQuery::default()
    };
    services
        .complete_gitlab_authorization(principal, SESSION, &query)
        .await
        .unwrap();
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
    let gl = world.gl().clone();
    let branch = format!("change-{n}");
    let sha = gl
        .commit_files(
            world.gitlab_project,
            CommitRequest {
                branch: branch.clone(),
                start_branch: Some("main".into()),
                message: format!("Change {n}"),
                files: vec![FileChange {
                    path: format!("changes/{n}.txt"),
                    content: Some(format!("change {n}\n").into_bytes()),
                }],
                user_id: world.author,
                author: None,
            },
        )
        .await
        .unwrap();
    // The branch's push hook: answered, then handled by lablink during the quiet time.
    wait_for("the push hook", || {
        world.lablink_deliveries("push_hooks").len() > n
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    while world.baseline_hooks.try_recv().is_ok() {}

    let wall = chrono::Utc::now();
    let started = Instant::now();
    let mr = gl
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
        .lablink_deliveries("merge_request_hooks")
        .into_iter()
        .find(|d| d.request_data["object_attributes"]["iid"].as_u64() == Some(mr.iid))
        .expect("lablink's merge request hook is logged")
        .created_at;
    let run = world
        .services
        .list_runs(&world.principal, &world.project_id, None)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.sha == sha)
        .expect("lablink has the run");
    let run_created = chrono::DateTime::from_timestamp_millis(run.created_at).unwrap();

    // Nothing may run during the next measurement.
    wait_for("the run's final status", || world.final_status_of(&sha)).await;
    let probe = Instant::now();
    let res = world
        .http
        .post(format!(
            "{}/api/v4/projects/{}/statuses/{sha}",
            world.sim.base_url(),
            world.gitlab_project
        ))
        .header("PRIVATE-TOKEN", &world.author_token)
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
    world.stop().await;

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
