//! Exclusive claims on numbered directories `<parent>/<prefix>-<n>`, such as the worktrees of one
//! CI job: each concurrent user gets a directory of its own, and a later user reuses a free one.
//!
//! A claim is an advisory lock (`flock`) on `<parent>/<prefix>-<n>.lock`. The kernel releases it
//! when the claim is dropped and also when the process dies, so a crash never leaves a directory
//! claimed; it also holds between processes sharing the parent directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::ExecError;

/// One claimed directory. The directory itself may not exist yet; its content is the claimant's.
#[derive(Debug)]
pub struct DirClaim {
    dir: PathBuf,
    _lock: File,
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
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ExecError::Io { path, source }
        };
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        for n in 0u32.. {
            let lock_path = parent.join(format!("{prefix}-{n}.lock"));
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(io(&lock_path))?;
            match lock.try_lock() {
                Ok(()) => {
                    return Ok(Self {
                        dir: parent.join(format!("{prefix}-{n}")),
                        _lock: lock,
                    });
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(source)) => {
                    return Err(ExecError::Io {
                        path: lock_path,
                        source,
                    });
                }
            }
        }
        unreachable!("more than u32::MAX concurrent claims")
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
    fn prefixes_that_leave_the_parent_are_refused() {
        let root = tempfile::tempdir().unwrap();
        for prefix in ["", "../x", "a/b", ".hidden"] {
            assert!(DirClaim::claim(root.path(), prefix).is_err(), "{prefix:?}");
        }
    }
}
