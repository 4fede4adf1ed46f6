//! The dbt project's `.gitignore` (dbt-platform.md §6.8): dbt's build folders must be ignored and
//! never tracked, or every run commits artefacts and merges conflict. Both the check and the fix
//! work on git objects of the default branch in the repository's bare cache, never on a checkout:
//! a `.gitignore` that is a symlink (to `/dev/zero`, to a file outside the repository) is seen as
//! one and replaced by a regular file, never followed. The fix commits a corrected `.gitignore`
//! without the tracked folders on a new branch and opens a merge request.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use lablink_exec::{CommitMessage, Git, GitConfig, GitCredential, Identity, TreeEdit};
use lablink_gitlab::Api;
use lablink_store::repositories::Repository;

use crate::{ServiceError, Services};

/// The folders dbt writes that must not be in git.
pub(crate) const BUILD_FOLDERS: [&str; 4] = ["target", "dbt_packages", "logs", "dbt_modules"];
/// The branch the fix is pushed to.
pub(crate) const FIX_BRANCH: &str = "lablink/fix-gitignore";

/// The largest `.gitignore` read; a larger one is not a list of ignore rules.
const MAX_GITIGNORE_BYTES: u64 = 64 * 1024;

/// What is wrong with the dbt project's ignore rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GitignoreProblems {
    /// Build folders `.gitignore` does not ignore.
    pub missing: Vec<&'static str>,
    /// Build folders with tracked files.
    pub tracked: Vec<&'static str>,
    /// `.gitignore` is there but is not a regular file git reads rules from (a symlink, a
    /// folder, too large): what it is.
    pub not_a_file: Option<&'static str>,
}

impl GitignoreProblems {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.tracked.is_empty() && self.not_a_file.is_none()
    }
}

/// Inspections by commit: the connection panel opens often, the default branch moves rarely.
#[derive(Debug, Default)]
pub(crate) struct GitignoreCache(Mutex<HashMap<(String, String, String), GitignoreProblems>>);

impl GitignoreCache {
    const MAX_ENTRIES: usize = 1024;

    fn get(&self, key: &(String, String, String)) -> Option<GitignoreProblems> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    fn put(&self, key: (String, String, String), problems: GitignoreProblems) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, problems);
    }
}

/// True when a `.gitignore` line ignores the folder `name` at the dbt project's root.
fn ignores(line: &str, name: &str) -> bool {
    let rule = line.trim();
    let rule = rule.strip_prefix('/').unwrap_or(rule);
    let rule = rule
        .strip_suffix("/**")
        .or_else(|| rule.strip_suffix("/*"))
        .or_else(|| rule.strip_suffix('/'))
        .unwrap_or(rule);
    rule == name
}

/// The build folders `gitignore` (the file's text; empty when absent) leaves unignored.
pub(crate) fn missing_entries(gitignore: &str) -> Vec<&'static str> {
    BUILD_FOLDERS
        .into_iter()
        .filter(|name| {
            !gitignore
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .any(|l| ignores(l, name))
        })
        .collect()
}

/// `gitignore` with a `name/` line appended for each missing folder.
pub(crate) fn corrected(gitignore: &str, missing: &[&str]) -> String {
    let mut text = gitignore.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for name in missing {
        text.push_str(name);
        text.push_str("/\n");
    }
    text
}

/// `name` inside the dbt project's directory, as a path in the repository.
pub(crate) fn in_project(subdirectory: &str, name: &str) -> String {
    match subdirectory.trim_matches('/') {
        "" => name.to_owned(),
        sub => format!("{sub}/{name}"),
    }
}

/// The state of the ignore rules at commit `sha` of `cache`: the `.gitignore` entry and its
/// text (empty when there is none, or when it is not a regular file), or `None` when the
/// directory holds no dbt project (an empty repository, a wrong subdirectory).
async fn read_rules(
    git: &Git,
    cache: &Path,
    sha: &str,
    subdirectory: &str,
) -> Result<Option<(GitignoreProblems, String)>, lablink_exec::ExecError> {
    let project = git
        .tree_entry(cache, sha, &in_project(subdirectory, "dbt_project.yml"))
        .await?;
    if !project.is_some_and(|e| e.is_file()) {
        return Ok(None);
    }
    let mut problems = GitignoreProblems::default();
    let entry = git
        .tree_entry(cache, sha, &in_project(subdirectory, ".gitignore"))
        .await?;
    let text = match entry {
        None => String::new(),
        Some(e) if e.is_symlink() => {
            problems.not_a_file = Some("a symlink");
            String::new()
        }
        Some(e) if !e.is_file() => {
            problems.not_a_file = Some("not a file");
            String::new()
        }
        Some(e) if e.size.is_none_or(|size| size > MAX_GITIGNORE_BYTES) => {
            problems.not_a_file = Some("larger than 64 KiB");
            String::new()
        }
        Some(e) => git.read_text_blob(cache, &e, MAX_GITIGNORE_BYTES).await?,
    };
    problems.missing = missing_entries(&text);
    for name in BUILD_FOLDERS {
        if git
            .tree_entry(cache, sha, &in_project(subdirectory, name))
            .await?
            .is_some()
        {
            problems.tracked.push(name);
        }
    }
    Ok(Some((problems, text)))
}

impl Services {
    fn git(&self) -> Result<Git, ServiceError> {
        let home = &self.settings.repositories.git_home;
        std::fs::create_dir_all(home)
            .map_err(|e| ServiceError::Internal(format!("cannot create git's home: {e}")))?;
        Ok(Git::new(GitConfig::new(home)))
    }

