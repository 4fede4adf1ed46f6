//! The worktrees runs check out into, below `<work_dir>/worktrees`:
//! - `job-<ci_job_id>-<n>`: a CI job's worktrees. A run claims one no other run holds (normally
//!   the one the job's previous run used, then updated in place, which is much cheaper than a
//!   new checkout); concurrent runs of one job get one each.
//! - `spare-<repository_id>`: one idle worktree per repository, made in the background after a
//!   run had to make a new worktree. The next run that would need a new worktree (a new job, or
//!   a second run of a job at the same time) moves the spare into its own slot and updates it in
//!   place instead of writing every file of the repository while the run waits.
//!
//! Both are this replica's local copies, rebuilt whenever they are missing or broken; the
//! reconciliation loop deletes those of deleted jobs and disconnected repositories.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use lablink_exec::{DirClaim, ExecError, Remote, WorktreeState};
use tokio_util::sync::CancellationToken;

use super::executor::CiRuntime;

const JOB_PREFIX: &str = "job-";

/// Why a run's commit could not be checked out.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("fetching {sha}: {source}")]
    Fetch { sha: String, source: ExecError },
    #[error("checking out {sha}: {source}")]
    Checkout { sha: String, source: ExecError },
}
const SPARE_PREFIX: &str = "spare-";

impl CiRuntime {
    fn worktrees_dir(&self) -> PathBuf {
        self.work_dir.join("worktrees")
    }

    fn cache_dir(&self, repository_id: &str) -> PathBuf {
        self.work_dir
            .join("caches")
            .join(format!("{repository_id}.git"))
    }

    /// The worktree for a run of CI job `ci_job_id`: one that no other run holds until the claim
    /// is dropped, normally the one the job's previous run used (then updated in place).
    pub fn claim_worktree(&self, ci_job_id: i64) -> Result<DirClaim, ExecError> {
        DirClaim::claim(&self.worktrees_dir(), &format!("{JOB_PREFIX}{ci_job_id}"))
    }

    /// Makes the claimed `worktree` exactly commit `sha` of the repository: fetches it into the
    /// repository's bare cache unless the cache has it; meanwhile clears the worktree of what the
    /// previous run left (that needs no new objects); then checks `sha` out in place. A slot
    /// with no worktree yet takes the repository's spare if one is ready, else gets a new
    /// worktree. Nothing is kept from the previous run: `dbt deps` runs again anyway, and stale
    /// packages could change what dbt builds.
    pub async fn checkout(
        &self,
        repository_id: &str,
        remote: &Remote,
        sha: &str,
        worktree: &Path,
        cancel: &CancellationToken,
    ) -> Result<WorktreeState, CheckoutError> {
        let git = self.git.with_cancellation(cancel.clone());
        let cache = self.cache_dir(repository_id);
        let took_spare = !worktree.exists() && self.take_spare(repository_id, worktree).await;
        let fetch = async {
            let lock = self.cache_lock(repository_id);
            let _guard = lock.lock().await;
            git.fetch_commit(&cache, remote, sha)
                .await
                .map_err(|source| CheckoutError::Fetch {
                    sha: sha.to_owned(),
                    source,
                })
        };
        // The worktree is this run's alone and git copes with readers of a cache being fetched
        // into, so clearing needs no lock.
        let (fetched, cleared) = tokio::join!(fetch, git.clear_worktree(&cache, worktree, &[]));
        fetched?;
        let checkout_failed = |source| CheckoutError::Checkout {
            sha: sha.to_owned(),
            source,
        };
        let cleared = cleared.map_err(checkout_failed)?;
        let state = {
            let lock = self.worktree_admin_lock(repository_id);
            let _guard = lock.lock().await;
            git.checkout_worktree(&cache, worktree, sha, cleared)
                .await
                .map_err(checkout_failed)?
        };
        let state = match state {
            WorktreeState::Reused if took_spare => WorktreeState::Spare,
            other => other,
        };
        if state != WorktreeState::Reused {
            self.replenish_spare(repository_id, sha);
        }
        Ok(state)
    }

    /// Whether commit `sha` (already in the repository's cache) changes anything under `paths`
    /// since it forked from `branch`.
    pub async fn changes_under(
        &self,
        repository_id: &str,
        remote: &Remote,
        branch: &str,
        sha: &str,
        paths: &[String],
        cancel: &CancellationToken,
    ) -> Result<bool, ExecError> {
        let git = self.git.with_cancellation(cancel.clone());
        let lock = self.cache_lock(repository_id);
        let _guard = lock.lock().await;
        git.changes_under(&self.cache_dir(repository_id), remote, branch, sha, paths)
            .await
    }

