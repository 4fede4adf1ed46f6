//! What the workspace asks of a working copy besides commit and push: a repository that borrows
//! the bare cache's objects, which files there are and in what state (for the file tree), a
//! file's diff, a fetched branch, a commit of some files, and resets.

use std::path::Path;

use crate::error::ExecError;
use crate::git::{Git, Identity, Remote, check_ref_name, check_sha, create_dir, identity_env};

/// A path's state against `HEAD`, as the file tree shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    Modified,
    Added,
    Deleted,
    Untracked,
    /// Matched by `.gitignore` (a directory when the path ends with `/`).
    Ignored,
    /// Both sides of a merge changed it.
    Conflicted,
}

impl FileState {
    /// The state's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Modified => "modified",
            FileState::Added => "added",
            FileState::Deleted => "deleted",
            FileState::Untracked => "untracked",
            FileState::Ignored => "ignored",
            FileState::Conflicted => "conflicted",
        }
    }
}

/// How merging another commit into a working copy went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The other commit is in the branch already.
    UpToDate,
    /// Merged into a new commit (or fast-forwarded) at this SHA.
    Merged(String),
    /// Stopped with these paths in conflict; the files hold git's conflict markers.
    Conflicts(Vec<String>),
}

/// One path of `git status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    pub path: String,
    pub state: FileState,
}

