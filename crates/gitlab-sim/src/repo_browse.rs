//! Reading a repository the way GitLab's repository API and pages show it: branches with their
//! head commits, trees, files, and comparisons, all from real git.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::repo::RepoError;

/// A commit as GitLab's `Commit` entity describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub id: String,
    pub short_id: String,
    pub parent_ids: Vec<String>,
    pub title: String,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    pub authored_date: String,
    pub committer_name: String,
    pub committer_email: String,
    pub committed_date: String,
}

/// One entry of a tree listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub id: String,
    pub name: String,
    /// `tree`, `blob` or `commit` (submodule).
    pub kind: String,
    pub path: String,
    pub mode: String,
}

/// A file at a ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub id: String,
    pub mode: String,
    pub content: Vec<u8>,
}

/// One file of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff {
    pub old_path: String,
    pub new_path: String,
    pub a_mode: String,
    pub b_mode: String,
    pub new_file: bool,
    pub renamed_file: bool,
    pub deleted_file: bool,
    /// The patch from its first `@@` on, as GitLab's `diff` field.
    pub diff: String,
}

async fn git(repo: &Path, args: &[&str]) -> Result<Option<Vec<u8>>, RepoError> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .await?;
    Ok(out.status.success().then_some(out.stdout))
}

/// Refs and paths from requests are never options to git.
fn safe(arg: &str) -> bool {
    !arg.is_empty() && !arg.starts_with('-') && !arg.contains('\0')
}

const COMMIT_FORMAT: &str =
    "%H%x00%h%x00%P%x00%s%x00%B%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x1e";

fn parse_commits(raw: &[u8]) -> Vec<Commit> {
    String::from_utf8_lossy(raw)
        .split('\u{1e}')
        .filter_map(|record| {
            let record = record.trim_start_matches('\n');
            let f: Vec<&str> = record.split('\0').collect();
            (f.len() >= 11).then(|| Commit {
                id: f[0].to_owned(),
                short_id: f[1].chars().take(8).collect(),
                parent_ids: f[2].split_whitespace().map(str::to_owned).collect(),
                title: f[3].to_owned(),
                message: f[4].to_owned(),
                author_name: f[5].to_owned(),
                author_email: f[6].to_owned(),
                authored_date: f[7].to_owned(),
                committer_name: f[8].to_owned(),
                committer_email: f[9].to_owned(),
                committed_date: f[10].to_owned(),
            })
        })
        .collect()
}

/// The commit a ref (branch, tag or SHA) names, if any.
pub async fn commit(repo: &Path, rev: &str) -> Result<Option<Commit>, RepoError> {
    if !safe(rev) {
        return Ok(None);
    }
    let spec = format!("{rev}^{{commit}}");
    let Some(out) = git(
        repo,
        &[
            "show",
            "-s",
            &format!("--format={COMMIT_FORMAT}"),
            &spec,
            "--",
        ],
    )
    .await?
    else {
        return Ok(None);
    };
    Ok(parse_commits(&out).into_iter().next())
}

/// Commits reachable from `to` and not from `from` (oldest first), `limit` at most.
pub async fn log(
    repo: &Path,
    range: &str,
    path: Option<&str>,
    limit: usize,
) -> Result<Vec<Commit>, RepoError> {
    let max = format!("--max-count={limit}");
    let format = format!("--format={COMMIT_FORMAT}");
    let mut args = vec!["log", format.as_str(), max.as_str(), range, "--"];
    if let Some(path) = path {
        args.push(path);
    }
    Ok(git(repo, &args)
        .await?
        .map(|out| parse_commits(&out))
        .unwrap_or_default())
}

/// `(name, head commit)` of every branch, by name.
pub async fn branches(repo: &Path) -> Result<Vec<(String, Commit)>, RepoError> {
    let names = crate::repo::branch_names(repo).await?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(head) = commit(repo, &format!("refs/heads/{name}")).await? {
            out.push((name, head));
        }
    }
    Ok(out)
}

/// Whether `sha` is reachable from `branch` (GitLab's "merged" into the default branch).
pub async fn is_ancestor(repo: &Path, sha: &str, branch: &str) -> Result<bool, RepoError> {
    let target = format!("refs/heads/{branch}");
    Ok(git(repo, &["merge-base", "--is-ancestor", sha, &target])
        .await?
        .is_some())
}

