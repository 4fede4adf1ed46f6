//! Forks (`POST /projects/:id/fork`): a new project in another namespace whose repository is a
//! copy of the parent's branches and tags, remembering its parent (`forked_from_project`).

use tokio::process::Command;

use crate::state::{Id, Namespace, NewProject, Project, SetupError, SimHandle, Visibility};

/// A fork as the API asks for it.
#[derive(Debug, Clone)]
pub struct NewFork {
    pub user_id: Id,
    /// The user's personal namespace when absent.
    pub namespace: Option<Namespace>,
    /// The parent's when absent.
    pub path: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// At most the parent's visibility.
    pub visibility: Option<Visibility>,
}

fn rank(v: Visibility) -> u8 {
    v.level()
}

impl SimHandle {
    /// Forks `project_id`: creates the project (its default branch protected as any new
    /// project's), copies the parent's branches and tags into its repository.
    pub async fn fork_project(&self, project_id: Id, fork: NewFork) -> Result<Project, SetupError> {
        let parent = self
            .lock()
            .projects
            .get(&project_id)
            .cloned()
            .ok_or(SetupError::NotFound("Project"))?;
        let visibility = match fork.visibility {
            Some(v) if rank(v) <= rank(parent.visibility) => v,
            _ => parent.visibility,
        };
        let new = NewProject {
            path: fork.path.unwrap_or_else(|| parent.path.clone()),
            name: Some(fork.name.unwrap_or_else(|| parent.name.clone())),
            namespace: fork.namespace.unwrap_or(Namespace::User(fork.user_id)),
            visibility: Some(visibility),
            description: Some(
                fork.description
                    .unwrap_or_else(|| parent.description.clone()),
            ),
            default_branch: Some(parent.default_branch.clone()),
            archived: false,
        };
        let project = self.create_project(new).await?;
        if let Err(e) = self.copy_repository(project_id, project.id).await {
            // No half-made fork: the project goes with its repository.
            self.lock().projects.remove(&project.id);
            let _ = tokio::fs::remove_dir_all(self.repo_path(project.id)).await;
            return Err(e);
        }
        let mut state = self.lock();
        let now = state.now();
        let stored = state
            .projects
            .get_mut(&project.id)
            .ok_or(SetupError::NotFound("Project"))?;
        stored.forked_from_id = Some(project_id);
        stored.creator_id = fork.user_id;
        stored.updated_at = now;
        Ok(stored.clone())
    }

    /// Replaces the new project's empty repository with a copy of the parent's: `clone --bare`
    /// copies branches and tags (not `refs/merge-requests/*`), as GitLab's fork does.
    async fn copy_repository(&self, parent: Id, fork: Id) -> Result<(), SetupError> {
        let repo = self.repo_path(fork);
        let _ = tokio::fs::remove_dir_all(&repo).await;
        let out = Command::new("git")
            .args(["clone", "--bare", "--quiet", "--no-local"])
            .arg(self.repo_path(parent))
            .arg(&repo)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .await
            .map_err(|e| SetupError::Repository(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(SetupError::Repository(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }
}
