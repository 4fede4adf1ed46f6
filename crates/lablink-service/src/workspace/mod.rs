//! The workspace: each user's own checkout of a project's connected repository, where they edit
//! files and do the dbt IDE's git actions with their own GitLab permissions (Enterprise) or the
//! repository's shared credential (Developer, Starter).
//!
//! The database holds a workspace: its branch, the commit it is at, and every file saved but not
//! committed (`lablink-store`'s `workspaces`). A replica's checkout below `workspace_dir` is a
//! copy, rebuilt whenever the workspace's version in the database moved on — after a restart, on
//! another replica, after another replica changed it — so nothing saved is lost with a machine.
//! The checkout is a repository of its own that borrows the bare cache's objects (no copy).

mod dbt;
mod deploy_key;
mod disk;
mod files;
mod paths;
mod sync;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use lablink_exec::{FileState, Git, GitConfig};
use lablink_store::repositories::{Repository, RepositoryStatus};
use lablink_store::workspaces::{NewWorkspace, Workspace};

pub use dbt::{DevCommand, DevCommands};
pub use disk::{DEFAULT_CAP_MB, WorkspacesDiskUse, human_bytes};
pub use files::FileContent;
pub use sync::{Merged, Synced, new_merge_request_url};

/// The branch the `.gitignore` fix commits to.
pub const GITIGNORE_FIX_BRANCH: &str = "lablink/fix-gitignore";

use crate::error::require;
use crate::{Principal, ServiceError, Services};

/// Where the checkout records the workspace version it holds (inside `.git`, unseen by status).
const VERSION_FILE: &str = ".git/lablink-version";

/// One checkout rebuild at a time per workspace in this process.
static CHECKOUT_LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

/// Repositories whose spare checkout is being made in this process.
static SPARES_IN_THE_MAKING: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

fn checkout_lock(workspace_id: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = CHECKOUT_LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    locks.entry(workspace_id.to_owned()).or_default().clone()
}

/// The dbt project's `.gitignore` problems in the checkout (`None`: none, or no dbt project).
pub(crate) fn gitignore_advice(
    o: &Opened,
    tracked: &[String],
) -> Result<Option<GitignoreAdvice>, ServiceError> {
    use crate::doctor::{BUILD_FOLDERS, in_project, missing_entries};
    let project_file = in_project(&o.subdirectory, "dbt_project.yml");
    if !tracked.contains(&project_file) {
        return Ok(None);
    }
    let rules = paths::read(&o.dir, &in_project(&o.subdirectory, ".gitignore"))
        .unwrap_or_default()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let advice = GitignoreAdvice {
        missing: missing_entries(&rules),
        tracked: BUILD_FOLDERS
            .into_iter()
            .filter(|folder| {
                let prefix = format!("{}/", in_project(&o.subdirectory, folder));
                tracked.iter().any(|t| t.starts_with(&prefix))
            })
            .collect(),
    };
    Ok((!advice.missing.is_empty() || !advice.tracked.is_empty()).then_some(advice))
}

/// Whether a file still holds git's conflict markers.
pub(crate) fn has_conflict_markers(content: &[u8]) -> bool {
    let text = String::from_utf8_lossy(content);
    let mut lines = text.lines();
    lines.any(|l| l.starts_with("<<<<<<< ")) && text.lines().any(|l| l.starts_with(">>>>>>> "))
}

async fn has_commit(git: &Git, cache: &std::path::Path, sha: &str) -> bool {
    cache.join("HEAD").is_file() && git.has_commit(cache, sha).await.unwrap_or(false)
}

/// One path of the file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Relative path; an ignored folder ends with `/`.
    pub path: String,
    /// `None`: unchanged since the branch's commit.
    pub state: Option<FileState>,
}

