//! Rolling a fleet to a new release: the first new replica migrates the database, and the
//! replicas of the previous release keep serving and working the queue on it until they are
//! replaced (docs/deploy.md, "Upgrading a fleet"). Here the previous release's `lablink serve`
//! takes over a PostgreSQL database migrated by this checkout's `lablink migrate`, serves pages
//! and the API, and takes a merge request's webhook delivery through a real dbt run to its
//! commit status in gitlab-sim.
//!
//! Which binary is "the previous release":
//! - by default, this checkout's own binary, on a database that the *next* release has migrated
//!   further (one more, additive migration): what this release must survive when it is the
//!   previous one;
//! - with `LABLINK_SOAK=long` (the long soak's flag), a binary of an earlier revision:
//!   `LABLINK_PREVIOUS_BINARY`, or else one built by `scripts/previous-binary.sh` from
//!   `LABLINK_PREVIOUS_REVISION` (by default the last release: the commit that last changed
//!   `migrations/RELEASED`). `scripts/upgrade-test.sh [<revision>]` does both.

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::migrate::Migrator;

use crate::ci::{GOOD_MODEL, MODEL_PATH, World, duckdb_job};
use crate::support::{Backend, TestApp};

/// The binary that plays the previous release, and whether it is this checkout's.
struct Previous {
    binary: PathBuf,
    this_checkout: bool,
}

fn previous() -> Previous {
    if std::env::var("LABLINK_SOAK").as_deref() != Ok("long") {
        return Previous {
            binary: PathBuf::from(env!("CARGO_BIN_EXE_lablink")),
            this_checkout: true,
        };
    }
    if let Ok(binary) = std::env::var("LABLINK_PREVIOUS_BINARY") {
        assert!(
            Path::new(&binary).is_file(),
            "LABLINK_PREVIOUS_BINARY={binary} is no file"
        );
        return Previous {
            binary: binary.into(),
            this_checkout: false,
        };
    }
    let revision = std::env::var("LABLINK_PREVIOUS_REVISION").unwrap_or_default();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut build = Command::new("bash");
    build.arg(root.join("scripts/previous-binary.sh"));
    if !revision.is_empty() {
        build.arg(&revision);
    }
    let out = build.output().unwrap();
    assert!(
        out.status.success(),
        "cannot build the previous release ({revision:?}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Previous {
        binary: String::from_utf8(out.stdout).unwrap().trim().into(),
        this_checkout: false,
    }
}

/// `lablink migrate` of this checkout on the test's database.
fn migrate(app: &TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lablink"))
        .arg("migrate")
        .current_dir(dir.path())
        .env("LABLINK_DATABASE_URL", &app.database_url)
        .env("LABLINK_SECRET_KEY", &app.secret_key)
        .env("LABLINK_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Applies the next release's migrations (this checkout's and an additive one more), as the
/// next release's first replica would.
async fn migrate_as_the_next_release(app: &TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lablink-store/migrations");
    for entry in std::fs::read_dir(ours).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dir.path().join("9000_next_release.sql"),
        "ALTER TABLE runs ADD COLUMN next_release_note TEXT;\n\
         CREATE TABLE next_release_notes (id TEXT PRIMARY KEY, body TEXT NOT NULL);\n",
    )
    .unwrap();
    let next = Migrator::new(dir.path()).await.unwrap();
    lablink_store::on_db!(&app.db, |pool| next.run(pool).await).unwrap();
    assert_eq!(
        app.column("SELECT CAST(version AS TEXT) FROM _sqlx_migrations WHERE version = 9000")
            .await,
        ["9000"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_serves_and_works_the_queue_on_a_migrated_database() {
    let previous = previous();
    let mut w = World::with_job_and(
        Backend::Postgres,
        duckdb_job("ci"),
        &[("roles", "web, intake")],
    )
    .await;
    let front = w.app.base.trim_start_matches("http://").to_owned();
    w.app.stop_server().await;
    migrate(&w.app);
    if previous.this_checkout {
        migrate_as_the_next_release(&w.app).await;
    }
    // One machine of the previous release with every role, on the address GitLab's webhook
    // and the browser use.
    let roles = ("roles", "web, intake, worker, scheduler");
    let mut old = w
        .app
        .serve_binary(&previous.binary, &[("listen", front.as_str()), roles])
        .await;

    // It serves pages and the API with the sessions it finds in the database.
    let page = w.browser.get(&format!("/projects/{}", w.project)).await;
    assert_eq!(page.status, 200, "{}\n{}", page.body, old.log());
    assert!(w.runs().await.is_array());

    // It works the queue: a merge request's delivery, a run of dbt to its end, the status.
    let sha = w.commit("upgrade", &[(MODEL_PATH, GOOD_MODEL)]).await;
    w.open_mr("upgrade", "Upgrade").await;
    w.wait_for_status(&sha, "success").await;
    let runs = w.runs_at(&sha).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["state"], "success", "{:#}\n{}", runs[0], old.log());
    old.kill().await;
}
