//! The soak: a fleet of real `lablink serve` processes on one PostgreSQL and one gitlab-sim,
//! two with the roles web and intake behind a round-robin proxy (the address GitLab's webhook
//! and the test's browser use), two workers (one also the scheduler), building into one
//! PostgreSQL warehouse. Merge requests are opened, some get new commits and some are closed,
//! while a worker is killed (SIGKILL) in the middle of a run and restarted, the developer's
//! linked GitLab token is refreshed by concurrent requests on both web replicas, and a web
//! replica is killed in the middle of a burst of deliveries and restarted. Afterwards every merge
//! request's final status in the simulator is right, every run ran to its end once (its dbt
//! model leaves a marker row in the same transaction as its table, counted), every closed merge
//! request's schema is dropped, the link still works, no lease is left, and every delivery that
//! got a 2xx was processed.
//!
//! The default test command runs the short version; `LABLINK_SOAK=long` runs the sizes
//! and prints the figures kept in BENCHMARKS.md. The same flag has the upgrade test
//! (`upgrade.rs`) run an earlier revision's binary.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use sqlx::postgres::PgPool;

use crate::ci::World;
use crate::support::{Backend, Browser, ServeProcess, TestDatabase};

/// Upper bound for waiting on the fleet (per wait); not a timing assertion.
fn patience() -> Duration {
    if long() {
        Duration::from_secs(3 * 3600)
    } else {
        Duration::from_secs(600)
    }
}

fn long() -> bool {
    std::env::var("LABLINK_SOAK").as_deref() == Ok("long")
}

struct Sizes {
    merge_requests: usize,
    deliveries: usize,
    /// The web replica is killed once this many deliveries of the burst were acknowledged.
    kill_after: usize,
}

fn sizes() -> Sizes {
    if long() {
        Sizes {
            merge_requests: 200,
            deliveries: 2_000,
            kill_after: 1_000,
        }
    } else {
        Sizes {
            merge_requests: 6,
            deliveries: 300,
            kill_after: 100,
        }
    }
}

/// The merge request's one model: it waits (so that a worker can be killed in the middle of
/// it), and its post-hook leaves a row named after `token` in `soak_markers` in the model's own
/// transaction: a run killed before its end leaves none.
fn marker_model(token: &str) -> String {
    format!(
        "{{{{ config(materialized='table', \
         post_hook=\"insert into public.soak_markers (token) values ('{token}')\") }}}}\n\
         select '{token}' as token from pg_sleep(3)\n"
    )
}

/// A TCP proxy sending each connection to the next backend that accepts it, as a reverse
/// proxy in front of the web replicas does.
async fn round_robin(listener: TcpListener, backends: Vec<String>) {
    let next = Arc::new(AtomicUsize::new(0));
    let backends = Arc::new(backends);
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        let (next, backends) = (Arc::clone(&next), Arc::clone(&backends));
        tokio::spawn(async move {
            let first = next.fetch_add(1, Ordering::Relaxed);
            for k in 0..backends.len() {
                let backend = &backends[(first + k) % backends.len()];
                if let Ok(mut outbound) = TcpStream::connect(backend.as_str()).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    return;
                }
            }
        });
    }
}

