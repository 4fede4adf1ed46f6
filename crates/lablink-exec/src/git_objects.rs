//! Reading repository content from git objects and writing it as commits, never through a
//! checkout: repository content is hostile, and a file in a working tree may be a symlink to
//! anywhere on the host (or to `/dev/zero`). Here a path names a tree entry; what it is (a file,
//! a symlink, a folder) is read off the tree, and a blob is read only after its size is known.

use std::path::Path;

use crate::ExecError;
use crate::git::{
    Git, Identity, Remote, check_finished, check_ref_name, check_sha, failed, identity_env,
    rejection_message,
};

/// The mode git gives a symbolic link.
const SYMLINK_MODE: &str = "120000";

/// One entry of a tree, as `git ls-tree -l` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub mode: String,
    /// `blob`, `tree` or `commit` (a submodule).
    pub kind: String,
    pub sha: String,
    /// The blob's size; `None` for trees and submodules.
    pub size: Option<u64>,
}

impl TreeEntry {
    pub fn is_symlink(&self) -> bool {
        self.mode == SYMLINK_MODE
    }

    /// A regular file (executable or not).
    pub fn is_file(&self) -> bool {
        self.kind == "blob" && !self.is_symlink()
    }
}

/// A change to a tree, made by [`Git::commit_edits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEdit {
    /// The path becomes a regular file (mode 100644) with this content, whatever it was before
    /// (a symlink is replaced, not followed).
    Write { path: String, content: Vec<u8> },
    /// The path, and everything below it when it is a folder, leaves the tree.
    Remove { path: String },
}

/// Who makes a commit, and why.
#[derive(Debug, Clone)]
pub struct CommitMessage<'a> {
    pub message: &'a str,
    pub author: &'a Identity,
    pub committer: &'a Identity,
}

/// A path inside the repository: relative, no `..`, no empty segments.
fn check_path(path: &str) -> Result<(), ExecError> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && !path.chars().any(|c| c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ExecError::InvalidInput {
            what: "repository path",
            value: path.to_owned(),
        })
    }
}

impl Git {
    /// The commit `rev` (a branch, a ref, a SHA) names in `repo`.
    pub async fn resolve_commit(&self, repo: &Path, rev: &str) -> Result<String, ExecError> {
        let spec = format!("{rev}^{{commit}}");
        let out = self
            .ok(
                "rev-parse",
                repo,
                ["rev-parse", "--verify", "--quiet", &spec],
                None,
                &[],
            )
            .await?;
        out.stdout
            .first()
            .map(|sha| sha.trim().to_owned())
            .ok_or_else(|| ExecError::InvalidInput {
                what: "revision",
                value: rev.to_owned(),
            })
    }

    /// The entry at `path` in commit `sha`'s tree; `None` when there is none.
    pub async fn tree_entry(
        &self,
        repo: &Path,
        sha: &str,
        path: &str,
    ) -> Result<Option<TreeEntry>, ExecError> {
        check_sha(sha)?;
        check_path(path)?;
        let out = self
            .ok(
                "ls-tree",
                repo,
                ["ls-tree", "-l", "--full-tree", sha, "--", path],
                None,
                &[],
            )
            .await?;
        // `<mode> SP <type> SP <object> SP+ <size> TAB <path>`, for exactly this path.
        Ok(out.stdout.iter().find_map(|line| {
            let (meta, name) = line.split_once('\t')?;
            if name != path {
                return None;
            }
            let mut fields = meta.split_whitespace();
            let (mode, kind, sha, size) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            Some(TreeEntry {
                mode: mode.to_owned(),
                kind: kind.to_owned(),
                sha: sha.to_owned(),
                size: size.parse().ok(),
            })
        }))
    }

    /// The text of a regular file's blob, refused when it is larger than `max_bytes` (its size
    /// is known before anything is read) or not a regular file.
    pub async fn read_text_blob(
        &self,
        repo: &Path,
        entry: &TreeEntry,
        max_bytes: u64,
    ) -> Result<String, ExecError> {
        if !entry.is_file() || entry.size.is_none_or(|size| size > max_bytes) {
            return Err(ExecError::InvalidInput {
                what: "file to read (a regular file of a bounded size)",
                value: entry.sha.clone(),
            });
        }
        check_sha(&entry.sha)?;
        let out = self
            .ok(
                "cat-file",
                repo,
                ["cat-file", "blob", &entry.sha],
                None,
                &[],
            )
            .await?;
        let mut text = out.stdout.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        Ok(text)
    }

