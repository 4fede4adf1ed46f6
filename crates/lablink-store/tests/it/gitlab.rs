//! GitLab integrations, OAuth states and links: sealed secrets bound to their row, states used
//! once, and the compare-and-swap primitives that make a token refresh single-flight.

use lablink_core::{Plan, Role};
use lablink_store::crypto::KeyRing;
use lablink_store::integrations::{IntegrationStatus, NewIntegration, NewOAuthState, OAuthPurpose};
use lablink_store::links::{Link, LinkStatus, NewLink, Tokens};
use lablink_store::users::NewUser;
use lablink_store::{Db, StoreError, now_ms, on_db};
use secrecy::{ExposeSecret, SecretString};

crate::on_both!(
    the_refresh_lease_is_exclusive_and_the_version_guards_every_write,
    linking_again_replaces_the_row_and_revives_it,
    sealed_tokens_only_open_in_their_own_row,
    an_oauth_state_is_consumed_once,
    saving_an_integration_replaces_it_pending_authorization,
);

fn keys() -> KeyRing {
    KeyRing::new(&[9u8; 32], &[])
}

async fn user(db: &Db, email: &str) -> (String, String) {
    let account = match db.account_by_name("acme").await.unwrap() {
        Some(a) => a,
        None => db.create_account("acme", Plan::Enterprise).await.unwrap(),
    };
    let user = db
        .create_user(
            &account.id,
            &NewUser {
                email: email.into(),
                username: email.into(),
                password_hash: "$argon2id$not-a-real-hash".into(),
                role: Role::Developer,
            },
        )
        .await
        .unwrap();
    (account.id, user.id)
}

async fn linked(db: &Db, keys: &KeyRing, email: &str, access: &str) -> Link {
    let (account_id, user_id) = user(db, email).await;
    let access = SecretString::from(access.to_owned());
    let refresh = SecretString::from(format!("{}-refresh", access.expose_secret()));
    db.save_gitlab_link(
        keys,
        NewLink {
            user_id: &user_id,
            account_id: &account_id,
            instance_url: "https://gitlab.example.com/",
            application_id: "app",
            gitlab_user_id: 7,
            gitlab_username: "alice",
            tokens: Tokens {
                access_token: &access,
                refresh_token: &refresh,
                expires_at: now_ms() + 3_600_000,
            },
        },
    )
    .await
    .unwrap()
}

fn pair(n: u32) -> (SecretString, SecretString) {
    (
        SecretString::from(format!("access-{n}")),
        SecretString::from(format!("refresh-{n}")),
    )
}

