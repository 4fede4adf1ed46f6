//! Which CI work a GitLab event causes: the rules of `PRODUCT.md` capability 5 and
//! `dbt-platform.md` §3–4 as pure functions over small input types of their own.
//!
//! The service maps a parsed webhook into [`MrEvent`] or [`PushEvent`], asks [`decide_mr`] or
//! [`decide_push`], carries out the [`Decision`]s and records every [`Decision::Nothing`] reason on
//! the delivery.

use std::fmt;

/// Id of a CI or merge job; it is part of the CI schema name (`names::ci_schema_name`).
pub type JobId = i64;

crate::text_enum! {
    /// What a CI job does with merge requests from forks (whose code anyone with a fork wrote).
    pub enum ForkPolicy ("fork policy") {
        /// Nothing runs until a Maintainer of the target project approves the commit in lablink;
        /// each new commit needs a new approval.
        Approval = "approval",
        /// Runs at once, without the job's secrets: `dbt parse` against no warehouse, without
        /// the job's variables.
        WithoutSecrets = "without_secrets",
    }
}

crate::text_enum! {
    /// What a run runs.
    pub enum RunMode ("run mode") {
        /// The job's commands, with its warehouse and variables.
        Full = "full",
        /// `dbt parse` only, with no warehouse and none of the job's variables (a fork's commit
        /// under [`ForkPolicy::WithoutSecrets`]).
        WithoutSecrets = "without_secrets",
    }
}

crate::text_enum! {
    /// What starts a job: a merge request (CI job) or a push to the default branch (merge job).
    pub enum JobKind ("job kind") {
        Ci = "ci",
        Merge = "merge",
    }
}

/// The part of a job's configuration that decides whether an event starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiJobSpec {
    pub id: JobId,
    pub name: String,
    pub target_branch_filter: BranchFilter,
    pub run_on_draft: bool,
    pub enabled: bool,
    pub kind: JobKind,
    pub forks: ForkPolicy,
}

/// A target-branch filter: a branch name, or a glob in which `*` stands for any run of characters
/// other than `/` and `?` for one such character (`release/*` matches `release/1.2`, not
/// `release/1/hotfix`), the way git and GitLab protected-branch patterns read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchFilter(String);

/// A target-branch filter that cannot match any branch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{filter}` is not a valid target-branch filter: {why}")]
pub struct InvalidBranchFilter {
    pub filter: String,
    pub why: &'static str,
}

impl BranchFilter {
    pub fn new(filter: &str) -> Result<Self, InvalidBranchFilter> {
        let invalid = |why| InvalidBranchFilter {
            filter: filter.to_owned(),
            why,
        };
        if filter.is_empty() {
            return Err(invalid("it is empty"));
        }
        if filter.len() > 255 {
            return Err(invalid("it is longer than 255 characters"));
        }
        if filter.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains whitespace or control characters"));
        }
        if filter.starts_with('/') || filter.ends_with('/') || filter.contains("//") {
            return Err(invalid("it has an empty path segment"));
        }
        Ok(Self(filter.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, branch: &str) -> bool {
        let pattern: Vec<char> = self.0.chars().collect();
        let branch: Vec<char> = branch.chars().collect();
        glob_matches(&pattern, &branch)
    }
}

impl fmt::Display for BranchFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Iterative wildcard matching with one backtracking point, linear in practice; `*` and `?`
/// never match `/`.
fn glob_matches(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Position after the last `*` and the text position it is currently assumed to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some('?') if text[t] != '/' => {
                p += 1;
                t += 1;
            }
            Some(&c) if c != '?' && c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character, unless that would cross a `/`.
                Some((after_star, covered)) if text[covered] != '/' => {
                    star = Some((after_star, covered + 1));
                    p = after_star;
                    t = covered + 1;
                }
                _ => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// The `object_attributes.action` of a merge request event, reduced to what the rules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MrAction {
    Open,
    Reopen,
    Update,
    Close,
    Merge,
    /// Approvals, unapprovals and anything GitLab adds later.
    Other,
}

/// A merge request event as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrEvent {
    pub action: MrAction,
    pub iid: i64,
    /// `object_attributes.last_commit.id`: the commit a run checks out.
    pub head_sha: String,
    /// Present only when the update brought new code (gitlab-api.md §3.7).
    pub oldrev: Option<String>,
    pub draft: bool,
    pub target_branch: String,
    pub source_branch: String,
    /// `changes.draft` went from true to false in this event.
    pub draft_changed_to_ready: bool,
    /// The source branch is in another project (a fork) than the target.
    pub from_fork: bool,
}

