//! Processing a stored delivery: parse it, map it to the domain's events, let
//! [`lablink_core::ci`] decide, and apply the decisions (create runs, cancel superseded ones,
//! schedule schema cleanup). Safe to run twice: runs are unique per (job, commit), cancelling is
//! idempotent and dropping a schema that is gone succeeds.

use std::collections::HashMap;

use lablink_core::ci::{Decision, MrAction, MrEvent, PushEvent, RunMode, decide_mr, decide_push};
use lablink_core::run::{CancelReason, RunEvent, RunState};
use lablink_gitlab::webhook::{self, Event, MergeRequestAction, Parsed};
use lablink_store::ci_jobs::CiJob;
use lablink_store::deliveries::DeliveryOutcome;
use lablink_store::queue::Task;
use lablink_store::runs::{CiRepository, Holder, NewRun, Trigger};

use super::executor::encode_cancel;
use super::jobs::job_spec;
use crate::{ServiceError, Services};

pub(crate) const DROP_SCHEMA_ATTEMPTS: i64 = 5;
/// The state of a fork's run until a Maintainer approves it; also its commit status description.
pub const AWAITING_APPROVAL: &str = "from a fork: waiting for a Maintainer's approval in lablink";
/// Most deliveries handled per claim: one claim and one commit of outcomes for the batch.
const DELIVERY_BATCH: i64 = 32;
/// A batch handles in milliseconds (no GitLab calls); the lease only matters after a crash.
const DELIVERY_LEASE_MS: i64 = 60_000;

/// What handling a batch of deliveries reads once per repository rather than once per delivery
/// (a burst is many deliveries of one repository); `None` for a repository that is gone.
#[derive(Default)]
struct BatchContext {
    repositories: HashMap<String, Option<(CiRepository, Vec<CiJob>)>>,
}

/// What a delivery turned into, for the delivery's note.
enum Domain {
    Mr(MrEvent),
    Push(PushEvent),
}

fn mr_action(action: &MergeRequestAction) -> MrAction {
    match action {
        MergeRequestAction::Open => MrAction::Open,
        MergeRequestAction::Reopen => MrAction::Reopen,
        MergeRequestAction::Update => MrAction::Update,
        MergeRequestAction::Close => MrAction::Close,
        MergeRequestAction::Merge => MrAction::Merge,
        _ => MrAction::Other,
    }
}

fn to_domain(event: Event, repository: &CiRepository) -> Result<Domain, String> {
    match event {
        Event::MergeRequest(mr) => {
            if mr.target_project_id != repository.gitlab_project_id {
                return Err(format!(
                    "merge request of project {}, not of this repository's project {}",
                    mr.target_project_id, repository.gitlab_project_id
                ));
            }
            Ok(Domain::Mr(MrEvent {
                action: mr_action(&mr.action),
                iid: mr.iid,
                draft_changed_to_ready: mr.became_ready(),
                head_sha: mr.head_sha,
                oldrev: mr.oldrev,
                draft: mr.draft,
                target_branch: mr.target_branch,
                source_branch: mr.source_branch,
                from_fork: mr.source_project_id != mr.target_project_id,
            }))
        }
        Event::Push(push) => Ok(Domain::Push(PushEvent {
            is_default_branch: push.branch() == Some(repository.default_branch.as_str()),
            is_deletion: push.is_deletion(),
            is_tag: false,
            ref_name: push.ref_name,
            before: push.before,
            after: push.after,
        })),
        Event::TagPush(_) => Err("tag pushes start nothing".into()),
        Event::Note(_) => Err("comments start nothing".into()),
    }
}

