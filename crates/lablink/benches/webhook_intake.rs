//! Webhook intake of the real server, all in one (CI loops processing the deliveries meanwhile)
//! and as an intake replica (`roles = ["web", "intake"]`): durable intake throughput as a ratio
//! to a no-op 200 route of the same server (`GET /healthz` sent the same headers and 8 KiB body,
//! measured in the same run), and intake
//! latency at a steady 500 deliveries/s, before and after the throughput windows. 8 KiB merge request payloads (a real GitLab capture),
//! a unique `Idempotency-Key` each. Medians of several repetitions.
//!
//! With `login-burst`, instead: intake latency at the steady rate alone, then the same while
//! clients sign in as fast as they can (argon2 per sign-in; it must not hold up intake).
//!
//! Run: `cargo bench -p lablink --bench webhook_intake` (SQLite and PostgreSQL at
//! 127.0.0.1:5432; results go to BENCHMARKS.md by hand).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lablink::startup::Application;
use lablink_store::Db;
use lablink_store::crypto::KeyRing;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

mod support;
use lablink_testkit::ThrowawayDatabase;
use support::{drop_pg_database, pg_database};

const CONCURRENCY: usize = 32;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(4);
const REPETITIONS: usize = 5;
const RATE_PER_SEC: u64 = 500;
const LATENCY_WINDOW: Duration = Duration::from_secs(8);
const SECRET: &str = "bench-hook-secret";
/// The bench user's sign-in, for the login burst.
const EMAIL: &str = "bench@lablink.test";
const PASSWORD: &str = "correct horse battery staple";
/// Clients signing in at once during the login burst.
const LOGIN_CLIENTS: usize = 16;

