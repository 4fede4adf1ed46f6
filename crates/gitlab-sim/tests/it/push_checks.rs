//! Protected branches and push rules: their REST APIs, and their enforcement on real pushes
//! over HTTP (the same hook serves SSH: see `git_ssh`) and on API operations, each refusal in
//! GitLab's words as git prints them.

use std::path::PathBuf;

use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use gitlab_sim::state::{Id, Namespace, access};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestSim, TestUser, expect};
use crate::gitcli::Git;

struct World {
    t: TestSim,
    owner: TestUser,
    dev: TestUser,
    project_id: Id,
    url: String,
    dir: tempfile::TempDir,
}

async fn world() -> World {
    let t = TestSim::start().await;
    let owner = t.user("owner");
    let dev = t.user("dev");
    let group = t.group("team", None);
    t.handle()
        .add_group_member(group, owner.id, access::MAINTAINER)
        .expect("member");
    t.handle()
        .add_group_member(group, dev.id, access::DEVELOPER)
        .expect("member");
    let project = t.project("analytics", Namespace::Group(group)).await;
    t.handle()
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
    World {
        url: t.url("/team/analytics.git"),
        project_id: project.id,
        t,
        owner,
        dev,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

impl World {
    fn email(&self, user: &TestUser) -> String {
        self.t.handle().lock().users[&user.id].email.clone()
    }

    /// A clone for `user`, committing with their own e-mail.
    async fn clone_as(&self, user: &TestUser) -> (Git, PathBuf) {
        let git = Git::new(&self.email(user)).basic(&user.username, &user.token);
        let work = self.dir.path().join(&user.username);
        if !work.exists() {
            git.ok(
                self.dir.path(),
                &["clone", "-q", &self.url, work.to_str().expect("utf8")],
            )
            .await;
        }
        (git, work)
    }

    fn path(&self, rest: &str) -> String {
        format!("/projects/{}{rest}", self.project_id)
    }

    async fn patch(&self, path: &str, body: Value) -> reqwest::Response {
        self.t
            .http
            .patch(self.t.api(path))
            .header("PRIVATE-TOKEN", &self.owner.token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }
}

fn refused(run: &crate::gitcli::GitRun, message: &str) {
    assert!(!run.ok, "push went through");
    assert!(
        run.stderr.contains(&format!("remote: GitLab: {message}")),
        "expected {message:?} in:\n{}",
        run.stderr
    );
}

#[tokio::test]
async fn protected_branches_api_is_gitlabs() {
    let w = world().await;
    let listed = expect(
        w.t.get(&w.path("/protected_branches"), &w.owner.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["name"], "main");
    assert_eq!(listed[0]["push_access_levels"][0]["access_level"], 40);
    assert_eq!(
        listed[0]["push_access_levels"][0]["access_level_description"],
        "Maintainers"
    );
    assert_eq!(listed[0]["allow_force_push"], false);

    let created = expect(
        w.t.post(
            &w.path("/protected_branches"),
            &w.owner.token,
            json!({ "name": "release/*", "push_access_level": 30, "merge_access_level": 40,
                    "allowed_to_push": [{ "user_id": w.dev.id }] }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        created["push_access_levels"][0]["access_level_description"],
        "Developers + Maintainers"
    );
    assert_eq!(created["push_access_levels"][1]["user_id"], w.dev.id);
    assert_eq!(
        created["push_access_levels"][1]["access_level_description"],
        "dev"
    );
    assert_eq!(
        expect(
            w.t.post(
                &w.path("/protected_branches"),
                &w.owner.token,
                json!({ "name": "release/*" })
            )
            .await,
            StatusCode::CONFLICT,
        )
        .await,
        json!({ "message": "Protected branch 'release/*' already exists" })
    );
    let shown = expect(
        w.t.get(&w.path("/protected_branches/release%2F*"), &w.owner.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["id"], created["id"]);
    let patched = expect(
        w.patch(
            &w.path("/protected_branches/release%2F*"),
            json!({ "allow_force_push": true }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["allow_force_push"], true);
    // Developers read protections; only Maintainers change them.
    expect(
        w.t.get(&w.path("/protected_branches"), &w.dev.token).await,
        StatusCode::OK,
    )
    .await;
    expect(
        w.t.post(
            &w.path("/protected_branches"),
            &w.dev.token,
            json!({ "name": "x" }),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect(
        w.t.post(
            &w.path("/protected_branches"),
            &w.owner.token,
            json!({ "name": "x", "push_access_level": 31 }),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect(
        w.t.delete(&w.path("/protected_branches/release%2F*"), &w.owner.token)
            .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(
        expect(
            w.t.get(&w.path("/protected_branches/release%2F*"), &w.owner.token)
                .await,
            StatusCode::NOT_FOUND,
        )
        .await,
        json!({ "message": "404 Not found" })
    );
}

#[tokio::test]
async fn protected_branches_are_enforced_on_git_pushes() {
    let w = world().await;
    for (name, level) in [("release/*", 30), ("frozen", 0)] {
        expect(
            w.t.post(
                &w.path("/protected_branches"),
                &w.owner.token,
                json!({ "name": name, "push_access_level": level }),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    let (dev, dev_work) = w.clone_as(&w.dev).await;
    dev.commit(&dev_work, "a.txt", "a", "change").await;
    // Developers push to `release/*`; nobody pushes to `frozen`, not even a Maintainer.
    dev.ok(
        &dev_work,
        &["push", "-q", "origin", "HEAD:refs/heads/release/1.0"],
    )
    .await;
    let (owner, owner_work) = w.clone_as(&w.owner).await;
    owner.commit(&owner_work, "b.txt", "b", "change").await;
    let run = owner
        .run(&owner_work, &["push", "origin", "HEAD:refs/heads/frozen"])
        .await;
    refused(
        &run,
        "You can only create protected branches using the web interface and API.",
    );
    let created = expect(
        w.t.post(
            &w.path("/repository/branches"),
            &w.owner.token,
            json!({ "branch": "frozen", "ref": "main" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["protected"], true);
    assert_eq!(created["developers_can_push"], false);
    assert_eq!(created["can_push"], false);
    let run = owner
        .run(&owner_work, &["push", "origin", "HEAD:refs/heads/frozen"])
        .await;
    refused(
        &run,
        "You are not allowed to push code to protected branches on this project.",
    );
    // Rewriting a protected branch is refused unless it allows force pushes.
    owner
        .ok(
            &owner_work,
            &["push", "-q", "origin", "HEAD:refs/heads/release/2.0"],
        )
        .await;
    owner
        .ok(&owner_work, &["commit", "-q", "--amend", "-m", "rewritten"])
        .await;
    let run = owner
        .run(
            &owner_work,
            &["push", "--force", "origin", "HEAD:refs/heads/release/2.0"],
        )
        .await;
    refused(
        &run,
        "You are not allowed to force push code to a protected branch on this project.",
    );
    expect(
        w.patch(
            &w.path("/protected_branches/release%2F*"),
            json!({ "allow_force_push": true }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    owner
        .ok(
            &owner_work,
            &[
                "push",
                "-q",
                "--force",
                "origin",
                "HEAD:refs/heads/release/2.0",
            ],
        )
        .await;
    // Deleting a protected branch: Developers never, Maintainers only through web or API.
    let run = dev
        .run(&dev_work, &["push", "origin", ":refs/heads/release/1.0"])
        .await;
    refused(
        &run,
        "You are not allowed to delete protected branches from this project. Only a project maintainer or owner can delete a protected branch.",
    );
    let run = owner
        .run(&owner_work, &["push", "origin", ":refs/heads/release/1.0"])
        .await;
    refused(
        &run,
        "You can only delete protected branches using the web interface.",
    );
    expect(
        w.t.delete(&w.path("/repository/branches/release%2F1.0"), &w.dev.token)
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect(
        w.t.delete(
            &w.path("/repository/branches/release%2F1.0"),
            &w.owner.token,
        )
        .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(
        expect(
            w.t.delete(&w.path("/repository/branches/main"), &w.owner.token)
                .await,
            StatusCode::BAD_REQUEST,
        )
        .await,
        json!({ "message": "The default branch of a project cannot be deleted." })
    );
}

#[tokio::test]
async fn push_rule_api_is_gitlabs() {
    let w = world().await;
    let rule = w.path("/push_rule");
    assert_eq!(
        expect(w.t.get(&rule, &w.owner.token).await, StatusCode::OK).await,
        Value::Null
    );
    assert_eq!(
        expect(
            w.t.put(&rule, &w.owner.token, json!({ "deny_delete_tag": true }))
                .await,
            StatusCode::NOT_FOUND
        )
        .await,
        json!({ "message": "404 Push Rule Not Found" })
    );
    let created = expect(
        w.t.post(
            &rule,
            &w.owner.token,
            json!({ "commit_message_regex": "JIRA-\\d+", "max_file_size": 5 }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["project_id"], w.project_id);
    assert_eq!(created["commit_message_regex"], "JIRA-\\d+");
    assert_eq!(created["max_file_size"], 5);
    assert_eq!(created["commit_committer_check"], false);
    assert_eq!(
        expect(
            w.t.post(&rule, &w.owner.token, json!({})).await,
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        json!({ "message": "Project push rule exists" })
    );
    let invalid = expect(
        w.t.put(&rule, &w.owner.token, json!({ "branch_name_regex": "(" }))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        invalid["message"]["branch_name_regex"][0]
            .as_str()
            .is_some_and(|m| m.starts_with("not valid RE2 syntax"))
    );
    let updated = expect(
        w.t.put(&rule, &w.owner.token, json!({ "deny_delete_tag": true }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["deny_delete_tag"], true);
    assert_eq!(updated["commit_message_regex"], "JIRA-\\d+");
    expect(w.t.get(&rule, &w.dev.token).await, StatusCode::FORBIDDEN).await;
    expect(
        w.t.delete(&rule, &w.owner.token).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(
        expect(w.t.get(&rule, &w.owner.token).await, StatusCode::OK).await,
        Value::Null
    );
}

#[tokio::test]
async fn push_rules_refuse_pushes_in_gitlabs_words() {
    let w = world().await;
    let set = |body: Value| {
        let w = &w;
        async move {
            expect(
                w.t.put(&w.path("/push_rule"), &w.owner.token, body).await,
                StatusCode::OK,
            )
            .await;
        }
    };
    expect(
        w.t.post(&w.path("/push_rule"), &w.owner.token, json!({}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let (dev, work) = w.clone_as(&w.dev).await;
    let push = |branch: &'static str| {
        let (dev, work) = (dev.clone(), work.clone());
        async move {
            dev.run(
                &work,
                &["push", "origin", &format!("HEAD:refs/heads/{branch}")],
            )
            .await
        }
    };

    set(json!({ "commit_message_regex": "JIRA-\\d+", "commit_message_negative_regex": "secret" }))
        .await;
    dev.commit(&work, "a.txt", "1", "Add model").await;
    refused(
        &push("f1").await,
        "Commit message does not follow the pattern 'JIRA-\\d+'",
    );
    dev.ok(
        &work,
        &["commit", "-q", "--amend", "-m", "JIRA-1 secret stuff"],
    )
    .await;
    refused(
        &push("f1").await,
        "Commit message contains the forbidden pattern 'secret'",
    );
    dev.ok(
        &work,
        &["commit", "-q", "--amend", "-m", "JIRA-1 Add model"],
    )
    .await;
    push("f1").await;

    set(json!({ "commit_message_regex": "", "commit_message_negative_regex": "", "branch_name_regex": "^(feature|fix)/" })).await;
    refused(
        &push("wip").await,
        "Branch name 'wip' does not follow the pattern '^(feature|fix)/'",
    );
    assert!(push("feature/x").await.ok);

    set(json!({ "branch_name_regex": "", "author_email_regex": "@corp\\.example$" })).await;
    dev.commit(&work, "b.txt", "2", "b").await;
    refused(
        &push("feature/y").await,
        "Committer's email 'dev@example.com' does not follow the pattern '@corp\\.example$'",
    );

    set(json!({ "author_email_regex": "", "member_check": true })).await;
    let stranger = dev.clone().identity("Stranger", "stranger@nowhere.example");
    stranger
        .ok(
            &work,
            &["commit", "-q", "--amend", "--reset-author", "-m", "c"],
        )
        .await;
    refused(
        &push("feature/y").await,
        "Author 'stranger@nowhere.example' is not a member of team",
    );

    set(json!({ "member_check": false, "commit_committer_check": true })).await;
    refused(
        &push("feature/y").await,
        "You cannot push commits for 'stranger@nowhere.example'. You can only push commits if the committer email is one of your own verified emails.",
    );
    dev.ok(
        &work,
        &["commit", "-q", "--amend", "--reset-author", "-m", "c"],
    )
    .await;

    set(json!({ "commit_committer_check": false, "commit_committer_name_check": true })).await;
    refused(
        &push("feature/y").await,
        "Your git username is inconsistent with GitLab account name",
    );
    let named = dev.clone().identity("dev", &w.email(&w.dev));
    named
        .ok(
            &work,
            &["commit", "-q", "--amend", "--reset-author", "-m", "c"],
        )
        .await;
    assert!(push("feature/y").await.ok);

    set(json!({ "commit_committer_name_check": false, "reject_unsigned_commits": true })).await;
    dev.commit(&work, "c.txt", "3", "unsigned").await;
    refused(
        &push("feature/z").await,
        "Commit must be signed with a GPG key",
    );
    dev.ok(&work, &["reset", "-q", "--hard", "HEAD~1"]).await;

    set(json!({ "reject_unsigned_commits": false, "file_name_regex": "\\.exe$", "prevent_secrets": true })).await;
    dev.commit(&work, "tool.exe", "MZ", "tool").await;
    refused(
        &push("feature/z").await,
        "File name tool.exe was prohibited by the pattern \"\\.exe$\".",
    );
    dev.ok(&work, &["reset", "-q", "--hard", "HEAD~1"]).await;
    dev.commit(&work, ".ssh/id_rsa", "key", "oops").await;
    refused(
        &push("feature/z").await,
        "File name .ssh/id_rsa was prohibited by the pattern \"\\.ssh/\".",
    );
    dev.ok(&work, &["reset", "-q", "--hard", "HEAD~1"]).await;

    set(json!({ "file_name_regex": "", "prevent_secrets": false, "max_file_size": 1 })).await;
    dev.commit(&work, "big.bin", &"x".repeat(1024 * 1024 + 1), "big")
        .await;
    let run = push("feature/z").await;
    refused(
        &run,
        "You are attempting to check in one or more blobs which exceed the 1MiB limit:",
    );
    assert!(run.stderr.contains("(1 MB)"), "{}", run.stderr);
    dev.ok(&work, &["reset", "-q", "--hard", "HEAD~1"]).await;

    set(json!({ "max_file_size": 0, "deny_delete_tag": true })).await;
    dev.ok(&work, &["tag", "v1"]).await;
    dev.ok(&work, &["push", "-q", "origin", "v1"]).await;
    refused(
        &dev.run(&work, &["push", "origin", ":refs/tags/v1"]).await,
        "You cannot delete a tag",
    );
}

/// A project access token's bot commits with its `@noreply.<host>` e-mail: its own verified
/// address, so "Reject unverified users" lets it push, as GitLab documents.
#[tokio::test]
async fn bots_push_with_their_noreply_email_under_committer_check() {
    let w = world().await;
    expect(
        w.t.post(
            &w.path("/push_rule"),
            &w.owner.token,
            json!({ "commit_committer_check": true }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let created = expect(
        w.t.post(
            &w.path("/access_tokens"),
            &w.owner.token,
            json!({ "name": "lablink", "scopes": ["write_repository", "api"], "access_level": 40 }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let token = created["token"].as_str().expect("token");
    let me = expect(w.t.get("/user", token).await, StatusCode::OK).await;
    let email = me["commit_email"].as_str().expect("email").to_owned();
    assert!(email.ends_with("@noreply.127.0.0.1"), "{email}");
    let git = Git::new(&email).basic("bot", token);
    let work = w.dir.path().join("bot");
    git.ok(
        w.dir.path(),
        &["clone", "-q", &w.url, work.to_str().expect("utf8")],
    )
    .await;
    git.commit(&work, "x.txt", "x", "bot change").await;
    git.ok(&work, &["push", "-q", "origin", "HEAD:refs/heads/bot"])
        .await;
    let other = git.clone().identity("Bot", "someone@example.com");
    other.commit(&work, "y.txt", "y", "not mine").await;
    refused(
        &other
            .run(&work, &["push", "origin", "HEAD:refs/heads/bot"])
            .await,
        "You cannot push commits for 'someone@example.com'. You can only push commits if the committer email is one of your own verified emails.",
    );
}

/// The remaining refusals: hexadecimal branch names, DCO sign-off, committers who are no
/// GitLab users, archived projects; and SSH keys added by an administrator only.
#[tokio::test]
async fn hex_branches_dco_members_archived_and_admin_keys() {
    let w = world().await;
    let (dev, work) = w.clone_as(&w.dev).await;
    dev.commit(&work, "a.txt", "a", "change").await;
    let hex = "0123456789abcdef0123456789abcdef01234567";
    refused(
        &dev.run(
            &work,
            &["push", "origin", &format!("HEAD:refs/heads/{hex}")],
        )
        .await,
        "You cannot create a branch with a 40-character hexadecimal branch name.",
    );
    expect(
        w.t.post(
            &w.path("/push_rule"),
            &w.owner.token,
            json!({ "reject_non_dco_commits": true, "member_check": true }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    refused(
        &dev.run(&work, &["push", "origin", "HEAD:refs/heads/dco"])
            .await,
        "Commit message must contain a DCO signoff",
    );
    dev.ok(
        &work,
        &[
            "commit",
            "-q",
            "--amend",
            "-m",
            "change\n\nSigned-off-by: dev <dev@example.com>",
        ],
    )
    .await;
    assert!(
        dev.run(&work, &["push", "origin", "HEAD:refs/heads/dco"])
            .await
            .ok
    );
    // The author is a GitLab user, the committer is not.
    let stranger = dev.clone().identity("Stranger", "stranger@nowhere.example");
    let amend = tokio::process::Command::new("git")
        .args(["commit", "-q", "--amend", "--no-edit"])
        .current_dir(&work)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Stranger")
        .env("GIT_COMMITTER_EMAIL", "stranger@nowhere.example")
        .status()
        .await
        .expect("git");
    assert!(amend.success());
    refused(
        &stranger
            .run(&work, &["push", "origin", "HEAD:refs/heads/dco2"])
            .await,
        "Committer 'stranger@nowhere.example' is not a member of team",
    );

    w.t.handle()
        .lock()
        .projects
        .get_mut(&w.project_id)
        .expect("project")
        .archived = true;
    let run = dev
        .run(&work, &["push", "origin", "HEAD:refs/heads/x"])
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("You are not allowed to push code to an archived project."),
        "{}",
        run.stderr
    );

    let keys = tempfile::tempdir().expect("tempdir");
    let (_, key, _) = crate::gitcli::ssh_keygen(keys.path(), "k");
    let body = json!({ "title": "by admin", "key": key });
    expect(
        w.t.post(
            &format!("/users/{}/keys", w.dev.id),
            &w.owner.token,
            body.clone(),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let admin = w.t.user("root");
    w.t.handle()
        .lock()
        .users
        .get_mut(&admin.id)
        .expect("user")
        .is_admin = true;
    let added = expect(
        w.t.post(&format!("/users/{}/keys", w.dev.id), &admin.token, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let listed = expect(w.t.get("/user/keys", &w.dev.token).await, StatusCode::OK).await;
    assert_eq!(listed[0]["id"], added["id"]);
    assert_eq!(
        expect(
            w.t.post(
                "/user/keys",
                &w.dev.token,
                json!({ "title": "bad", "key": "ssh-foo AAAA" })
            )
            .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({ "message": { "key": ["type is forbidden. Must be RSA, DSA, ECDSA, ED25519, ECDSA_SK, or ED25519_SK"] } })
    );
}
