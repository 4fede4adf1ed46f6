//! The import list against gitlab-sim with 10,000 group projects and 50 ms latency injected per
//! request: time to the first page, a search answer, and a full refresh compared with the
//! unavoidable sequential fetch of every page (the baseline, measured in the same run).
//!
//! Run: `cargo bench -p lablink --bench import_list` (results go to BENCHMARKS.md by hand).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gitlab_sim::state::{Fault, Namespace, NewGroup, NewUser, Project, Visibility};
use gitlab_sim::{Sim, SimConfig};
use lablink_core::{Plan, Role};
use lablink_gitlab::{Api, Instance, InstanceConfig, NetworkPolicy};
use lablink_service::accounts::UserInput;
use lablink_service::ci::executor::CiRuntime;
use lablink_service::ci::worker::{CiWorkerConfig, spawn_ci_workers};
use lablink_service::repositories::import_list::ImportQuery;
use lablink_service::settings::{RepositorySettings, RunSettings};
use lablink_service::{OperatorGitlabApp, Principal, ServiceSettings, Services};
use lablink_store::Db;
use lablink_store::crypto::KeyRing;
use lablink_store::links::{NewLink, Tokens};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const PROJECTS: usize = 10_000;
const LATENCY_MS: u64 = 50;
const RUNS: usize = 5;
const APP_ID: &str = "bench-application";

