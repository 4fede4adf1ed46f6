//! Merging a merge request (`PUT /merge_requests/:iid/merge` and the control API): GitLab's
//! mergeability checks, a merge commit on the target branch, the Push Hook of the target and
//! the MR's `merge` hook, and the optional removal of the source branch.

use serde_json::json;

use crate::changes::{RefUpdate, repo_error};
use crate::commits::{self, ZERO_SHA};
use crate::repo_browse;
use crate::state::{Id, JobStatus, MergeRequest, MrState, SetupError, SimHandle};
use crate::webhooks::payload;

/// Why a merge request cannot be merged now (`MergeRequest#mergeable?` is false).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotMergeable {
    #[error("merge request is not open")]
    NotOpen,
    #[error("draft merge requests cannot be merged")]
    Draft,
    #[error("source branch does not exist")]
    SourceMissing,
    #[error("pipeline must succeed")]
    PipelineMustSucceed,
    #[error("merge request has conflicts")]
    Conflicts,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    NotMergeable(#[from] NotMergeable),
    /// `sha` was given and is not the source branch's head (`check_sha_param!`).
    #[error("SHA does not match HEAD of source branch: {0}")]
    ShaMismatch(String),
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// How to merge.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// The head the caller expects (`sha`).
    pub sha: Option<String>,
    /// `should_remove_source_branch`; the MR's own setting when absent.
    pub remove_source_branch: Option<bool>,
    /// `merge_commit_message`; GitLab's default message when absent.
    pub message: Option<String>,
}

impl SimHandle {
    /// Merges with a merge commit on the target branch: a Push Hook for the target, then the
    /// MR's `merge` hook. Drafts and conflicts are refused (409 through the control API).
    pub async fn merge_merge_request(
        &self,
        project_id: Id,
        iid: u64,
        user_id: Id,
    ) -> Result<MergeRequest, SetupError> {
        self.merge_merge_request_with(project_id, iid, user_id, MergeOptions::default())
            .await
            .map_err(|e| match e {
                MergeError::Setup(e) => e,
                other => SetupError::Conflict(other.to_string()),
            })
    }

    /// Checks GitLab's mergeability rules (open, not draft, source present, pipeline when
    /// "Pipelines must succeed", no conflicts), then merges.
    pub async fn merge_merge_request_with(
        &self,
        project_id: Id,
        iid: u64,
        user_id: Id,
        options: MergeOptions,
    ) -> Result<MergeRequest, MergeError> {
        let (mr, pipeline_blocks) = {
            let state = self.lock();
            let mr = state
                .merge_request(project_id, iid)
                .cloned()
                .ok_or(SetupError::NotFound("Merge request"))?;
            let must_succeed = state
                .projects
                .get(&project_id)
                .is_some_and(|p| p.only_allow_merge_if_pipeline_succeeds);
            let status = state
                .head_pipeline(&[mr.source_project(), project_id], &mr.sha)
                .map(|h| h.status);
            (mr, must_succeed && status != Some(JobStatus::Success))
        };
        if mr.state != MrState::Opened {
            return Err(NotMergeable::NotOpen.into());
        }
        if mr.draft {
            return Err(NotMergeable::Draft.into());
        }
        let source_repo = self.repo_path(mr.source_project());
        let source_head = commits::branch_head(&source_repo, &mr.source_branch)
            .await
            .map_err(repo_error)?;
        if source_head.is_none() {
            return Err(NotMergeable::SourceMissing.into());
        }
        if pipeline_blocks {
            return Err(NotMergeable::PipelineMustSucceed.into());
        }
        let repo = self.repo_path(project_id);
        let target_head = commits::branch_head(&repo, &mr.target_branch)
            .await
            .map_err(repo_error)?
            .ok_or(SetupError::NotFound("Target branch"))?;
        let tree = commits::merge_tree(&repo, &target_head, &mr.sha)
            .await
            .map_err(repo_error)?
            .ok_or(NotMergeable::Conflicts)?;
        if options.sha.as_ref().is_some_and(|s| *s != mr.sha) {
            return Err(MergeError::ShaMismatch(mr.sha.clone()));
        }
        let merger = self.signature_of(user_id)?;
        let full_path = {
            let state = self.lock();
            state
                .projects
                .get(&project_id)
                .map(|p| state.project_full_path(p))
                .unwrap_or_default()
        };
        let message = options.message.unwrap_or_else(|| {
            format!(
                "Merge branch '{}' into '{}'\n\n{}\n\nSee merge request {full_path}!{}\n",
                mr.source_branch, mr.target_branch, mr.title, mr.iid
            )
        });
        let merge_sha = commits::commit_tree(
            &repo,
            &tree,
            &[&target_head, &mr.sha],
            &message,
            &merger,
            &merger,
        )
        .await
        .map_err(repo_error)?;
        commits::update_branch(&repo, &mr.target_branch, &merge_sha, Some(&target_head))
            .await
            .map_err(repo_error)?;
        let (merged, changes) = self.change_merge_request(project_id, iid, |mr, now| {
            let changes = vec![
                ("state_id", json!(1), json!(3)),
                (
                    "updated_at",
                    json!(payload::hook_time(mr.updated_at)),
                    json!(payload::hook_time(now)),
                ),
            ];
            mr.state = MrState::Merged;
            mr.merge_commit_sha = Some(merge_sha.clone());
            mr.merged_by = Some(user_id);
            mr.merged_at = Some(now);
            mr.updated_at = now;
            Ok(changes)
        })?;
        let update = RefUpdate {
            old: target_head,
            new: merge_sha,
            git_ref: format!("refs/heads/{}", mr.target_branch),
        };
        self.after_push(project_id, user_id, &[update]).await?;
        self.send_merge_request_hook(user_id, &merged, "merge", None, changes)
            .await?;
        let remove = options
            .remove_source_branch
            .unwrap_or(mr.force_remove_source_branch);
        if let (true, Some(head)) = (remove, source_head) {
            self.remove_source_branch(&merged, &head, user_id).await?;
        }
        Ok(merged)
    }

    /// Deletes a merged MR's source branch (with its Push Hook), unless it moved meanwhile.
    async fn remove_source_branch(
        &self,
        mr: &MergeRequest,
        head: &str,
        user_id: Id,
    ) -> Result<(), SetupError> {
        let source = mr.source_project();
        let repo = self.repo_path(source);
        if repo_browse::delete_branch(&repo, &mr.source_branch, head)
            .await
            .map_err(repo_error)?
        {
            let update = RefUpdate {
                old: head.to_owned(),
                new: ZERO_SHA.to_owned(),
                git_ref: format!("refs/heads/{}", mr.source_branch),
            };
            self.after_push(source, user_id, &[update]).await?;
        }
        Ok(())
    }
}