    /// The repository's bare cache brought up to date, and the head of its default branch.
    async fn default_branch_head(
        &self,
        repo: &Repository,
    ) -> Result<(Git, std::path::PathBuf, String), ServiceError> {
        let cache = self.fetch_repository(&repo.id).await?;
        let git = self.git()?;
        let sha = git
            .resolve_commit(&cache, &format!("refs/heads/{}", repo.default_branch))
            .await
            .map_err(|e| {
                ServiceError::Remote(format!(
                    "the default branch {} of {} could not be read: {e}",
                    repo.default_branch, repo.path_with_namespace
                ))
            })?;
        Ok((git, cache, sha))
    }

    /// Inspects the dbt project's ignore rules on the default branch (once per commit).
    pub(crate) async fn gitignore_problems(
        &self,
        repo: &Repository,
        subdirectory: &str,
    ) -> Result<GitignoreProblems, ServiceError> {
        let (git, cache, sha) = self.default_branch_head(repo).await?;
        let key = (repo.id.clone(), sha.clone(), subdirectory.to_owned());
        if let Some(known) = self.gitignore_cache.get(&key) {
            return Ok(known);
        }
        let problems = read_rules(&git, &cache, &sha, subdirectory)
            .await
            .map_err(|e| ServiceError::Remote(format!("reading the repository: {e}")))?
            .map(|(problems, _)| problems)
            .unwrap_or_default();
        self.gitignore_cache.put(key, problems.clone());
        Ok(problems)
    }

    /// A credential that may push: lablink's project access token, else the connecting user's
    /// linked account (what the plan allows).
    async fn push_credential(&self, repo: &Repository) -> Result<GitCredential, ServiceError> {
        let secrets = self.db.repository_secrets(&self.keys, &repo.id).await?;
        if let Some(token) = secrets.project_token {
            return Ok(GitCredential::new("lablink", token));
        }
        let user = repo.connected_by.as_deref().unwrap_or_default();
        let fresh = self.gitlab_access_token(user).await?;
        Ok(GitCredential::new("oauth2", fresh.token))
    }

    /// Commits a corrected `.gitignore` (a regular file, whatever was there) without the tracked
    /// build folders on [`FIX_BRANCH`] and opens a merge request (or updates the one already
    /// open). The commit is built from git objects; nothing is checked out.
    pub(crate) async fn fix_gitignore(
        &self,
        repo: &Repository,
        api: &Api,
        subdirectory: &str,
    ) -> Result<String, ServiceError> {
        let (git, cache, sha) = self.default_branch_head(repo).await?;
        let exec = |e: lablink_exec::ExecError| ServiceError::Remote(e.to_string());
        let Some((problems, current)) = read_rules(&git, &cache, &sha, subdirectory)
            .await
            .map_err(exec)?
        else {
            return Ok("nothing to change: the default branch has no dbt project".into());
        };
        if problems.is_empty() {
            return Ok("nothing to change: the default branch is already correct".into());
        }
        let mut edits = vec![TreeEdit::Write {
            path: in_project(subdirectory, ".gitignore"),
            content: corrected(&current, &problems.missing).into_bytes(),
        }];
        edits.extend(problems.tracked.iter().map(|name| TreeEdit::Remove {
            path: in_project(subdirectory, name),
        }));
        let me = Identity {
            name: "lablink".into(),
            email: "lablink@localhost".into(),
        };
        let scratch = self
            .settings
            .repositories
            .cache_dir
            .join("scratch")
            .join(uuid::Uuid::now_v7().to_string());
        let commit = git
            .commit_edits(
                &cache,
                &sha,
                &edits,
                &CommitMessage {
                    message: "Ignore dbt build folders and stop tracking them",
                    author: &me,
                    committer: &me,
                },
                &scratch,
            )
            .await;
        if let Err(e) = std::fs::remove_dir_all(&scratch) {
            tracing::debug!(error = %e, "a scratch directory was not removed");
        }
        let commit = commit.map_err(exec)?;
        let remote = self
            .git_remote(
                &repo.gitlab_instance_url,
                &repo.http_url_to_repo,
                Some(self.push_credential(repo).await?),
            )
            .await?;
        git.push_commit(&cache, &remote, &commit, FIX_BRANCH, true)
            .await
            .map_err(exec)?;
        match api
            .create_merge_request(
                repo.gitlab_project_id,
                FIX_BRANCH,
                &repo.default_branch,
                "Ignore dbt build folders",
                "Opened by lablink's doctor: adds dbt's build folders (`target/`, `dbt_packages/`, \
                 `logs/`, `dbt_modules/`) to `.gitignore` and removes those that were committed.",
            )
            .await
        {
            Ok(mr) => Ok(format!(
                "opened merge request !{} with the corrected .gitignore; merge it to finish",
                mr.iid
            )),
            // The merge request from an earlier fix is still open; the push updated it.
            Err(lablink_gitlab::GitLabError::Conflict { .. }) => Ok(format!(
                "updated the open merge request from {FIX_BRANCH}; merge it to finish"
            )),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_common_spelling_of_a_folder_rule_counts() {
        let text = "# build\n/target/\ndbt_packages\nlogs/*\n";
        assert_eq!(missing_entries(text), ["dbt_modules"]);
        assert_eq!(missing_entries(""), BUILD_FOLDERS);
        assert_eq!(
            missing_entries("#target/\ntargets/\n").first(),
            Some(&"target")
        );
    }

    #[test]
    fn correction_appends_only_the_missing_rules() {
        assert_eq!(
            corrected("venv", &["target", "logs"]),
            "venv\ntarget/\nlogs/\n"
        );
        let fixed = corrected("", &BUILD_FOLDERS);
        assert!(missing_entries(&fixed).is_empty());
    }
}
