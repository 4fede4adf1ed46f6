//! Pushing with the repository's SSH deploy key, where GitLab has no project access tokens
//! (gitlab.com Free) and the plan pushes with a shared credential (Developer, Starter); and the
//! dbt IDE's "GitLab Authentication is out of date" troubleshooting: when GitLab no longer has
//! the key lablink holds, the workspace says so and repairs it.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use lablink_core::Plan;
use lablink_exec::{Remote, SshAccess};
use lablink_store::repositories::Repository;
use secrecy::{ExposeSecret as _, SecretString};

use crate::doctor::{Code, Outcome};
use crate::error::require;
use crate::{Principal, ServiceError, Services};

/// The private key in a file of its own (mode 0600) for one git invocation; removed when dropped.
pub(crate) struct KeyFile {
    dir: PathBuf,
}

impl KeyFile {
    fn write(root: &Path, private: &SecretString) -> std::io::Result<KeyFile> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)?;
        let dir = root.join(lablink_store::new_id());
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let kept = KeyFile { dir };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(kept.path())?;
        file.write_all(private.expose_secret().as_bytes())?;
        Ok(kept)
    }

    fn path(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "removing a key file failed");
        }
    }
}

/// Whether the workspace pushes with the repository's SSH deploy key: a plan that pushes with a
/// shared credential, on a GitLab without project access tokens, with a key and an address.
pub(crate) fn pushes_with_deploy_key(plan: Plan, repo: &Repository) -> bool {
    !plan.allows_own_gitlab_app()
        && repo.project_token_id.is_none()
        && repo.deploy_key_id.is_some()
        && repo.ssh_url_to_repo.is_some()
}

/// Whether git's words say the SSH server did not take the key (gone from GitLab, replaced, or
/// without write access any more).
pub(crate) fn key_refused(words: &str) -> bool {
    [
        "Permission denied (publickey",
        "does not have write access",
        "deploy key is not",
    ]
    .iter()
    .any(|said| words.contains(said))
}

/// What the workspace says when GitLab refused the deploy key.
pub(crate) fn out_of_date(repo: &Repository, words: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "GitLab Authentication is out of date: GitLab refused lablink's SSH deploy key for {} \
         (it was removed or replaced in GitLab). Use Repair the deploy key below: lablink adds a \
         new key to the project and removes the old one; then try again. Your changes are still \
         saved here. (git said: {})",
        repo.path_with_namespace,
        words.trim()
    ))
}

impl Services {
    /// The repository reached over SSH with its deploy key, and the key's file (kept alive as
    /// long as the remote is used); `None` when the repository has no key with an address.
    pub(crate) async fn deploy_key_remote(
        &self,
        repo: &Repository,
    ) -> Result<Option<(Remote, KeyFile)>, ServiceError> {
        let Some(url) = repo.ssh_url_to_repo.as_deref() else {
            return Ok(None);
        };
        let secrets = self.db.repository_secrets(&self.keys, &repo.id).await?;
        let (Some(_), Some(private)) = (repo.deploy_key_id, secrets.deploy_key_private) else {
            return Ok(None);
        };
        let home = &self.settings.repositories.git_home;
        let key = KeyFile::write(&home.join("keys"), &private)
            .map_err(|e| ServiceError::Internal(format!("writing the deploy key's file: {e}")))?;
        let remote = Remote::ssh(
            url,
            SshAccess {
                key_file: key.path(),
                known_hosts: home.join("ssh_known_hosts"),
            },
        )
        .map_err(|e| ServiceError::Internal(format!("the repository's SSH address: {e}")))?;
        Ok(Some((remote, key)))
    }

    /// "GitLab Authentication is out of date": checks the project's deploy key against GitLab
    /// and, when GitLab's is missing or another, adds a new one with the connection's Maintainer
    /// credentials (as Check connection's Fix does). Returns what was done, in words.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn repair_workspace_deploy_key(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<String, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot repair connections.",
        )?;
        let report = self
            .check_project_connection(caller, project_id, false)
            .await?;
        if report.repository_id.is_none() {
            return Err(ServiceError::NotFound(
                "This project has no connected repository: connect one under Repository first."
                    .into(),
            ));
        }
        let Some(code) = report
            .findings
            .iter()
            .map(|f| f.code)
            .find(|c| matches!(c, Code::DeployKeyMissing | Code::DeployKeyMismatch))
        else {
            return Ok(
                "The deploy key in GitLab is the one lablink holds: nothing to repair. If \
                 pushes still fail, open Check connection."
                    .into(),
            );
        };
        let fixed = self.fix_project_finding(caller, project_id, code).await?;
        match fixed.repairs.iter().find(|r| r.code == code) {
            Some(repair) if repair.outcome == Outcome::Repaired => {}
            Some(repair) => {
                return Err(ServiceError::Conflict(format!(
                    "The deploy key could not be repaired: {} Only a Maintainer of the GitLab \
                     project can add deploy keys; ask one to open Check connection and fix it.",
                    repair.message
                )));
            }
            None => {
                return Err(ServiceError::Conflict(
                    "The deploy key could not be repaired: lablink holds no GitLab account that \
                     may change the project's keys. Ask a Maintainer of the GitLab project to \
                     open Check connection and fix it."
                        .into(),
                ));
            }
        }
        Ok(
            "Repaired: GitLab has a new deploy key of lablink's (the old one was removed). Try \
            again."
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_private_and_goes_with_its_holder() {
        let root = tempfile::tempdir().unwrap();
        let key = KeyFile::write(root.path(), &SecretString::from("KEY")).unwrap();
        let path = key.path();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "KEY");
        drop(key);
        assert!(!path.exists());
    }

    #[test]
    fn refused_keys_are_recognised_in_gits_words() {
        assert!(key_refused(
            "git@127.0.0.1: Permission denied (publickey).\nfatal: Could not read from remote"
        ));
        assert!(!key_refused("! [rejected] main -> main (fetch first)"));
    }
}