    /// Moves the repository's spare worktree to `worktree` when it is ready (made and not being
    /// made or taken by someone else); whether it did.
    async fn take_spare(&self, repository_id: &str, worktree: &Path) -> bool {
        let Ok(Some(spare)) =
            DirClaim::try_claim_named(&self.worktrees_dir(), &spare_name(repository_id))
        else {
            return false;
        };
        if !spare.path().exists() {
            return false;
        }
        let cache = self.cache_dir(repository_id);
        let lock = self.worktree_admin_lock(repository_id);
        let moved = {
            let _guard = lock.lock().await;
            self.git.move_worktree(&cache, spare.path(), worktree).await
        };
        match moved {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(repository = repository_id, error = %e, "discarding a broken spare worktree");
                // The slot is made anew by the caller; a partly moved spare must not stay.
                if worktree.exists() {
                    let _ = std::fs::remove_dir_all(worktree);
                }
                let _ = spare.remove();
                false
            }
        }
    }

    /// Makes the repository's spare worktree at `sha` in the background unless it exists or is
    /// being made. Not tied to the run's cancellation: the spare serves later runs.
    fn replenish_spare(&self, repository_id: &str, sha: &str) {
        let (git, cache) = (Clone::clone(&self.git), self.cache_dir(repository_id));
        let (parent, name, sha) = (
            self.worktrees_dir(),
            spare_name(repository_id),
            sha.to_owned(),
        );
        let lock = self.worktree_admin_lock(repository_id);
        let repository_id = repository_id.to_owned();
        tokio::spawn(async move {
            let Ok(Some(spare)) = DirClaim::try_claim_named(&parent, &name) else {
                return;
            };
            if spare.path().exists() {
                return;
            }
            let added = {
                let _guard = lock.lock().await;
                git.add_worktree(&cache, spare.path(), &sha).await
            };
            if let Err(e) = added {
                tracing::warn!(repository = %repository_id, error = %e, "could not make a spare worktree");
                let _ = std::fs::remove_dir_all(spare.path());
            }
        });
    }

    /// Whether the repository's spare worktree is made and free to take.
    pub fn spare_ready(&self, repository_id: &str) -> bool {
        matches!(
            DirClaim::try_claim_named(&self.worktrees_dir(), &spare_name(repository_id)),
            Ok(Some(spare)) if spare.path().join(".git").is_file()
        )
    }

    /// Deletes the worktrees of CI jobs that no longer exist (a job's worktree otherwise stays
    /// for its next run) and the spares of repositories no longer connected; worktrees a run
    /// holds are left alone. Returns how many were deleted.
    pub fn remove_worktrees_except(
        &self,
        jobs: &HashSet<i64>,
        repositories: &HashSet<String>,
    ) -> Result<usize, ExecError> {
        let parent = self.worktrees_dir();
        let entries = match std::fs::read_dir(&parent) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(ExecError::Io {
                    path: parent,
                    source,
                });
            }
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Every worktree has a `<name>.lock` beside it.
            let Some(slot) = name.strip_suffix(".lock") else {
                continue;
            };
            let wanted = match Slot::parse(slot) {
                Some(Slot::Job(job)) => jobs.contains(&job),
                Some(Slot::Spare(repository)) => repositories.contains(repository),
                None => continue,
            };
            if wanted {
                continue;
            }
            if let Some(claim) = DirClaim::try_claim_named(&parent, slot)? {
                claim.remove()?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn spare_name(repository_id: &str) -> String {
    format!("{SPARE_PREFIX}{repository_id}")
}

/// What a directory below `worktrees/` belongs to.
#[derive(Debug, PartialEq, Eq)]
enum Slot<'a> {
    /// `job-<id>-<n>`
    Job(i64),
    /// `spare-<repository_id>`
    Spare(&'a str),
}

impl<'a> Slot<'a> {
    fn parse(name: &'a str) -> Option<Slot<'a>> {
        if let Some(repository) = name.strip_prefix(SPARE_PREFIX) {
            return (!repository.is_empty()).then_some(Slot::Spare(repository));
        }
        let (job, n) = name.strip_prefix(JOB_PREFIX)?.rsplit_once('-')?;
        n.parse::<u32>().ok()?;
        job.parse().ok().map(Slot::Job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worktrees_of_deleted_jobs_and_disconnected_repositories_are_removed_unless_held() {
        let root = tempfile::tempdir().unwrap();
        let rt = CiRuntime::new(root.path().to_path_buf(), "w".into());
        let mut slots = Vec::new();
        for job in [1, 2, 3] {
            let claim = rt.claim_worktree(job).unwrap();
            std::fs::create_dir_all(claim.path().join("models")).unwrap();
            slots.push(claim);
        }
        let held = slots.pop().unwrap();
        drop(slots);
        let worktrees = root.path().join("worktrees");
        for repository in ["r1", "r2"] {
            let spare = DirClaim::try_claim_named(&worktrees, &spare_name(repository))
                .unwrap()
                .unwrap();
            std::fs::create_dir_all(spare.path().join("models")).unwrap();
        }
        std::fs::write(worktrees.join("notes.lock"), "").unwrap();
        // Job 1 and repository r1 still exist; jobs 2 and 3 were deleted, but a run still holds
        // job 3's worktree; r2 was disconnected.
        let connected = HashSet::from(["r1".to_owned()]);
        let removed = rt
            .remove_worktrees_except(&HashSet::from([1]), &connected)
            .unwrap();
        assert_eq!(removed, 2);
        assert!(worktrees.join("job-1-0").exists());
        assert!(!worktrees.join("job-2-0").exists());
        assert!(!worktrees.join("job-2-0.lock").exists());
        assert!(worktrees.join("job-3-0").exists());
        assert!(worktrees.join("spare-r1").exists());
        assert!(!worktrees.join("spare-r2").exists());
        assert!(worktrees.join("notes.lock").exists());
        drop(held);
        assert_eq!(
            rt.remove_worktrees_except(&HashSet::from([1]), &connected)
                .unwrap(),
            1
        );
        assert!(!worktrees.join("job-3-0").exists());
    }

    #[test]
    fn slot_names_are_parsed_strictly() {
        assert_eq!(Slot::parse("job-12-3"), Some(Slot::Job(12)));
        assert_eq!(Slot::parse("spare-0190-ab"), Some(Slot::Spare("0190-ab")));
        for other in ["job-x-3", "job-12", "spare-", "notes", "jobs-1-2"] {
            assert_eq!(Slot::parse(other), None, "{other}");
        }
    }
}