impl Services {
    /// Claims a batch of received deliveries and handles them in the order they arrived;
    /// `false` when there was none, or while intake on this replica is saturated
    /// ([`super::wake::IntakePressure`]). The outcomes are recorded in one transaction; a delivery whose
    /// handling failed is retried with backoff. Handling twice is harmless (see the module doc),
    /// so a crash between handling and recording only repeats work.
    pub async fn process_next_deliveries(&self, worker: &str) -> Result<bool, ServiceError> {
        if self.wake.intake.hold_back() {
            return Ok(false);
        }
        let batch = self
            .db
            .claim_deliveries(worker, DELIVERY_LEASE_MS, DELIVERY_BATCH)
            .await?;
        if batch.is_empty() {
            return Ok(false);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut context = BatchContext::default();
        for delivery in &batch {
            match self.handle_delivery(delivery, &mut context).await {
                Ok(outcome) => outcomes.push((delivery.id.clone(), outcome)),
                Err(e) => {
                    let retry_ms = 1000 * (1_i64 << delivery.attempts.clamp(0, 8));
                    tracing::warn!(delivery = %delivery.id, error = %e, "delivery failed");
                    self.db
                        .retry_delivery(&delivery.id, worker, &e.to_string(), retry_ms)
                        .await?;
                }
            }
        }
        self.db.finish_deliveries(worker, &outcomes).await?;
        self.wake.runs.notify_one();
        Ok(true)
    }

    #[tracing::instrument(
        name = "delivery",
        skip_all,
        fields(delivery_id = %delivery.id, repository_id = %delivery.repository_id)
    )]
    async fn handle_delivery(
        &self,
        delivery: &lablink_store::deliveries::Delivery,
        context: &mut BatchContext,
    ) -> Result<DeliveryOutcome, ServiceError> {
        let Some((repository, jobs)) = self.repository_and_jobs(context, delivery).await? else {
            return Ok(DeliveryOutcome::Ignored(
                "the repository no longer exists".into(),
            ));
        };
        let event = match webhook::parse(delivery.event.as_deref(), &delivery.body) {
            Parsed::Event(event) => event,
            Parsed::Ignored { reason } => return Ok(DeliveryOutcome::Ignored(reason)),
        };
        let domain = match to_domain(event, repository) {
            Ok(domain) => domain,
            Err(reason) => return Ok(DeliveryOutcome::Ignored(reason)),
        };
        let notes = self
            .decide_and_apply(repository, jobs, domain, Trigger::Webhook)
            .await?;
        Ok(DeliveryOutcome::Processed(notes.join("; ")))
    }

    /// The delivery's repository and its CI jobs, read once per batch.
    async fn repository_and_jobs<'c>(
        &self,
        context: &'c mut BatchContext,
        delivery: &lablink_store::deliveries::Delivery,
    ) -> Result<Option<&'c (CiRepository, Vec<CiJob>)>, ServiceError> {
        let id = &delivery.repository_id;
        if !context.repositories.contains_key(id) {
            let loaded = match self.db.ci_repository(&self.keys, id).await? {
                Some(repository) => {
                    let jobs = self
                        .db
                        .ci_jobs_of_project(&self.keys, &repository.project_id)
                        .await?;
                    Some((repository, jobs))
                }
                None => None,
            };
            context.repositories.insert(id.clone(), loaded);
        }
        Ok(context.repositories[id].as_ref())
    }

    /// Runs the domain's decision for an event and applies it; returns what happened, one
    /// sentence per decision.
    async fn decide_and_apply(
        &self,
        repository: &CiRepository,
        jobs: &[CiJob],
        event: Domain,
        triggered_by: Trigger,
    ) -> Result<Vec<String>, ServiceError> {
        let default_filter = repository
            .project_target_branch
            .clone()
            .unwrap_or_else(|| repository.default_branch.clone());
        let specs = jobs
            .iter()
            .map(|job| job_spec(job, &default_filter))
            .collect::<Result<Vec<_>, _>>()?;
        let sha = match &event {
            Domain::Mr(mr) => mr.head_sha.clone(),
            Domain::Push(push) => push.after.clone(),
        };
        // The domain asks synchronously; the few (job, sha) pairs are looked up beforehand.
        let mut ran = Vec::new();
        for spec in &specs {
            if self.db.run_exists(spec.id, &sha).await? {
                ran.push(spec.id);
            }
        }
        let already_ran = |job: i64, s: &str| s == sha && ran.contains(&job);
        let decisions = match &event {
            Domain::Mr(mr) => decide_mr(mr, &specs, already_ran),
            Domain::Push(push) => decide_push(push, &specs, already_ran),
        };
        let mut notes = Vec::new();
        for decision in decisions {
            notes.push(self.apply(repository, decision, triggered_by).await?);
        }
        Ok(notes)
    }

    async fn apply(
        &self,
        repository: &CiRepository,
        decision: Decision,
        triggered_by: Trigger,
    ) -> Result<String, ServiceError> {
        Ok(match decision {
            Decision::StartRun {
                job_id,
                sha,
                branch,
                mr_iid,
                target_branch,
                mode,
                awaits_approval,
            } => {
                let created = self
                    .db
                    .create_run(&NewRun {
                        ci_job_id: job_id,
                        account_id: &repository.account_id,
                        project_id: &repository.project_id,
                        repository_id: &repository.id,
                        sha: &sha,
                        ref_name: &branch,
                        mr_iid,
                        triggered_by,
                        reason: if awaits_approval {
                            AWAITING_APPROVAL
                        } else {
                            "queued"
                        },
                        mode,
                        awaits_approval,
                        target_branch: target_branch.as_deref(),
                    })
                    .await?;
                match created {
                    Some(run_id) => {
                        // Its `pending` status is committed with it: post it now, before the run
                        // loops (woken when the batch is done) move the run on to `running`.
                        self.wake.statuses.notify_one();
                        let how = match (awaits_approval, mode) {
                            (true, _) => "from a fork, waiting for approval",
                            (false, RunMode::WithoutSecrets) => {
                                "from a fork, queued without secrets"
                            }
                            (false, RunMode::Full) => "queued",
                        };
                        format!("job {job_id}: run {run_id} {how} for {sha}")
                    }
                    None => format!("job {job_id} already has a run for {sha}"),
                }
            }
            Decision::CancelOlderRuns { mr_iid, except_sha } => {
                let reason = CancelReason::SupersededBy {
                    sha: except_sha.clone(),
                };
                let n = self
                    .cancel_mr_runs(repository, mr_iid, Some(&except_sha), reason)
                    .await?;
                format!("{n} older run(s) of !{mr_iid} cancelled")
            }
            Decision::CancelAndDropSchema { mr_iid, job_ids } => {
                let n = self
                    .cancel_mr_runs(repository, mr_iid, None, CancelReason::MergeRequestClosed)
                    .await?;
                self.db
                    .mark_mr_schemas_closed(&repository.id, mr_iid)
                    .await?;
                for job_id in &job_ids {
                    let task = Task::DropCiSchema {
                        ci_job_id: *job_id,
                        mr_iid,
                    };
                    self.enqueue(task, DROP_SCHEMA_ATTEMPTS).await?;
                }
                format!(
                    "{n} run(s) of !{mr_iid} cancelled; {} schema(s) to drop",
                    job_ids.len()
                )
            }
            Decision::Nothing { reason } => reason.to_string(),
        })
    }

    /// Cancels the merge request's active runs (except at `except_sha`): queued ones at once,
    /// running ones by asking their executor, wherever it runs.
    async fn cancel_mr_runs(
        &self,
        repository: &CiRepository,
        mr_iid: i64,
        except_sha: Option<&str>,
        reason: CancelReason,
    ) -> Result<usize, ServiceError> {
        let runs = self
            .db
            .active_mr_runs(&repository.id, mr_iid, except_sha)
            .await?;
        for run in &runs {
            self.cancel_run_now(&run.id, run.state, &reason).await?;
        }
        Ok(runs.len())
    }

    /// Cancels one active run: a waiting one (for a worker or an approval) ends here, since
    /// nobody holds it; a running one by asking its executor, wherever it runs.
    pub(crate) async fn cancel_run_now(
        &self,
        run_id: &str,
        state: RunState,
        reason: &CancelReason,
    ) -> Result<(), ServiceError> {
        let waiting = matches!(state, RunState::Queued | RunState::AwaitingApproval);
        let event = RunEvent::Cancelled(reason.clone());
        let cancelled_while_queued = waiting
            && self
                .apply_run_event(run_id, state, Holder::Anyone, &event)
                .await?;
        if !cancelled_while_queued {
            self.db
                .request_run_cancel(run_id, &encode_cancel(reason))
                .await?;
        }
        Ok(())
    }

    /// Starts what a lost webhook missed for an open merge request (reconciliation): the same
    /// decisions as for an `open` event, so runs are unique per (job, commit) as always.
    pub(crate) async fn reconcile_merge_request(
        &self,
        repository: &CiRepository,
        mr: MrEvent,
    ) -> Result<Vec<String>, ServiceError> {
        let iid = mr.iid;
        let sha = mr.head_sha.clone();
        let jobs = self
            .db
            .ci_jobs_of_project(&self.keys, &repository.project_id)
            .await?;
        let mut notes = self
            .decide_and_apply(repository, &jobs, Domain::Mr(mr), Trigger::Reconciliation)
            .await?;
        // A missed push to the MR also means the older runs are superseded.
        let reason = CancelReason::SupersededBy { sha: sha.clone() };
        let n = self
            .cancel_mr_runs(repository, iid, Some(&sha), reason)
            .await?;
        if n > 0 {
            notes.push(format!("{n} older run(s) of !{iid} cancelled"));
        }
        Ok(notes)
    }
}