/// The worker name in a replica's JSON log ("lablink is serving").
fn worker_name(process: &ServeProcess) -> String {
    process
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|v| v["fields"]["worker"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no worker name in the log: {}", process.log()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_survives_kill_9_of_a_worker_and_a_web_replica() {
    let sizes = sizes();
    let dir = tempfile::tempdir().unwrap();
    let warehouse = TestDatabase::create(Backend::Postgres, dir.path()).await;
    let dbname = warehouse.url.rsplit('/').next().unwrap().to_owned();
    let pg = PgPool::connect(&warehouse.url).await.unwrap();
    sqlx::query("CREATE TABLE soak_markers (token TEXT NOT NULL, at TIMESTAMPTZ DEFAULT now())")
        .execute(&pg)
        .await
        .unwrap();
    let job = json!({"name": "ci", "timeout_secs": 600, "mr_note": false,
                     "warehouse": {"type": "postgres", "host": "127.0.0.1", "port": 5432,
                                   "user": "postgres", "dbname": dbname},
                     "warehouse_password": "soak", "commands": ["dbt run --select marker"]});
    let mut w = World::with_job_and(Backend::Postgres, job, &[("roles", "web, intake")]).await;
    let front = w.app.base.trim_start_matches("http://").to_owned();
    // From here the fleet serves: the test's own server only set things up.
    w.app.stop_server().await;
    let fleet = [("log_format", "json"), ("shutdown_grace_seconds", "0")];
    let with = |more: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        fleet.iter().chain(more).copied().collect()
    };
    let web_a = w
        .app
        .serve_process(&with(&[("roles", "web, intake")]))
        .await;
    let web_b = w
        .app
        .serve_process(&with(&[("roles", "web, intake")]))
        .await;
    let mut worker_1 = w
        .app
        .serve_process(&with(&[
            ("roles", "worker, scheduler"),
            ("max_concurrent_runs", "1"),
        ]))
        .await;
    let worker_2 = w.app.serve_process(&with(&[("roles", "worker")])).await;
    let backends = vec![
        web_a.base.trim_start_matches("http://").to_owned(),
        web_b.base.trim_start_matches("http://").to_owned(),
    ];
    let proxy = tokio::spawn(round_robin(
        TcpListener::bind(&front).await.unwrap(),
        backends,
    ));
    let started = Instant::now();

    // Merge requests, each with its own marker; every third gets a new commit (its first
    // commit's run may end or be superseded: at most one marker), every fourth is closed once
    // it has its status.
    let mut shas = HashMap::new();
    let mut opened_at = HashMap::new();
    let mut iids = HashMap::new();
    let mut superseded = Vec::new();
    for i in 0..sizes.merge_requests {
        let token = format!("mr{i}");
        let branch = format!("soak-{i}");
        let sha = w
            .commit(&branch, &[("models/marker.sql", &marker_model(&token))])
            .await;
        opened_at.insert(sha.clone(), chrono::Utc::now());
        iids.insert(token.clone(), w.open_mr(&branch, &token).await);
        shas.insert(token, sha);
    }
    for i in (0..sizes.merge_requests).filter(|i| i % 3 == 1) {
        let (first, token) = (format!("mr{i}"), format!("mr{i}-2"));
        let sha = w
            .commit(
                &format!("soak-{i}"),
                &[("models/marker.sql", &marker_model(&token))],
            )
            .await;
        opened_at.insert(sha.clone(), chrono::Utc::now());
        iids.insert(token.clone(), iids[&first]);
        shas.remove(&first);
        shas.insert(token, sha);
        superseded.push(first);
    }
    let final_shas = shas
        .values()
        .map(|sha| format!("'{sha}'"))
        .collect::<Vec<_>>()
        .join(", ");

    // Worker 1 dies in the middle of a run (of a merge request's latest commit), and comes back.
    let dead = worker_name(&worker_1);
    let deadline = Instant::now() + patience();
    // It is killed while its model sleeps (started, not yet committed): a kill after the
    // warehouse committed and before lablink recorded the end would run it again, which no
    // system can tell from a run that never reached the warehouse.
    let killed_run = loop {
        let held = w
            .app
            .column(&format!(
                "SELECT id FROM runs WHERE state = 'running' AND locked_by = '{dead}' \
                 AND sha IN ({final_shas})"
            ))
            .await;
        if let Some(id) = held.into_iter().next() {
            let log = w.run_log(&id).await;
            if log.contains("START sql table model") && !log.contains("OK created") {
                break id;
            }
        }
        assert!(Instant::now() < deadline, "worker 1 never ran anything");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    worker_1.kill().await;
    let killed_at = Instant::now();
    let worker_1_again = w
        .app
        .serve_process(&with(&[
            ("roles", "worker, scheduler"),
            ("max_concurrent_runs", "1"),
        ]))
        .await;

    // The developer's linked GitLab token is due: concurrent requests on both web replicas
    // need it, and exactly one refresh reaches GitLab (a second would spend a refresh token
    // GitLab already rotated, and the link would be dead).
    let refreshes = refresh_race(&w).await;
    assert_eq!(refreshes, 1, "one refresh for the whole fleet");

    // A burst of deliveries over both web replicas; one of them dies in the middle of it.
    let mut web_a = web_a;
    let acknowledged = burst(&w, &sizes, &mut web_a, &web_b.base).await;
    let web_a_again = {
        let listen = web_a.base.trim_start_matches("http://").to_owned();
        w.app
            .serve_process(&with(&[("roles", "web, intake"), ("listen", leak(listen))]))
            .await
    };

    // Every merge request ends with its status, every run once.
    // How long each merge request waited for its final status (GitLab's finished_at).
    let mut latencies = Vec::new();
    for (token, sha) in &shas {
        let status = wait_for_success(&w, iids[token], sha).await;
        let at =
            chrono::DateTime::parse_from_rfc3339(status["finished_at"].as_str().unwrap()).unwrap();
        latencies.push((at.to_utc() - opened_at[sha]).as_seconds_f64());
    }
    let all_done = started.elapsed();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let taken_up = wait_for_state(&w, &killed_run, "success").await;

    // Closed merge requests lose their schema; open ones keep theirs.
    let closed: Vec<i64> = (0..sizes.merge_requests)
        .filter(|i| i % 4 == 0)
        .map(|i| iids[&format!("mr{i}")])
        .collect();
    for iid in &closed {
        w.mr_action(*iid, "close").await;
    }
    let schema_of = |iid: i64| format!("lablink_pr_{}_{iid}", w.job_id);
    let deadline = Instant::now() + patience();
    loop {
        let left: Vec<String> =
            sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = ANY($1)")
                .bind(closed.iter().map(|iid| schema_of(*iid)).collect::<Vec<_>>())
                .fetch_all(&pg)
                .await
                .unwrap();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "closed merge requests' schemas left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let open_iid = iids["mr1-2"];
    let kept: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = $1")
            .bind(schema_of(open_iid))
            .fetch_optional(&pg)
            .await
            .unwrap();
    assert!(kept.is_some(), "an open merge request keeps its schema");
    w.wait_until_settled().await;

    let markers: HashMap<String, i64> =
        sqlx::query_as("SELECT token, COUNT(*) FROM soak_markers GROUP BY token")
            .fetch_all(&pg)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for (token, sha) in &shas {
        if markers.get(token) != Some(&1) {
            let runs = w.runs_at(sha).await;
            let mut seen = Vec::new();
            for r in &runs {
                seen.push(w.run(r["id"].as_str().unwrap()).await);
            }
            panic!("{token}: {markers:?}; killed run {killed_run}; its runs: {seen:#?}");
        }
    }
    for token in &superseded {
        assert!(
            markers.get(token).copied().unwrap_or(0) <= 1,
            "{token} ran twice: {markers:?}"
        );
    }
    let run = &w.run(&killed_run).await["run"];
    assert_eq!(run["attempts"], 2, "{run:#}");
    // No lease left: nothing is held, nothing waits.
    for (what, sql) in [
        (
            "runs",
            "SELECT id FROM runs WHERE state NOT IN ('success', 'error', 'cancelled', 'skipped')",
        ),
        (
            "queue items",
            "SELECT id FROM jobs WHERE status IN ('queued', 'running')",
        ),
        (
            "deliveries",
            "SELECT id FROM webhook_deliveries WHERE status = 'received'",
        ),
        (
            "periodic passes",
            "SELECT name FROM periodic_passes WHERE locked_by IS NOT NULL AND locked_until < CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)",
        ),
    ] {
        wait_for_none(&w, what, sql).await;
    }
    // Every acknowledged delivery was stored and handled.
    let stored: HashSet<String> = w
        .app
        .column("SELECT delivery_key FROM webhook_deliveries WHERE status <> 'received'")
        .await
        .into_iter()
        .collect();
    for i in &acknowledged {
        assert!(
            stored.contains(&key(*i)),
            "delivery {i} was acknowledged and lost"
        );
    }
    eprintln!(
        "soak: {} merge requests in {:.1} s ({:.1} runs/min); merge request to final status \
         p50 {:.1} s, p99 {:.1} s; the killed worker's run ended {:.1} s after the kill; {} of \
         {} deliveries acknowledged around the web replica's kill",
        sizes.merge_requests,
        all_done.as_secs_f64(),
        sizes.merge_requests as f64 * 60.0 / all_done.as_secs_f64(),
        percentile(0.5),
        percentile(0.99),
        taken_up.duration_since(killed_at).as_secs_f64(),
        acknowledged.len(),
        sizes.deliveries
    );
    proxy.abort();
    drop((web_a_again, web_b, worker_2, worker_1_again, worker_1));
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// Makes the developer's linked GitLab token due and sends 20 concurrent requests that need it
/// through the front proxy (both web replicas); each must work. Returns how many refreshes
/// reached GitLab (new OAuth tokens of the linked GitLab user).
async fn refresh_race(w: &World) -> usize {
    let before = w.gitlab.oauth_tokens_of(w.alice.id).await.len();
    let issued = w
        .browser
        .api(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "soak"})),
            Some(&w.csrf),
        )
        .await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    let token = issued.json()["value"].as_str().unwrap().to_owned();
    w.app
        .execute(&format!(
            "UPDATE gitlab_links SET expires_at = {}",
            chrono::Utc::now().timestamp_millis()
        ))
        .await;
    let checks: Vec<_> = (0..20)
        .map(|_| {
            let (base, token) = (w.app.base.clone(), token.clone());
            tokio::spawn(async move {
                Browser::bearer(
                    &base,
                    &token,
                    reqwest::Method::POST,
                    "/api/v1/linked-accounts/gitlab/check",
                    None,
                )
                .await
            })
        })
        .collect();
    for check in checks {
        let page = check.await.unwrap();
        assert_eq!(page.status, 200, "a request lost the link: {}", page.body);
    }
    let status = w
        .browser
        .api(
            reqwest::Method::GET,
            "/api/v1/linked-accounts/gitlab",
            None,
            None,
        )
        .await
        .json();
    assert_eq!(status["status"], "linked", "{status}");
    w.gitlab.oauth_tokens_of(w.alice.id).await.len() - before
}

