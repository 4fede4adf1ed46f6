//! Reading commits for webhook payloads and writing commits straight into a project's bare
//! repository (what GitLab's web editor and API commits do), with git plumbing and a private
//! index, so no worktree and no hook is involved.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::repo::RepoError;

/// 40 zeros: the "no commit" side of a branch creation or deletion.
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// The empty tree: what a root commit is compared with.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// A commit as webhook payloads describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: String,
    pub message: String,
    pub title: String,
    /// ISO 8601 with offset, as in payloads (`2021-09-27T04:46:14+00:00`).
    pub timestamp: String,
    pub author_name: String,
    pub author_email: String,
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub removed: Vec<String>,
}

/// A file to write (`Some(content)`) or delete (`None`) in a new commit.
#[derive(Debug, Clone)]
pub struct FileChange {
    pub path: String,
    pub content: Option<Vec<u8>>,
}

/// Author and committer of a commit written by the simulator.
#[derive(Debug, Clone)]
pub struct Signature {
    pub name: String,
    pub email: String,
}

async fn run(
    repo: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Result<String, RepoError> {
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        return Err(RepoError::Failed {
            command: args.first().copied().unwrap_or_default().to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

/// The commit a branch points at, if the branch exists.
pub async fn branch_head(repo: &Path, branch: &str) -> Result<Option<String>, RepoError> {
    let full = format!("refs/heads/{branch}");
    match run(
        repo,
        &["rev-parse", "--verify", "--quiet", &full],
        &[],
        None,
    )
    .await
    {
        Ok(sha) => Ok(Some(sha)),
        Err(RepoError::Failed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Commits in `new` that are not in `old` (or, for a new ref, in no branch other than
/// `git_ref`), newest first, at most `limit`, and how many there are in total.
pub async fn new_commits(
    repo: &Path,
    old: &str,
    new: &str,
    git_ref: &str,
    limit: usize,
) -> Result<(Vec<CommitInfo>, usize), RepoError> {
    let range: Vec<String> = if old == ZERO_SHA {
        vec![
            new.to_owned(),
            "--not".into(),
            // Matched against the name below refs/heads/ (tested with git 2.47).
            format!(
                "--exclude={}",
                git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref)
            ),
            "--branches".into(),
        ]
    } else {
        vec![format!("{old}..{new}")]
    };
    let mut args = vec!["rev-list"];
    args.extend(range.iter().map(String::as_str));
    let listed = run(repo, &args, &[], None).await?;
    let shas: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
    let mut commits = Vec::new();
    for sha in shas.iter().take(limit) {
        commits.push(commit_info(repo, sha).await?);
    }
    Ok((commits, shas.len()))
}

/// Everything a payload says about one commit, including the files it touched.
pub async fn commit_info(repo: &Path, sha: &str) -> Result<CommitInfo, RepoError> {
    let meta = run(
        repo,
        &["show", "-s", "--format=%H%x00%aI%x00%an%x00%ae%x00%B", sha],
        &[],
        None,
    )
    .await?;
    let mut fields = meta.splitn(5, '\0');
    let mut next = || fields.next().unwrap_or_default().to_owned();
    let (id, timestamp, author_name, author_email) = (next(), next(), next(), next());
    let body = next();
    let message = format!("{}\n", body.trim_end());
    let title = message.lines().next().unwrap_or_default().to_owned();
    let status = run(
        repo,
        &[
            "diff-tree",
            "--no-commit-id",
            "--name-status",
            "-r",
            "--root",
            "--no-renames",
            sha,
        ],
        &[],
        None,
    )
    .await?;
    let (mut added, mut modified, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for line in status.lines() {
        let Some((kind, path)) = line.split_once('\t') else {
            continue;
        };
        match kind {
            "A" => added.push(path.to_owned()),
            "D" => removed.push(path.to_owned()),
            _ => modified.push(path.to_owned()),
        }
    }
    Ok(CommitInfo {
        id,
        message,
        title,
        timestamp,
        author_name,
        author_email,
        added,
        modified,
        removed,
    })
}

/// Reads every regular file under `dir` (skipping `.git`), keyed by its slash-separated path.
pub fn read_tree_dir(dir: &Path) -> std::io::Result<Vec<FileChange>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if entry.file_name() == ".git" {
                continue;
            }
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let relative = path
                    .strip_prefix(dir)
                    .map_err(std::io::Error::other)?
                    .to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/");
                files.insert(relative, std::fs::read(&path)?);
            }
        }
    }
    Ok(files
        .into_iter()
        .map(|(path, content)| FileChange {
            path,
            content: Some(content),
        })
        .collect())
}

/// A commit for [`build_commit`].
#[derive(Debug, Clone)]
pub struct NewCommit<'a> {
    pub parents: &'a [&'a str],
    pub changes: &'a [FileChange],
    pub message: &'a str,
    pub author: &'a Signature,
    pub committer: &'a Signature,
}

/// Writes one commit with the changes on top of its first parent (or an empty tree); no ref
/// moves (checks may still refuse it); returns the new SHA.
pub async fn build_commit(repo: &Path, commit: &NewCommit<'_>) -> Result<String, RepoError> {
    let index = repo.join(format!("sim-index-{}", uuid::Uuid::new_v4()));
    let index_str = index.to_string_lossy().into_owned();
    let env = [("GIT_INDEX_FILE", index_str.as_str())];
    let result = async {
        match commit.parents.first() {
            Some(parent) => run(repo, &["read-tree", parent], &env, None).await?,
            None => run(repo, &["read-tree", "--empty"], &env, None).await?,
        };
        // One `--index-info` batch: mode 0 removes a path; it needs no work tree.
        let mut index_info = String::new();
        for change in commit.changes {
            match &change.content {
                Some(content) => {
                    let blob =
                        run(repo, &["hash-object", "-w", "--stdin"], &env, Some(content)).await?;
                    index_info.push_str(&format!("100644 {blob}\t{}\n", change.path));
                }
                None => index_info.push_str(&format!("0 {ZERO_SHA}\t{}\n", change.path)),
            }
        }
        run(
            repo,
            &["update-index", "--index-info"],
            &env,
            Some(index_info.as_bytes()),
        )
        .await?;
        let tree = run(repo, &["write-tree"], &env, None).await?;
        let sha = commit_tree(
            repo,
            &tree,
            commit.parents,
            commit.message,
            commit.author,
            commit.committer,
        )
        .await?;
        Ok(sha)
    }
    .await;
    // The index is scratch space; a leftover one would only waste disk.
    let _ = tokio::fs::remove_file(&index).await;
    result
}

/// Moves a branch, failing if it no longer points at `expected_old` (`None`: must not exist).
pub async fn update_branch(
    repo: &Path,
    branch: &str,
    sha: &str,
    expected_old: Option<&str>,
) -> Result<(), RepoError> {
    let full = format!("refs/heads/{branch}");
    let old = expected_old.unwrap_or(ZERO_SHA);
    run(repo, &["update-ref", &full, sha, old], &[], None).await?;
    Ok(())
}

/// Points `refs/merge-requests/<iid>/head` at `sha`, as GitLab keeps it for every MR.
pub async fn set_merge_request_ref(repo: &Path, iid: u64, sha: &str) -> Result<(), RepoError> {
    let full = format!("refs/merge-requests/{iid}/head");
    run(repo, &["update-ref", &full, sha], &[], None).await?;
    Ok(())
}

/// For a pushed tag: the commit it points at and, for an annotated tag, its message.
pub async fn tag_target(repo: &Path, tag_sha: &str) -> Result<(String, Option<String>), RepoError> {
    let peeled = run(
        repo,
        &["rev-parse", &format!("{tag_sha}^{{commit}}")],
        &[],
        None,
    )
    .await?;
    let kind = run(repo, &["cat-file", "-t", tag_sha], &[], None).await?;
    let message = if kind == "tag" {
        let raw = run(repo, &["cat-file", "tag", tag_sha], &[], None).await?;
        raw.split_once("\n\n").map(|(_, m)| m.trim_end().to_owned())
    } else {
        None
    };
    Ok((peeled, message))
}

/// The tree of a merge of `theirs` into `ours`, or `None` when they conflict.
pub async fn merge_tree(
    repo: &Path,
    ours: &str,
    theirs: &str,
) -> Result<Option<String>, RepoError> {
    match run(
        repo,
        &["merge-tree", "--write-tree", ours, theirs],
        &[],
        None,
    )
    .await
    {
        Ok(out) => Ok(out.lines().next().map(str::to_owned)),
        Err(RepoError::Failed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a commit of `tree` with `parents` (no ref update); returns its SHA.
pub async fn commit_tree(
    repo: &Path,
    tree: &str,
    parents: &[&str],
    message: &str,
    author: &Signature,
    committer: &Signature,
) -> Result<String, RepoError> {
    let mut args = vec!["commit-tree", tree];
    for parent in parents {
        args.extend(["-p", parent]);
    }
    let identity = [
        ("GIT_AUTHOR_NAME", author.name.as_str()),
        ("GIT_AUTHOR_EMAIL", author.email.as_str()),
        ("GIT_COMMITTER_NAME", committer.name.as_str()),
        ("GIT_COMMITTER_EMAIL", committer.email.as_str()),
    ];
    run(repo, &args, &identity, Some(message.as_bytes())).await
}
