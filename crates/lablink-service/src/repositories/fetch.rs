//! Fetching a connected repository over HTTPS with its deploy token into the per-repository bare
//! cache (`<cache_dir>/<repository id>.git`). The token reaches git only through environment
//! variables of the one invocation (see `lablink_exec::git`), never a URL, argument or config.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use lablink_exec::{Git, GitConfig, GitCredential, Remote};
use lablink_store::repositories::RepositoryStatus;

use crate::{ServiceError, Services};

/// One fetch per cache at a time in this process: git refuses concurrent ref updates.
static CACHE_LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

fn cache_lock(repository_id: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = CACHE_LOCKS.lock().expect("cache lock table");
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    locks.entry(repository_id.to_owned()).or_default().clone()
}

impl Services {
    /// Where the bare cache of a repository lives.
    pub fn repository_cache_path(&self, repository_id: &str) -> PathBuf {
        self.settings
            .repositories
            .cache_dir
            .join(format!("{repository_id}.git"))
    }

    /// The git remote of a repository: its clone URL checked to be on its GitLab instance, and
    /// git pinned to the addresses the network policy allows for that host (checked now, at each
    /// use, since DNS answers change).
    pub(crate) async fn git_remote(
        &self,
        instance_url: &str,
        clone_url: &str,
        credential: Option<GitCredential>,
    ) -> Result<Remote, ServiceError> {
        let instance = self.gitlab_instance(instance_url, None)?;
        let addresses = instance.git_addresses(clone_url).await?;
        Remote::new(clone_url, credential)
            .and_then(|remote| remote.pinned_to(&addresses))
            .map_err(|e| ServiceError::Internal(format!("the repository's git remote: {e}")))
    }

    /// Creates or updates the repository's bare cache from GitLab (branches and merge request
    /// heads; later fetches transfer only what changed) and returns its path.
    #[tracing::instrument(skip_all, fields(repository_id = %repository_id))]
    pub async fn fetch_repository(&self, repository_id: &str) -> Result<PathBuf, ServiceError> {
        let repo = self
            .db
            .repository(repository_id)
            .await?
            .filter(|r| r.status == RepositoryStatus::Connected)
            .ok_or_else(|| {
                ServiceError::NotFound(format!("repository {repository_id} is not connected"))
            })?;
        let secrets = self.db.repository_secrets(&self.keys, &repo.id).await?;
        let (Some(username), Some(token)) = (repo.deploy_token_username, secrets.deploy_token)
        else {
            return Err(ServiceError::Internal(format!(
                "repository {repository_id} has no deploy token; disconnect and connect it again"
            )));
        };
        let remote = self
            .git_remote(
                &repo.gitlab_instance_url,
                &repo.http_url_to_repo,
                Some(GitCredential::new(username, token)),
            )
            .await?;
        let settings = &self.settings.repositories;
        std::fs::create_dir_all(&settings.git_home)
            .and_then(|()| std::fs::create_dir_all(&settings.cache_dir))
            .map_err(|e| {
                ServiceError::Internal(format!("cannot create the git directories: {e}"))
            })?;
        let git = Git::new(GitConfig::new(&settings.git_home));
        let path = self.repository_cache_path(&repo.id);
        let lock = cache_lock(&repo.id);
        let _guard = lock.lock().await;
        git.ensure_bare_cache(&path, &remote).await.map_err(|e| {
            ServiceError::Remote(format!(
                "fetching {} from GitLab failed: {e}",
                repo.path_with_namespace
            ))
        })?;
        Ok(path)
    }
}
