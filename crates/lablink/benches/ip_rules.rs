//! The cost of IP restrictions on a signed-in page: throughput of the dashboard (`GET /`, a
//! session cookie) with an account's 1,000 rules enforced, against the same server with its
//! rules switched off, in alternating rounds of the same run.
//!
//! Run: `cargo bench -p lablink --bench ip_rules` (results go to BENCHMARKS.md by hand).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lablink::startup::Application;
use lablink_core::{Plan, Role};
use lablink_service::Principal;
use lablink_service::accounts::UserInput;
use lablink_service::ip_restrictions::IpRuleInput;
use lablink_store::crypto::KeyRing;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

const RULES: u32 = 1000;
const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_secs(5);
const CLIENTS: usize = 8;
const PASSWORD: &str = "bench-password-long-enough";
const CLIENT: &str = "127.0.0.1";

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Requests per second on `GET /` with `CLIENTS` concurrent clients for one round.
async fn throughput(base: &str, cookie: &str) -> f64 {
    let client = reqwest::Client::new();
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + ROUND;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, done) = (client.clone(), done.clone());
            let (url, cookie) = (format!("{base}/"), cookie.to_owned());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let res = client
                        .get(&url)
                        .header("cookie", &cookie)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 200);
                    res.bytes().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / ROUND.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let key = KeyRing::generate_key().to_string();
    let data_dir = dir.path().display().to_string();
    let settings = lablink::config::from_pairs(&[
        ("database_url", &url),
        ("listen", "127.0.0.1:0"),
        ("metrics_listen", "127.0.0.1:0"),
        ("data_dir", &data_dir),
        ("secret_key", &key),
        ("roles", "web, intake"),
    ])
    .unwrap();
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let services = app.services().clone();
    let (_, admin) = services
        .create_user_in_account(
            "bench",
            Plan::Enterprise,
            UserInput {
                email: "admin@bench.test".into(),
                username: "admin".into(),
                password: SecretString::from(PASSWORD),
                role: Role::AccountAdmin,
            },
        )
        .await
        .unwrap();
    let session = services.start_session(&admin.id).await.unwrap();
    let principal: Principal = session.principal;
    let cookie = format!("lablink_session={}", session.session_id.expose_secret());
    // 1,000 rules: 999 deny rules over scattered ranges of many prefix lengths, and the allow
    // rule that lets the benchmark's own address in (the lockout guard insists).
    services
        .create_ip_rule(
            &principal,
            &IpRuleInput {
                name: "loopback".into(),
                kind: "allow".into(),
                ranges: "127.0.0.0/8\n::1".into(),
                ..IpRuleInput::default()
            },
            Some(CLIENT),
        )
        .await
        .unwrap();
    for i in 1..RULES {
        let address =
            std::net::Ipv4Addr::from(0x0B00_0000u32 + i.wrapping_mul(2_654_435_761) % 0x6000_0000);
        let len = 12 + i % 20;
        services
            .create_ip_rule(
                &principal,
                &IpRuleInput {
                    name: format!("deny-{i}"),
                    kind: "deny".into(),
                    ranges: format!("{address}/{len}"),
                    ..IpRuleInput::default()
                },
                Some(CLIENT),
            )
            .await
            .unwrap_or_else(|e| panic!("rule {i}: {e}"));
    }
    let stop = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));
    // Warm up the server and the connection pools.
    throughput(&base, &cookie).await;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        services
            .set_ip_restrictions_enabled(&principal, false, Some(CLIENT))
            .await
            .unwrap();
        off.push(throughput(&base, &cookie).await);
        services
            .set_ip_restrictions_enabled(&principal, true, Some(CLIENT))
            .await
            .unwrap();
        on.push(throughput(&base, &cookie).await);
    }
    let (off_median, on_median) = (median(off.clone()), median(on.clone()));
    println!(
        "GET / (signed in), {CLIENTS} clients, {ROUNDS} rounds of {} s each",
        ROUND.as_secs()
    );
    println!("  no rules enforced:   {off:.0?} req/s, median {off_median:.0}");
    println!("  {RULES} rules enforced: {on:.0?} req/s, median {on_median:.0}");
    println!(
        "  cost of the rules: {:.1} % (target ≤ 2 %)",
        (1.0 - on_median / off_median) * 100.0
    );
    stop.cancel();
    server.await.unwrap().unwrap();
}
