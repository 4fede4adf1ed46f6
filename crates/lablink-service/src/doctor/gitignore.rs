//! The dbt project's `.gitignore` (dbt-platform.md §6.8): dbt's build folders must be ignored and
//! never tracked, or every run commits artefacts and merges conflict. The check clones the
//! repository (a fresh clone's working tree holds exactly the tracked files); the fix corrects
//! `.gitignore`, removes the tracked folders on a new branch and opens a merge request.

use std::path::{Path, PathBuf};

use lablink_exec::{Git, GitConfig, GitCredential, Identity};
use lablink_gitlab::Api;
use lablink_store::repositories::Repository;

use crate::{ServiceError, Services};

/// The folders dbt writes that must not be in git.
const BUILD_FOLDERS: [&str; 4] = ["target", "dbt_packages", "logs", "dbt_modules"];
/// The branch the fix is pushed to.
pub(crate) const FIX_BRANCH: &str = "lablink/fix-gitignore";

/// What is wrong with the dbt project's ignore rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GitignoreProblems {
    /// Build folders `.gitignore` does not ignore.
    pub missing: Vec<&'static str>,
    /// Build folders with tracked files.
    pub tracked: Vec<&'static str>,
}

impl GitignoreProblems {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.tracked.is_empty()
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

/// The dbt project's directory inside a checkout.
fn project_dir(checkout: &Path, subdirectory: &str) -> PathBuf {
    let sub = subdirectory.trim_matches('/');
    if sub.is_empty() {
        checkout.to_path_buf()
    } else {
        checkout.join(sub)
    }
}

/// The problems of a fresh clone (where every file present is tracked). A directory without
/// `dbt_project.yml` (an empty repository, a wrong subdirectory) is not a dbt project: nothing
/// to say about its ignore rules.
fn inspect(checkout: &Path, subdirectory: &str) -> GitignoreProblems {
    let dir = project_dir(checkout, subdirectory);
    if !dir.join("dbt_project.yml").is_file() {
        return GitignoreProblems::default();
    }
    let gitignore = std::fs::read_to_string(dir.join(".gitignore")).unwrap_or_default();
    GitignoreProblems {
        missing: missing_entries(&gitignore),
        tracked: BUILD_FOLDERS
            .into_iter()
            .filter(|name| dir.join(name).exists())
            .collect(),
    }
}

/// A clone in a directory of its own, removed when dropped.
struct Checkout {
    dir: PathBuf,
}

impl Checkout {
    fn path(&self) -> PathBuf {
        self.dir.join("repo")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        // Best effort: a leftover directory only costs disk space.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Services {
    fn git(&self) -> Result<Git, ServiceError> {
        let home = &self.settings.repositories.git_home;
        std::fs::create_dir_all(home)
            .map_err(|e| ServiceError::Internal(format!("cannot create git's home: {e}")))?;
        Ok(Git::new(GitConfig::new(home)))
    }

    async fn clone_for_doctor(
        &self,
        repo: &Repository,
        credential: GitCredential,
    ) -> Result<Checkout, ServiceError> {
        let checkout = Checkout {
            dir: self
                .settings
                .repositories
                .cache_dir
                .join("doctor")
                .join(uuid::Uuid::now_v7().to_string()),
        };
        let remote = self
            .git_remote(
                &repo.gitlab_instance_url,
                &repo.http_url_to_repo,
                Some(credential),
            )
            .await?;
        self.git()?
            .clone(&remote, &checkout.path())
            .await
            .map_err(|e| {
                ServiceError::Remote(format!("cloning {} failed: {e}", repo.path_with_namespace))
            })?;
        Ok(checkout)
    }

    /// Clones the repository with its deploy token and inspects the dbt project's ignore rules.
    pub(crate) async fn gitignore_problems(
        &self,
        repo: &Repository,
        subdirectory: &str,
    ) -> Result<GitignoreProblems, ServiceError> {
        let credential = self.read_credential(repo).await?;
        let checkout = self.clone_for_doctor(repo, credential).await?;
        Ok(inspect(&checkout.path(), subdirectory))
    }

    async fn read_credential(&self, repo: &Repository) -> Result<GitCredential, ServiceError> {
        let secrets = self.db.repository_secrets(&self.keys, &repo.id).await?;
        match (repo.deploy_token_username.clone(), secrets.deploy_token) {
            (Some(user), Some(token)) => Ok(GitCredential::new(user, token)),
            _ => Err(ServiceError::Conflict(
                "the repository has no deploy token".into(),
            )),
        }
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

    /// Commits a corrected `.gitignore` without the tracked build folders on [`FIX_BRANCH`] and
    /// opens a merge request (or updates the one already open).
    pub(crate) async fn fix_gitignore(
        &self,
        repo: &Repository,
        api: &Api,
        subdirectory: &str,
    ) -> Result<String, ServiceError> {
        let credential = self.push_credential(repo).await?;
        let checkout = self.clone_for_doctor(repo, credential.clone()).await?;
        let root = checkout.path();
        let problems = inspect(&root, subdirectory);
        if problems.is_empty() {
            return Ok("nothing to change: the default branch is already correct".into());
        }
        let dir = project_dir(&root, subdirectory);
        let io = |e: std::io::Error| ServiceError::Internal(format!("editing the checkout: {e}"));
        let current = std::fs::read_to_string(dir.join(".gitignore")).unwrap_or_default();
        std::fs::write(
            dir.join(".gitignore"),
            corrected(&current, &problems.missing),
        )
        .map_err(io)?;
        for name in &problems.tracked {
            std::fs::remove_dir_all(dir.join(name)).map_err(io)?;
        }
        let git = self.git()?;
        let exec = |e: lablink_exec::ExecError| ServiceError::Remote(e.to_string());
        git.switch_branch(&root, FIX_BRANCH, Some("HEAD"))
            .await
            .map_err(exec)?;
        let me = Identity {
            name: "lablink".into(),
            email: "lablink@localhost".into(),
        };
        git.commit_all(
            &root,
            "Ignore dbt build folders and stop tracking them",
            &me,
            &me,
        )
        .await
        .map_err(exec)?;
        let remote = self
            .git_remote(
                &repo.gitlab_instance_url,
                &repo.http_url_to_repo,
                Some(credential),
            )
            .await?;
        git.push(&root, &remote, FIX_BRANCH, true)
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
