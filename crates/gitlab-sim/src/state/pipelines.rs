//! Pipelines of external commit statuses as a merge request sees them: the head pipeline of a
//! commit and its composite status (GitLab's `Ci::HasStatus.composite_status`, for external
//! jobs that never allow failure).

use super::{CommitStatus, Id, JobStatus, Pipeline, State};

/// The newest pipeline of a commit and its latest job per name.
#[derive(Debug, Clone)]
pub struct HeadPipeline<'a> {
    pub pipeline: &'a Pipeline,
    /// Latest job per name (retried ones hidden), by name.
    pub jobs: Vec<&'a CommitStatus>,
    pub status: JobStatus,
}

/// Unfinished jobs make the pipeline unfinished; otherwise a failure fails it, then a
/// cancellation cancels it; all skipped is skipped.
fn composite(jobs: &[&CommitStatus]) -> JobStatus {
    let any = |s: JobStatus| jobs.iter().any(|j| j.status == s);
    if jobs.iter().all(|j| j.status == JobStatus::Skipped) {
        return JobStatus::Skipped;
    }
    [
        JobStatus::Running,
        JobStatus::Pending,
        JobStatus::Created,
        JobStatus::Failed,
        JobStatus::Canceled,
    ]
    .into_iter()
    .find(|s| any(*s))
    .unwrap_or(JobStatus::Success)
}

impl State {
    /// The head pipeline of `sha` in any of `project_ids` (a fork's MR may have pipelines in
    /// both projects): the newest one.
    pub fn head_pipeline(&self, project_ids: &[Id], sha: &str) -> Option<HeadPipeline<'_>> {
        let pipeline = self
            .pipelines
            .values()
            .filter(|p| project_ids.contains(&p.project_id) && p.sha == sha)
            .max_by_key(|p| p.id)?;
        let mut jobs: Vec<&CommitStatus> = Vec::new();
        for job in self
            .commit_statuses
            .values()
            .filter(|s| s.pipeline_id == pipeline.id)
        {
            match jobs.iter_mut().find(|j| j.name == job.name) {
                Some(existing) if existing.id < job.id => *existing = job,
                Some(_) => {}
                None => jobs.push(job),
            }
        }
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        let status = composite(&jobs);
        Some(HeadPipeline {
            pipeline,
            jobs,
            status,
        })
    }
}
