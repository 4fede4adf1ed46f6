use lablink_core::{Plan, Role};
use lablink_store::Db;
use lablink_store::users::NewUser;

crate::on_both!(
    setup_consumes_its_token_once,
    emails_are_unique,
    sessions_join_user_and_account,
    audit_entries_cannot_be_changed,
);

fn user(email: &str, role: Role) -> NewUser {
    NewUser {
        email: email.into(),
        username: "u".into(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        role,
    }
}

async fn setup_consumes_its_token_once(db: Db) {
    let now = lablink_store::now_ms();
    // An expired link, then a fresh one (which revokes it), then a second fresh one at the
    // same moment (a replica starting together), which is not opened.
    assert!(
        db.mint_setup_token("expired", now - 10, now - 1, now - 60_000)
            .await
            .unwrap()
    );
    assert!(
        db.mint_setup_token("h1", now, now + 60_000, now - 60_000)
            .await
            .unwrap()
    );
    assert!(
        !db.mint_setup_token("h2", now, now + 60_000, now - 60_000)
            .await
            .unwrap()
    );
    assert!(db.setup_token_is_valid("h1", now).await.unwrap());
    assert!(!db.setup_token_is_valid("h2", now).await.unwrap());
    assert!(!db.setup_token_is_valid("expired", now).await.unwrap());
    let account = db
        .complete_setup(
            "h1",
            "Acme",
            Plan::Enterprise,
            &user("a@x.io", Role::AccountAdmin),
        )
        .await
        .unwrap();
    assert_eq!(account.plan, Plan::Enterprise);
    assert_eq!(db.count_accounts().await.unwrap(), 1);
    assert!(!db.setup_token_is_valid("h1", now).await.unwrap());
    let again = db
        .complete_setup(
            "h1",
            "Other",
            Plan::Starter,
            &user("b@x.io", Role::AccountAdmin),
        )
        .await;
    assert!(again.is_err());
    let expired = db
        .complete_setup(
            "expired",
            "Other",
            Plan::Starter,
            &user("c@x.io", Role::AccountAdmin),
        )
        .await;
    assert!(expired.is_err());
    assert_eq!(
        db.count_accounts().await.unwrap(),
        1,
        "a refused setup creates nothing"
    );
}

async fn emails_are_unique(db: Db) {
    let a = db.create_account("A", Plan::Developer).await.unwrap();
    db.create_user(&a.id, &user("same@x.io", Role::Developer))
        .await
        .unwrap();
    let err = db
        .create_user(&a.id, &user("same@x.io", Role::ReadOnly))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "a user with the email same@x.io already exists"
    );
}

async fn sessions_join_user_and_account(db: Db) {
    let a = db.create_account("A", Plan::Starter).await.unwrap();
    let u = db
        .create_user(&a.id, &user("s@x.io", Role::ReadOnly))
        .await
        .unwrap();
    db.create_session("hash", &u.id, 5).await.unwrap();
    let s = db.session("hash").await.unwrap().unwrap();
    assert_eq!(s.principal.role, Role::ReadOnly);
    assert_eq!(s.principal.plan, Plan::Starter);
    assert_eq!(s.principal.account_name, "A");
    assert_eq!(db.delete_sessions_of_user(&u.id).await.unwrap(), 1);
    assert!(db.session("hash").await.unwrap().is_none());
}

async fn audit_entries_cannot_be_changed(db: Db) {
    use lablink_store::audit::AuditEvent;
    db.record_audit(AuditEvent {
        action: "login.failed",
        detail: "as written".into(),
        ..AuditEvent::default()
    })
    .await
    .unwrap();
    let rewrite = "UPDATE audit_log SET detail = 'rewritten'";
    let refused = match &db {
        Db::Sqlite(pool) => sqlx::query(rewrite).execute(pool).await.map(drop),
        Db::Postgres(pool) => sqlx::query(rewrite).execute(pool).await.map(drop),
    }
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("audit entries cannot be changed"),
        "{refused}"
    );
    let entries = db.operator_audit_entries(10).await.unwrap();
    assert_eq!(entries[0].detail, "as written");
}
