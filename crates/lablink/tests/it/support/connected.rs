//! A lablink project connected to a GitLab project of the simulator, the way a user connects
//! one: a Maintainer (`alice`) of `analytics/warehouse` links her GitLab account to the lablink
//! developer `dev@acme.test`, who creates the project `Analytics` and connects the repository.
//! The steps are also offered one by one for tests that need a different setup.

use std::path::Path;

use lablink_core::{Plan, Role};
use reqwest::Method;
use serde_json::json;

use super::gitlab::{GitLab, SimUser, lablink_with_operator_app_and, link};
use super::{Backend, Browser, Page, TestApp, TestUser};

/// GitLab's access level of a Maintainer.
pub const MAINTAINER: u8 = 40;

pub struct Connected {
    pub gitlab: GitLab,
    pub app: TestApp,
    /// The connecting Maintainer in GitLab.
    pub alice: SimUser,
    /// The lablink developer alice is linked to, signed in as `browser`.
    pub user: TestUser,
    pub browser: Browser,
    pub csrf: String,
    pub gitlab_project: u64,
    /// The lablink project.
    pub project: String,
    pub repository_id: String,
}

impl Connected {
    /// `settings` are extra lablink settings; `seed` is a directory committed to `main` before
    /// connecting (GitLab projects start empty).
    pub async fn start(backend: Backend, settings: &[(&str, &str)], seed: Option<&Path>) -> Self {
        Connected::start_on(backend, settings, seed, false).await
    }

    /// Like [`Connected::start`]; `gitlab_com_free`: the simulator behaves like a gitlab.com
    /// Free namespace (no project access tokens).
    pub async fn start_on(
        backend: Backend,
        settings: &[(&str, &str)],
        seed: Option<&Path>,
        gitlab_com_free: bool,
    ) -> Self {
        Connected::start_as(backend, settings, seed, gitlab_com_free, Plan::Enterprise).await
    }

    /// Like [`Connected::start_on`], with the account `acme` on `plan` when it connects.
    pub async fn start_as(
        backend: Backend,
        settings: &[(&str, &str)],
        seed: Option<&Path>,
        gitlab_com_free: bool,
        plan: Plan,
    ) -> Self {
        let gitlab = GitLab::start().await;
        if gitlab_com_free {
            gitlab
                .control(Method::PUT, "/settings", json!({"gitlab_com_free": true}))
                .await;
        }
        let (app, _) = lablink_with_operator_app_and(backend, &gitlab, settings).await;
        let group = gitlab.group("analytics", None).await;
        let gitlab_project = gitlab.project_in(group, "warehouse").await;
        let alice = gitlab.user("alice").await;
        gitlab.member(gitlab_project, alice.id, MAINTAINER).await;
        if let Some(dir) = seed {
            gitlab
                .control(
                    Method::POST,
                    &format!("/projects/{gitlab_project}/repository/seed"),
                    json!({"dir": dir, "user_id": alice.id}),
                )
                .await;
        }
        let user = app
            .create_user("acme", plan, "dev@acme.test", Role::Developer)
            .await;
        let linked = Linked::of(&app, &gitlab, user, &alice).await;
        let project = create_project(&linked.browser, &linked.csrf, "Analytics", "").await;
        let res = connect(&linked.browser, &linked.csrf, &project, gitlab_project).await;
        assert_eq!(res.status, 200, "connect failed: {}", res.body);
        let repository_id = res.json()["id"].as_str().unwrap().to_owned();
        Connected {
            gitlab,
            app,
            alice,
            user: linked.user,
            browser: linked.browser,
            csrf: linked.csrf,
            gitlab_project,
            project,
            repository_id,
        }
    }
}

/// A lablink user (account `acme`, Enterprise) with a GitLab account linked, signed in.
pub struct Linked {
    pub user: TestUser,
    pub browser: Browser,
    pub csrf: String,
}

impl Linked {
    pub async fn new(
        app: &TestApp,
        gitlab: &GitLab,
        email: &str,
        role: Role,
        gitlab_user: &SimUser,
    ) -> Linked {
        let user = app.create_user("acme", Plan::Enterprise, email, role).await;
        Linked::of(app, gitlab, user, gitlab_user).await
    }

    /// `user`, signed in and linked to `gitlab_user`.
    pub async fn of(
        app: &TestApp,
        gitlab: &GitLab,
        user: TestUser,
        gitlab_user: &SimUser,
    ) -> Linked {
        let browser = app.login(&user.email).await;
        link(&browser, gitlab, gitlab_user).await;
        let csrf = browser.get("/profile/linked-accounts").await.csrf();
        Linked {
            user,
            browser,
            csrf,
        }
    }
}

/// Creates a lablink project with target branch `main`; returns its id.
pub async fn create_project(
    browser: &Browser,
    csrf: &str,
    name: &str,
    subdirectory: &str,
) -> String {
    let res = browser
        .api(
            Method::POST,
            "/api/v1/projects",
            Some(json!({"name": name, "subdirectory": subdirectory, "target_branch": "main"})),
            Some(csrf),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    res.json()["id"].as_str().unwrap().to_owned()
}

/// Project → Repository → Connect, through the JSON API.
pub async fn connect(browser: &Browser, csrf: &str, project: &str, gitlab_project: u64) -> Page {
    browser
        .api(
            Method::PUT,
            &format!("/api/v1/projects/{project}/repository"),
            Some(json!({"gitlab_project_id": gitlab_project})),
            Some(csrf),
        )
        .await
}
