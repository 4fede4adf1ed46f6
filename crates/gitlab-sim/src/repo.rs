//! The real bare git repositories behind projects, driven through the `git` CLI.

use std::path::Path;

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("could not run git: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("git {command} failed: {stderr}")]
    Failed { command: String, stderr: String },
}

async fn git(repo: &Path, args: &[&str]) -> Result<std::process::Output, RepoError> {
    Ok(Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await?)
}

pub async fn init_bare(path: &Path, default_branch: &str) -> Result<(), RepoError> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let out = Command::new("git")
        .args(["init", "--bare", "--quiet"])
        .arg(format!("--initial-branch={default_branch}"))
        .arg(path)
        .output()
        .await?;
    if !out.status.success() {
        return Err(RepoError::Failed {
            command: "init".into(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

/// Full SHA of a commit, if the object exists and is a commit.
pub async fn resolve_commit(repo: &Path, rev: &str) -> Result<Option<String>, RepoError> {
    if rev.is_empty() || rev.starts_with('-') {
        return Ok(None);
    }
    let out = git(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .await?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()))
}

/// Branches whose history contains the commit, in ref order.
pub async fn branches_containing(repo: &Path, sha: &str) -> Result<Vec<String>, RepoError> {
    let out = git(
        repo,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "--contains",
            sha,
            "refs/heads",
        ],
    )
    .await?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

pub async fn merge_base(repo: &Path, a: &str, b: &str) -> Result<Option<String>, RepoError> {
    let out = git(repo, &["merge-base", a, b]).await?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()))
}

/// Every branch name of the repository.
pub async fn branch_names(repo: &Path) -> Result<Vec<String>, RepoError> {
    let out = git(
        repo,
        &["for-each-ref", "--format=%(refname:strip=2)", "refs/heads"],
    )
    .await?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Fetches the objects of `branch` of `source` into `target` (no ref is written: the caller
/// points `refs/merge-requests/<iid>/head` at them).
pub async fn fetch_branch_objects(
    target: &Path,
    source: &Path,
    branch: &str,
) -> Result<(), RepoError> {
    let source = source.to_string_lossy();
    let refspec = format!("refs/heads/{branch}");
    let out = git(
        target,
        &[
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            &source,
            &refspec,
        ],
    )
    .await?;
    if !out.status.success() {
        return Err(RepoError::Failed {
            command: "fetch".into(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}