struct Run {
    baseline: Duration,
    first_page: Duration,
    search_while_loading: Duration,
    full_refresh: Duration,
    search: Duration,
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// 10,000 projects in one group the user maintains (inserted directly: no git repositories are
/// needed to list them), and the injected latency on every API request.
async fn seeded_sim() -> (Sim, u64, String) {
    let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let handle = sim.handle();
    let (user, token) = handle
        .create_user(NewUser {
            username: "bench".into(),
            ..NewUser::default()
        })
        .unwrap();
    let group = handle
        .create_group(NewGroup {
            path: "warehouse".into(),
            ..NewGroup::default()
        })
        .unwrap();
    handle.add_group_member(group.id, user.id, 40).unwrap();
    {
        let mut state = handle.lock();
        for i in 0..PROJECTS {
            let id = state.next_id();
            let now = state.now();
            state.projects.insert(
                id,
                Project {
                    id,
                    name: format!("project-{i:05}"),
                    path: format!("project-{i:05}"),
                    namespace: Namespace::Group(group.id),
                    description: String::new(),
                    default_branch: "main".into(),
                    visibility: Visibility::Private,
                    archived: false,
                    creator_id: user.id,
                    forked_from_id: None,
                    only_allow_merge_if_pipeline_succeeds: false,
                    created_at: now,
                    updated_at: now,
                    last_activity_at: now,
                    next_mr_iid: 1,
                },
            );
        }
    }
    handle.add_fault(Fault {
        id: 0,
        method: None,
        path: "/api/v4/*".into(),
        latency_ms: LATENCY_MS,
        error_rate: 0.0,
        error_status: 500,
        rate_limited: false,
        drop_connection: false,
    });
    (sim, user.id, token)
}

fn instance(base: &str) -> Instance {
    Instance::new(InstanceConfig {
        base_url: base.parse().unwrap(),
        ca_bundle_pem: None,
        policy: NetworkPolicy {
            allow_http_loopback: true,
            allow_private_networks: false,
        },
        timeout: Duration::from_secs(30),
    })
    .unwrap()
}

/// lablink's use cases on a fresh SQLite database, with a user whose GitLab link holds `token`.
async fn services(
    dir: &std::path::Path,
    gitlab: &str,
    gitlab_user: u64,
    token: &str,
) -> (Services, Principal) {
    let db = Db::connect(&format!("sqlite://{}", dir.join("bench.db").display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let keys = || KeyRing::new(&[7u8; 32], &[]);
    let services = Services::new(
        db.clone(),
        keys(),
        ServiceSettings {
            public_url: "http://127.0.0.1:1".parse().unwrap(),
            session_idle: Duration::from_secs(3600),
            session_absolute: Duration::from_secs(3600),
            operator_gitlab: Some(OperatorGitlabApp {
                url: gitlab.parse().unwrap(),
                app_id: APP_ID.into(),
                secret: SecretString::from("unused"),
            }),
            allow_http_loopback_gitlab: true,
            allow_private_network_gitlab: false,
            repositories: RepositorySettings::in_data_dir(dir),
            runs: RunSettings::in_data_dir(dir),
        },
    );
    let (account, user) = services
        .create_user_in_account(
            "bench",
            Plan::Enterprise,
            UserInput {
                email: "bench@example.com".into(),
                username: "bench".into(),
                password: SecretString::from("a long bench password"),
                role: Role::Developer,
            },
        )
        .await
        .unwrap();
    let access = SecretString::from(token.to_owned());
    let refresh = SecretString::from("unused");
    db.save_gitlab_link(
        &keys(),
        NewLink {
            user_id: &user.id,
            account_id: &account.id,
            instance_url: instance(gitlab).base_url().as_str(),
            application_id: APP_ID,
            gitlab_user_id: gitlab_user as i64,
            gitlab_username: "bench",
            tokens: Tokens {
                access_token: &access,
                refresh_token: &refresh,
                expires_at: lablink_store::now_ms() + 24 * 3600 * 1000,
            },
        },
    )
    .await
    .unwrap();
    let principal = Principal {
        user_id: user.id,
        email: user.email,
        username: user.username,
        role: Role::Developer,
        account_id: account.id,
        account_name: account.name,
        plan: Plan::Enterprise,
    };
    (services, principal)
}

async fn one_run(services: &Services, caller: &Principal, api: &Api) -> Run {
    let started = Instant::now();
    let all = api
        .list_projects_keyset(None, None, 100)
        .collect_all()
        .await
        .unwrap();
    let baseline = started.elapsed();
    assert_eq!(all.len(), PROJECTS);

    let started = Instant::now();
    let refresh = ImportQuery {
        refresh: true,
        ..ImportQuery::default()
    };
    let first = services.gitlab_import_list(caller, &refresh).await.unwrap();
    let first_page = started.elapsed();
    assert_eq!(first.rows.len(), 20);
    assert!(first.rows.iter().all(|r| r.can_connect));

    let search_started = Instant::now();
    let query = ImportQuery {
        search: "project-09876".into(),
        ..ImportQuery::default()
    };
    let found = services.gitlab_import_list(caller, &query).await.unwrap();
    let search_while_loading = search_started.elapsed();
    assert_eq!(found.rows.len(), 1);

    loop {
        let progress = services
            .gitlab_import_progress(caller)
            .await
            .unwrap()
            .unwrap();
        if progress.complete {
            assert_eq!(progress.loaded, PROJECTS as i64);
            break;
        }
        assert!(progress.error.is_none(), "{:?}", progress.error);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let full_refresh = started.elapsed();

    let started = Instant::now();
    let query = ImportQuery {
        search: "PROJECT-04242".into(),
        ..ImportQuery::default()
    };
    let found = services.gitlab_import_list(caller, &query).await.unwrap();
    let search = started.elapsed();
    assert_eq!(found.rows.len(), 1);
    assert_eq!(found.rows[0].path_with_namespace, "warehouse/project-04242");
    Run {
        baseline,
        first_page,
        search_while_loading,
        full_refresh,
        search,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (sim, gitlab_user, token) = seeded_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (services, caller) = services(dir.path(), sim.base_url(), gitlab_user, &token).await;
    // The background fill runs on the job workers, as under `lablink serve`.
    let stop = CancellationToken::new();
    let workers = spawn_ci_workers(
        services.clone(),
        Arc::new(CiRuntime::new(dir.path().join("ci"), "bench".into())),
        CiWorkerConfig::default(),
        stop.clone(),
    );
    let api = Api::bearer(&instance(sim.base_url()), SecretString::from(token));
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let r = one_run(&services, &caller, &api).await;
        eprintln!(
            "run {run}: baseline {} first page {} search while loading {} full refresh {} search {}",
            ms(r.baseline),
            ms(r.first_page),
            ms(r.search_while_loading),
            ms(r.full_refresh),
            ms(r.search)
        );
        runs.push(r);
    }
    let med = |f: fn(&Run) -> Duration| median(runs.iter().map(f).collect());
    let baseline = med(|r| r.baseline);
    let full = med(|r| r.full_refresh);
    let ratios: Vec<f64> = runs
        .iter()
        .map(|r| r.full_refresh.as_secs_f64() / r.baseline.as_secs_f64())
        .collect();
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "| measure ({PROJECTS} group projects, {LATENCY_MS} ms per request, median of {RUNS} runs) | result | target |"
    );
    println!("|---|---|---|");
    println!(
        "| baseline: sequential keyset fetch of all pages (100 per page) | {} | — |",
        ms(baseline)
    );
    println!(
        "| time to first page (refresh, incl. members/all of its 20 rows) | {} | ≤ 500 ms |",
        ms(med(|r| r.first_page))
    );
    println!(
        "| search answer while the list is still loading (GitLab search) | {} | ≤ 500 ms |",
        ms(med(|r| r.search_while_loading))
    );
    println!(
        "| search answer from the complete cache | {} | ≤ 500 ms |",
        ms(med(|r| r.search))
    );
    println!(
        "| full refresh until the cache is complete | {} | — |",
        ms(full)
    );
    println!(
        "| full refresh / baseline (median of per-run ratios) | {:.3} | ≤ 1.2 |",
        sorted[sorted.len() / 2]
    );
    stop.cancel();
    for worker in workers {
        worker.await.unwrap();
    }
}
