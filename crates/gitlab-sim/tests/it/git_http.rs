//! Git over smart HTTP with real `git`: every credential kind GitLab accepts, and each refusal
//! with GitLab's status and message.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use gitlab_sim::state::{Id, Namespace, OAuthToken, PushRule, SecretRef, Visibility, access};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestSim, TestUser, expect, header};
use crate::gitcli::{Git, GitRun};
use crate::receiver::Receiver;

/// Real git with Basic credentials sent up front, committing as `Dev <email>`.
async fn git(dir: &Path, args: &[&str], credentials: Option<(&str, &str)>, email: &str) -> GitRun {
    let mut client = Git::new(email);
    if let Some((user, password)) = credentials {
        client = client.basic(user, password);
    }
    client.run(dir, args).await
}

struct Setup {
    sim: TestSim,
    owner: TestUser,
    project_id: Id,
    url: String,
    dir: tempfile::TempDir,
}

/// A private project in a group (owner is Maintainer) with one commit on `main`.
async fn setup(visibility: Visibility) -> Setup {
    let sim = TestSim::start().await;
    let owner = sim.user("owner");
    let group = sim.group("team", None);
    sim.handle()
        .add_group_member(group, owner.id, access::MAINTAINER)
        .expect("member");
    let project = sim
        .project_with("analytics", Namespace::Group(group), visibility)
        .await;
    sim.handle()
        .commit_files(
            project.id,
            CommitRequest {
                branch: "main".into(),
                start_branch: None,
                message: "Initial commit".into(),
                files: vec![FileChange {
                    path: "README.md".into(),
                    content: Some(b"hello\n".to_vec()),
                }],
                user_id: owner.id,
                author: None,
            },
        )
        .await
        .expect("seed");
    Setup {
        url: sim.url("/team/analytics.git"),
        project_id: project.id,
        sim,
        owner,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn clone(&self, name: &str, credentials: Option<(&str, &str)>) -> GitRun {
        let target = self.path(name);
        git(
            self.dir.path(),
            &["clone", &self.url, target.to_str().expect("utf8")],
            credentials,
            "x@example.com",
        )
        .await
    }

    /// Commits a file in the clone `name` and pushes it to `branch`.
    async fn push(
        &self,
        name: &str,
        branch: &str,
        credentials: (&str, &str),
        email: &str,
    ) -> GitRun {
        let work = self.path(name);
        // Fresh content each time, so every call makes a new commit.
        std::fs::write(
            work.join(format!("{branch}.txt")),
            uuid::Uuid::new_v4().to_string(),
        )
        .expect("write");
        let add = git(&work, &["add", "-A"], None, email).await;
        assert!(add.ok, "{}", add.stderr);
        let commit = git(&work, &["commit", "-m", "change"], None, email).await;
        assert!(commit.ok, "{}", commit.stderr);
        git(
            &work,
            &["push", &self.url, &format!("HEAD:refs/heads/{branch}")],
            Some(credentials),
            email,
        )
        .await
    }

    async fn member(&self, username: &str, level: u8) -> TestUser {
        let user = self.sim.user(username);
        self.sim
            .handle()
            .add_project_member(self.project_id, user.id, level)
            .expect("member");
        user
    }

    async fn info_refs(&self, authorization: Option<String>) -> reqwest::Response {
        let mut request = self
            .sim
            .http
            .get(format!("{}/info/refs?service=git-upload-pack", self.url));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        request.send().await.expect("request")
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
}

fn oauth_token(sim: &TestSim, user_id: Id, scopes: &[&str]) -> String {
    let mut state = sim.handle().lock();
    let id = state.next_id();
    let created_at = state.now();
    state.oauth_tokens.insert(
        id,
        OAuthToken {
            id,
            application_id: 0,
            user_id,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_in: 7200,
            revoked: false,
            created_at,
        },
    );
    state.issue_secret("", SecretRef::OAuthAccess(id))
}

#[tokio::test]
async fn each_credential_kind_works_as_on_gitlab() {
    let s = setup(Visibility::Private).await;
    let dev = s.member("dev", access::DEVELOPER).await;

    // Personal access token: any non-blank user name.
    let run = s.clone("pat", Some(("anything", &dev.token))).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(s.path("pat/README.md").is_file());
    let run = s
        .push(
            "pat",
            "feature-pat",
            ("anything", &dev.token),
            "x@example.com",
        )
        .await;
    assert!(run.ok, "{}", run.stderr);
    let blank = s.info_refs(Some(basic("", &dev.token))).await;
    assert_eq!(blank.status(), StatusCode::UNAUTHORIZED);

    // OAuth access token: the user name does not matter.
    let oauth = oauth_token(&s.sim, dev.id, &["write_repository"]);
    let run = s.clone("oauth", Some(("whatever", &oauth))).await;
    assert!(run.ok, "{}", run.stderr);
    let run = s
        .push(
            "oauth",
            "feature-oauth",
            ("oauth2", &oauth),
            "x@example.com",
        )
        .await;
    assert!(run.ok, "{}", run.stderr);
    let read_only = oauth_token(&s.sim, dev.id, &["read_repository"]);
    let run = s
        .push(
            "oauth",
            "feature-ro",
            ("oauth2", &read_only),
            "x@example.com",
        )
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("You are not allowed to upload code."),
        "{}",
        run.stderr
    );

    // Project access token created through the API: a bot with its own access level.
    let created = expect(
        s.sim
            .post(
                &format!("/projects/{}/access_tokens", s.project_id),
                &s.owner.token,
                json!({ "name": "ci", "scopes": ["write_repository"], "access_level": 30 }),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let bot_token = created["token"].as_str().expect("token").to_owned();
    let run = s.clone("bot", Some(("bot", &bot_token))).await;
    assert!(run.ok, "{}", run.stderr);
    let run = s
        .push("bot", "feature-bot", ("bot", &bot_token), "x@example.com")
        .await;
    assert!(run.ok, "{}", run.stderr);

    // Deploy token: only its own user name, and never for pushing.
    let deploy = expect(
        s.sim
            .post(
                &format!("/projects/{}/deploy_tokens", s.project_id),
                &s.owner.token,
                json!({ "name": "lablink", "scopes": ["read_repository"] }),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let (deploy_user, deploy_token) = (
        deploy["username"].as_str().expect("username").to_owned(),
        deploy["token"].as_str().expect("token").to_owned(),
    );
    let run = s.clone("deploy", Some((&deploy_user, &deploy_token))).await;
    assert!(run.ok, "{}", run.stderr);
    let wrong_user = s.info_refs(Some(basic("oauth2", &deploy_token))).await;
    assert_eq!(wrong_user.status(), StatusCode::UNAUTHORIZED);
    let run = s
        .push(
            "deploy",
            "feature-deploy",
            (&deploy_user, &deploy_token),
            "x@example.com",
        )
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("You are not allowed to upload code."),
        "{}",
        run.stderr
    );

    let branches = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(s.sim.handle().repo_path(s.project_id))
        .args(["for-each-ref", "--format=%(refname:short)", "refs/heads"])
        .output()
        .expect("git");
    let branches = String::from_utf8_lossy(&branches.stdout).into_owned();
    for pushed in ["feature-pat", "feature-oauth", "feature-bot"] {
        assert!(branches.contains(pushed), "{branches}");
    }
    assert!(!branches.contains("feature-deploy") && !branches.contains("feature-ro"));
}

#[tokio::test]
async fn anonymous_callers_get_basic_challenges_except_for_public_fetches() {
    let private = setup(Visibility::Private).await;
    let response = private.info_refs(None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some("Basic realm=\"GitLab\"")
    );
    let wrong = private
        .info_refs(Some(basic("oauth2", "not-a-token")))
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let run = private.clone("anon", None).await;
    assert!(!run.ok);

    // A signed-in user who cannot see the project gets GitLab's 404.
    let stranger = private.sim.user("stranger");
    let hidden = private
        .info_refs(Some(basic("stranger", &stranger.token)))
        .await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);

    let public = setup(Visibility::Public).await;
    let run = public.clone("anon", None).await;
    assert!(run.ok, "{}", run.stderr);
    let work = public.path("anon");
    std::fs::write(work.join("x.txt"), "x").expect("write");
    assert!(git(&work, &["add", "-A"], None, "a@example.com").await.ok);
    assert!(
        git(&work, &["commit", "-m", "x"], None, "a@example.com")
            .await
            .ok
    );
    let push = git(
        &work,
        &["push", &public.url, "HEAD:refs/heads/x"],
        None,
        "a@example.com",
    )
    .await;
    assert!(!push.ok);
}

#[tokio::test]
async fn push_refusals_carry_gitlab_messages() {
    let s = setup(Visibility::Private).await;
    let reporter = s.member("reporter", access::REPORTER).await;
    let run = s.clone("rep", Some(("reporter", &reporter.token))).await;
    assert!(run.ok, "{}", run.stderr);
    let run = s
        .push(
            "rep",
            "feature",
            ("reporter", &reporter.token),
            "x@example.com",
        )
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("You are not allowed to push code to this project."),
        "{}",
        run.stderr
    );

    let dev = s.member("dev", access::DEVELOPER).await;
    assert!(s.clone("dev", Some(("dev", &dev.token))).await.ok);
    let run = s
        .push("dev", "main", ("dev", &dev.token), "x@example.com")
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("remote: GitLab: You are not allowed to push code to protected branches on this project."),
        "{}",
        run.stderr
    );
    // Maintainers may push to the protected default branch.
    assert!(s.clone("owner", Some(("owner", &s.owner.token))).await.ok);
    let owner_email = s.sim.handle().lock().users[&s.owner.id].email.clone();
    let run = s
        .push("owner", "main", ("owner", &s.owner.token), &owner_email)
        .await;
    assert!(run.ok, "{}", run.stderr);
    // ... but nobody force-pushes it or deletes it.
    let owner_clone = s.path("owner");
    assert!(
        git(
            &owner_clone,
            &["reset", "--hard", "HEAD~1"],
            None,
            &owner_email
        )
        .await
        .ok
    );
    std::fs::write(owner_clone.join("other.txt"), "rewritten history").expect("write");
    assert!(
        git(&owner_clone, &["add", "-A"], None, &owner_email)
            .await
            .ok
    );
    assert!(
        git(
            &owner_clone,
            &["commit", "-m", "rewrite"],
            None,
            &owner_email
        )
        .await
        .ok
    );
    let credentials = Some(("owner", s.owner.token.as_str()));
    let run = git(
        &owner_clone,
        &["push", &s.url, "+HEAD:refs/heads/main"],
        credentials,
        &owner_email,
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains(
            "GitLab: You are not allowed to force push code to a protected branch on this project."
        ),
        "{}",
        run.stderr
    );
    let run = git(
        &owner_clone,
        &["push", &s.url, ":refs/heads/main"],
        Some(("owner", &s.owner.token)),
        &owner_email,
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("remote: GitLab: The default branch of a project cannot be deleted."),
        "{}",
        run.stderr
    );

    // Push rule "Reject unverified users": the committer email must be the pusher's.
    s.sim.handle().lock().push_rules.insert(
        s.project_id,
        PushRule {
            commit_committer_check: true,
            ..PushRule::default()
        },
    );
    let run = s
        .push(
            "dev",
            "feature",
            ("dev", &dev.token),
            "someone@else.example",
        )
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains(
            "GitLab: You cannot push commits for 'someone@else.example'. You can only push commits if the committer email is one of your own verified emails."
        ),
        "{}",
        run.stderr
    );
    let dev_email = s.sim.handle().lock().users[&dev.id].email.clone();
    assert!(
        git(
            &s.path("dev"),
            &["reset", "--hard", "origin/main"],
            None,
            &dev_email
        )
        .await
        .ok
    );
    let run = s
        .push("dev", "feature", ("dev", &dev.token), &dev_email)
        .await;
    assert!(run.ok, "{}", run.stderr);
}

