//! Changing the master key from a shell: `lablink admin rekey` re-seals every secret under the
//! new key while the old one is still accepted, `--check` tells what is left, and the key file's
//! `new-key` / `--forget-previous` round.

use std::path::Path;
use std::process::{Command, Output};

use lablink_core::{Plan, Role};
use lablink_store::crypto::KeyRing;
use lablink_store::links::{NewLink, Tokens};
use lablink_store::{Db, now_ms};
use secrecy::{ExposeSecret, SecretString};

use crate::support::TestApp;

crate::on_both!(rekey_reseals_every_secret_under_the_new_key);

fn lablink(env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lablink"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    for (name, value) in env {
        command.env(name, value);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.success(), text)
}

async fn link_tokens(db: &Db, keys: &KeyRing, user_id: &str, account_id: &str) {
    let access = SecretString::from("glpat-access".to_owned());
    let refresh = SecretString::from("glrt-refresh".to_owned());
    db.save_gitlab_link(
        keys,
        NewLink {
            user_id,
            account_id,
            instance_url: "https://gitlab.example.com/",
            application_id: "app",
            gitlab_user_id: 1,
            gitlab_username: "dev",
            tokens: Tokens {
                access_token: &access,
                refresh_token: &refresh,
                expires_at: now_ms() + 3_600_000,
            },
        },
    )
    .await
    .unwrap();
}

async fn opens_with(db: &Db, keys: &KeyRing, user_id: &str) -> bool {
    db.gitlab_link_of_user(keys, user_id)
        .await
        .is_ok_and(|link| link.is_some_and(|l| l.refresh_token.expose_secret() == "glrt-refresh"))
}

async fn rekey_reseals_every_secret_under_the_new_key(app: TestApp) {
    let user = app
        .create_user("Acme", Plan::Enterprise, "dev@acme.test", Role::Developer)
        .await;
    link_tokens(&app.db, &app.keys, &user.id, &user.account_id).await;
    let new_key = KeyRing::generate_key().to_string();
    let rotated = [
        ("LABLINK_DATABASE_URL", app.database_url.as_str()),
        ("LABLINK_SECRET_KEY", new_key.as_str()),
        ("LABLINK_PREVIOUS_SECRET_KEYS", app.secret_key.as_str()),
    ];

    let (ok, out) = lablink(&rotated, &["admin", "rekey", "--check"]);
    assert!(!ok, "the old key still seals the link: {out}");
    assert!(
        out.contains("2 stored secrets are not sealed with the current key"),
        "{out}"
    );

    let (ok, out) = lablink(&rotated, &["admin", "rekey"]);
    assert!(ok, "{out}");
    assert!(out.contains("Done: 2 secrets re-sealed"), "{out}");
    assert!(!out.contains("glrt-refresh") && !out.contains(&new_key));

    // Only the new key is needed now; the old one alone opens nothing.
    let new_only = KeyRing::new(&KeyRing::decode_key(&new_key).unwrap(), &[]);
    assert!(opens_with(&app.db, &new_only, &user.id).await);
    assert!(!opens_with(&app.db, &app.keys, &user.id).await);
    let (ok, out) = lablink(&rotated[..2], &["admin", "rekey", "--check"]);
    assert!(ok, "{out}");
    // Running it again finds nothing to do.
    let (ok, out) = lablink(&rotated, &["admin", "rekey"]);
    assert!(ok && out.contains("Done: 0 secrets re-sealed"), "{out}");
    assert_eq!(
        app.column("SELECT action FROM audit_log WHERE action = 'secrets.rekeyed'")
            .await
            .len(),
        2
    );

    // A bad previous key is named by its place in the list, never echoed.
    let (ok, out) = lablink(
        &[
            rotated[0],
            rotated[1],
            ("LABLINK_PREVIOUS_SECRET_KEYS", "bm90LWEta2V5"),
        ],
        &["admin", "rekey", "--check"],
    );
    assert!(
        !ok && out.contains("previous_secret_keys") && out.contains("key 1"),
        "{out}"
    );
    assert!(!out.contains("bm90LWEta2V5"), "{out}");
    app.stop().await;
}

fn key_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_key_file_gets_a_new_key_and_forgets_the_old_one_after_a_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let env = [("LABLINK_DATA_DIR", data_dir.as_str())];
    // The first command creates the database and the key file.
    let (ok, out) = lablink(&env, &["admin", "rekey", "--check"]);
    assert!(ok, "{out}");
    let key_file = dir.path().join("secret.key");
    let first = key_lines(&key_file);
    assert_eq!(first.len(), 1);
    let db = Db::connect(&format!(
        "sqlite://{}",
        dir.path().join("lablink.db").display()
    ))
    .await
    .unwrap();
    let old = KeyRing::new(&KeyRing::decode_key(&first[0]).unwrap(), &[]);
    let account = db.create_account("Acme", Plan::Enterprise).await.unwrap();
    let user = db
        .create_user(
            &account.id,
            &lablink_store::users::NewUser {
                email: "dev@acme.test".into(),
                username: "dev".into(),
                password_hash: "$argon2id$not-a-real-hash".into(),
                role: Role::Developer,
            },
        )
        .await
        .unwrap();
    link_tokens(&db, &old, &user.id, &account.id).await;

    let (ok, out) = lablink(&env, &["admin", "new-key"]);
    assert!(ok && out.contains("lablink admin rekey"), "{out}");
    let two = key_lines(&key_file);
    assert_eq!((two.len(), two[1].as_str()), (2, first[0].as_str()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let (ok, out) = lablink(&env, &["admin", "rekey", "--forget-previous"]);
    assert!(ok, "{out}");
    assert!(out.contains("older keys were removed"), "{out}");
    let after = key_lines(&key_file);
    assert_eq!(after, [two[0].clone()]);
    let new_only = KeyRing::new(&KeyRing::decode_key(&after[0]).unwrap(), &[]);
    assert!(opens_with(&db, &new_only, &user.id).await);

    // With the key in the settings there is no file to change: the command says what to do.
    let (ok, out) = lablink(
        &[env[0], ("LABLINK_SECRET_KEY", after[0].as_str())],
        &["admin", "new-key"],
    );
    assert!(!ok && out.contains("previous_secret_keys"), "{out}");
}
