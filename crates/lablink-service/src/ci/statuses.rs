//! Commit statuses back to GitLab, from the durable outbox. Posted with the repository's project
//! access token, or, on GitLab plans without those, through the one Maintainer's account chosen
//! for the repository (never anybody else's: every update of a status name must come from the
//! same identity). 5xx, 429 (after `Retry-After`) and 409 are retried; "Cannot transition" for the
//! state GitLab already shows counts as done. A job's merge request note (one per merge request
//! and job, edited in place: the run's report of what changed) rides on the run's terminal
//! status: the delivery is only done once the note is posted too (or refused for good).

use lablink_core::report::Report;
use lablink_gitlab::GitLabError;
use lablink_gitlab::api::{Api, CommitState, CommitStatusRequest, StatusOutcome};
use lablink_store::runs::{CiRepository, Run};
use lablink_store::status_outbox::PendingStatus;

use super::report::REPORT_ARTIFACT;
use crate::{ServiceError, Services};

/// A status that keeps failing with retryable errors is given up after this many attempts.
const MAX_ATTEMPTS: i64 = 25;
const MAX_BACKOFF_MS: i64 = 60_000;

/// Why a status was not posted.
enum NotPosted {
    /// Try again later (after the given delay when GitLab said so).
    Retry {
        error: String,
        after_ms: Option<i64>,
    },
    /// Will never work; the run page says why.
    Skip(String),
    /// GitLab refused the repository's project access token itself: repair it, then retry.
    TokenRejected {
        repository_id: String,
        error: String,
    },
}

/// Statuses wait this long for a rejected project access token to be replaced.
const TOKEN_REPAIR_WAIT_MS: i64 = 30_000;

fn commit_state(state: &str) -> Option<CommitState> {
    Some(match state {
        "pending" => CommitState::Pending,
        "running" => CommitState::Running,
        "success" => CommitState::Success,
        "failed" => CommitState::Failed,
        "canceled" => CommitState::Canceled,
        "skipped" => CommitState::Skipped,
        _ => return None,
    })
}

fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 10)).unwrap_or(10);
    (250_i64 << exp).min(MAX_BACKOFF_MS)
}

impl Services {
    /// Posts one due status. `false` when none was due.
    pub async fn deliver_next_status(&self, worker: &str) -> Result<bool, ServiceError> {
        let Some(status) = self.db.claim_status(worker, 30_000).await? else {
            return Ok(false);
        };
        match self.post_status(&status).await {
            Ok(()) => self.db.status_sent(&status, worker).await?,
            Err(NotPosted::Skip(note)) => {
                self.db.set_run_status_note(&status.run_id, &note).await?;
                self.db.status_sent(&status, worker).await?;
            }
            Err(NotPosted::TokenRejected {
                repository_id,
                error,
            }) if status.attempts < MAX_ATTEMPTS => {
                self.repair_rejected_project_token(&repository_id).await?;
                let note = format!(
                    "{error} lablink is replacing the project access token through the \
                     connecting Maintainer's GitLab link; if this note stays, open the project's \
                     Check connection panel."
                );
                self.db.set_run_status_note(&status.run_id, &note).await?;
                let retry_at = lablink_store::now_ms() + TOKEN_REPAIR_WAIT_MS;
                self.db
                    .status_failed(&status, worker, &error, retry_at)
                    .await?;
            }
            Err(NotPosted::Retry { error, after_ms }) if status.attempts < MAX_ATTEMPTS => {
                let delay = after_ms.unwrap_or_else(|| backoff_ms(status.attempts));
                let retry_at = lablink_store::now_ms() + delay;
                self.db
                    .status_failed(&status, worker, &error, retry_at)
                    .await?;
            }
            Err(NotPosted::Retry { error, .. } | NotPosted::TokenRejected { error, .. }) => {
                let note = format!("GitLab kept refusing the commit status: {error}");
                self.db.set_run_status_note(&status.run_id, &note).await?;
                self.db.status_sent(&status, worker).await?;
            }
        }
        Ok(true)
    }