#[tokio::test]
async fn a_push_fires_push_hooks_and_updates_merge_requests() {
    let s = setup(Visibility::Private).await;
    let mut receiver = Receiver::start().await;
    expect(
        s.sim
            .post(
                &format!("/projects/{}/hooks", s.project_id),
                &s.owner.token,
                json!({ "url": receiver.url, "push_events": true, "merge_requests_events": true }),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let dev = s.member("dev", access::DEVELOPER).await;
    assert!(s.clone("dev", Some(("dev", &dev.token))).await.ok);
    let run = s
        .push("dev", "feature", ("dev", &dev.token), "x@example.com")
        .await;
    assert!(run.ok, "{}", run.stderr);
    let first_push = receiver.next_event("Push Hook").await.body;
    assert_eq!(first_push["ref"], "refs/heads/feature");
    assert_eq!(first_push["user_username"], "dev");
    assert_eq!(first_push["total_commits_count"], 1);
    let first = first_push["after"].as_str().expect("after").to_owned();

    let mr = s
        .sim
        .handle()
        .open_merge_request(s.project_id, dev.id, "feature", "main", "Feature", "")
        .await
        .expect("open");
    assert_eq!(
        receiver.next_event("Merge Request Hook").await.body["object_attributes"]["action"],
        "open"
    );

    let run = s
        .push("dev", "feature", ("dev", &dev.token), "x@example.com")
        .await;
    assert!(run.ok, "{}", run.stderr);
    let update = receiver.next_event("Merge Request Hook").await.body;
    assert_eq!(update["object_attributes"]["action"], "update");
    assert_eq!(update["object_attributes"]["oldrev"], first);
    let head = s
        .sim
        .handle()
        .lock()
        .merge_request(s.project_id, mr.iid)
        .expect("mr")
        .sha
        .clone();
    assert_eq!(update["object_attributes"]["last_commit"]["id"], head);
    assert_ne!(head, first);
}
