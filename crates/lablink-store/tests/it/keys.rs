//! Re-sealing every secret under a new master key: interrupted and resumed, values under an
//! unknown key left alone, and a catalogue of sealed columns that matches the schema.

use std::collections::BTreeSet;

use lablink_core::Plan;
use lablink_store::crypto::KeyRing;
use lablink_store::integrations::NewIntegration;
use lablink_store::links::{NewLink, Tokens};
use lablink_store::projects::ProjectFields;
use lablink_store::repositories::{Connected, DeployKey, NewRepository, ProjectToken};
use lablink_store::sealed::{self, LINK_ACCESS_TOKEN};
use lablink_store::users::NewUser;
use lablink_store::{Db, now_ms, on_db};
use secrecy::{ExposeSecret, SecretString};

crate::on_both!(
    every_secret_is_resealed_even_when_interrupted,
    every_binary_column_is_sealed_or_known_not_secret,
);

const OLD: [u8; 32] = [1; 32];
const NEW: [u8; 32] = [2; 32];

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

/// An account with an integration, three linked users, a CI job with secrets and a connected
/// repository with every secret it can hold, all sealed with `keys`. Returns the ids to read back.
async fn seed(db: &Db, keys: &KeyRing) -> (String, Vec<String>, i64, String) {
    let account = db.create_account("acme", Plan::Enterprise).await.unwrap();
    let mut users = Vec::new();
    for n in 0..3 {
        let user = db
            .create_user(
                &account.id,
                &NewUser {
                    email: format!("u{n}@x.io"),
                    username: format!("u{n}"),
                    password_hash: "$argon2id$not-a-real-hash".into(),
                    role: lablink_core::Role::AccountAdmin,
                },
            )
            .await
            .unwrap();
        let (access, refresh) = (
            secret(&format!("access-{n}")),
            secret(&format!("refresh-{n}")),
        );
        db.save_gitlab_link(
            keys,
            NewLink {
                user_id: &user.id,
                account_id: &account.id,
                instance_url: "https://gitlab.example.com/",
                application_id: "app",
                gitlab_user_id: n,
                gitlab_username: "someone",
                tokens: Tokens {
                    access_token: &access,
                    refresh_token: &refresh,
                    expires_at: now_ms() + 3_600_000,
                },
            },
        )
        .await
        .unwrap();
        users.push(user.id);
    }
    db.save_gitlab_integration(
        keys,
        NewIntegration {
            account_id: &account.id,
            instance_url: "https://gitlab.example.com/",
            application_id: "app",
            secret: &secret("gloas-app-secret"),
            ca_bundle_pem: None,
            saved_by: &users[0],
        },
    )
    .await
    .unwrap();
    let mut input = crate::ci::job_input("ci");
    input.warehouse_secret = Some(secret("warehouse-password"));
    let job = db
        .create_ci_job(keys, &account.id, "proj", &input)
        .await
        .unwrap();
    let project = db
        .create_project(
            &account.id,
            &ProjectFields {
                name: "analytics",
                subdirectory: "",
                target_branch: None,
            },
        )
        .await
        .unwrap();
    let repository = db
        .begin_repository_connection(&NewRepository {
            account_id: &account.id,
            project_id: &project.id,
            gitlab_instance_url: "https://gitlab.example.com/",
            gitlab_project_id: 42,
            path_with_namespace: "acme/analytics",
            default_branch: "main",
            http_url_to_repo: "https://gitlab.example.com/acme/analytics.git",
            ssh_url_to_repo: None,
            web_url: "https://gitlab.example.com/acme/analytics",
            connected_by: &users[0],
        })
        .await
        .unwrap();
    let connected = Connected {
        hook_id: 1,
        hook_secret: secret("hook-secret"),
        signing_token: Some(secret("whsec_signing")),
        project_token: Some(ProjectToken {
            id: 5,
            token: secret("glpat-project"),
            expires_on: "2027-12-01".into(),
            user_id: 9,
            username: None,
        }),
        status_warning: None,
        deploy_token_id: 6,
        deploy_token_username: "gitlab+deploy-token-6".into(),
        deploy_token: secret("gldt-deploy"),
        deploy_key: Some(DeployKey {
            id: 7,
            public: "ssh-ed25519 AAAA".into(),
            fingerprint: "SHA256:x".into(),
            private: secret("-----BEGIN OPENSSH PRIVATE KEY-----"),
        }),
    };
    assert!(
        db.complete_repository_connection(keys, &repository.id, &connected)
            .await
            .unwrap()
    );
    (account.id, users, job, repository.id)
}

