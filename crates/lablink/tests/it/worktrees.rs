//! The worktrees runs check out into (`CiRuntime::checkout`), against gitlab-sim's Git smart
//! HTTP: a job's worktree reused by its next run, a repository's spare worktree taken by a run
//! that would otherwise need a new one (and made again behind it), broken spares discarded, and
//! the spares of disconnected repositories removed.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use gitlab_sim::state::{Namespace, NewProject, NewUser, Visibility};
use lablink_exec::{GitCredential, Remote, WorktreeState};
use lablink_service::ci::executor::CiRuntime;
use lablink_testkit::git;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::support::gitlab::GitLab;

const REPOSITORY: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

struct World {
    gitlab: GitLab,
    project: u64,
    user: u64,
    remote: Remote,
    rt: CiRuntime,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let gitlab = GitLab::start().await;
        let sim = gitlab.sim();
        let (user, token) = sim
            .create_user(NewUser {
                username: "ada".into(),
                ..NewUser::default()
            })
            .unwrap();
        let project = sim
            .create_project(NewProject {
                path: "warehouse".into(),
                name: None,
                namespace: Namespace::User(user.id),
                visibility: Some(Visibility::Private),
                description: None,
                default_branch: Some("main".into()),
                archived: false,
            })
            .await
            .unwrap();
        let remote = Remote::new(
            &format!("{}/ada/warehouse.git", gitlab.base),
            Some(GitCredential::new("ada", SecretString::from(token))),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rt = CiRuntime::new(dir.path().join("ci"), "worker".into());
        World {
            project: project.id,
            user: user.id,
            gitlab,
            remote,
            rt,
            _dir: dir,
        }
    }

    /// A commit on `main` writing `files` (path, content).
    async fn commit(&self, message: &str, files: &[(&str, &str)]) -> String {
        self.gitlab
            .sim()
            .commit_files(
                self.project,
                CommitRequest {
                    branch: "main".into(),
                    start_branch: None,
                    message: message.into(),
                    files: files
                        .iter()
                        .map(|(path, content)| FileChange {
                            path: (*path).into(),
                            content: Some(content.as_bytes().to_vec()),
                        })
                        .collect(),
                    user_id: self.user,
                    author: None,
                },
            )
            .await
            .unwrap()
    }

    async fn checkout(&self, job: i64, sha: &str) -> (WorktreeState, lablink_exec::DirClaim) {
        let claim = self.rt.claim_worktree(job).unwrap();
        let state = self
            .rt
            .checkout(
                REPOSITORY,
                &self.remote,
                sha,
                claim.path(),
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_exactly(claim.path(), sha).await;
        (state, claim)
    }

    /// Waits (bounded) until the spare made in the background after a checkout is ready.
    async fn spare_made(&self) {
        for _ in 0..1_000 {
            if self.rt.spare_ready(REPOSITORY) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the spare worktree was never made");
    }

    fn spare(&self) -> std::path::PathBuf {
        self.rt
            .work_dir
            .join("worktrees")
            .join(format!("spare-{REPOSITORY}"))
    }
}

/// `dir` is a worktree at exactly `sha`: that HEAD, every tracked file as committed, nothing else.
async fn assert_exactly(dir: &Path, sha: &str) {
    assert_eq!(git(dir, &["rev-parse", "HEAD"]), sha);
    assert_eq!(
        git(
            dir,
            &[
                "status",
                "--porcelain",
                "--ignored",
                "--untracked-files=all"
            ]
        ),
        "",
        "{dir:?} holds more or other than {sha}"
    );
}

#[tokio::test]
async fn runs_needing_a_new_worktree_take_the_repositorys_spare_and_broken_spares_are_discarded() {
    let w = World::new().await;
    let first = w
        .commit(
            "dbt project",
            &[
                ("dbt_project.yml", "name: warehouse\n"),
                ("models/orders.sql", "select 1 as id\n"),
                ("models/customers.sql", "select 2 as id\n"),
            ],
        )
        .await;

    // The repository's first run makes a new worktree; a spare is made behind it.
    let (state, job_1) = w.checkout(1, &first).await;
    assert_eq!(state, WorktreeState::Created);
    w.spare_made().await;
    assert_exactly(&w.spare(), &first).await;

    // A new job's run, on a newer commit, takes the spare and updates it; the job's slot then
    // holds it, and the next spare is made.
    let second = w
        .commit(
            "change orders",
            &[("models/orders.sql", "select 10 as id\n")],
        )
        .await;
    let (state, job_2) = w.checkout(2, &second).await;
    assert_eq!(state, WorktreeState::Spare);
    assert!(job_2.path().ends_with("job-2-0"));
    w.spare_made().await;

    // The job's next run reuses its own worktree, even after it was left dirty.
    std::fs::write(job_2.path().join("models/orders.sql"), "edited").unwrap();
    std::fs::write(job_2.path().join("stray.sql"), "select 0").unwrap();
    drop(job_2);
    let (state, job_2) = w.checkout(2, &first).await;
    assert_eq!(state, WorktreeState::Reused);
    drop((job_1, job_2));

    // A spare that is no longer a worktree of the cache is discarded, and the run gets a new
    // worktree of its own.
    std::fs::remove_file(w.spare().join(".git")).unwrap();
    let (state, _job_3) = w.checkout(3, &second).await;
    assert_eq!(state, WorktreeState::Created);
    w.spare_made().await;
    assert_exactly(&w.spare(), &second).await;

    // Two runs at once: one takes the spare, the other makes its own worktree.
    let (a, b) = tokio::join!(w.checkout(4, &first), w.checkout(5, &first));
    let mut states = [a.0, b.0];
    states.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(states, [WorktreeState::Created, WorktreeState::Spare]);
    w.spare_made().await;

    // Once the repository is disconnected, reconciliation removes its spare.
    drop((a, b));
    let jobs = HashSet::from([1, 2, 3, 4, 5]);
    assert_eq!(
        w.rt.remove_worktrees_except(&jobs, &HashSet::new())
            .unwrap(),
        1
    );
    assert!(!w.spare().exists());
    assert!(!w.rt.spare_ready(REPOSITORY));
}