/// A push event as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// The ref as GitLab sends it: `refs/heads/<branch>` or `refs/tags/<tag>`.
    pub ref_name: String,
    pub before: String,
    pub after: String,
    pub is_default_branch: bool,
    pub is_tag: bool,
    pub is_deletion: bool,
}

/// One thing the service must do because of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Queue a run of `job_id` at `sha`. `branch` is the ref the commit status is posted for (the
    /// MR's source branch, or the pushed branch); `mr_iid` is absent for merge jobs.
    StartRun {
        job_id: JobId,
        sha: String,
        branch: String,
        mr_iid: Option<i64>,
        /// The merge request's target branch (what its changes are measured against).
        target_branch: Option<String>,
        mode: RunMode,
        /// A fork's commit: the run waits for a Maintainer's approval before it is queued.
        awaits_approval: bool,
    },
    /// Cancel every unfinished run of the merge request whose SHA is not `except_sha`.
    CancelOlderRuns { mr_iid: i64, except_sha: String },
    /// Cancel every unfinished run of the merge request and drop `lablink_pr_<job>_<mr_iid>` for
    /// each of `job_ids`: every CI job of the project, since the target branch (and with it the
    /// matching jobs) may have changed during the merge request's life.
    CancelAndDropSchema { mr_iid: i64, job_ids: Vec<JobId> },
    /// Nothing to do, and why.
    Nothing { reason: SkipReason },
}

/// Why an event (or one job for an event) causes nothing. `Display` is the sentence recorded on
/// the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    InvalidSha {
        sha: String,
    },
    MrActionIgnored,
    MrUpdateWithoutNewCommits,
    NoCiJobs,
    NoMergeJobs,
    JobDisabled {
        job: String,
    },
    TargetBranchNotMatched {
        job: String,
        branch: String,
        filter: String,
    },
    DraftNotAllowed {
        job: String,
    },
    AlreadyRan {
        job: String,
        sha: String,
    },
    TagPush,
    BranchDeletion,
    NotDefaultBranch {
        branch: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSha { sha } => write!(f, "`{sha}` is not a commit SHA"),
            Self::MrActionIgnored => {
                f.write_str("merge request action (approval or similar) starts nothing")
            }
            Self::MrUpdateWithoutNewCommits => {
                f.write_str("merge request update without new commits (no oldrev)")
            }
            Self::NoCiJobs => f.write_str("the project has no CI jobs"),
            Self::NoMergeJobs => f.write_str("the project has no merge jobs"),
            Self::JobDisabled { job } => write!(f, "job `{job}` is disabled"),
            Self::TargetBranchNotMatched {
                job,
                branch,
                filter,
            } => write!(
                f,
                "job `{job}`: branch `{branch}` does not match its filter `{filter}`"
            ),
            Self::DraftNotAllowed { job } => {
                write!(f, "job `{job}` does not run on draft merge requests")
            }
            Self::AlreadyRan { job, sha } => write!(f, "job `{job}` already ran for {sha}"),
            Self::TagPush => f.write_str("tag pushes start nothing"),
            Self::BranchDeletion => f.write_str("branch deletions start nothing"),
            Self::NotDefaultBranch { branch } => {
                write!(f, "push to `{branch}`, which is not the default branch")
            }
        }
    }
}

fn nothing(reason: SkipReason) -> Decision {
    Decision::Nothing { reason }
}

