//! Git over SSH with the real OpenSSH client and real git: users' keys added through
//! `/user/keys`, deploy keys with and without write access, unknown keys, and GitLab's
//! refusals as git prints them.

use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use gitlab_sim::state::{Id, Namespace, access};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestSim, TestUser, expect};
use crate::gitcli::{Git, SshKeyFile};
use crate::receiver::Receiver;

struct World {
    t: TestSim,
    owner: TestUser,
    project_id: Id,
    ssh_url: String,
    dir: tempfile::TempDir,
}

/// `team/analytics` with one commit on `main`; owner is a Maintainer of `team`.
async fn world() -> World {
    let t = TestSim::start().await;
    let owner = t.user("owner");
    let group = t.group("team", None);
    t.handle()
        .add_group_member(group, owner.id, access::MAINTAINER)
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
    let shown = expect(
        t.get(&format!("/projects/{}", project.id), &owner.token)
            .await,
        StatusCode::OK,
    )
    .await;
    World {
        ssh_url: shown["ssh_url_to_repo"]
            .as_str()
            .expect("ssh url")
            .to_owned(),
        project_id: project.id,
        t,
        owner,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

impl World {
    fn key(&self, name: &str) -> SshKeyFile {
        SshKeyFile::new(self.dir.path(), name, self.t.handle())
    }

    async fn clone(&self, git: &Git, name: &str) -> crate::gitcli::GitRun {
        let target = self.dir.path().join(name);
        git.run(
            self.dir.path(),
            &["clone", &self.ssh_url, target.to_str().expect("utf8")],
        )
        .await
    }
}

#[tokio::test]
async fn users_keys_clone_and_push_over_ssh() {
    let w = world().await;
    let port = w.t.handle().ssh_addr().expect("ssh").port();
    assert_eq!(
        w.ssh_url,
        format!("ssh://git@127.0.0.1:{port}/team/analytics.git"),
        "GitLab's form for a port other than 22"
    );
    let key = w.key("owner_key");
    let added = expect(
        w.t.post(
            "/user/keys",
            &w.owner.token,
            json!({ "title": "laptop", "key": key.public }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(added["title"], "laptop");
    assert_eq!(added["usage_type"], "auth_and_signing");
    let listed = expect(w.t.get("/user/keys", &w.owner.token).await, StatusCode::OK).await;
    assert_eq!(listed[0]["id"], added["id"]);

    let welcome = key.ssh(w.t.handle(), &[]).await;
    assert!(welcome.ok, "{}", welcome.stderr);
    assert_eq!(welcome.stdout, "Welcome to GitLab, @owner!\n");

    let mut receiver = Receiver::start().await;
    expect(
        w.t.post(
            &format!("/projects/{}/hooks", w.project_id),
            &w.owner.token,
            json!({ "url": receiver.url, "push_events": true }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let email = w.t.handle().lock().users[&w.owner.id].email.clone();
    let git = Git::new(&email).ssh(&key);
    let run = w.clone(&git, "work").await;
    assert!(run.ok, "{}", run.stderr);
    let work = w.dir.path().join("work");
    assert_eq!(
        std::fs::read_to_string(work.join("README.md")).expect("file"),
        "hello\n"
    );
    git.commit(&work, "models/a.sql", "select 1\n", "Add model")
        .await;
    git.ok(&work, &["push", "origin", "HEAD:refs/heads/feature"])
        .await;
    let pushed = receiver.next_event("Push Hook").await.body;
    assert_eq!(pushed["ref"], "refs/heads/feature");
    assert_eq!(pushed["user_username"], "owner");
    assert_eq!(pushed["project"]["git_ssh_url"], w.ssh_url.as_str());
    // A Maintainer pushes to the protected default branch too.
    git.ok(&work, &["push", "origin", "HEAD:refs/heads/main"])
        .await;
    let head = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(w.t.repo(w.project_id))
        .args(["rev-parse", "main"])
        .output()
        .expect("git");
    let local = git.ok(&work, &["rev-parse", "HEAD"]).await.stdout;
    assert_eq!(String::from_utf8_lossy(&head.stdout), local);

    // The key's last use is recorded, and a deleted key no longer authenticates.
    let shown = expect(
        w.t.get(&format!("/user/keys/{}", added["id"]), &w.owner.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(shown["last_used_at"].is_string(), "{shown}");
    expect(
        w.t.delete(&format!("/user/keys/{}", added["id"]), &w.owner.token)
            .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let refused = key.ssh(w.t.handle(), &[]).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("Permission denied (publickey)"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn developers_meet_protected_branches_over_ssh() {
    let w = world().await;
    let dev = w.t.user("dev");
    w.t.handle()
        .add_project_member(w.project_id, dev.id, access::DEVELOPER)
        .expect("member");
    let key = w.key("dev_key");
    w.t.handle()
        .add_ssh_key(dev.id, "dev", &key.public)
        .expect("key");
    let git = Git::new("dev@example.com").ssh(&key);
    assert!(w.clone(&git, "dev").await.ok);
    let work = w.dir.path().join("dev");
    git.commit(&work, "a.txt", "a", "change").await;
    git.ok(&work, &["push", "origin", "HEAD:refs/heads/feature"])
        .await;
    let run = git
        .run(&work, &["push", "origin", "HEAD:refs/heads/main"])
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains(
            "remote: GitLab: You are not allowed to push code to protected branches on this project."
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("(pre-receive hook declined)"),
        "{}",
        run.stderr
    );

    // A project the user cannot see is "not found", boxed as gitlab-shell prints it.
    let other = w.t.group("other", None);
    w.t.project("secret", Namespace::Group(other)).await;
    let secret = w.ssh_url.replace("team/analytics", "other/secret");
    let target = w.dir.path().join("secret");
    let run = git
        .run(
            w.dir.path(),
            &["clone", &secret, target.to_str().expect("utf8")],
        )
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains(&format!(
            "remote: \nremote: {ruler}\nremote: \nremote: The project you were looking for could not be found or you don't have permission to view it.\nremote: \nremote: {ruler}\nremote: \n",
            ruler = "=".repeat(72)
        )),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn deploy_keys_fetch_and_push_only_with_write_access() {
    let w = world().await;
    let key = w.key("deploy");
    let created = expect(
        w.t.post(
            &format!("/projects/{}/deploy_keys", w.project_id),
            &w.owner.token,
            json!({ "title": "ci", "key": key.public, "can_push": false }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["fingerprint_sha256"], key.fingerprint.as_str());
    let git = Git::new("ci@example.com").ssh(&key);
    let run = w.clone(&git, "ci").await;
    assert!(run.ok, "{}", run.stderr);
    let work = w.dir.path().join("ci");
    git.commit(&work, "b.txt", "b", "change").await;
    let run = git
        .run(&work, &["push", "origin", "HEAD:refs/heads/deploy"])
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("remote: This deploy key does not have write access to this project."),
        "{}",
        run.stderr
    );

    // With write access: unprotected branches yes, the protected default branch only when the
    // protection names the key.
    let key_id = created["id"].as_u64().expect("id");
    expect(
        w.t.put(
            &format!("/projects/{}/deploy_keys/{key_id}", w.project_id),
            &w.owner.token,
            json!({ "can_push": true }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    git.ok(&work, &["push", "origin", "HEAD:refs/heads/deploy"])
        .await;
    let run = git
        .run(&work, &["push", "origin", "HEAD:refs/heads/main"])
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains(
            "remote: GitLab: You are not allowed to push code to protected branches on this project."
        ),
        "{}",
        run.stderr
    );
    let updated = expect(
        w.t.http
            .patch(w.t.api(&format!(
                "/projects/{}/protected_branches/main",
                w.project_id
            )))
            .header("PRIVATE-TOKEN", &w.owner.token)
            .json(&json!({ "allowed_to_push": [{ "deploy_key_id": key_id }] }))
            .send()
            .await
            .expect("request"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["push_access_levels"][1]["deploy_key_id"], key_id);
    assert_eq!(
        updated["push_access_levels"][1]["access_level_description"],
        "Deploy key"
    );
    git.ok(&work, &["push", "origin", "HEAD:refs/heads/main"])
        .await;
}

#[tokio::test]
async fn unknown_keys_and_users_are_refused_at_authentication() {
    let w = world().await;
    let stranger = w.key("stranger");
    let run = w
        .clone(&Git::new("x@example.com").ssh(&stranger), "x")
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("git@127.0.0.1: Permission denied (publickey)."),
        "{}",
        run.stderr
    );
    // A registered key as another SSH user is refused too: GitLab serves only `git`.
    w.t.handle()
        .add_ssh_key(w.owner.id, "laptop", &stranger.public)
        .expect("key");
    let addr = w.t.handle().ssh_addr().expect("ssh");
    let out = tokio::process::Command::new("ssh")
        .args(stranger.ssh_command().split(' ').skip(1))
        .args([
            "-p",
            &addr.port().to_string(),
            &format!("root@{}", addr.ip()),
        ])
        .output()
        .await
        .expect("ssh");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied (publickey)"));
    // Commands other than Git's are refused.
    let run = stranger.ssh(w.t.handle(), &["ls", "/"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("remote: Disallowed command"),
        "{}",
        run.stderr
    );
}
