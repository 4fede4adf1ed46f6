//! Disk use of workspaces: each checkout's size, measured in the background after it changed
//! (never on the way of a page: a walk of a 20,000-file checkout takes longer than the page), and
//! the account's cap on the sum, enforced when a workspace is made or a file is saved. Deleting a
//! workspace gives its disk back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use lablink_store::audit::{AuditEvent, AuditOutcome};
use lablink_store::workspaces::WorkspaceUse;

use super::checkout_lock;
use crate::error::require;
use crate::{Principal, ServiceError, Services};

/// The cap of an account that set none: 10 GiB.
pub const DEFAULT_CAP_MB: i64 = 10 * 1024;
/// The largest cap an admin may set: 10 TiB.
const MAX_CAP_MB: i64 = 10 * 1024 * 1024;

/// The version of each workspace this process measured last.
static MEASURED: LazyLock<Mutex<HashMap<String, i64>>> = LazyLock::new(Mutex::default);

/// The bytes of the files below `dir`, without following links.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// A size in words: `512 KB`, `1.2 GB`.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// The account's workspaces and their disk use, for its admins.
#[derive(Debug, Clone)]
pub struct WorkspacesDiskUse {
    pub cap_mb: i64,
    /// Whether the cap is lablink's default (the account set none).
    pub default_cap: bool,
    pub total_bytes: i64,
    pub workspaces: Vec<WorkspaceUse>,
}

impl Services {
    /// Measures the checkout of workspace `id` at `version` in the background, unless this
    /// process already did.
    pub(crate) fn measure_workspace(&self, id: &str, version: i64, dir: PathBuf) {
        {
            let mut measured = MEASURED.lock().unwrap_or_else(|e| e.into_inner());
            if measured.get(id) == Some(&version) {
                return;
            }
            measured.insert(id.to_owned(), version);
        }
        let (services, id) = (self.clone(), id.to_owned());
        tokio::spawn(async move {
            let bytes = tokio::task::spawn_blocking(move || dir_bytes(&dir))
                .await
                .unwrap_or(0);
            let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
            if let Err(e) = services.db.set_workspace_disk_bytes(&id, bytes).await {
                tracing::warn!(workspace = %id, error = %e, "recording a workspace's size failed");
            }
        });
    }

    /// Forgets a checkout this process removed: it takes no disk until it is rebuilt.
    pub(crate) async fn checkout_removed(&self, id: &str) -> Result<(), ServiceError> {
        MEASURED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        Ok(self.db.set_workspace_disk_bytes(id, 0).await?)
    }

    async fn cap_mb(&self, account_id: &str) -> Result<(i64, bool), ServiceError> {
        Ok(match self.db.workspace_disk_cap_mb(account_id).await? {
            Some(cap) => (cap, false),
            None => (DEFAULT_CAP_MB, true),
        })
    }

    /// Refuses more workspace data when the account's workspaces reached its cap.
    pub(crate) async fn check_workspace_cap(&self, account_id: &str) -> Result<(), ServiceError> {
        let (cap_mb, _) = self.cap_mb(account_id).await?;
        let used = self.db.account_workspace_bytes(account_id).await?;
        if used >= cap_mb.saturating_mul(1024 * 1024) {
            return Err(ServiceError::Conflict(format!(
                "Your account's workspaces use {} of their {} limit, so nothing more can be \
                 saved. Delete a workspace nobody uses (at the bottom of its page), or ask an \
                 account admin to raise the limit under Settings → Workspaces.",
                human_bytes(used),
                human_bytes(cap_mb.saturating_mul(1024 * 1024))
            )));
        }
        Ok(())
    }

    /// The account's workspaces with their disk use and the cap (account admins).
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %admin.account_id,
            user_id = %admin.user_id,
        ),
    )]
    pub async fn workspaces_disk_use(
        &self,
        admin: &Principal,
    ) -> Result<WorkspacesDiskUse, ServiceError> {
        require(
            admin.role.can_manage_account(),
            "Only account admins see every workspace of the account.",
        )?;
        let (cap_mb, default_cap) = self.cap_mb(&admin.account_id).await?;
        let workspaces = self.db.account_workspace_use(&admin.account_id).await?;
        Ok(WorkspacesDiskUse {
            cap_mb,
            default_cap,
            total_bytes: workspaces.iter().map(|w| w.disk_bytes).sum(),
            workspaces,
        })
    }

    /// Sets the account's cap on its workspaces' disk use, in megabytes (`None`: the default).
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %admin.account_id,
            user_id = %admin.user_id,
        ),
    )]
    pub async fn set_workspace_disk_cap(
        &self,
        admin: &Principal,
        cap_mb: Option<i64>,
    ) -> Result<(), ServiceError> {
        require(
            admin.role.can_manage_account(),
            "Only account admins can change the workspaces' disk limit.",
        )?;
        if let Some(cap) = cap_mb
            && !(1..=MAX_CAP_MB).contains(&cap)
        {
            return Err(ServiceError::InvalidField {
                field: "cap_mb",
                message: format!(
                    "The limit is a number of megabytes from 1 to {MAX_CAP_MB} (10 TB); leave it \
                     empty for the default of {DEFAULT_CAP_MB} (10 GB)."
                ),
            });
        }
        self.db
            .set_workspace_disk_cap_mb(&admin.account_id, cap_mb)
            .await?;
        self.audit(AuditEvent {
            account_id: Some(&admin.account_id),
            actor_user_id: Some(&admin.user_id),
            action: "workspace.disk_cap_changed",
            target: Some("workspaces".into()),
            detail: match cap_mb {
                Some(cap) => format!("limit {cap} MB"),
                None => format!("limit back to the default of {DEFAULT_CAP_MB} MB"),
            },
            outcome: AuditOutcome::Success,
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }

    /// Deletes the caller's workspace of the project: its saved changes, its commands and every
    /// checkout of it on this replica (others rebuild nothing: the workspace is gone). The next
    /// visit starts a new one at the default branch.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn delete_workspace(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<(), ServiceError> {
        let (project, ws) = self.stored_workspace(caller, project_id).await?;
        let ws = ws.ok_or_else(|| ServiceError::NotFound("You have no workspace here.".into()))?;
        let changes = self.db.workspace_changes(&ws.id).await?.len();
        self.db.delete_workspace(&ws.id).await?;
        let root = &self.settings.repositories.workspace_dir;
        let lock = checkout_lock(&ws.id);
        let _guard = lock.lock().await;
        for dir in [root.join(&ws.id), root.join(format!("{}.dbt", ws.id))] {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %e, "removing a workspace's files failed");
            }
        }
        MEASURED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ws.id);
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: "workspace.deleted",
            target: Some(format!("workspace of project {}", project.name)),
            detail: format!(
                "branch {}, {changes} uncommitted change(s) dropped",
                ws.branch
            ),
            outcome: AuditOutcome::Success,
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_at_a_glance() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KB");
        assert_eq!(human_bytes(25 * 1024 * 1024), "25 MB");
        assert_eq!(human_bytes(10 * 1024 * 1024 * 1024), "10 GB");
    }

    #[test]
    fn a_checkout_is_measured_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        std::fs::write(dir.path().join("models/a.sql"), vec![b'x'; 1000]).unwrap();
        std::fs::write(dir.path().join("b.yml"), vec![b'y'; 24]).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("usr")).unwrap();
        let link = dir.path().join("usr").symlink_metadata().unwrap().len();
        assert_eq!(dir_bytes(dir.path()), 1024 + link);
    }
}
