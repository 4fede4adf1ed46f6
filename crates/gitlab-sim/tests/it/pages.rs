//! The pages a person sees in the demo, walked in headless Chromium: sign in, the project's
//! files and branches, a merge request with its pipeline widget, group Applications, project
//! Webhooks ("Test"), Access tokens, Repository settings and the user's SSH keys. Screenshots
//! go to `$LABLINK_ARTIFACTS_DIR`.

use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use gitlab_sim::state::{Namespace, access};
use reqwest::StatusCode;
use serde_json::json;

use crate::browser::Browser;
use crate::common::{PASSWORD, TestSim, expect};
use crate::gitcli::ssh_keygen;
use crate::receiver::Receiver;

const RUN_URL: &str = "http://127.0.0.1:9/runs/42";

#[tokio::test]
async fn a_person_walks_the_pages_in_chromium() {
    let t = TestSim::start().await;
    let owner = t.user("owner");
    let group = t.group("acme", None);
    t.handle()
        .add_group_member(group, owner.id, access::OWNER)
        .expect("member");
    let project = t.project("warehouse", Namespace::Group(group)).await;
    let p = format!("/projects/{}", project.id);
    let files = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(path, content)| FileChange {
                path: (*path).into(),
                content: Some(content.as_bytes().to_vec()),
            })
            .collect::<Vec<_>>()
    };
    for (branch, message, list) in [
        (
            "main",
            "Initial commit",
            files(&[
                ("README.md", "# Warehouse\n\nThe dbt project.\n"),
                ("models/orders.sql", "select 1 as id\n"),
            ]),
        ),
        (
            "feature",
            "Add customers",
            files(&[("models/customers.sql", "select 2 as id\n")]),
        ),
    ] {
        t.handle()
            .commit_files(
                project.id,
                CommitRequest {
                    branch: branch.into(),
                    start_branch: None,
                    message: message.into(),
                    files: list,
                    user_id: owner.id,
                    author: None,
                },
            )
            .await
            .expect("commit");
    }
    let mr = expect(
        t.post(&format!("{p}/merge_requests"), &owner.token, json!({ "source_branch": "feature", "target_branch": "main", "title": "Add customers", "description": "Adds the customers model." })).await,
        StatusCode::CREATED,
    )
    .await;
    let sha = mr["sha"].as_str().expect("sha").to_owned();
    expect(
        t.post(&format!("{p}/statuses/{sha}"), &owner.token, json!({ "state": "success", "name": "lablink/ci", "target_url": RUN_URL, "description": "dbt build passed" })).await,
        StatusCode::CREATED,
    )
    .await;
    let receiver = Receiver::start().await;
    expect(
        t.post(
            &format!("{p}/hooks"),
            &owner.token,
            json!({ "url": receiver.url, "push_events": true, "merge_requests_events": true }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    expect(
        t.post(
            &format!("{p}/access_tokens"),
            &owner.token,
            json!({ "name": "lablink-bot", "scopes": ["api"] }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    expect(
        t.post(
            &format!("{p}/deploy_tokens"),
            &owner.token,
            json!({ "name": "lablink-read", "scopes": ["read_repository"] }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let keys = tempfile::tempdir().expect("tempdir");
    let (_, deploy_key, _) = ssh_keygen(keys.path(), "deploy");
    expect(
        t.post(
            &format!("{p}/deploy_keys"),
            &owner.token,
            json!({ "title": "lablink-ci", "key": deploy_key, "can_push": true }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;

    let browser = Browser::start().await;
    let base = t.sim.base_url().to_owned();

    // A private project sends a stranger to sign in, and back afterwards.
    browser.goto(&format!("{base}/acme/warehouse")).await;
    browser.find("#new_user").await;
    assert!(browser.url().await.contains("/users/sign_in?redirect_to="));
    browser
        .find("input[name='user[login]']")
        .await
        .send_keys("owner")
        .await;
    browser
        .find("input[name='user[password]']")
        .await
        .send_keys(PASSWORD)
        .await;
    browser.find("button[value='Sign in']").await.click().await;
    let text = browser.wait_for_text("The dbt project.").await;
    assert_eq!(browser.url().await, format!("{base}/acme/warehouse"));
    assert!(
        text.contains("README.md") && text.contains("models"),
        "{text}"
    );
    let ssh = browser.find("#ssh-url").await.text().await;
    assert!(
        ssh.starts_with("ssh://git@127.0.0.1:") && ssh.ends_with("/acme/warehouse.git"),
        "{ssh}"
    );
    browser.screenshot("project").await;

    browser.find("a.tree-item").await.click().await;
    browser.wait_for_text("orders.sql").await;
    browser.find("a.blob-item").await.click().await;
    assert_eq!(
        browser.find("#blob-content").await.text().await,
        "select 1 as id"
    );
    assert_eq!(
        browser.url().await,
        format!("{base}/acme/warehouse/-/blob/main/models/orders.sql")
    );
    browser
        .goto(&format!("{base}/acme/warehouse/-/tree/feature/models"))
        .await;
    browser.wait_for_text("customers.sql").await;

    browser
        .goto(&format!("{base}/acme/warehouse/-/branches"))
        .await;
    let text = browser.wait_for_text("feature").await;
    assert!(text.contains("main default protected"), "{text}");
    browser.screenshot("branches").await;

    // The merge request and its pipeline widget, with lablink/ci linking to the run.
    browser.goto(mr["web_url"].as_str().expect("web_url")).await;
    let text = browser.wait_for_text("Adds the customers model.").await;
    assert!(
        text.contains("Requested to merge feature into main"),
        "{text}"
    );
    assert!(text.contains("Add customers"), "{text}");
    let job = browser.find("#pipeline-jobs a.job-link").await;
    assert_eq!(job.text().await, "lablink/ci");
    assert_eq!(job.attribute("href").await, RUN_URL);
    let widget = browser.find("#pipeline-widget").await.text().await;
    assert!(
        widget.contains("success") && widget.contains("dbt build passed"),
        "{widget}"
    );
    browser.screenshot("merge_request").await;

    // Group settings → Applications: the seed's first step.
    browser
        .goto(&format!("{base}/groups/acme/-/settings/applications"))
        .await;
    browser
        .find("input[name='doorkeeper_application[name]']")
        .await
        .send_keys("lablink")
        .await;
    browser
        .find("textarea[name='doorkeeper_application[redirect_uri]']")
        .await
        .send_keys("http://127.0.0.1:8080/auth/gitlab/callback")
        .await;
    browser.find("input[value='api']").await.click().await;
    browser
        .find("button[value='Save application']")
        .await
        .click()
        .await;
    let uid = browser.find("#application-id").await.text().await;
    let secret = browser.find("#application-secret").await.text().await;
    assert_eq!(
        browser.find("#application-scopes").await.text().await,
        "api"
    );
    browser.screenshot("group_applications").await;
    {
        let state = t.handle().lock();
        let app = state
            .oauth_application_by_uid(&uid)
            .expect("the application exists");
        assert_eq!(
            app.redirect_uris,
            vec!["http://127.0.0.1:8080/auth/gitlab/callback"]
        );
        assert!(app.confidential);
        assert_eq!(app.secret_digest, gitlab_sim::secrets::digest(&secret));
    }

    // Settings → Webhooks: the hook, "Test", and the recent event it leaves.
    browser
        .goto(&format!("{base}/acme/warehouse/-/hooks"))
        .await;
    browser.wait_for_text(&receiver.url).await;
    browser
        .find("form[id^='test-hook-'] button")
        .await
        .click()
        .await;
    let flash = browser.find("#flash").await.text().await;
    assert_eq!(flash, "Hook executed successfully: HTTP 200");
    let events = browser
        .find("table[id^='hook-events-'] tbody")
        .await
        .text()
        .await;
    assert!(
        events.contains("push_hooks") && events.contains("200"),
        "{events}"
    );
    browser.screenshot("webhooks").await;

    browser
        .goto(&format!("{base}/acme/warehouse/-/settings/access_tokens"))
        .await;
    let text = browser.wait_for_text("lablink-bot").await;
    assert!(
        text.contains("Maintainer") && text.contains("Active"),
        "{text}"
    );
    browser.screenshot("access_tokens").await;

    browser
        .goto(&format!("{base}/acme/warehouse/-/settings/repository"))
        .await;
    let text = browser.wait_for_text("lablink-read").await;
    assert!(text.contains("gitlab+deploy-token-"), "{text}");
    assert!(text.contains("lablink-ci"), "{text}");
    assert!(text.contains("main Maintainers Maintainers No"), "{text}");
    browser.screenshot("repository_settings").await;

    // User settings → SSH keys.
    let (_, user_key, fingerprint) = ssh_keygen(keys.path(), "laptop");
    browser
        .goto(&format!("{base}/-/user_settings/ssh_keys"))
        .await;
    browser
        .find("textarea[name='key[key]']")
        .await
        .send_keys(&user_key)
        .await;
    browser
        .find("input[name='key[title]']")
        .await
        .send_keys("laptop")
        .await;
    browser.find("button[value='Add key']").await.click().await;
    assert_eq!(
        browser.find("#flash").await.text().await,
        "SSH key laptop was added."
    );
    assert!(
        browser
            .find("#ssh-keys")
            .await
            .text()
            .await
            .contains(&fingerprint)
    );
    browser.screenshot("ssh_keys").await;
    browser.quit().await;

    // Someone else signed in gets GitLab's 404 for settings, not the page.
    let stranger = t.user("stranger");
    let cookie = t.handle().create_web_session(stranger.id);
    let response = t
        .http
        .get(format!("{base}/acme/warehouse/-/hooks"))
        .header("Cookie", format!("_gitlab_session={cookie}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