    #[tracing::instrument(name = "commit_status", skip_all, fields(run_id = %status.run_id))]
    async fn post_status(&self, status: &PendingStatus) -> Result<(), NotPosted> {
        let Some(run) = self
            .db
            .run(&status.run_id)
            .await
            .map_err(|e| internal(e.into()))?
        else {
            return Err(NotPosted::Skip("the run is gone".into()));
        };
        let repository = self
            .db
            .ci_repository(&self.keys, &run.repository_id)
            .await
            .map_err(|e| internal(e.into()))?
            .ok_or_else(|| NotPosted::Skip("the repository is gone".into()))?;
        let job = self
            .db
            .ci_job(&self.keys, run.ci_job_id)
            .await
            .map_err(|e| internal(e.into()))?
            .ok_or_else(|| NotPosted::Skip("the CI job is gone".into()))?;
        let state = commit_state(&status.wanted_state)
            .ok_or_else(|| NotPosted::Skip(format!("unknown state {}", status.wanted_state)))?;
        let (api, poster) = self.poster(&repository).await?;
        let name = lablink_core::names::commit_status_name(&job.input.name);
        let target_url = self.settings.public_link(&format!("/runs/{}", run.id));
        let outcome = api
            .set_commit_status(
                repository.gitlab_project_id,
                &CommitStatusRequest {
                    sha: &run.sha,
                    state,
                    name: &name,
                    ref_name: Some(&run.ref_name),
                    target_url: Some(&target_url),
                    description: Some(&status.description),
                    pipeline_id: None,
                },
            )
            .await
            .map_err(|e| not_posted(&e, &repository.id, poster))?;
        // Either way GitLab now shows `state`; "already in state" is also what a retry gets when
        // the answer to an earlier post was lost, so the note is due in both cases.
        let (StatusOutcome::Posted(_) | StatusOutcome::AlreadyInState) = outcome;
        let terminal = matches!(
            state,
            CommitState::Success
                | CommitState::Failed
                | CommitState::Canceled
                | CommitState::Skipped
        );
        if terminal
            && job.input.mr_note
            && let Some(iid) = run.mr_iid
        {
            let body = self
                .note_body(&run, &name, state, &status.description, &target_url)
                .await
                .map_err(internal)?;
            let note = NoteTarget {
                repository: &repository,
                poster,
                run_id: &run.id,
                ci_job_id: job.id,
                iid,
                // A skipped run only updates a note that is there: merge requests that touch
                // nothing the job watches get no note of their own.
                may_create: state != CommitState::Skipped,
            };
            self.post_mr_note(&api, &note, &body).await?;
        }
        Ok(())
    }

    /// The note: the run's report of what changed when it has one, else one line of its outcome.
    async fn note_body(
        &self,
        run: &Run,
        name: &str,
        state: CommitState,
        description: &str,
        target_url: &str,
    ) -> Result<String, ServiceError> {
        let title = format!(
            "{name}: {} for {} ({})",
            state.as_str(),
            &run.sha[..run.sha.len().min(8)],
            lablink_core::report::inline(description),
        );
        let report = self.db.run_artifact(&run.id, REPORT_ARTIFACT).await?;
        if let Some(report) = report.and_then(|r| serde_json::from_str::<Report>(&r).ok()) {
            return Ok(report.markdown(&title, target_url));
        }
        Ok(format!("**{title}**\n\n[Run in lablink]({target_url})\n"))
    }

    /// Keeps the job's one note on the merge request: edits the note it made before, else (or
    /// when that note was deleted) makes it; once per run. A retryable failure fails the whole
    /// delivery, which re-sends the (harmless) status and tries again; a refusal is written on
    /// the run page and does not hold up the status.
    async fn post_mr_note(
        &self,
        api: &Api,
        note: &NoteTarget<'_>,
        body: &str,
    ) -> Result<(), NotPosted> {
        let project = note.repository.gitlab_project_id;
        if self
            .db
            .mr_note_posted(note.run_id)
            .await
            .map_err(|e| internal(e.into()))?
        {
            return Ok(());
        }
        let known = self
            .db
            .mr_note_id(&note.repository.id, note.iid, note.ci_job_id)
            .await
            .map_err(|e| internal(e.into()))?;
        let edited = match known {
            Some(note_id) => match api
                .update_merge_request_note(project, note.iid, note_id, body)
                .await
            {
                Err(e) if e.is_not_found() => None,
                other => Some(other),
            },
            None => None,
        };
        let posted = match edited {
            Some(result) => result,
            None if note.may_create => api.create_merge_request_note(project, note.iid, body).await,
            None => return Ok(()),
        };
        match posted {
            // Recorded only after GitLab's answer, so a note is never lost. The price: if lablink
            // stops (or this write fails) between GitLab creating the note and this write, or
            // GitLab's answer is lost on the way, the retried delivery makes a second note. That
            // window is tiny and a duplicate note is acceptable; recording first would instead
            // lose the note for good whenever the post then failed.
            Ok(posted) => {
                self.db
                    .set_mr_note_id(&note.repository.id, note.iid, note.ci_job_id, posted.id)
                    .await
                    .map_err(|e| internal(e.into()))?;
                self.db
                    .set_mr_note_posted(note.run_id)
                    .await
                    .map_err(|e| internal(e.into()))
            }
            Err(e) => match not_posted(&e, &note.repository.id, note.poster) {
                NotPosted::Skip(_) => {
                    let text = format!("GitLab refused the merge request note: {e}");
                    self.db
                        .set_run_status_note(note.run_id, &text)
                        .await
                        .map_err(|e| internal(e.into()))
                }
                NotPosted::Retry { error, after_ms } => Err(NotPosted::Retry {
                    error: format!("could not post the merge request note: {error}"),
                    after_ms,
                }),
                token_rejected => Err(token_rejected),
            },
        }
    }
}

