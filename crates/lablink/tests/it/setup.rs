//! First start: the one-time setup link creates the account and its first admin.

use lablink_core::{Plan, Role};
use lablink_service::setup::SetupLink;

use crate::support::{PASSWORD, TestApp};

crate::on_both!(
    setup_link_creates_the_account_and_its_admin,
    one_setup_link_is_open_at_a_time,
    setup_is_refused_once_an_account_exists,
);

fn setup_form<'a>(csrf: &'a str, email: &'a str) -> [(&'a str, &'a str); 6] {
    [
        ("csrf_token", csrf),
        ("account_name", "Acme Data"),
        ("plan", "enterprise"),
        ("email", email),
        ("username", "admin"),
        ("password", PASSWORD),
    ]
}

async fn one_setup_link_is_open_at_a_time(app: TestApp) {
    let first = app.setup_link.clone().unwrap();
    // A replica starting at the same moment opens no second link.
    assert_eq!(
        app.services.setup_link_if_empty().await.unwrap(),
        SetupLink::OpenedByAnotherReplica
    );
    // A later start opens a new link and revokes the first.
    app.execute("UPDATE setup_tokens SET created_at = created_at - 120000")
        .await;
    let SetupLink::Opened(second) = app.services.setup_link_if_empty().await.unwrap() else {
        panic!("a later start opens a new link");
    };
    assert_ne!(first, second);
    let b = app.browser();
    assert_eq!(b.get(&first).await.status, 404);
    let csrf = b.get(&second).await.csrf();
    let done = b
        .post_form(&second, &setup_form(&csrf, "admin@acme.test"))
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    // Setup is over: no link is opened again, and the used one is gone.
    assert_eq!(
        app.services.setup_link_if_empty().await.unwrap(),
        SetupLink::NotNeeded
    );
    assert_eq!(app.browser().get(&second).await.status, 404);
}

async fn setup_is_refused_once_an_account_exists(app: TestApp) {
    // An account made another way (`lablink admin create-user`) while the link is open.
    let link = app.setup_link.clone().unwrap();
    app.create_user("Acme", Plan::Starter, "dev@acme.test", Role::AccountAdmin)
        .await;
    let b = app.browser();
    let csrf = b.get(&link).await.csrf();
    let refused = b
        .post_form(&link, &setup_form(&csrf, "intruder@acme.test"))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("An account exists already, so setup is over")
    );
    assert_eq!(app.db.count_accounts().await.unwrap(), 1);
    assert!(!b.has_cookie("lablink_session"));
}

async fn setup_link_creates_the_account_and_its_admin(app: TestApp) {
    let link = app
        .setup_link
        .clone()
        .expect("an empty database prints a setup link");
    assert!(link.starts_with(&format!("{}/setup/", app.base)), "{link}");
    let b = app.browser();

    // Before setup, nothing is signed in.
    assert_eq!(b.get("/").await.location.as_deref(), Some("/login"));

    let form = b.get(&link).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("<label for=\"account_name\">"));
    let csrf = form.csrf();

    // Bad input: the page says why and nothing is created.
    let refused = b
        .post_form(
            &link,
            &[
                ("csrf_token", &csrf),
                ("account_name", "Acme Data"),
                ("plan", "enterprise"),
                ("email", "admin@acme.test"),
                ("username", "admin"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused
            .body
            .contains("the password must be at least 12 characters long")
    );
    let bad_plan = b
        .post_form(
            &link,
            &[
                ("csrf_token", &csrf),
                ("account_name", "Acme Data"),
                ("plan", "gold"),
                ("email", "admin@acme.test"),
                ("username", "admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(bad_plan.status, 422);
    assert!(
        bad_plan
            .body
            .contains("<code>gold</code> is not a valid plan")
    );
    assert_eq!(app.db.count_accounts().await.unwrap(), 0);

    let done = b
        .post_form(
            &link,
            &[
                ("csrf_token", &csrf),
                ("account_name", "Acme Data"),
                ("plan", "enterprise"),
                ("email", "Admin@Acme.test"),
                ("username", "admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/"));
    let dashboard = b.get("/").await;
    assert_eq!(dashboard.status, 200);
    assert!(dashboard.body.contains("Acme Data"));
    assert!(dashboard.body.contains("Enterprise"));
    assert!(dashboard.body.contains("Account admin"));

    // The link worked once.
    let again = app.browser().get(&link).await;
    assert_eq!(again.status, 404);
    assert!(again.body.contains("This setup link is not valid"));

    // The admin signs in with the new password (email is case-insensitive).
    app.login("admin@acme.test").await;
}