struct Server {
    base: String,
    /// The throw-away PostgreSQL database, dropped when the bench ends.
    postgres: Option<ThrowawayDatabase>,
    repository_id: String,
    db: Db,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn exec(db: &Db, sql: &str, text: &[&str], blob: Option<Vec<u8>>) {
    lablink_store::on_db!(db, |pool| {
        let mut q = sqlx::query(sql);
        for t in text {
            q = q.bind(*t);
        }
        if let Some(b) = &blob {
            q = q.bind(b.clone());
        }
        q.execute(pool).await.unwrap();
    });
}

/// `gitlab_project_id` is the payload's project, so that processing goes all the way to the
/// CI decision.
async fn start(postgres: bool, gitlab_project_id: i64, all_roles: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let postgres = match postgres {
        true => Some(pg_database().await),
        false => None,
    };
    let url = match &postgres {
        Some(database) => database.url.clone(),
        None => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    let key = KeyRing::generate_key().to_string();
    let data_dir = dir.path().display().to_string();
    let settings = lablink::config::from_pairs(&[
        ("database_url", &url),
        ("listen", "127.0.0.1:0"),
        ("metrics_listen", "127.0.0.1:0"),
        ("data_dir", &data_dir),
        ("secret_key", &key),
        (
            "roles",
            if all_roles {
                "web, intake, worker, scheduler"
            } else {
                "web, intake"
            },
        ),
    ])
    .unwrap();
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let db = lablink_store::Db::connect(&url).await.unwrap();
    let keys = KeyRing::new(&KeyRing::decode_key(&key).unwrap(), &[]);
    let now = lablink_store::now_ms().to_string();
    // A connected repository with a webhook secret (inserted directly: no GitLab is involved
    // in intake).
    exec(
        &db,
        "INSERT INTO accounts (id, name, plan, created_at) VALUES ($1, 'bench', 'enterprise', CAST($2 AS BIGINT))",
        &["acct", &now],
        None,
    )
    .await;
    exec(
        &db,
        "INSERT INTO projects (id, account_id, name, created_at, updated_at) \
         VALUES ($1, 'acct', 'bench', CAST($2 AS BIGINT), CAST($2 AS BIGINT))",
        &["proj", &now],
        None,
    )
    .await;
    let repository_id = "repo".to_owned();
    let sealed = keys.seal_str(
        &format!("repositories.hook_secret:{repository_id}"),
        &SecretString::from(SECRET),
    );
    exec(
        &db,
        "INSERT INTO repositories (id, account_id, project_id, gitlab_instance_url, \
         gitlab_project_id, path_with_namespace, default_branch, http_url_to_repo, web_url, \
         status, created_at, updated_at, hook_secret) VALUES ($1, 'acct', 'proj', \
         'https://gitlab.example', CAST($3 AS BIGINT), 'g/p', 'main', 'https://gitlab.example/g/p.git', \
         'https://gitlab.example/g/p', 'connected', CAST($2 AS BIGINT), CAST($2 AS BIGINT), $4)",
        &[&repository_id, &now, &gitlab_project_id.to_string()],
        Some(sealed),
    )
    .await;
    app.services()
        .create_user_in_account(
            "bench",
            lablink_core::Plan::Enterprise,
            lablink_service::accounts::UserInput {
                email: EMAIL.into(),
                username: "bench".into(),
                password: SecretString::from(PASSWORD),
                role: lablink_core::Role::Developer,
            },
        )
        .await
        .unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    Server {
        base,
        postgres,
        repository_id,
        db,
        stop,
        _dir: dir,
    }
}

/// An 8 KiB merge request event: GitLab's real "update with new commits" capture from
/// `shared/gitlab/fixtures/`, its description filled with prose so that the stored bytes are
/// as varied as real ones (a run of one letter would flatter any storage).
fn payload() -> Vec<u8> {
    let path = format!(
        "{}/../../../shared/gitlab/fixtures/webhook.merge_request.update_new_commits_oldrev.gitlab-com-capture.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let capture = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut body: serde_json::Value = serde_json::from_slice(&capture).unwrap();
    let words = [
        "model",
        "staging",
        "orders",
        "customers",
        "refactor",
        "incremental",
        "snapshot",
        "the",
        "join",
        "of",
        "revenue",
        "daily",
        "tests",
        "unique",
        "not_null",
        "source",
        "freshness",
        "macro",
        "and",
        "schema",
        "with",
        "partition",
        "by",
        "seed",
        "exposure",
        "metric",
    ];
    let mut state = 0x2545_f491_u64;
    let mut prose = String::new();
    let size = |b: &serde_json::Value| b.to_string().len();
    while size(&body) < 8192 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        prose.push_str(words[(state % words.len() as u64) as usize]);
        prose.push(if state.is_multiple_of(11) { '\n' } else { ' ' });
        body["object_attributes"]["description"] = serde_json::Value::String(prose.clone());
    }
    body.to_string().into_bytes()
}

struct Load {
    client: reqwest::Client,
    url: String,
    body: &'static [u8],
    intake: bool,
    counter: Arc<AtomicU64>,
}

impl Load {
    async fn one(&self) -> Duration {
        let started = Instant::now();
        // The same request to both routes (headers, a unique key, the 8 KiB body), so that the
        // ratio compares what the server does with it. `/healthz` answers GET; the body is
        // read and dropped by the server like any unread body.
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let request = if self.intake {
            self.client.post(&self.url)
        } else {
            self.client.get(&self.url)
        };
        let res = request
            .header("X-Gitlab-Event", "Merge Request Hook")
            .header("X-Gitlab-Token", SECRET)
            .header("Idempotency-Key", format!("bench-{n}"))
            .header("Content-Type", "application/json")
            .body(self.body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        res.bytes().await.unwrap();
        started.elapsed()
    }
}

/// Requests per second with `CONCURRENCY` clients for the window.
async fn throughput(load: Arc<Load>) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let load = Arc::clone(&load);
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < THROUGHPUT_WINDOW {
                load.one().await;
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Latencies of requests sent at a steady rate: p50, p99, p99.9 and the slowest.
async fn latency_at_rate(load: Arc<Load>) -> [Duration; 4] {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SEC));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let count = RATE_PER_SEC * LATENCY_WINDOW.as_secs();
    let mut tasks = Vec::with_capacity(count as usize);
    for _ in 0..count {
        tick.tick().await;
        let load = Arc::clone(&load);
        tasks.push(tokio::spawn(async move { load.one().await }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    [at(0.5), at(0.99), at(0.999), at(1.0)]
}

/// One sign-in as a browser does it: the form (for its pre-session cookie and CSRF token), then
/// the right password; whether it signed in.
async fn sign_in(base: &str) -> bool {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = client.get(format!("{base}/login")).send().await.unwrap();
    let cookie = form.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = form.text().await.unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let csrf = &page[start..start + page[start..].find('"').unwrap()];
    let res = client
        .post(format!("{base}/login"))
        .header(reqwest::header::COOKIE, cookie)
        .form(&[
            ("csrf_token", csrf),
            ("email", EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    res.status() == reqwest::StatusCode::SEE_OTHER
}

/// Intake latency at the steady rate, alone and during a burst of sign-ins.
async fn login_burst(postgres: bool, all_roles: bool, intake: Arc<Load>, base: &str) {
    let [alone_p50, alone_p99, ..] = latency_at_rate(Arc::clone(&intake)).await;
    let stop = CancellationToken::new();
    let signed_in = Arc::new(AtomicU64::new(0));
    let burst: Vec<_> = (0..LOGIN_CLIENTS)
        .map(|_| {
            let (stop, signed_in, base) = (stop.clone(), Arc::clone(&signed_in), base.to_owned());
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    assert!(
                        sign_in(&base).await,
                        "a sign-in with the right password failed"
                    );
                    signed_in.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    let [burst_p50, burst_p99, ..] = latency_at_rate(intake).await;
    let rate = signed_in.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    for task in burst {
        task.await.unwrap();
    }
    println!(
        "{} {}: intake at {RATE_PER_SEC}/s p50 {} p99 {} alone; p50 {} p99 {} during a login \
         burst ({LOGIN_CLIENTS} clients, {rate:.0} sign-ins/s)",
        if postgres { "PostgreSQL" } else { "SQLite" },
        if all_roles {
            "all in one"
        } else {
            "intake replica"
        },
        ms(alone_p50),
        ms(alone_p99),
        ms(burst_p50),
        ms(burst_p99),
    );
}

/// Waits until the server's CI loops have processed every stored delivery, so that each
/// measurement starts from an idle server (a backlog left by the previous window would slow the
/// next one, whichever route it measures); returns how long that took.
async fn drain(server: &Server) -> Duration {
    let started = Instant::now();
    loop {
        let pending: i64 = lablink_store::on_db!(&server.db, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'received'")
                .fetch_one(pool)
                .await
                .unwrap()
        });
        if pending == 0 {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// One server: with `all_roles`, the whole of lablink on one machine (CI loops process
/// the deliveries while intake runs); without, an intake replica whose deliveries are processed
/// by other replicas (not running here, so the stored deliveries just wait).
async fn bench(postgres: bool, all_roles: bool, burst: bool) {
    let body: &'static [u8] = Box::leak(payload().into_boxed_slice());
    let project: serde_json::Value = serde_json::from_slice(body).unwrap();
    let server = start(
        postgres,
        project["object_attributes"]["target_project_id"]
            .as_i64()
            .unwrap(),
        all_roles,
    )
    .await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY * 2)
        .build()
        .unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let make = |intake: bool| {
        Arc::new(Load {
            client: client.clone(),
            url: if intake {
                format!("{}/webhooks/gitlab/{}", server.base, server.repository_id)
            } else {
                format!("{}/healthz", server.base)
            },
            body,
            intake,
            counter: Arc::clone(&counter),
        })
    };
    let (noop, intake) = (make(false), make(true));
    // Warm-up: connections, caches, the first pages of the database.
    for _ in 0..200 {
        noop.one().await;
        intake.one().await;
    }
    if burst {
        login_burst(postgres, all_roles, Arc::clone(&intake), &server.base).await;
        server.stop.cancel();
        if let Some(database) = server.postgres {
            drop_pg_database(database).await;
        }
        return;
    }
    // Steady 500/s on a server that has not just absorbed the throughput windows' bursts (whose
    // aftermath, e.g. PostgreSQL's checkpoint after half a gigabyte of log, shows in the same
    // measurement taken after them, below).
    let [steady_p50, steady_p99, steady_p999, steady_max] =
        latency_at_rate(Arc::clone(&intake)).await;
    if all_roles {
        drain(&server).await;
    }
    let mut baseline = Vec::new();
    let mut durable = Vec::new();
    let mut ratios = Vec::new();
    let mut drains = Vec::new();
    for _ in 0..REPETITIONS {
        if all_roles {
            drain(&server).await;
        }
        let b = throughput(Arc::clone(&noop)).await;
        let d = throughput(Arc::clone(&intake)).await;
        // Processing of what that window stored, at the end of the window.
        if all_roles {
            drains.push(drain(&server).await.as_secs_f64());
        }
        baseline.push(b);
        durable.push(d);
        ratios.push(d / b);
    }
    let [p50, p99, p999, slowest] = latency_at_rate(Arc::clone(&intake)).await;
    let backlog_after_latency_window = if all_roles {
        ms(drain(&server).await)
    } else {
        "n/a".into()
    };
    let [noop_p50, noop_p99, ..] = latency_at_rate(Arc::clone(&noop)).await;
    println!(
        "{}: no-op {:.0} req/s, intake {:.0} req/s, ratio {:.3} (runs: {}); \
         processing caught up {:.1} s after each intake window (median); \
         at {RATE_PER_SEC}/s intake p50 {} p99 {} p99.9 {} max {} before the windows, \
         p50 {} p99 {} p99.9 {} max {} after them (processing caught up {} after), \
         no-op p50 {} p99 {}",
        match (postgres, all_roles) {
            (false, true) => "SQLite, all in one",
            (false, false) => "SQLite, intake replica",
            (true, true) => "PostgreSQL, all in one",
            (true, false) => "PostgreSQL, intake replica",
        },
        median(baseline),
        median(durable),
        median(ratios.clone()),
        ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
        if drains.is_empty() {
            f64::NAN
        } else {
            median(drains)
        },
        ms(steady_p50),
        ms(steady_p99),
        ms(steady_p999),
        ms(steady_max),
        ms(p50),
        ms(p99),
        ms(p999),
        ms(slowest),
        backlog_after_latency_window,
        ms(noop_p50),
        ms(noop_p99),
    );
    server.stop.cancel();
    if let Some(database) = server.postgres {
        drop_pg_database(database).await;
    }
}

/// Arguments (optional) pick configurations by name: `sqlite`, `postgres`, `all-in-one`,
/// `replica`; e.g. `cargo bench -p lablink --bench webhook_intake -- sqlite replica`; and
/// `login-burst` measures intake during sign-ins instead.
#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let wanted = |name: &str, group: &[&str]| {
        !args.iter().any(|a| group.contains(&a.as_str())) || args.iter().any(|a| a == name)
    };
    for postgres in [false, true] {
        if !wanted(
            if postgres { "postgres" } else { "sqlite" },
            &["sqlite", "postgres"],
        ) {
            continue;
        }
        for all_roles in [true, false] {
            let name = if all_roles { "all-in-one" } else { "replica" };
            if wanted(name, &["all-in-one", "replica"]) {
                bench(postgres, all_roles, args.iter().any(|a| a == "login-burst")).await;
                // The previous server's files are being deleted and its dirty pages written
                // back; without a pause that showed as a stall in the next server's first
                // latency window.
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
        }
    }
}