/// Waits for merge request `iid`'s run at `sha` to succeed and its status to reach GitLab; a
/// failed run fails the test at once, with its log. (The project's run list shows the latest
/// runs only: with 200 merge requests, older ones are found through their merge request.)
async fn wait_for_success(w: &World, iid: i64, sha: &str) -> serde_json::Value {
    let deadline = Instant::now() + patience();
    loop {
        let runs: Vec<serde_json::Value> = w
            .browser
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/projects/{}/runs?mr_iid={iid}", w.project),
                None,
                None,
            )
            .await
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["sha"] == sha)
            .cloned()
            .collect();
        if let Some(failed) = runs.iter().find(|r| r["state"] == "error") {
            let id = failed["id"].as_str().unwrap();
            panic!("run {id} failed: {}", w.run_log(id).await);
        }
        if runs.iter().any(|r| r["state"] == "success") {
            return w.wait_for_status(sha, "success").await;
        }
        assert!(Instant::now() < deadline, "{runs:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_state(w: &World, run: &str, state: &str) -> Instant {
    let deadline = Instant::now() + patience();
    loop {
        let now = w.run(run).await;
        if now["run"]["state"] == state {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{now:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_none(w: &World, what: &str, sql: &str) {
    let deadline = Instant::now() + patience();
    loop {
        let left = w.app.column(sql).await;
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what} left: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn key(i: usize) -> String {
    format!("soak-burst-{i}")
}

/// Sends the burst's deliveries (merge request title edits, handled as "nothing to run")
/// alternately to both web replicas from 16 clients, SIGKILLs `web_a` once enough were
/// acknowledged (its clients then fail, the others go on), and returns the acknowledged ones.
async fn burst(w: &World, sizes: &Sizes, web_a: &mut ServeProcess, web_b: &str) -> HashSet<usize> {
    let secrets = w
        .app
        .db
        .hook_secrets(&w.app.keys, &w.repository_id)
        .await
        .unwrap()
        .unwrap();
    let secret = secrets.secret.expose_secret().to_owned();
    let signing = secrets.signing_token.map(|t| t.expose_secret().to_owned());
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let mut clients = Vec::new();
    for client in 0..16 {
        let base = if client % 2 == 0 {
            web_a.base.as_str()
        } else {
            web_b
        }
        .to_owned();
        let (http, next, acknowledged) =
            (http.clone(), Arc::clone(&next), Arc::clone(&acknowledged));
        let (secret, signing, repository, project, total) = (
            secret.clone(),
            signing.clone(),
            w.repository_id.clone(),
            w.gitlab_project,
            sizes.deliveries,
        );
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let body = serde_json::to_vec(&json!({
                    "object_kind": "merge_request", "event_type": "merge_request",
                    "project": {"id": project, "path_with_namespace": "analytics/warehouse"},
                    "object_attributes": {
                        "iid": 10_000 + i, "action": "update", "state": "opened", "draft": false,
                        "target_project_id": project, "source_project_id": project,
                        "source_branch": format!("burst-{i}"), "target_branch": "main",
                        "title": format!("change {i}"), "last_commit": {"id": format!("{i:040x}")}
                    },
                    "changes": {"title": {"previous": "old", "current": format!("change {i}")}}
                }))
                .unwrap();
                let mut req = http
                    .post(format!("{base}/webhooks/gitlab/{repository}"))
                    .header("Content-Type", "application/json")
                    .header("X-Gitlab-Event", "Merge Request Hook")
                    .header("X-Gitlab-Token", &secret)
                    .header("Idempotency-Key", key(i));
                if let Some(signing) = &signing {
                    let timestamp = chrono::Utc::now().timestamp();
                    let signature = gitlab_sim::webhooks::delivery::signature(
                        signing,
                        &key(i),
                        timestamp,
                        &body,
                    )
                    .unwrap();
                    req = req
                        .header("webhook-id", key(i))
                        .header("webhook-timestamp", timestamp.to_string())
                        .header("webhook-signature", signature);
                }
                // A refused or cut connection (the replica died) is not acknowledged.
                if let Ok(res) = req.body(body).send().await
                    && res.status().is_success()
                {
                    acknowledged.lock().unwrap().insert(i);
                }
            }
        }));
    }
    let deadline = Instant::now() + patience();
    while acknowledged.lock().unwrap().len() < sizes.kill_after {
        assert!(Instant::now() < deadline, "the burst stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    web_a.kill().await;
    for client in clients {
        client.await.unwrap();
    }
    std::mem::take(&mut *acknowledged.lock().unwrap())
}