/// A path as git prints it with `core.quotePath=false`: as is, or in double quotes with C-style
/// escapes when it holds a quote, a backslash or a control character (a new line, say).
fn unquote(text: &str) -> String {
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return text.to_owned();
    };
    let mut bytes = Vec::with_capacity(inner.len());
    let mut chars = inner.bytes().peekable();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match chars.next() {
            Some(b'n') => bytes.push(b'\n'),
            Some(b't') => bytes.push(b'\t'),
            Some(b'r') => bytes.push(b'\r'),
            Some(b'a') => bytes.push(7),
            Some(b'b') => bytes.push(8),
            Some(b'f') => bytes.push(12),
            Some(b'v') => bytes.push(11),
            Some(d @ b'0'..=b'7') => {
                let mut value = u32::from(d - b'0');
                for _ in 0..2 {
                    if let Some(&n @ b'0'..=b'7') = chars.peek() {
                        value = value * 8 + u32::from(n - b'0');
                        chars.next();
                    }
                }
                bytes.push(u8::try_from(value).unwrap_or(b'?'));
            }
            Some(other) => bytes.push(other),
            None => bytes.push(b'\\'),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads `git status --porcelain=v1` lines (paths as [`unquote`] reads them).
fn parse_status(lines: &[String]) -> Vec<StatusEntry> {
    lines
        .iter()
        .filter_map(|line| {
            let (code, path) = line.split_at_checked(3)?;
            let mut c = code.chars();
            let (x, y) = (c.next().unwrap_or(' '), c.next().unwrap_or(' '));
            // A rename or copy reads `old -> new`.
            let path = match (x, path.rsplit_once(" -> ")) {
                ('R' | 'C', Some((_, new))) => new,
                _ => path,
            };
            let state = match (x, y) {
                ('?', '?') => FileState::Untracked,
                ('!', '!') => FileState::Ignored,
                ('U', _) | (_, 'U') | ('A', 'A') | ('D', 'D') => FileState::Conflicted,
                ('D', _) | (_, 'D') => FileState::Deleted,
                ('A' | 'R' | 'C', _) => FileState::Added,
                _ => FileState::Modified,
            };
            Some(StatusEntry {
                path: unquote(path),
                state,
            })
        })
        .collect()
}

impl Git {
    /// Makes `dir` a repository of its own (its own refs, index and new objects) that reads the
    /// objects of the bare `cache` through git's alternates: no object is copied, and a fetch
    /// into the cache never touches a branch checked out here.
    pub async fn init_borrowing(&self, cache: &Path, dir: &Path) -> Result<(), ExecError> {
        create_dir(dir)?;
        self.ok("init", dir, ["init", "--quiet", "."], None, &[])
            .await?;
        let objects = cache.join("objects");
        let alternates = dir.join(".git/objects/info/alternates");
        std::fs::write(&alternates, format!("{}\n", objects.display())).map_err(|source| {
            ExecError::Io {
                path: alternates,
                source,
            }
        })
    }

    /// The branches of the (bare) repository `repo`, by name.
    pub async fn branches(&self, repo: &Path) -> Result<Vec<String>, ExecError> {
        let out = self
            .ok(
                "for-each-ref",
                repo,
                ["for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads"],
                None,
                &[],
            )
            .await?;
        Ok(out.stdout)
    }

    /// The commit `branch` points at in `repo`.
    pub async fn branch_head(&self, repo: &Path, branch: &str) -> Result<String, ExecError> {
        check_ref_name(branch)?;
        let out = self
            .ok(
                "rev-parse",
                repo,
                [
                    "rev-parse",
                    "--verify",
                    &format!("refs/heads/{branch}^{{commit}}"),
                ],
                None,
                &[],
            )
            .await?;
        Ok(out.stdout.into_iter().next().unwrap_or_default())
    }

    /// Commits the changes of `paths` only (new, changed or deleted files); returns the commit.
    pub async fn commit_paths(
        &self,
        dir: &Path,
        message: &str,
        paths: &[String],
        author: &Identity,
        committer: &Identity,
    ) -> Result<String, ExecError> {
        // `--force`: a chosen path may be ignored (a tracked file deleted from a folder that
        // `.gitignore` now lists, or a file the user saved there on purpose).
        let mut add = vec![
            "add".to_owned(),
            "--all".into(),
            "--force".into(),
            "--".into(),
        ];
        add.extend(paths.iter().cloned());
        self.ok("add", dir, add, None, &[]).await?;
        let mut commit = vec![
            "commit".to_owned(),
            "--quiet".into(),
            "--no-verify".into(),
            "-m".into(),
            message.into(),
            "--".into(),
        ];
        commit.extend(paths.iter().cloned());
        self.ok(
            "commit",
            dir,
            commit,
            None,
            &identity_env(author, committer),
        )
        .await?;
        self.head(dir).await
    }

    /// Moves the branch of `dir` back to `sha`, keeping the files as they are (an unpushed
    /// commit undone, its changes uncommitted again).
    pub async fn reset_soft(&self, dir: &Path, sha: &str) -> Result<(), ExecError> {
        check_sha(sha)?;
        self.ok("reset", dir, ["reset", "--quiet", "--soft", sha], None, &[])
            .await?;
        self.ok("reset", dir, ["reset", "--quiet"], None, &[])
            .await?;
        Ok(())
    }

    /// Merges commit `sha` into the branch of `dir` (a merge commit by `author`); on conflicts
    /// the merge is left in progress with markers in the files.
    pub async fn merge(
        &self,
        dir: &Path,
        sha: &str,
        message: &str,
        author: &Identity,
    ) -> Result<MergeOutcome, ExecError> {
        if self.in_history(dir, sha).await? {
            return Ok(MergeOutcome::UpToDate);
        }
        let out = self
            .call(
                "merge",
                dir,
                ["merge", "--no-edit", "--no-verify", "-m", message, sha],
                None,
                &identity_env(author, author),
            )
            .await?;
        if out.termination.success() {
            return Ok(MergeOutcome::Merged(self.head(dir).await?));
        }
        let conflicts: Vec<String> = self
            .status(dir)
            .await?
            .into_iter()
            .filter(|e| e.state == FileState::Conflicted)
            .map(|e| e.path)
            .collect();
        if conflicts.is_empty() {
            return Err(ExecError::GitFailed {
                operation: "merge",
                code: out.termination.code(),
                message: out.stderr.join("\n"),
            });
        }
        Ok(MergeOutcome::Conflicts(conflicts))
    }

    /// The last `n` commits of the branch of `dir`: SHA and subject, newest first.
    pub async fn recent_commits(
        &self,
        dir: &Path,
        n: usize,
    ) -> Result<Vec<(String, String)>, ExecError> {
        let out = self
            .ok(
                "log",
                dir,
                [
                    "log".to_owned(),
                    format!("--max-count={n}"),
                    "--format=%H %s".into(),
                ],
                None,
                &[],
            )
            .await?;
        Ok(out
            .stdout
            .iter()
            .filter_map(|l| l.split_once(' '))
            .map(|(sha, subject)| (sha.to_owned(), subject.to_owned()))
            .collect())
    }

    /// Whether commit `sha` is in the history of `dir`'s branch.
    pub async fn in_history(&self, dir: &Path, sha: &str) -> Result<bool, ExecError> {
        check_sha(sha)?;
        let out = self
            .call(
                "merge-base",
                dir,
                ["merge-base", "--is-ancestor", sha, "HEAD"],
                None,
                &[],
            )
            .await?;
        Ok(out.termination.success())
    }

    /// Marks `dir` as merging commit `sha`: its next commit gets `sha` as second parent.
    pub async fn resume_merge(&self, dir: &Path, sha: &str) -> Result<(), ExecError> {
        check_sha(sha)?;
        let git_dir = dir.join(".git");
        std::fs::write(git_dir.join("MERGE_HEAD"), format!("{sha}\n"))
            .and_then(|()| std::fs::write(git_dir.join("MERGE_MSG"), "Merge\n"))
            .map_err(|source| ExecError::Io {
                path: git_dir,
                source,
            })
    }

    /// Every path of `dir` that differs from `HEAD`, is untracked, or is ignored (ignored
    /// directories once, as `dir/`).
    pub async fn status(&self, dir: &Path) -> Result<Vec<StatusEntry>, ExecError> {
        let out = self
            .ok(
                "status",
                dir,
                [
                    "-c",
                    "core.quotePath=false",
                    "status",
                    "--porcelain=v1",
                    "--ignored=matching",
                    "--untracked-files=all",
                ],
                None,
                &[],
            )
            .await?;
        Ok(parse_status(&out.stdout))
    }

    /// The paths `HEAD` of `dir` tracks.
    pub async fn tracked_files(&self, dir: &Path) -> Result<Vec<String>, ExecError> {
        let out = self
            .ok(
                "ls-files",
                dir,
                ["-c", "core.quotePath=false", "ls-files"],
                None,
                &[],
            )
            .await?;
        Ok(out.stdout.iter().map(|l| unquote(l)).collect())
    }

    /// The unified diff of `path` in `dir` against `HEAD` (new files included).
    pub async fn diff_file(&self, dir: &Path, path: &str) -> Result<String, ExecError> {
        // `--intent-to-add` makes an untracked file show up as added; it changes only the index,
        // which the next commit rebuilds anyway.
        self.ok(
            "add",
            dir,
            ["add", "--intent-to-add", "--", path],
            None,
            &[],
        )
        .await?;
        let out = self
            .ok(
                "diff",
                dir,
                ["diff", "--no-color", "--no-ext-diff", "HEAD", "--", path],
                None,
                &[],
            )
            .await?;
        Ok(out.stdout.join("\n"))
    }

    /// Fetches `branch` of `remote` into `refs/remotes/origin/<branch>` of `dir` and returns the
    /// SHA it points at.
    pub async fn fetch_remote_branch(
        &self,
        dir: &Path,
        remote: &Remote,
        branch: &str,
    ) -> Result<String, ExecError> {
        let tracking = self.fetch_branch(dir, remote, branch).await?;
        let out = self
            .ok(
                "rev-parse",
                dir,
                ["rev-parse", "--verify", &tracking],
                None,
                &[],
            )
            .await?;
        Ok(out.stdout.into_iter().next().unwrap_or_default())
    }

    /// Makes `dir` exactly commit `sha` on `branch` (created or moved there): drops changes,
    /// untracked files and a merge in progress, keeps ignored files.
    pub async fn reset_branch(&self, dir: &Path, branch: &str, sha: &str) -> Result<(), ExecError> {
        check_ref_name(branch)?;
        check_sha(sha)?;
        for state in ["MERGE_HEAD", "MERGE_MSG", "MERGE_MODE"] {
            let _ = std::fs::remove_file(dir.join(".git").join(state));
        }
        self.ok(
            "switch",
            dir,
            ["switch", "--quiet", "--force", "-C", branch, sha],
            None,
            &[],
        )
        .await?;
        self.ok("clean", dir, ["clean", "-fdq"], None, &[]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_become_states() {
        let lines: Vec<String> = [
            " M models/a.sql",
            "A  models/b.sql",
            " D old.sql",
            "?? new file.sql",
            "!! target/",
            "R  was.sql -> moved.sql",
            "UU both.sql",
            "?? \"odd\\nname \\\"q\\\".sql\"",
            "?? caf\u{e9}.sql",
        ]
        .map(str::to_owned)
        .to_vec();
        let entries = parse_status(&lines);
        let states: Vec<(&str, FileState)> =
            entries.iter().map(|e| (e.path.as_str(), e.state)).collect();
        assert_eq!(
            states,
            [
                ("models/a.sql", FileState::Modified),
                ("models/b.sql", FileState::Added),
                ("old.sql", FileState::Deleted),
                ("new file.sql", FileState::Untracked),
                ("target/", FileState::Ignored),
                ("moved.sql", FileState::Added),
                ("both.sql", FileState::Conflicted),
                ("odd\nname \"q\".sql", FileState::Untracked),
                ("caf\u{e9}.sql", FileState::Untracked),
            ]
        );
    }

    #[test]
    fn octal_escapes_are_bytes() {
        assert_eq!(unquote("\"caf\\303\\251\""), "caf\u{e9}");
        assert_eq!(unquote("plain"), "plain");
    }
}
