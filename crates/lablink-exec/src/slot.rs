//! Exclusive claims on numbered directories `<parent>/<prefix>-<n>`, such as the worktrees of one
//! CI job: each concurrent user gets a directory of its own, and a later user reuses a free one.
//!
//! A claim is an advisory lock (`flock`) on `<parent>/<prefix>-<n>.lock`. The kernel releases it
//! when the process dies, so a crash never leaves a directory claimed; it also holds between
//! processes sharing the parent directory. A dropped claim unlocks explicitly: closing the file
//! alone would not release it while a child process being spawned by another thread still has
//! a copy of the descriptor (between its fork and its exec).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::ExecError;

/// One claimed directory. The directory itself may not exist yet; its content is the claimant's.
#[derive(Debug)]
pub struct DirClaim {
    dir: PathBuf,
    lock_path: PathBuf,
    lock: File,
}

impl Drop for DirClaim {
    fn drop(&mut self) {
        // Nothing to do if it fails: closing the file releases the lock soon after anyway.
        let _ = self.lock.unlock();
    }
}

impl DirClaim {
    /// Claims the lowest-numbered directory nobody holds, without waiting.
    pub fn claim(parent: &Path, prefix: &str) -> Result<Self, ExecError> {
        if prefix.is_empty() || prefix.contains('/') || prefix.starts_with('.') {
            return Err(ExecError::InvalidInput {
                what: "directory prefix",
                value: prefix.to_owned(),
            });
        }
        std::fs::create_dir_all(parent).map_err(|source| ExecError::Io {
            path: parent.to_owned(),
            source,
        })?;
        for n in 0u32.. {
            if let Some(claim) = Self::try_claim_named(parent, &format!("{prefix}-{n}"))? {
                return Ok(claim);
            }
        }
        unreachable!("more than u32::MAX concurrent claims")
    }

    /// Claims `<parent>/<name>` if nobody holds it; `None` when someone does.
    pub fn try_claim_named(parent: &Path, name: &str) -> Result<Option<Self>, ExecError> {
        let lock_path = parent.join(format!("{name}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| ExecError::Io {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => Ok(Some(Self {
                dir: parent.join(name),
                lock_path,
                lock,
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(ExecError::Io {
                path: lock_path,
                source,
            }),
        }
    }

    /// Deletes the claimed directory and its lock file (for a directory nobody will use again).
    /// The lock file goes while still held, so nobody can hold the deleted directory meanwhile.
    pub fn remove(self) -> Result<(), ExecError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ExecError::Io { path, source }
        };
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&self.dir)(e)),
        }
        std::fs::remove_file(&self.lock_path).map_err(io(&self.lock_path))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_claims_get_different_directories_and_released_ones_are_reused() {
        let root = tempfile::tempdir().unwrap();
        let first = DirClaim::claim(root.path(), "job-7").unwrap();
        let second = DirClaim::claim(root.path(), "job-7").unwrap();
        let other_job = DirClaim::claim(root.path(), "job-70").unwrap();
        assert_eq!(first.path(), root.path().join("job-7-0"));
        assert_eq!(second.path(), root.path().join("job-7-1"));
        assert_eq!(other_job.path(), root.path().join("job-70-0"));

        drop(first);
        let third = DirClaim::claim(root.path(), "job-7").unwrap();
        assert_eq!(third.path(), root.path().join("job-7-0"));
        assert_eq!(
            DirClaim::claim(root.path(), "job-7").unwrap().path(),
            root.path().join("job-7-2")
        );
    }

    #[test]
    fn a_free_directory_can_be_claimed_by_name_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let held = DirClaim::claim(root.path(), "job-1").unwrap();
        std::fs::create_dir_all(held.path().join("models")).unwrap();
        assert!(
            DirClaim::try_claim_named(root.path(), "job-1-0")
                .unwrap()
                .is_none()
        );
        drop(held);
        let free = DirClaim::try_claim_named(root.path(), "job-1-0")
            .unwrap()
            .unwrap();
        free.remove().unwrap();
        assert!(!root.path().join("job-1-0").exists());
        assert!(!root.path().join("job-1-0.lock").exists());
    }

    #[test]
    fn prefixes_that_leave_the_parent_are_refused() {
        let root = tempfile::tempdir().unwrap();
        for prefix in ["", "../x", "a/b", ".hidden"] {
            assert!(DirClaim::claim(root.path(), prefix).is_err(), "{prefix:?}");
        }
    }
}