/// Whose GitLab identity posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poster {
    /// lablink's project access token (its bot user).
    ProjectToken,
    /// A Maintainer's linked account, chosen for a repository without project access tokens.
    Maintainer,
}

/// Where a run's note goes.
struct NoteTarget<'a> {
    repository: &'a CiRepository,
    poster: Poster,
    run_id: &'a str,
    ci_job_id: i64,
    iid: i64,
    may_create: bool,
}

impl Services {
    /// The API client statuses and notes of `repository` are posted with: the project access
    /// token's, or (without one) the chosen Maintainer's linked account; else why none.
    async fn poster(&self, repository: &CiRepository) -> Result<(Api, Poster), NotPosted> {
        if repository.status_reporting
            && let Some(token) = repository.project_token.clone()
        {
            let instance = self
                .gitlab_instance(&repository.gitlab_instance_url, None)
                .map_err(|e| NotPosted::Skip(e.to_string()))?;
            return Ok((Api::private_token(&instance, token), Poster::ProjectToken));
        }
        let Some(user_id) = &repository.post_as_user_id else {
            return Err(NotPosted::Skip(
                repository.status_warning.clone().unwrap_or_else(|| {
                    "This repository does not report CI status to GitLab.".into()
                }),
            ));
        };
        match self.user_gitlab_of(user_id).await {
            Ok(gitlab) => Ok((gitlab.api, Poster::Maintainer)),
            Err(ServiceError::GitLab(e)) if e.is_retryable() => Err(NotPosted::Retry {
                error: e.to_string(),
                after_ms: None,
            }),
            Err(e) => Err(NotPosted::Skip(format!(
                "Statuses are posted through a Maintainer's linked GitLab account, which cannot \
                 be used now: {e}"
            ))),
        }
    }
}

/// A failure on lablink's side (e.g. the database): try again later.
fn internal(e: ServiceError) -> NotPosted {
    NotPosted::Retry {
        error: e.to_string(),
        after_ms: None,
    }
}

fn not_posted(error: &GitLabError, repository_id: &str, poster: Poster) -> NotPosted {
    if error.token_problem().is_some() && poster == Poster::Maintainer {
        NotPosted::Skip(format!(
            "GitLab refused the linked account of the Maintainer statuses are posted as: \
             {error}. They can check it under Profile → Linked accounts."
        ))
    } else if error.token_problem().is_some() {
        NotPosted::TokenRejected {
            repository_id: repository_id.to_owned(),
            error: format!("GitLab refused lablink's project access token: {error}"),
        }
    } else if error.is_retryable() {
        NotPosted::Retry {
            error: error.to_string(),
            after_ms: error
                .retry_after()
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(MAX_BACKOFF_MS)),
        }
    } else {
        NotPosted::Skip(format!("GitLab refused the commit status: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_ms(0), 250);
        assert_eq!(backoff_ms(2), 1000);
        assert_eq!(backoff_ms(30), MAX_BACKOFF_MS);
    }

    #[test]
    fn every_run_status_maps_to_a_gitlab_state() {
        for state in lablink_core::run::RunState::ALL {
            assert!(commit_state(state.commit_status().as_str()).is_some());
        }
        assert!(commit_state("bogus").is_none());
    }
}