/// What the workspace page and API show.
#[derive(Debug, Clone)]
pub struct WorkspaceView {
    pub workspace_id: String,
    pub project_id: String,
    pub path_with_namespace: String,
    pub web_url: String,
    pub branch: String,
    pub head_sha: String,
    pub default_branch: String,
    /// Commits go to another branch: the default branch is protected in the workspace.
    pub protected: bool,
    pub branches: Vec<String>,
    pub files: Vec<TreeEntry>,
    /// Saved but uncommitted files.
    pub changes: usize,
    /// The default branch is being merged in and these files still hold conflict markers
    /// (`Some(vec![])`: all resolved, waiting for "Commit and resolve").
    pub merging: Option<Vec<String>>,
    /// Who GitLab sees on a push, in words.
    pub pushes_as: String,
    /// The dbt project's `.gitignore` problems, when it has any.
    pub gitignore: Option<GitignoreAdvice>,
    /// The branch's last commits (SHA, subject), newest first.
    pub recent_commits: Vec<(String, String)>,
    /// The checkout's size when last measured (bytes).
    pub disk_bytes: i64,
    /// Pushes go over SSH with the repository's deploy key (its repair is offered).
    pub pushes_with_deploy_key: bool,
}

/// A workspace with its repository and this replica's up-to-date checkout.
pub(crate) struct Opened {
    pub ws: Workspace,
    pub repo: Repository,
    pub dir: PathBuf,
    /// The dbt project's directory in the repository ("" = the root).
    pub subdirectory: String,
}

/// What the dbt project's `.gitignore` gets wrong (the seed's "Fix in the Studio IDE").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitignoreAdvice {
    /// Build folders `.gitignore` does not ignore.
    pub missing: Vec<&'static str>,
    /// Build folders with files in git.
    pub tracked: Vec<&'static str>,
}

impl Services {
    pub(crate) fn workspace_git(&self) -> Git {
        Git::new(GitConfig::new(&self.settings.repositories.git_home))
    }