    /// A new commit on top of `parent` in `repo` (a bare repository is fine) with `edits`
    /// applied to the parent's tree; its SHA. Nothing is checked out: the tree is edited in a
    /// private index under `scratch` (created and emptied by the caller), so no file of the
    /// repository is ever followed or written on disk.
    pub async fn commit_edits(
        &self,
        repo: &Path,
        parent: &str,
        edits: &[TreeEdit],
        commit: &CommitMessage<'_>,
        scratch: &Path,
    ) -> Result<String, ExecError> {
        check_sha(parent)?;
        let io = |e: std::io::Error| ExecError::InvalidInput {
            what: "scratch directory",
            value: format!("{}: {e}", scratch.display()),
        };
        let empty_tree = scratch.join("empty");
        std::fs::create_dir_all(&empty_tree).map_err(io)?;
        let index = scratch.join("index");
        let work_tree = format!("--work-tree={}", empty_tree.display());
        let env = vec![("GIT_INDEX_FILE".to_owned(), index.display().to_string())];
        self.ok("read-tree", repo, ["read-tree", parent], None, &env)
            .await?;
        for (n, edit) in edits.iter().enumerate() {
            match edit {
                TreeEdit::Write { path, content } => {
                    check_path(path)?;
                    // The content goes through a file of lablink's own, never through the
                    // repository's working tree.
                    let source = scratch.join(format!("blob-{n}"));
                    std::fs::write(&source, content).map_err(io)?;
                    let source = source.display().to_string();
                    let out = self
                        .ok(
                            "hash-object",
                            repo,
                            ["hash-object", "-w", "--", &source],
                            None,
                            &[],
                        )
                        .await?;
                    let blob = out.stdout.first().cloned().unwrap_or_default();
                    check_sha(&blob)?;
                    // A symlink or folder at the path is taken out first: the path becomes a
                    // regular file.
                    self.ok(
                        "rm",
                        repo,
                        [
                            &work_tree,
                            "rm",
                            "-r",
                            "--cached",
                            "--quiet",
                            "--ignore-unmatch",
                            "--",
                            path,
                        ],
                        None,
                        &env,
                    )
                    .await?;
                    let info = format!("100644,{blob},{path}");
                    self.ok(
                        "update-index",
                        repo,
                        ["update-index", "--add", "--cacheinfo", &info],
                        None,
                        &env,
                    )
                    .await?;
                }
                TreeEdit::Remove { path } => {
                    check_path(path)?;
                    self.ok(
                        "rm",
                        repo,
                        [
                            &work_tree,
                            "rm",
                            "-r",
                            "--cached",
                            "--quiet",
                            "--ignore-unmatch",
                            "--",
                            path,
                        ],
                        None,
                        &env,
                    )
                    .await?;
                }
            }
        }
        let tree = self
            .ok("write-tree", repo, ["write-tree"], None, &env)
            .await?
            .stdout
            .first()
            .cloned()
            .unwrap_or_default();
        check_sha(&tree)?;
        let out = self
            .ok(
                "commit-tree",
                repo,
                ["commit-tree", &tree, "-p", parent, "-m", commit.message],
                None,
                &identity_env(commit.author, commit.committer),
            )
            .await?;
        let commit = out.stdout.first().cloned().unwrap_or_default();
        check_sha(&commit)?;
        Ok(commit)
    }

    /// Pushes commit `sha` of `repo` to `branch` of `remote` (replacing it when `force`).
    pub async fn push_commit(
        &self,
        repo: &Path,
        remote: &Remote,
        sha: &str,
        branch: &str,
        force: bool,
    ) -> Result<(), ExecError> {
        check_sha(sha)?;
        check_ref_name(branch)?;
        let refspec = format!("{}{sha}:refs/heads/{branch}", if force { "+" } else { "" });
        let out = self
            .call(
                "push",
                repo,
                ["push", "--porcelain", remote.url(), &refspec],
                Some(remote),
                &[],
            )
            .await?;
        if out.termination.success() {
            return Ok(());
        }
        check_finished("push", &out)?;
        let rejection = rejection_message(&out);
        if rejection.is_empty() {
            return Err(failed("push", &out));
        }
        Err(ExecError::PushRejected {
            branch: branch.to_owned(),
            message: rejection,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_repository() {
        for good in ["a", ".gitignore", "analytics/.gitignore", "a/b/c.sql"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a\nb"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }
}
