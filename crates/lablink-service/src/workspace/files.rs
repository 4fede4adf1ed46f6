//! Files of a workspace: open, save, create, rename, delete, revert, diff. A save goes to the
//! database first (so no replica loses it), then to this replica's checkout.

use lablink_store::workspaces::SavedChange;

use super::{Opened, paths};
use crate::{Principal, ServiceError, Services};

/// An opened file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    pub path: String,
    /// `None` for a file that is not UTF-8 text (shown, not edited).
    pub text: Option<String>,
    pub bytes: usize,
}

impl Services {
    /// Saves the change to the database, then to the checkout, which then holds the new version.
    async fn record(&self, o: &Opened, changes: Vec<SavedChange>) -> Result<(), ServiceError> {
        if changes.iter().any(|c| c.content.is_some()) {
            self.check_workspace_cap(&o.ws.account_id).await?;
        }
        let version = self.db.save_workspace_changes(&o.ws.id, &changes).await?;
        for change in &changes {
            match &change.content {
                Some(content) => paths::write(&o.dir, &change.path, content)?,
                None => paths::remove(&o.dir, &change.path)?,
            }
        }
        Self::checkout_is_at(&o.dir, version)
    }

    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn workspace_file(
        &self,
        caller: &Principal,
        project_id: &str,
        path: &str,
    ) -> Result<FileContent, ServiceError> {
        let path = paths::checked(path)?;
        let o = self.open(caller, project_id).await?;
        let bytes = paths::read(&o.dir, &path)?
            .ok_or_else(|| ServiceError::NotFound(format!("There is no file “{path}”.")))?;
        Ok(FileContent {
            bytes: bytes.len(),
            text: String::from_utf8(bytes).ok().filter(|t| !t.contains('\0')),
            path,
        })
    }

    /// Saves a file (creating it and its folders when new).
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn save_workspace_file(
        &self,
        caller: &Principal,
        project_id: &str,
        path: &str,
        text: &str,
    ) -> Result<(), ServiceError> {
        let path = paths::checked(path)?;
        if text.len() > paths::MAX_FILE_BYTES {
            return Err(ServiceError::BadInput(
                "The file is larger than 2 MB; the workspace saves smaller files only.".into(),
            ));
        }
        let o = self.open(caller, project_id).await?;
        self.record(
            &o,
            vec![SavedChange {
                path,
                content: Some(text.as_bytes().to_vec()),
            }],
        )
        .await
    }

    /// Creates a new file; refused when one exists at that path.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn create_workspace_file(
        &self,
        caller: &Principal,
        project_id: &str,
        path: &str,
        text: &str,
    ) -> Result<(), ServiceError> {
        let path = paths::checked(path)?;
        let o = self.open(caller, project_id).await?;
        if o.dir.join(&path).exists() {
            return Err(ServiceError::Conflict(format!(
                "“{path}” exists already; open it, or choose another name."
            )));
        }
        self.record(
            &o,
            vec![SavedChange {
                path,
                content: Some(text.as_bytes().to_vec()),
            }],
        )
        .await
    }

    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn delete_workspace_file(
        &self,
        caller: &Principal,
        project_id: &str,
        path: &str,
    ) -> Result<(), ServiceError> {
        let path = paths::checked(path)?;
        let o = self.open(caller, project_id).await?;
        if paths::read(&o.dir, &path)?.is_none() {
            return Err(ServiceError::NotFound(format!(
                "There is no file “{path}”."
            )));
        }
        self.record(
            &o,
            vec![SavedChange {
                path,
                content: None,
            }],
        )
        .await
    }

    /// Renames (moves) a file; refused when the new path is taken.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn rename_workspace_file(
        &self,
        caller: &Principal,
        project_id: &str,
        from: &str,
        to: &str,
    ) -> Result<(), ServiceError> {
        let (from, to) = (paths::checked(from)?, paths::checked(to)?);
        let o = self.open(caller, project_id).await?;
        let content = paths::read(&o.dir, &from)?
            .ok_or_else(|| ServiceError::NotFound(format!("There is no file “{from}”.")))?;
        if o.dir.join(&to).exists() {
            return Err(ServiceError::Conflict(format!(
                "“{to}” exists already; choose another name."
            )));
        }
        self.record(
            &o,
            vec![
                SavedChange {
                    path: to,
                    content: Some(content),
                },
                SavedChange {
                    path: from,
                    content: None,
                },
            ],
        )
        .await
    }

    /// Drops saved changes (of `paths`, or all): the files are as the branch's commit has them.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn revert_workspace_changes(
        &self,
        caller: &Principal,
        project_id: &str,
        paths: Option<&[String]>,
    ) -> Result<(), ServiceError> {
        let paths = paths
            .map(|p| {
                p.iter()
                    .map(|p| paths::checked(p))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let o = self.open(caller, project_id).await?;
        // The checkout is rebuilt from the database at the new version on next use.
        self.db
            .drop_workspace_changes(&o.ws.id, paths.as_deref())
            .await?;
        Ok(())
    }

    /// The file's changes against the branch's commit, as a unified diff.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn workspace_diff(
        &self,
        caller: &Principal,
        project_id: &str,
        path: &str,
    ) -> Result<String, ServiceError> {
        let path = paths::checked(path)?;
        let o = self.open(caller, project_id).await?;
        self.workspace_git()
            .diff_file(&o.dir, &path)
            .await
            .map_err(|e| ServiceError::Internal(format!("git diff: {e}")))
    }

    /// Every uncommitted change of the workspace as one patch (`git apply`-able), for keeping
    /// a copy before a rollback.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn workspace_patch(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<String, ServiceError> {
        let o = self.open(caller, project_id).await?;
        self.workspace_git()
            .diff_file(&o.dir, ".")
            .await
            .map_err(|e| ServiceError::Internal(format!("git diff: {e}")))
    }
}
