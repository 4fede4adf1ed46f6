//! What the checks need to know about a ref update, read from the repository with git before
//! the state is locked. During a push the new objects are still in git's quarantine directory:
//! [`ObjectDirs`] points git at it, as `receive-pack` does for its hooks.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::changes::RefUpdate;
use crate::commits::ZERO_SHA;
use crate::repo::RepoError;

/// Where a pushed-but-not-yet-accepted pack's objects are (`GIT_OBJECT_DIRECTORY` and
/// `GIT_ALTERNATE_OBJECT_DIRECTORIES` of the pre-receive hook); `None` outside a push.
#[derive(Debug, Clone, Default)]
pub struct ObjectDirs {
    pub objects: Option<PathBuf>,
    pub alternates: Option<String>,
}

/// One commit the update brings in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitFacts {
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    pub committer_email: String,
    pub message: String,
    /// The commit carries a `gpgsig` (GPG, SSH or X.509 signature).
    pub signed: bool,
}

/// A file a new commit adds, changes or renames to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub path: String,
    pub blob: String,
    pub size: u64,
    /// Added or renamed (name checks apply to these only, as GitLab's).
    pub new_name: bool,
}

/// Everything checked about one ref update.
#[derive(Debug, Clone)]
pub struct ChangeFacts {
    pub update: RefUpdate,
    /// The old commit is not an ancestor of the new one.
    pub forced: bool,
    /// Commits reachable from `new` and from no existing ref, newest first.
    pub commits: Vec<CommitFacts>,
    pub files: Vec<FileFacts>,
}

impl ChangeFacts {
    pub fn branch(&self) -> Option<&str> {
        self.update.git_ref.strip_prefix("refs/heads/")
    }

    pub fn tag(&self) -> Option<&str> {
        self.update.git_ref.strip_prefix("refs/tags/")
    }

    pub fn creation(&self) -> bool {
        self.update.old == ZERO_SHA
    }

    pub fn deletion(&self) -> bool {
        self.update.new == ZERO_SHA
    }
}

async fn git(
    repo: &Path,
    dirs: &ObjectDirs,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<(bool, Vec<u8>), RepoError> {
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(objects) = &dirs.objects {
        cmd.env("GIT_OBJECT_DIRECTORY", objects);
    }
    if let Some(alternates) = &dirs.alternates {
        cmd.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", alternates);
    }
    let mut child = cmd.spawn()?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).await?;
    }
    let out = child.wait_with_output().await?;
    Ok((out.status.success(), out.stdout))
}

async fn git_ok(
    repo: &Path,
    dirs: &ObjectDirs,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<Vec<u8>, RepoError> {
    match git(repo, dirs, args, stdin).await? {
        (true, out) => Ok(out),
        (false, _) => Err(RepoError::Failed {
            command: args.first().copied().unwrap_or_default().to_owned(),
            stderr: format!("git {args:?} failed"),
        }),
    }
}

/// Reads a raw commit object: identities, signature and message.
fn parse_commit(sha: &str, raw: &str) -> CommitFacts {
    let (headers, message) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let identity = |line: &str| {
        let (name, rest) = line.split_once(" <").unwrap_or((line, ""));
        let email = rest.split_once('>').map_or("", |(e, _)| e);
        (name.to_owned(), email.to_owned())
    };
    let mut facts = CommitFacts {
        sha: sha.to_owned(),
        author_name: String::new(),
        author_email: String::new(),
        committer_email: String::new(),
        message: message.to_owned(),
        signed: false,
    };
    for line in headers.lines() {
        if let Some(rest) = line.strip_prefix("author ") {
            (facts.author_name, facts.author_email) = identity(rest);
        } else if let Some(rest) = line.strip_prefix("committer ") {
            facts.committer_email = identity(rest).1;
        } else if line.starts_with("gpgsig") {
            facts.signed = true;
        }
    }
    facts
}

/// Files added, modified or renamed-to by `sha` (against its first parent).
async fn touched_files(
    repo: &Path,
    dirs: &ObjectDirs,
    sha: &str,
) -> Result<Vec<(String, String, bool)>, RepoError> {
    let raw = git_ok(
        repo,
        dirs,
        &[
            "diff-tree",
            "-r",
            "--root",
            "--no-commit-id",
            "-M",
            "-z",
            "--raw",
            sha,
        ],
        None,
    )
    .await?;
    let text = String::from_utf8_lossy(&raw);
    let mut fields = text.split('\0').filter(|f| !f.is_empty());
    let mut files = Vec::new();
    while let Some(meta) = fields.next() {
        // `:old_mode new_mode old_blob new_blob status`, then one path (two for renames).
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let (Some(blob), Some(status)) = (parts.get(3), parts.get(4)) else {
            break;
        };
        let kind = status.chars().next().unwrap_or('M');
        let mut path = fields.next().unwrap_or_default();
        if matches!(kind, 'R' | 'C') {
            path = fields.next().unwrap_or_default();
        }
        if kind != 'D' {
            files.push((
                (*blob).to_owned(),
                path.to_owned(),
                matches!(kind, 'A' | 'R' | 'C'),
            ));
        }
    }
    Ok(files)
}

/// Sizes of blobs, by one `cat-file --batch-check`.
async fn blob_sizes(repo: &Path, dirs: &ObjectDirs, blobs: &[&str]) -> Result<Vec<u64>, RepoError> {
    let input = blobs.join("\n") + "\n";
    let out = git_ok(
        repo,
        dirs,
        &["cat-file", "--batch-check=%(objectsize)"],
        Some(input.as_bytes()),
    )
    .await?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .map(|l| l.trim().parse().unwrap_or(0))
        .collect())
}

