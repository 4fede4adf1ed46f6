//! A database that the next release has already migrated, under this release: while a fleet
//! rolls, this release's replicas start (and restart) on it and keep working. sqlx's own
//! default refuses it; lablink's migrator ignores the migrations it does not know.

use std::path::Path;

use lablink_store::Db;
use sqlx::migrate::{MigrateError, Migrator};

crate::on_both!(this_release_starts_on_a_database_the_next_one_migrated);

/// The next release's migration: additive, as `migrations/RELEASED` asks.
const NEXT: &str = "CREATE TABLE next_release_notes (id TEXT PRIMARY KEY, body TEXT NOT NULL);\n\
                    ALTER TABLE projects ADD COLUMN next_release_note TEXT;\n";

/// The next release's migrations: this release's, and one more.
async fn next_release(dir: &Path) -> Migrator {
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&ours).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.join("9000_next_release.sql"), NEXT).unwrap();
    Migrator::new(dir).await.unwrap()
}

async fn this_release_starts_on_a_database_the_next_one_migrated(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let next = next_release(dir.path()).await;
    lablink_store::on_db!(&db, |pool| next.run(pool).await).unwrap();

    // A release before this one used sqlx's default and refused to start:
    let mut strict = Migrator::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
        .await
        .unwrap();
    strict.set_ignore_missing(false);
    // On a connection of its own: a refusal leaves PostgreSQL's migration lock held by the
    // connection (the process that got it exits), so it must not go back to the pool.
    let refused = lablink_store::on_db!(&db, |pool| {
        let mut connection = pool.acquire().await.unwrap();
        let refused = strict.run(&mut *connection).await;
        drop(connection.detach());
        refused
    });
    assert!(
        matches!(refused, Err(MigrateError::VersionMissing(9000))),
        "{refused:?}"
    );

    // This one starts, finds nothing of its own to apply, and works on the database.
    db.migrate().await.unwrap();
    assert_eq!(db.pending_migrations().await.unwrap(), 0);
    let now = 1_000_000;
    let taken = db
        .take_periodic_pass("pruning", "replica-a", now, 60_000)
        .await
        .unwrap();
    assert!(taken.is_some());
    assert!(
        db.finish_periodic_pass("pruning", "replica-a", (now, now + 5), now + 3_600_000)
            .await
            .unwrap()
    );
}