/// Reads every seeded secret back through the store's own readers with `keys`.
async fn read_all(db: &Db, keys: &KeyRing, seeded: &(String, Vec<String>, i64, String)) {
    let (account, users, job, repository) = seeded;
    for (n, user) in users.iter().enumerate() {
        let link = db.gitlab_link_of_user(keys, user).await.unwrap().unwrap();
        assert_eq!(link.access_token.expose_secret(), format!("access-{n}"));
        assert_eq!(link.refresh_token.expose_secret(), format!("refresh-{n}"));
    }
    let integration = db.gitlab_integration(keys, account).await.unwrap().unwrap();
    assert_eq!(integration.secret.expose_secret(), "gloas-app-secret");
    let job = db.ci_job(keys, *job).await.unwrap().unwrap();
    assert_eq!(
        job.input.env["DBT_ENV_SECRET_KEY"].expose_secret(),
        "hunter2"
    );
    assert_eq!(
        job.input.warehouse_secret.unwrap().expose_secret(),
        "warehouse-password"
    );
    let secrets = db.repository_secrets(keys, repository).await.unwrap();
    let open = |s: Option<SecretString>| s.unwrap().expose_secret().to_owned();
    assert_eq!(open(secrets.hook_secret), "hook-secret");
    assert_eq!(open(secrets.signing_token), "whsec_signing");
    assert_eq!(open(secrets.project_token), "glpat-project");
    assert_eq!(open(secrets.deploy_token), "gldt-deploy");
    assert_eq!(
        open(secrets.deploy_key_private),
        "-----BEGIN OPENSSH PRIVATE KEY-----"
    );
}

async fn every_secret_is_resealed_even_when_interrupted(db: Db) {
    let old = KeyRing::new(&OLD, &[]);
    let seeded = seed(&db, &old).await;
    let rotated = KeyRing::new(&NEW, &[OLD]);
    let old_id = KeyRing::key_id_of(&old.seal("x", b"x")).unwrap();

    // Before: everything under the old key, which the rotated ring still opens.
    let before = db.sealed_keys(&rotated, &LINK_ACCESS_TOKEN).await.unwrap();
    assert_eq!((before.current, before.previous[&old_id]), (0, 3));
    read_all(&db, &rotated, &seeded).await;

    // A pass stopped after two values (as a crash would stop it): the rows are half old, half
    // new, and every one of them still opens.
    let first = db
        .reseal(&rotated, &LINK_ACCESS_TOKEN, "", Some(2))
        .await
        .unwrap();
    assert_eq!(first.resealed, 2);
    let resume = first.resume_after.expect("stopped early");
    let half = db.sealed_keys(&rotated, &LINK_ACCESS_TOKEN).await.unwrap();
    assert_eq!((half.current, half.previous[&old_id]), (2, 1));
    read_all(&db, &rotated, &seeded).await;

    // Resuming re-seals the rest, and a pass over every column finishes the job.
    let rest = db
        .reseal(&rotated, &LINK_ACCESS_TOKEN, &resume, None)
        .await
        .unwrap();
    assert_eq!((rest.resealed, rest.already_current), (1, 0));
    let mut resealed = 0;
    for column in sealed::all() {
        let done = db.reseal(&rotated, &column, "", None).await.unwrap();
        assert!(done.unreadable.is_empty(), "{}", column.name());
        resealed += done.resealed;
    }
    // 3 refresh tokens, the application secret, a job's variables and password, and the
    // repository's 5 secrets (no previous hook secret).
    assert_eq!(resealed, 3 + 1 + 2 + 5);

    // The old key can go: the new key alone opens everything.
    let new_only = KeyRing::new(&NEW, &[]);
    read_all(&db, &new_only, &seeded).await;
    for column in sealed::all() {
        let keys = db.sealed_keys(&new_only, &column).await.unwrap();
        assert!(keys.previous.is_empty() && keys.unreadable.is_empty());
    }

    // A value sealed with a key nobody configured is reported and left exactly as it was.
    let stranger = KeyRing::new(&[3; 32], &[]);
    let user = &seeded.1[0];
    let link_id: String = on_db!(&db, |pool| {
        sqlx::query_scalar("SELECT id FROM gitlab_links WHERE user_id = $1")
            .bind(user)
            .fetch_one(pool)
            .await
    })
    .unwrap();
    let foreign = stranger.seal(&LINK_ACCESS_TOKEN.aad(&link_id), b"access-0");
    on_db!(&db, |pool| {
        sqlx::query("UPDATE gitlab_links SET access_token_enc = $1 WHERE id = $2")
            .bind(&foreign)
            .bind(&link_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
    .unwrap();
    let again = db
        .reseal(&new_only, &LINK_ACCESS_TOKEN, "", None)
        .await
        .unwrap();
    assert_eq!(again.unreadable, std::slice::from_ref(&link_id));
    assert_eq!(again.already_current, 2);
    let kept: Vec<u8> = on_db!(&db, |pool| {
        sqlx::query_scalar("SELECT access_token_enc FROM gitlab_links WHERE id = $1")
            .bind(&link_id)
            .fetch_one(pool)
            .await
    })
    .unwrap();
    assert_eq!(kept, foreign);
}

async fn every_binary_column_is_sealed_or_known_not_secret(db: Db) {
    let binary: Vec<(String, String)> = match &db {
        Db::Sqlite(pool) => sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND upper(p.type) IN ('BYTEA', 'BLOB')",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Db::Postgres(pool) => sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND data_type = 'bytea'",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    // sqlx's own bookkeeping (migration checksums) is not lablink's.
    let found: BTreeSet<(String, String)> = binary
        .into_iter()
        .filter(|(table, _)| table != "_sqlx_migrations")
        .collect();
    let known: BTreeSet<(String, String)> = sealed::all()
        .iter()
        .map(|c| (c.table.to_owned(), c.column.to_owned()))
        .chain(
            sealed::NOT_SECRET
                .iter()
                .map(|(t, c)| ((*t).to_owned(), (*c).to_owned())),
        )
        .collect();
    assert_eq!(found, known);
}