/// Gathers the facts of `update` in `repo` (with the pushed objects in `dirs`).
pub async fn gather(
    repo: &Path,
    dirs: &ObjectDirs,
    update: &RefUpdate,
) -> Result<ChangeFacts, RepoError> {
    let mut facts = ChangeFacts {
        update: update.clone(),
        forced: false,
        commits: Vec::new(),
        files: Vec::new(),
    };
    if facts.deletion() {
        return Ok(facts);
    }
    if !facts.creation() {
        let (is_ancestor, _) = git(
            repo,
            dirs,
            &["merge-base", "--is-ancestor", &update.old, &update.new],
            None,
        )
        .await?;
        facts.forced = !is_ancestor;
    }
    // Tags point at commits already checked when their branch was pushed; a tag object
    // itself brings none of its own.
    let listed = git_ok(
        repo,
        dirs,
        &["rev-list", &update.new, "--not", "--all"],
        None,
    )
    .await?;
    let shas: Vec<String> = String::from_utf8_lossy(&listed)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut touched = Vec::new();
    for sha in &shas {
        let raw = git_ok(repo, dirs, &["cat-file", "commit", sha], None).await?;
        facts
            .commits
            .push(parse_commit(sha, &String::from_utf8_lossy(&raw)));
        touched.extend(touched_files(repo, dirs, sha).await?);
    }
    if !touched.is_empty() {
        let blobs: Vec<&str> = touched.iter().map(|(b, _, _)| b.as_str()).collect();
        let sizes = blob_sizes(repo, dirs, &blobs).await?;
        facts.files = touched
            .into_iter()
            .zip(sizes)
            .map(|((blob, path, new_name), size)| FileFacts {
                path,
                blob,
                size,
                new_name,
            })
            .collect();
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::parse_commit;

    #[test]
    fn raw_commits_are_read() {
        let raw = "tree abc\nparent def\nauthor Ada Lovelace <ada@example.com> 1700000000 +0000\ncommitter Bob <bob@example.com> 1700000000 +0000\ngpgsig -----BEGIN SSH SIGNATURE-----\n xyz\n -----END SSH SIGNATURE-----\n\nAdd model\n\nSigned-off-by: Ada\n";
        let facts = parse_commit("123", raw);
        assert_eq!(facts.author_name, "Ada Lovelace");
        assert_eq!(facts.author_email, "ada@example.com");
        assert_eq!(facts.committer_email, "bob@example.com");
        assert!(facts.signed);
        assert_eq!(facts.message, "Add model\n\nSigned-off-by: Ada\n");
    }
}