/// The entries of the tree at `rev:path` (`None` when there is no such tree).
pub async fn tree(
    repo: &Path,
    rev: &str,
    path: &str,
    recursive: bool,
) -> Result<Option<Vec<TreeEntry>>, RepoError> {
    let path = path.trim_matches('/');
    if !safe(rev) || path.contains("..") {
        return Ok(None);
    }
    let spec = format!("{rev}:{path}");
    let mut args = vec!["ls-tree", "-z"];
    if recursive {
        args.extend(["-r", "-t"]);
    }
    args.push(&spec);
    let Some(out) = git(repo, &args).await? else {
        return Ok(None);
    };
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    Ok(Some(
        String::from_utf8_lossy(&out)
            .split('\0')
            .filter_map(|line| {
                let (meta, name) = line.split_once('\t')?;
                let mut parts = meta.split(' ');
                let (mode, kind, id) = (parts.next()?, parts.next()?, parts.next()?);
                Some(TreeEntry {
                    id: id.to_owned(),
                    name: name.rsplit('/').next().unwrap_or(name).to_owned(),
                    kind: kind.to_owned(),
                    path: format!("{prefix}{name}"),
                    mode: mode.to_owned(),
                })
            })
            .collect(),
    ))
}

/// The file at `rev:path`, if it is a file.
pub async fn blob(repo: &Path, rev: &str, path: &str) -> Result<Option<Blob>, RepoError> {
    let path = path.trim_start_matches('/');
    if !safe(rev) || !safe(path) || path.contains("..") {
        return Ok(None);
    }
    let Some(listing) = git(repo, &["ls-tree", "-z", rev, "--", path]).await? else {
        return Ok(None);
    };
    let listing = String::from_utf8_lossy(&listing).into_owned();
    let Some((meta, _)) = listing.split('\0').next().and_then(|l| l.split_once('\t')) else {
        return Ok(None);
    };
    let parts: Vec<&str> = meta.split(' ').collect();
    let (Some(mode), Some(&"blob"), Some(id)) = (parts.first(), parts.get(1), parts.get(2)) else {
        return Ok(None);
    };
    let Some(content) = git(repo, &["cat-file", "blob", id]).await? else {
        return Ok(None);
    };
    Ok(Some(Blob {
        id: (*id).to_owned(),
        mode: (*mode).to_owned(),
        content,
    }))
}

/// The files changed between `from` and `to` (from their merge base unless `straight`).
pub async fn diff(
    repo: &Path,
    from: &str,
    to: &str,
    straight: bool,
) -> Result<Vec<FileDiff>, RepoError> {
    // Straight: `from` against `to` (also a tree, e.g. the empty one for a root commit);
    // otherwise against their merge base (`from...to`).
    let revs: Vec<String> = if straight {
        vec![from.to_owned(), to.to_owned()]
    } else {
        vec![format!("{from}...{to}")]
    };
    let with = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["diff".into()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.extend(revs.iter().cloned());
        args.push("--".into());
        args
    };
    let raw_args = with(&["--raw", "-z", "-M"]);
    let raw_args: Vec<&str> = raw_args.iter().map(String::as_str).collect();
    let Some(raw) = git(repo, &raw_args).await? else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut fields = text.split('\0').filter(|f| !f.is_empty());
    let mut diffs = Vec::new();
    while let Some(meta) = fields.next() {
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let (Some(a_mode), Some(b_mode), Some(status)) =
            (parts.first(), parts.get(1), parts.get(4))
        else {
            break;
        };
        let kind = status.chars().next().unwrap_or('M');
        let old_path = fields.next().unwrap_or_default().to_owned();
        let new_path = if matches!(kind, 'R' | 'C') {
            fields.next().unwrap_or_default().to_owned()
        } else {
            old_path.clone()
        };
        let mut patch_args = with(&["--no-color", "-M"]);
        patch_args.extend([old_path.clone(), new_path.clone()]);
        let patch_args: Vec<&str> = patch_args.iter().map(String::as_str).collect();
        let patch = git(repo, &patch_args).await?.unwrap_or_default();
        let patch = String::from_utf8_lossy(&patch);
        let diff = patch
            .find("@@")
            .map_or_else(String::new, |at| patch[at..].to_owned());
        diffs.push(FileDiff {
            old_path,
            new_path,
            a_mode: (*a_mode).to_owned(),
            b_mode: (*b_mode).to_owned(),
            new_file: kind == 'A',
            renamed_file: kind == 'R',
            deleted_file: kind == 'D',
            diff,
        });
    }
    Ok(diffs)
}

/// Deletes a branch if it still points at `expected`.
pub async fn delete_branch(repo: &Path, branch: &str, expected: &str) -> Result<bool, RepoError> {
    let full = format!("refs/heads/{branch}");
    Ok(git(repo, &["update-ref", "-d", &full, expected])
        .await?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_records_are_parsed() {
        let raw = b"abc\0ab\0p1 p2\0Title\0Title\n\nBody\n\0Ann\0ann@x\x002024-01-01T00:00:00+00:00\0Bob\0bob@x\x002024-01-02T00:00:00+00:00\x1e\n";
        let commits = parse_commits(raw);
        assert_eq!(commits.len(), 1);
        assert_eq!(commits[0].parent_ids, vec!["p1", "p2"]);
        assert_eq!(commits[0].message, "Title\n\nBody\n");
        assert_eq!(commits[0].committer_email, "bob@x");
    }

    #[test]
    fn options_are_never_refs() {
        assert!(!safe("--upload-pack=x"));
        assert!(safe("main"));
    }
}
