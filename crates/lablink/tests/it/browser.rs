//! The admin flow and the link flow through the real pages in headless Chromium, GitLab's sign-in
//! and consent pages included.

use lablink_core::{Plan, Role};

use crate::on_both_backends;
use crate::support::gitlab::{GitLab, SimUser};
use crate::support::webdriver::Browser as Chromium;
use crate::support::{Backend, PASSWORD, TestApp};

on_both_backends!(admin_and_developer_flows_in_chromium);

pub(crate) async fn sign_in_to_lablink(chromium: &Chromium, app: &TestApp, email: &str) {
    chromium.goto(&format!("{}/login", app.base)).await;
    chromium.find("#email").await.send_keys(email).await;
    chromium.find("#password").await.send_keys(PASSWORD).await;
    chromium.find("button[type=submit]").await.click().await;
    chromium.wait_for_text("Sign out").await;
}

/// GitLab asks the (not yet signed-in) browser to sign in, then for consent.
async fn sign_in_to_gitlab_and_authorize(chromium: &Chromium, user: &SimUser) {
    chromium
        .find("input[name='user[login]']")
        .await
        .send_keys(&user.username)
        .await;
    chromium
        .find("input[name='user[password]']")
        .await
        .send_keys(&user.password)
        .await;
    chromium
        .find("#new_user button[type=submit]")
        .await
        .click()
        .await;
    chromium
        .wait_for_text("is requesting access to your GitLab account")
        .await;
    chromium
        .find("#authorize button[type=submit]")
        .await
        .click()
        .await;
}

async fn admin_and_developer_flows_in_chromium(backend: Backend) {
    let gitlab = GitLab::start().await;
    let app = TestApp::spawn_with(backend, &[("allow_http_loopback_gitlab", "true")]).await;
    app.create_user(
        "bigco",
        Plan::Enterprise,
        "admin@bigco.test",
        Role::AccountAdmin,
    )
    .await;
    app.create_user("bigco", Plan::Enterprise, "dev@bigco.test", Role::Developer)
        .await;
    let sim_app = gitlab.app(&[&app.base]).await;
    let root = gitlab.user("root").await;
    let dana = gitlab.user("dana").await;

    // The admin: Account settings → Integrations → GitLab → Save → GitLab → "Integration ready".
    let chromium = Chromium::start().await;
    sign_in_to_lablink(&chromium, &app, "admin@bigco.test").await;
    chromium
        .goto(&format!("{}/settings/integrations/gitlab", app.base))
        .await;
    let redirect_uri = chromium.find("#redirect-uri").await.text().await;
    assert_eq!(redirect_uri, format!("{}/complete/gitlab", app.base));
    assert_eq!(chromium.find("#scope").await.text().await, "api");
    let url_field = chromium.find("#instance_url").await;
    url_field.clear().await;
    url_field.send_keys(&gitlab.base).await;
    chromium
        .find("#application_id")
        .await
        .send_keys(&sim_app.client_id)
        .await;
    chromium
        .find("#secret")
        .await
        .send_keys(&sim_app.secret)
        .await;
    chromium.find("#save").await.click().await;
    sign_in_to_gitlab_and_authorize(&chromium, &root).await;
    let page = chromium.wait_for_text("Integration ready").await;
    assert!(!page.contains(&sim_app.secret));
    assert!(
        chromium
            .url()
            .await
            .ends_with("/settings/integrations/gitlab")
    );
    chromium.quit().await;

    // A developer: Profile → Linked accounts → Link → GitLab → "Linked as @dana".
    let chromium = Chromium::start().await;
    sign_in_to_lablink(&chromium, &app, "dev@bigco.test").await;
    chromium
        .goto(&format!("{}/profile/linked-accounts", app.base))
        .await;
    chromium.wait_for_text("No connected account").await;
    chromium.find("#link").await.click().await;
    sign_in_to_gitlab_and_authorize(&chromium, &dana).await;
    chromium.wait_for_text("Linked as @dana").await;
    assert!(chromium.url().await.ends_with("/profile/linked-accounts"));
    // Unlinking asks first: the button is behind its disclosure; afterwards the page says what
    // was done.
    chromium.find("details.confirm summary").await.click().await;
    chromium.find("#unlink").await.click().await;
    chromium
        .wait_for_text("lablink's access was revoked at GitLab")
        .await;
    chromium.wait_for_text("No connected account").await;
    chromium.quit().await;
}