    /// The project and the caller's workspace of it as stored (`None` before its first use),
    /// without touching a checkout: for what needs only the database (the dbt commands' list
    /// and output, which the page polls, and deleting the workspace).
    pub(crate) async fn stored_workspace(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<(lablink_store::projects::Project, Option<Workspace>), ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users have no workspace; ask an admin for the Developer role.",
        )?;
        let project = self.project(caller, project_id).await?;
        let ws = self.db.workspace_of(&project.id, &caller.user_id).await?;
        Ok((project, ws))
    }

    /// The caller's workspace of the project (created at the default branch on first use), with
    /// a checkout of this replica at the workspace's current version.
    pub(crate) async fn open(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<Opened, ServiceError> {
        let (project, stored) = self.stored_workspace(caller, project_id).await?;
        let repo = self
            .db
            .live_repository_of_project(&project.id)
            .await?
            .filter(|r| r.status == RepositoryStatus::Connected)
            .ok_or_else(|| {
                ServiceError::NotFound(
                    "This project has no connected repository yet: connect one under \
                     Repository first."
                        .into(),
                )
            })?;
        let ws = match stored {
            Some(ws) if ws.repository_id == repo.id => ws,
            // The project was connected to another repository since: the workspace moves to its
            // default branch, keeping what was saved.
            Some(stale) => {
                self.start_workspace(caller, &project.id, &repo, Some(&stale.id))
                    .await?
            }
            None => {
                self.check_workspace_cap(&caller.account_id).await?;
                self.start_workspace(caller, &project.id, &repo, None)
                    .await?
            }
        };
        let dir = self.checkout(&ws, &repo).await?;
        self.measure_workspace(&ws.id, ws.version, dir.clone());
        Ok(Opened {
            ws,
            repo,
            dir,
            subdirectory: project.subdirectory,
        })
    }

    async fn start_workspace(
        &self,
        caller: &Principal,
        project_id: &str,
        repo: &Repository,
        replacing: Option<&str>,
    ) -> Result<Workspace, ServiceError> {
        let cache = self.fetch_repository(&repo.id).await?;
        let head = self
            .workspace_git()
            .branch_head(&cache, &repo.default_branch)
            .await
            .map_err(|e| {
                ServiceError::Remote(format!(
                    "{} has no branch {} to start from ({e}); push a first commit in GitLab.",
                    repo.path_with_namespace, repo.default_branch
                ))
            })?;
        if let Some(id) = replacing {
            self.db
                .retarget_workspace(id, &repo.id, &repo.default_branch, &head)
                .await?;
            return self
                .db
                .workspace_of(project_id, &caller.user_id)
                .await?
                .ok_or(ServiceError::NotFound("The workspace is gone.".into()));
        }
        Ok(self
            .db
            .create_workspace(&NewWorkspace {
                account_id: &caller.account_id,
                project_id,
                user_id: &caller.user_id,
                repository_id: &repo.id,
                branch: &repo.default_branch,
                head_sha: &head,
            })
            .await?)
    }

    /// This replica's checkout of `ws`, rebuilt from the database unless it already holds the
    /// workspace's version: the branch at its commit, then every saved file on top.
    async fn checkout(&self, ws: &Workspace, repo: &Repository) -> Result<PathBuf, ServiceError> {
        let dir = self.settings.repositories.workspace_dir.join(&ws.id);
        let current = |dir: &PathBuf| {
            std::fs::read_to_string(dir.join(VERSION_FILE))
                .ok()
                .as_deref()
                == Some(ws.version.to_string().as_str())
        };
        if current(&dir) {
            return Ok(dir);
        }
        let lock = checkout_lock(&ws.id);
        let _guard = lock.lock().await;
        if current(&dir) {
            return Ok(dir);
        }
        let git = self.workspace_git();
        let cache = self.repository_cache_path(&repo.id);
        if !has_commit(&git, &cache, &ws.head_sha).await {
            self.fetch_repository(&repo.id).await?;
            if !has_commit(&git, &cache, &ws.head_sha).await {
                return Err(ServiceError::Remote(format!(
                    "The commit your workspace is at ({}) is no longer in GitLab (its branch {} \
                     was deleted or rewritten). Use Rollback to remote to start again from \
                     GitLab's {}.",
                    &ws.head_sha[..ws.head_sha.len().min(8)],
                    ws.branch,
                    repo.default_branch
                )));
            }
        }
        let failed = |what: &str, e: lablink_exec::ExecError| {
            ServiceError::Internal(format!("preparing the workspace checkout ({what}): {e}"))
        };
        let mut replenish = false;
        if !dir.join(".git").is_dir() {
            // A ready checkout of the repository (made in the background after the last one)
            // only needs the files that differ; otherwise every file is written now.
            replenish = true;
            if !self.take_spare_checkout(&repo.id, &dir) {
                git.init_borrowing(&cache, &dir)
                    .await
                    .map_err(|e| failed("init", e))?;
            }
        }
        git.reset_branch(&dir, &ws.branch, &ws.head_sha)
            .await
            .map_err(|e| failed("switch", e))?;
        for change in self.db.workspace_changes(&ws.id).await? {
            match &change.content {
                Some(content) => paths::write(&dir, &change.path, content)?,
                None => paths::remove(&dir, &change.path)?,
            }
        }
        if let Some(merging) = &ws.merging_sha {
            git.resume_merge(&dir, merging)
                .await
                .map_err(|e| failed("merge", e))?;
        }
        std::fs::write(dir.join(VERSION_FILE), ws.version.to_string())
            .map_err(|e| ServiceError::Internal(format!("workspace checkout: {e}")))?;
        if replenish {
            self.make_spare_checkout(repo);
        }
        Ok(dir)
    }

    /// Deletes this replica's checkouts of workspaces unchanged since `before` (milliseconds):
    /// everything they hold is in the database, and the next use rebuilds them.
    pub(crate) async fn reclaim_idle_checkouts(&self, before: i64) -> Result<(), ServiceError> {
        for id in self.db.workspaces_idle_since(before).await? {
            let dir = self.settings.repositories.workspace_dir.join(&id);
            if dir.exists() {
                let lock = checkout_lock(&id);
                let _guard = lock.lock().await;
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => self.checkout_removed(&id).await?,
                    Err(e) => {
                        tracing::warn!(workspace = %id, error = %e, "removing an idle checkout failed")
                    }
                }
            }
        }
        Ok(())
    }

    fn spare_checkout_path(&self, repository_id: &str) -> PathBuf {
        self.settings
            .repositories
            .workspace_dir
            .join(format!("spare-{repository_id}"))
    }

    /// Moves the repository's spare checkout to `dir` (one rename; `false` when none is ready).
    fn take_spare_checkout(&self, repository_id: &str, dir: &Path) -> bool {
        if dir.exists() && std::fs::remove_dir_all(dir).is_err() {
            return false;
        }
        std::fs::rename(self.spare_checkout_path(repository_id), dir).is_ok()
    }

    /// In the background, a checkout of the repository's default branch for the next workspace
    /// opened on this replica without one (a new user, a restart on a new machine): it then
    /// takes this one and updates only what differs.
    fn make_spare_checkout(&self, repo: &Repository) {
        let spare = self.spare_checkout_path(&repo.id);
        if spare.exists()
            || !SPARES_IN_THE_MAKING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(repo.id.clone())
        {
            return;
        }
        let (services, repo) = (self.clone(), repo.clone());
        tokio::spawn(async move {
            let building = services
                .settings
                .repositories
                .workspace_dir
                .join(format!(".building-{}", lablink_store::new_id()));
            let git = services.workspace_git();
            let cache = services.repository_cache_path(&repo.id);
            let made = async {
                let head = git.branch_head(&cache, &repo.default_branch).await?;
                git.init_borrowing(&cache, &building).await?;
                git.reset_branch(&building, "lablink-spare", &head).await
            }
            .await;
            let placed = made.is_ok() && std::fs::rename(&building, &spare).is_ok();
            if !placed {
                let _ = std::fs::remove_dir_all(&building);
            }
            SPARES_IN_THE_MAKING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&repo.id);
        });
    }

    /// Records a new version of the workspace as this replica's checkout already holds it.
    pub(crate) fn checkout_is_at(dir: &std::path::Path, version: i64) -> Result<(), ServiceError> {
        std::fs::write(dir.join(VERSION_FILE), version.to_string())
            .map_err(|e| ServiceError::Internal(format!("workspace checkout: {e}")))
    }

    /// The caller's workspace of the project: branch, files with their git state, and who
    /// GitLab will see on a push.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn workspace(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<WorkspaceView, ServiceError> {
        let o = self.open(caller, project_id).await?;
        let git = self.workspace_git();
        let internal = |e: lablink_exec::ExecError| ServiceError::Internal(format!("git: {e}"));
        let tracked = git.tracked_files(&o.dir).await.map_err(internal)?;
        let gitignore = gitignore_advice(&o, &tracked)?;
        let status = git.status(&o.dir).await.map_err(internal)?;
        let mut states: HashMap<String, FileState> =
            status.into_iter().map(|e| (e.path, e.state)).collect();
        let mut files: Vec<TreeEntry> = tracked
            .into_iter()
            .map(|path| TreeEntry {
                state: states.remove(&path),
                path,
            })
            .collect();
        files.extend(states.into_iter().map(|(path, state)| TreeEntry {
            path,
            state: Some(state),
        }));
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let saved = self.db.workspace_changes(&o.ws.id).await?;
        let changes = saved.len();
        let merging = o.ws.merging_sha.as_ref().map(|_| {
            saved
                .iter()
                .filter(|c| c.content.as_deref().is_some_and(has_conflict_markers))
                .map(|c| c.path.clone())
                .collect::<Vec<_>>()
        });
        if let Some(conflicted) = &merging {
            for file in files.iter_mut().filter(|f| conflicted.contains(&f.path)) {
                file.state = Some(FileState::Conflicted);
            }
        }
        let branches = git
            .branches(&self.repository_cache_path(&o.repo.id))
            .await
            .map_err(internal)?;
        Ok(WorkspaceView {
            workspace_id: o.ws.id.clone(),
            project_id: o.ws.project_id.clone(),
            path_with_namespace: o.repo.path_with_namespace.clone(),
            web_url: o.repo.web_url.clone(),
            protected: o.ws.branch == o.repo.default_branch,
            default_branch: o.repo.default_branch.clone(),
            branch: o.ws.branch.clone(),
            head_sha: o.ws.head_sha.clone(),
            branches,
            files,
            changes,
            merging,
            gitignore,
            recent_commits: git.recent_commits(&o.dir, 10).await.map_err(internal)?,
            pushes_as: self.pushes_as(caller, &o.repo).await,
            disk_bytes: o.ws.disk_bytes,
            pushes_with_deploy_key: deploy_key::pushes_with_deploy_key(caller.plan, &o.repo),
        })
    }
}