/// A full SHA-1 or SHA-256 object name in lower-case hex, as GitLab sends them.
fn is_commit_sha(sha: &str) -> bool {
    matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a merge request event causes. `already_ran(job_id, sha)` tells whether a run of that job
/// at that SHA exists already (the caller decides whether cancelled runs count).
pub fn decide_mr(
    event: &MrEvent,
    jobs: &[CiJobSpec],
    already_ran: impl Fn(JobId, &str) -> bool,
) -> Vec<Decision> {
    match event.action {
        MrAction::Close | MrAction::Merge => {
            return vec![Decision::CancelAndDropSchema {
                mr_iid: event.iid,
                job_ids: jobs
                    .iter()
                    .filter(|job| job.kind == JobKind::Ci)
                    .map(|job| job.id)
                    .collect(),
            }];
        }
        MrAction::Other => return vec![nothing(SkipReason::MrActionIgnored)],
        MrAction::Open | MrAction::Reopen | MrAction::Update => {}
    }
    if !is_commit_sha(&event.head_sha) {
        return vec![nothing(SkipReason::InvalidSha {
            sha: event.head_sha.clone(),
        })];
    }
    let new_commits = event.action == MrAction::Update && event.oldrev.is_some();
    let became_ready = event.draft_changed_to_ready && !event.draft;
    if event.action == MrAction::Update && !new_commits && !became_ready {
        return vec![nothing(SkipReason::MrUpdateWithoutNewCommits)];
    }

    let mut decisions = Vec::new();
    // The older runs are stale whether or not the new commit starts anything.
    if new_commits {
        decisions.push(Decision::CancelOlderRuns {
            mr_iid: event.iid,
            except_sha: event.head_sha.clone(),
        });
    }
    let trigger = Trigger {
        filtered_branch: &event.target_branch,
        draft: event.draft,
        sha: &event.head_sha,
        status_branch: &event.source_branch,
        mr_iid: Some(event.iid),
        from_fork: event.from_fork,
    };
    let candidates = jobs.iter().filter(|job| job.kind == JobKind::Ci);
    decisions.extend(trigger.start_or_skip(candidates, &already_ran, SkipReason::NoCiJobs));
    decisions
}

/// What a push event causes: merge jobs on a push of new commits to the default branch.
pub fn decide_push(
    event: &PushEvent,
    jobs: &[CiJobSpec],
    already_ran: impl Fn(JobId, &str) -> bool,
) -> Vec<Decision> {
    if event.is_tag {
        return vec![nothing(SkipReason::TagPush)];
    }
    if event.is_deletion {
        return vec![nothing(SkipReason::BranchDeletion)];
    }
    let branch = event
        .ref_name
        .strip_prefix("refs/heads/")
        .unwrap_or(&event.ref_name);
    if !event.is_default_branch {
        return vec![nothing(SkipReason::NotDefaultBranch {
            branch: branch.to_owned(),
        })];
    }
    if !is_commit_sha(&event.after) {
        return vec![nothing(SkipReason::InvalidSha {
            sha: event.after.clone(),
        })];
    }
    let trigger = Trigger {
        filtered_branch: branch,
        draft: false,
        sha: &event.after,
        status_branch: branch,
        mr_iid: None,
        from_fork: false,
    };
    let candidates = jobs.iter().filter(|job| job.kind == JobKind::Merge);
    trigger.start_or_skip(candidates, &already_ran, SkipReason::NoMergeJobs)
}

/// What an event offers to the jobs it may start.
struct Trigger<'e> {
    /// The branch job filters are matched against (an MR's target, a push's branch).
    filtered_branch: &'e str,
    draft: bool,
    sha: &'e str,
    status_branch: &'e str,
    mr_iid: Option<i64>,
    from_fork: bool,
}

