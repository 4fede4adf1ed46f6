//! Reconciliation: GitLab drops events while a hook is disabled and never retries them, so a
//! periodic pass lists the open merge requests of every connected repository and starts what a
//! lost webhook missed, through the same decisions as webhooks (runs stay unique per job and
//! commit). It also reads each hook's `alert_status` and records a visible warning when GitLab
//! disabled the hook, and marks the schemas of merge requests closed meanwhile for the sweep.

use chrono::{DateTime, Utc};
use lablink_core::ci::{MrAction, MrEvent};
use lablink_gitlab::api::Api;
use lablink_store::runs::CiRepository;

use crate::{ServiceError, Services};

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub repositories: usize,
    pub merge_requests: usize,
    pub notes: Vec<String>,
    pub errors: Vec<String>,
}

fn hook_warning(alert_status: Option<&str>) -> Option<String> {
    match alert_status? {
        "disabled" => Some(
            "GitLab disabled this repository's webhook after repeated failures: merge requests \
             no longer reach lablink. Re-enable it in GitLab (Settings > Webhooks) or reconnect \
             the repository."
                .into(),
        ),
        "temporarily_disabled" => Some(
            "GitLab temporarily disabled this repository's webhook after failures; events are \
             dropped until it is re-enabled. lablink catches up on merge requests meanwhile."
                .into(),
        ),
        _ => None,
    }
}

impl Services {
    /// One pass over every connected repository; merge requests updated before `since` are
    /// skipped (the previous pass saw them).
    #[tracing::instrument(skip_all)]
    pub async fn reconcile(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<ReconcileReport, ServiceError> {
        let mut report = ReconcileReport::default();
        for repository in self.db.connected_ci_repositories(&self.keys).await? {
            report.repositories += 1;
            if let Err(e) = self
                .reconcile_repository(&repository, since, &mut report)
                .await
            {
                report
                    .errors
                    .push(format!("repository {}: {e}", repository.id));
            }
        }
        Ok(report)
    }

    async fn reconcile_repository(
        &self,
        repository: &CiRepository,
        since: Option<DateTime<Utc>>,
        report: &mut ReconcileReport,
    ) -> Result<(), ServiceError> {
        let Some(token) = repository.project_token.clone() else {
            return Ok(());
        };
        let instance = self.gitlab_instance(&repository.gitlab_instance_url, None)?;
        let api = Api::private_token(&instance, token);
        if let Some(hook_id) = repository.hook_id {
            let hook = api.hook(repository.gitlab_project_id, hook_id).await?;
            let warning = hook_warning(hook.alert_status.as_deref());
            let alert = hook.alert_status.unwrap_or_default();
            self.db
                .set_hook_warning(
                    &repository.id,
                    warning.as_deref().map(|w| (alert.as_str(), w)),
                )
                .await?;
        }
        // A close whose webhook was lost (lablink down, hook disabled) still frees the merge
        // request's schemas: the sweep drops them.
        for iid in self.db.mrs_with_open_schemas(&repository.id).await? {
            if api
                .merge_request(repository.gitlab_project_id, iid)
                .await?
                .state
                != "opened"
            {
                self.db.mark_mr_schemas_closed(&repository.id, iid).await?;
            }
        }
        let mrs = api
            .list_open_merge_requests(repository.gitlab_project_id, since, 100)
            .collect_all()
            .await?;
        for mr in mrs {
            let Some(sha) = mr.sha else { continue };
            if mr.target_project_id != repository.gitlab_project_id {
                continue;
            }
            report.merge_requests += 1;
            let event = MrEvent {
                action: MrAction::Open,
                iid: mr.iid,
                head_sha: sha,
                oldrev: None,
                draft: mr.draft,
                target_branch: mr.target_branch,
                source_branch: mr.source_branch,
                draft_changed_to_ready: false,
                from_fork: mr.source_project_id != mr.target_project_id,
            };
            report
                .notes
                .extend(self.reconcile_merge_request(repository, event).await?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_disabled_hooks_raise_a_warning() {
        assert!(hook_warning(Some("disabled")).is_some());
        assert!(hook_warning(Some("temporarily_disabled")).is_some());
        assert!(hook_warning(Some("executable")).is_none());
        assert!(hook_warning(None).is_none());
    }
}
