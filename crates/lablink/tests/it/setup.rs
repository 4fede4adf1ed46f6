//! First start: the one-time setup link creates the account and its first admin.

use crate::support::{PASSWORD, TestApp};

crate::on_both!(setup_link_creates_the_account_and_its_admin);

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
    assert!(bad_plan.body.contains("`gold` is not a valid plan"));
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