impl Trigger<'_> {
    /// One decision per candidate job: a run, or the reason it does not run; `when_none` if there
    /// is no candidate at all.
    fn start_or_skip<'j>(
        &self,
        candidates: impl Iterator<Item = &'j CiJobSpec>,
        already_ran: &impl Fn(JobId, &str) -> bool,
        when_none: SkipReason,
    ) -> Vec<Decision> {
        let decisions: Vec<Decision> = candidates
            .map(|job| {
                let job_name = || job.name.clone();
                if !job.enabled {
                    nothing(SkipReason::JobDisabled { job: job_name() })
                } else if !job.target_branch_filter.matches(self.filtered_branch) {
                    nothing(SkipReason::TargetBranchNotMatched {
                        job: job_name(),
                        branch: self.filtered_branch.to_owned(),
                        filter: job.target_branch_filter.to_string(),
                    })
                } else if self.draft && !job.run_on_draft {
                    nothing(SkipReason::DraftNotAllowed { job: job_name() })
                } else if already_ran(job.id, self.sha) {
                    nothing(SkipReason::AlreadyRan {
                        job: job_name(),
                        sha: self.sha.to_owned(),
                    })
                } else {
                    // A fork's code never runs with the job's secrets unless a Maintainer says so.
                    let (mode, awaits_approval) = match (self.from_fork, job.forks) {
                        (false, _) => (RunMode::Full, false),
                        (true, ForkPolicy::Approval) => (RunMode::Full, true),
                        (true, ForkPolicy::WithoutSecrets) => (RunMode::WithoutSecrets, false),
                    };
                    Decision::StartRun {
                        job_id: job.id,
                        sha: self.sha.to_owned(),
                        branch: self.status_branch.to_owned(),
                        mr_iid: self.mr_iid,
                        target_branch: self.mr_iid.map(|_| self.filtered_branch.to_owned()),
                        mode,
                        awaits_approval,
                    }
                }
            })
            .collect();
        if decisions.is_empty() {
            vec![nothing(when_none)]
        } else {
            decisions
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn job(id: JobId, filter: &str, kind: JobKind) -> CiJobSpec {
        CiJobSpec {
            id,
            name: format!("job {id}"),
            target_branch_filter: BranchFilter::new(filter).unwrap(),
            run_on_draft: false,
            enabled: true,
            kind,
            forks: ForkPolicy::Approval,
        }
    }

    fn ci(id: JobId) -> CiJobSpec {
        job(id, "main", JobKind::Ci)
    }

    fn mr(action: MrAction) -> MrEvent {
        MrEvent {
            action,
            iid: 7,
            head_sha: SHA_B.into(),
            oldrev: None,
            draft: false,
            target_branch: "main".into(),
            source_branch: "feature".into(),
            draft_changed_to_ready: false,
            from_fork: false,
        }
    }

    fn start(job_id: JobId) -> Decision {
        Decision::StartRun {
            job_id,
            sha: SHA_B.into(),
            branch: "feature".into(),
            mr_iid: Some(7),
            target_branch: Some("main".into()),
            mode: RunMode::Full,
            awaits_approval: false,
        }
    }

    fn skip(reason: SkipReason) -> Decision {
        Decision::Nothing { reason }
    }

    fn never_ran(_: JobId, _: &str) -> bool {
        false
    }

    #[test]
    fn branch_filters_match_exact_names_and_globs() {
        let cases = [
            ("main", "main", true),
            ("main", "main2", false),
            ("main", "mai", false),
            ("release/*", "release/1.2", true),
            ("release/*", "release/", true),
            ("release/*", "release/1/hotfix", false),
            ("release/*", "releases/1", false),
            ("release-?", "release-1", true),
            ("release-?", "release-12", false),
            ("*", "feature", true),
            ("*", "feature/x", false),
            ("*/*", "feature/x", true),
            ("*-stable", "15-0-stable", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("a*/b", "ax/y/b", false),
            ("?", "/", false),
        ];
        for (filter, branch, expected) in cases {
            let f = BranchFilter::new(filter).unwrap();
            assert_eq!(f.matches(branch), expected, "{filter} vs {branch}");
        }
    }

    #[test]
    fn invalid_branch_filters_are_rejected_with_a_reason() {
        for (filter, why) in [
            ("", "it is empty"),
            (
                "main branch",
                "it contains whitespace or control characters",
            ),
            ("release/", "it has an empty path segment"),
            ("/main", "it has an empty path segment"),
            ("a//b", "it has an empty path segment"),
        ] {
            let err = BranchFilter::new(filter).unwrap_err();
            assert_eq!(err.why, why, "{filter:?}");
        }
        assert!(BranchFilter::new(&"x".repeat(256)).is_err());
    }

    #[test]
    fn open_reopen_and_update_with_new_commits_start_matching_jobs() {
        let jobs = [
            ci(1),
            ci(2),
            job(3, "release/*", JobKind::Ci),
            job(4, "main", JobKind::Merge),
        ];
        let not_matched = skip(SkipReason::TargetBranchNotMatched {
            job: "job 3".into(),
            branch: "main".into(),
            filter: "release/*".into(),
        });
        for action in [MrAction::Open, MrAction::Reopen] {
            assert_eq!(
                decide_mr(&mr(action), &jobs, never_ran),
                [start(1), start(2), not_matched.clone()],
                "{action:?}"
            );
        }
        let update = MrEvent {
            oldrev: Some(SHA_A.into()),
            ..mr(MrAction::Update)
        };
        assert_eq!(
            decide_mr(&update, &jobs, never_ran),
            [
                Decision::CancelOlderRuns {
                    mr_iid: 7,
                    except_sha: SHA_B.into()
                },
                start(1),
                start(2),
                not_matched
            ]
        );
    }

    #[test]
    fn updates_without_new_commits_and_other_actions_do_nothing() {
        let jobs = [ci(1)];
        assert_eq!(
            decide_mr(&mr(MrAction::Update), &jobs, never_ran),
            [skip(SkipReason::MrUpdateWithoutNewCommits)]
        );
        assert_eq!(
            decide_mr(&mr(MrAction::Other), &jobs, never_ran),
            [skip(SkipReason::MrActionIgnored)]
        );
    }

    #[test]
    fn drafts_run_only_jobs_that_allow_drafts() {
        let mut on_drafts = ci(2);
        on_drafts.run_on_draft = true;
        let jobs = [ci(1), on_drafts];
        let draft = MrEvent {
            draft: true,
            ..mr(MrAction::Open)
        };
        assert_eq!(
            decide_mr(&draft, &jobs, never_ran),
            [
                skip(SkipReason::DraftNotAllowed {
                    job: "job 1".into()
                }),
                start(2)
            ]
        );
    }

    #[test]
    fn draft_to_ready_runs_the_sha_only_where_it_has_not_run() {
        let jobs = [ci(1), ci(2)];
        let ready = MrEvent {
            draft_changed_to_ready: true,
            ..mr(MrAction::Update)
        };
        let ran_for_job_2 = |job: JobId, sha: &str| job == 2 && sha == SHA_B;
        assert_eq!(
            decide_mr(&ready, &jobs, ran_for_job_2),
            [
                start(1),
                skip(SkipReason::AlreadyRan {
                    job: "job 2".into(),
                    sha: SHA_B.into()
                })
            ]
        );
        // A contradictory event (draft flag still set) starts nothing.
        let still_draft = MrEvent {
            draft: true,
            ..ready
        };
        assert_eq!(
            decide_mr(&still_draft, &jobs, never_ran),
            [skip(SkipReason::MrUpdateWithoutNewCommits)]
        );
    }

    #[test]
    fn a_sha_that_already_ran_is_not_run_again() {
        let ran = |_: JobId, sha: &str| sha == SHA_B;
        assert_eq!(
            decide_mr(&mr(MrAction::Reopen), &[ci(1)], ran),
            [skip(SkipReason::AlreadyRan {
                job: "job 1".into(),
                sha: SHA_B.into()
            })]
        );
    }

    #[test]
    fn a_new_commit_cancels_older_runs_even_when_nothing_new_starts() {
        let draft_update = MrEvent {
            draft: true,
            oldrev: Some(SHA_A.into()),
            ..mr(MrAction::Update)
        };
        assert_eq!(
            decide_mr(&draft_update, &[ci(1)], never_ran),
            [
                Decision::CancelOlderRuns {
                    mr_iid: 7,
                    except_sha: SHA_B.into()
                },
                skip(SkipReason::DraftNotAllowed {
                    job: "job 1".into()
                })
            ]
        );
    }

    #[test]
    fn close_and_merge_cancel_runs_and_drop_every_ci_schema() {
        let mut disabled = job(2, "release/*", JobKind::Ci);
        disabled.enabled = false;
        let jobs = [ci(1), disabled, job(3, "main", JobKind::Merge)];
        for action in [MrAction::Close, MrAction::Merge] {
            assert_eq!(
                decide_mr(&mr(action), &jobs, never_ran),
                [Decision::CancelAndDropSchema {
                    mr_iid: 7,
                    job_ids: vec![1, 2]
                }]
            );
        }
    }

    #[test]
    fn disabled_jobs_and_missing_jobs_say_so() {
        let mut disabled = ci(1);
        disabled.enabled = false;
        assert_eq!(
            decide_mr(&mr(MrAction::Open), &[disabled], never_ran),
            [skip(SkipReason::JobDisabled {
                job: "job 1".into()
            })]
        );
        assert_eq!(
            decide_mr(
                &mr(MrAction::Open),
                &[job(1, "main", JobKind::Merge)],
                never_ran
            ),
            [skip(SkipReason::NoCiJobs)]
        );
    }

    #[test]
    fn a_malformed_head_sha_starts_nothing() {
        for sha in [
            "",
            "main",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &SHA_A[1..],
        ] {
            let event = MrEvent {
                head_sha: sha.into(),
                ..mr(MrAction::Open)
            };
            assert_eq!(
                decide_mr(&event, &[ci(1)], never_ran),
                [skip(SkipReason::InvalidSha { sha: sha.into() })]
            );
        }
    }

    fn push(ref_name: &str) -> PushEvent {
        PushEvent {
            ref_name: ref_name.into(),
            before: SHA_A.into(),
            after: SHA_B.into(),
            is_default_branch: true,
            is_tag: false,
            is_deletion: false,
        }
    }

    #[test]
    fn a_fork_never_runs_with_the_jobs_secrets_unless_approved() {
        let mut event = mr(MrAction::Open);
        event.from_fork = true;
        let mut parse_only = ci(2);
        parse_only.forks = ForkPolicy::WithoutSecrets;
        let decisions = decide_mr(&event, &[ci(1), parse_only], never_ran);
        let starts: Vec<_> = decisions
            .iter()
            .map(|d| match d {
                Decision::StartRun {
                    job_id,
                    mode,
                    awaits_approval,
                    ..
                } => (*job_id, *mode, *awaits_approval),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            starts,
            [
                (1, RunMode::Full, true),
                (2, RunMode::WithoutSecrets, false)
            ]
        );
        // The same project: everything as usual.
        assert_eq!(
            decide_mr(&mr(MrAction::Open), &[ci(1)], never_ran),
            [start(1)]
        );
    }

    #[test]
    fn a_push_to_the_default_branch_starts_merge_jobs() {
        let jobs = [
            ci(1),
            job(2, "main", JobKind::Merge),
            job(3, "*", JobKind::Merge),
        ];
        let merge_run = |job_id| Decision::StartRun {
            job_id,
            sha: SHA_B.into(),
            branch: "main".into(),
            mr_iid: None,
            target_branch: None,
            mode: RunMode::Full,
            awaits_approval: false,
        };
        assert_eq!(
            decide_push(&push("refs/heads/main"), &jobs, never_ran),
            [merge_run(2), merge_run(3)]
        );
        let ran = |job: JobId, _: &str| job == 2;
        assert_eq!(
            decide_push(&push("refs/heads/main"), &jobs, ran),
            [
                skip(SkipReason::AlreadyRan {
                    job: "job 2".into(),
                    sha: SHA_B.into()
                }),
                merge_run(3)
            ]
        );
        assert_eq!(
            decide_push(&push("refs/heads/main"), &[ci(1)], never_ran),
            [skip(SkipReason::NoMergeJobs)]
        );
    }

    #[test]
    fn tags_deletions_and_other_branches_start_nothing() {
        let jobs = [job(2, "*", JobKind::Merge)];
        let tag = PushEvent {
            is_tag: true,
            ..push("refs/tags/v1")
        };
        assert_eq!(
            decide_push(&tag, &jobs, never_ran),
            [skip(SkipReason::TagPush)]
        );
        let deletion = PushEvent {
            is_deletion: true,
            after: "0".repeat(40),
            ..push("refs/heads/main")
        };
        assert_eq!(
            decide_push(&deletion, &jobs, never_ran),
            [skip(SkipReason::BranchDeletion)]
        );
        let feature = PushEvent {
            is_default_branch: false,
            ..push("refs/heads/feature")
        };
        assert_eq!(
            decide_push(&feature, &jobs, never_ran),
            [skip(SkipReason::NotDefaultBranch {
                branch: "feature".into()
            })]
        );
    }

    #[test]
    fn skip_reasons_read_as_plain_sentences() {
        let cases = [
            (
                SkipReason::MrUpdateWithoutNewCommits,
                "merge request update without new commits (no oldrev)",
            ),
            (
                SkipReason::DraftNotAllowed { job: "CI".into() },
                "job `CI` does not run on draft merge requests",
            ),
            (
                SkipReason::TargetBranchNotMatched {
                    job: "CI".into(),
                    branch: "dev".into(),
                    filter: "main".into(),
                },
                "job `CI`: branch `dev` does not match its filter `main`",
            ),
            (SkipReason::BranchDeletion, "branch deletions start nothing"),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }

    fn action() -> impl Strategy<Value = MrAction> {
        prop_oneof![
            Just(MrAction::Open),
            Just(MrAction::Reopen),
            Just(MrAction::Update),
            Just(MrAction::Close),
            Just(MrAction::Merge),
            Just(MrAction::Other),
        ]
    }

    /// Events of one merge request over a few SHAs, with every flag random unless `draft_only`.
    fn mr_events(draft_only: bool) -> impl Strategy<Value = Vec<MrEvent>> {
        let event = (
            action(),
            0..3usize,
            proptest::option::of(0..3usize),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just("main"), Just("release/1"), Just("dev")],
        )
            .prop_map(move |(action, head, old, draft, ready, target)| {
                let sha = |i: usize| format!("{i}").repeat(40);
                MrEvent {
                    action,
                    iid: 1,
                    head_sha: sha(head),
                    oldrev: old.map(sha),
                    draft: draft_only || draft,
                    target_branch: target.into(),
                    source_branch: "feature".into(),
                    draft_changed_to_ready: ready,
                    from_fork: false,
                }
            });
        proptest::collection::vec(event, 0..40)
    }

    fn jobs(allow_drafts: bool) -> impl Strategy<Value = Vec<CiJobSpec>> {
        proptest::collection::vec(
            (
                prop_oneof![Just("main"), Just("release/*"), Just("*")],
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            ),
            0..4,
        )
        .prop_map(move |specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (filter, drafts, enabled, merge))| CiJobSpec {
                    id: i as JobId + 1,
                    name: format!("job {i}"),
                    target_branch_filter: BranchFilter::new(filter).unwrap(),
                    run_on_draft: allow_drafts && drafts,
                    enabled,
                    kind: if merge { JobKind::Merge } else { JobKind::Ci },
                    forks: ForkPolicy::Approval,
                })
                .collect()
        })
    }

    /// Feeds `events` through `decide_mr` the way the service does, remembering started runs.
    fn started_runs(events: &[MrEvent], jobs: &[CiJobSpec]) -> Vec<(JobId, String)> {
        let mut started = Vec::new();
        let mut seen = HashSet::new();
        for event in events {
            let decisions = decide_mr(event, jobs, |job, sha| {
                seen.contains(&(job, sha.to_owned()))
            });
            for decision in decisions {
                if let Decision::StartRun { job_id, sha, .. } = decision {
                    seen.insert((job_id, sha.clone()));
                    started.push((job_id, sha));
                }
            }
        }
        started
    }

    proptest! {
        #[test]
        fn a_draft_only_mr_never_runs_when_no_job_allows_drafts(
            events in mr_events(true),
            jobs in jobs(false),
        ) {
            prop_assert!(started_runs(&events, &jobs).is_empty());
        }

        #[test]
        fn no_job_runs_twice_for_the_same_sha(
            events in mr_events(false),
            jobs in jobs(true),
        ) {
            let started = started_runs(&events, &jobs);
            let unique: HashSet<_> = started.iter().collect();
            prop_assert_eq!(unique.len(), started.len());
        }
    }
}