async fn the_refresh_lease_is_exclusive_and_the_version_guards_every_write(db: Db) {
    let keys = keys();
    let link = linked(&db, &keys, "a@x.io", "access-1").await;
    assert_eq!(link.token_version, 1);
    let soon = now_ms() + 60_000;
    assert!(
        db.claim_gitlab_refresh_lease(&link.id, 1, "A", soon)
            .await
            .unwrap()
    );
    assert!(
        !db.claim_gitlab_refresh_lease(&link.id, 1, "B", soon)
            .await
            .unwrap()
    );
    let (access, refresh) = pair(2);
    let tokens = || Tokens {
        access_token: &access,
        refresh_token: &refresh,
        expires_at: now_ms() + 7_200_000,
    };
    // Only the lease holder stores, and only over the version it read.
    assert!(
        !db.store_refreshed_gitlab_tokens(&keys, &link.id, 1, "B", tokens())
            .await
            .unwrap()
    );
    assert!(
        !db.store_refreshed_gitlab_tokens(&keys, &link.id, 0, "A", tokens())
            .await
            .unwrap()
    );
    assert!(
        db.store_refreshed_gitlab_tokens(&keys, &link.id, 1, "A", tokens())
            .await
            .unwrap()
    );
    let now = db.gitlab_link(&keys, &link.id).await.unwrap().unwrap();
    assert_eq!(now.token_version, 2);
    assert_eq!(now.access_token.expose_secret(), "access-2");
    assert_eq!(now.refresh_token.expose_secret(), "refresh-2");
    // A loser's `invalid_grant` over the old version never kills the link.
    assert!(
        !db.mark_gitlab_link_dead(&link.id, 1, "refused")
            .await
            .unwrap()
    );
    assert_eq!(
        db.gitlab_link(&keys, &link.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        LinkStatus::Active
    );
    // A stale version cannot be claimed; the new one can, and a released lease is free again.
    assert!(
        !db.claim_gitlab_refresh_lease(&link.id, 1, "B", soon)
            .await
            .unwrap()
    );
    assert!(
        db.claim_gitlab_refresh_lease(&link.id, 2, "B", soon)
            .await
            .unwrap()
    );
    db.release_gitlab_refresh_lease(&link.id, "B")
        .await
        .unwrap();
    // A lease whose holder died runs out.
    assert!(
        db.claim_gitlab_refresh_lease(&link.id, 2, "C", now_ms() - 1)
            .await
            .unwrap()
    );
    assert!(
        db.claim_gitlab_refresh_lease(&link.id, 2, "D", soon)
            .await
            .unwrap()
    );
    // A truly dead refresh token: the version did not move.
    assert!(
        db.mark_gitlab_link_dead(&link.id, 2, "refused")
            .await
            .unwrap()
    );
    let dead = db.gitlab_link(&keys, &link.id).await.unwrap().unwrap();
    assert_eq!(dead.status, LinkStatus::Dead);
    assert_eq!(dead.dead_reason.as_deref(), Some("refused"));
    assert!(
        !db.claim_gitlab_refresh_lease(&link.id, 2, "E", soon)
            .await
            .unwrap()
    );
}

async fn linking_again_replaces_the_row_and_revives_it(db: Db) {
    let keys = keys();
    let first = linked(&db, &keys, "a@x.io", "access-1").await;
    assert!(
        db.mark_gitlab_link_dead(&first.id, 1, "gone")
            .await
            .unwrap()
    );
    let (access, refresh) = pair(5);
    let again = db
        .save_gitlab_link(
            &keys,
            NewLink {
                user_id: &first.user_id,
                account_id: &first.account_id,
                instance_url: "https://gitlab.example.com/",
                application_id: "app",
                gitlab_user_id: 7,
                gitlab_username: "alice2",
                tokens: Tokens {
                    access_token: &access,
                    refresh_token: &refresh,
                    expires_at: now_ms() + 1,
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.token_version, 2);
    assert_eq!(again.status, LinkStatus::Active);
    assert_eq!(again.dead_reason, None);
    assert_eq!(again.gitlab_username, "alice2");
    assert_eq!(again.access_token.expose_secret(), "access-5");
    let all = db
        .gitlab_links_of_account(&keys, &first.account_id)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert!(db.delete_gitlab_link(&first.id).await.unwrap());
    assert!(
        db.gitlab_link_of_user(&keys, &first.user_id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn sealed_tokens_only_open_in_their_own_row(db: Db) {
    let keys = keys();
    let a = linked(&db, &keys, "a@x.io", "access-a").await;
    let b = linked(&db, &keys, "b@x.io", "access-b").await;
    // Copy a's ciphertext into b's row: it must not open there.
    let sql = "UPDATE gitlab_links SET access_token_enc = \
               (SELECT access_token_enc FROM gitlab_links WHERE id = $1) WHERE id = $2";
    on_db!(&db, |pool| sqlx::query(sql)
        .bind(&a.id)
        .bind(&b.id)
        .execute(pool)
        .await
        .map(drop))
    .unwrap();
    let moved = db.gitlab_link(&keys, &b.id).await;
    assert!(matches!(moved, Err(StoreError::Crypto(_))), "{moved:?}");
    // Nothing readable is stored.
    let raw: Vec<Vec<u8>> = on_db!(&db, |pool| {
        sqlx::query_scalar("SELECT refresh_token_enc FROM gitlab_links")
            .fetch_all(pool)
            .await
    })
    .unwrap();
    for blob in raw {
        assert!(
            !blob.windows(9).any(|w| w == b"access-a-"),
            "plain refresh token stored"
        );
    }
}

async fn an_oauth_state_is_consumed_once(db: Db) {
    let keys = keys();
    let (account_id, user_id) = user(&db, "a@x.io").await;
    let verifier = SecretString::from("v".repeat(64));
    db.create_gitlab_oauth_state(
        &keys,
        NewOAuthState {
            state_hash: "hash-1",
            session_id: "session-1",
            user_id: &user_id,
            account_id: &account_id,
            purpose: OAuthPurpose::AdminAuthorize,
            instance_url: "https://gitlab.example.com/",
            application_id: "app",
            verifier: &verifier,
            expires_at: now_ms() + 600_000,
        },
    )
    .await
    .unwrap();
    assert!(
        db.gitlab_oauth_state(&keys, "hash-2")
            .await
            .unwrap()
            .is_none()
    );
    let state = db
        .gitlab_oauth_state(&keys, "hash-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.purpose, OAuthPurpose::AdminAuthorize);
    assert_eq!(state.session_id, "session-1");
    assert_eq!(state.verifier.expose_secret(), verifier.expose_secret());
    assert_eq!(state.consumed_at, None);
    assert!(db.consume_gitlab_oauth_state(&state.id).await.unwrap());
    assert!(!db.consume_gitlab_oauth_state(&state.id).await.unwrap());
    let used = db
        .gitlab_oauth_state(&keys, "hash-1")
        .await
        .unwrap()
        .unwrap();
    assert!(used.consumed_at.is_some(), "a replay must be recognisable");
}

async fn saving_an_integration_replaces_it_pending_authorization(db: Db) {
    let keys = keys();
    let (account_id, user_id) = user(&db, "admin@x.io").await;
    assert!(
        db.gitlab_integration(&keys, &account_id)
            .await
            .unwrap()
            .is_none()
    );
    let secret = SecretString::from("gloas-first");
    let new = |secret| NewIntegration {
        account_id: &account_id,
        instance_url: "https://gitlab.example.com/",
        application_id: "app",
        secret,
        ca_bundle_pem: None,
        saved_by: &user_id,
    };
    let first = db
        .save_gitlab_integration(&keys, new(&secret))
        .await
        .unwrap();
    assert_eq!(first.status, IntegrationStatus::PendingAuthorization);
    assert!(db.mark_gitlab_integration_ready(&first.id).await.unwrap());
    let ready = db
        .gitlab_integration(&keys, &account_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready.status, IntegrationStatus::Ready);
    assert_eq!(ready.secret.expose_secret(), "gloas-first");
    let renewed = SecretString::from("gloas-second");
    let second = db
        .save_gitlab_integration(&keys, new(&renewed))
        .await
        .unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(second.status, IntegrationStatus::PendingAuthorization);
    assert_eq!(second.secret.expose_secret(), "gloas-second");
    // Authorizing the replaced row changes nothing.
    assert!(!db.mark_gitlab_integration_ready(&first.id).await.unwrap());
    assert!(db.delete_gitlab_integration(&account_id).await.unwrap());
    assert!(!db.delete_gitlab_integration(&account_id).await.unwrap());
}
