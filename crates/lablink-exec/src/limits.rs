//! The limits of one run's processes and the watchdog that enforces them: memory (resident, the
//! whole process tree), number of processes, CPU time (the whole tree), log size and disk used in
//! the writable directories. The watchdog samples the tree through `/proc` and ends the work
//! with the limit that was passed. The kernel's per-process limits (`prlimit`) are the backstop
//! between two samples: CPU time and file size per process, and the number of processes per user
//! (which the kernel does not apply to root: run lablink as an unprivileged user).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How much one piece of work may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Resident memory of all its processes together.
    pub memory_bytes: u64,
    /// Processes alive at once.
    pub processes: u64,
    /// CPU time of all its processes together.
    pub cpu_seconds: u64,
    /// Output it may write to its log.
    pub log_bytes: u64,
    /// Disk used in its writable directories (the worktree counts with what was checked out).
    pub disk_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 4 << 30,
            processes: 256,
            cpu_seconds: 2 * 3600,
            log_bytes: 50 << 20,
            disk_bytes: 5 << 30,
        }
    }
}

impl Limits {
    /// `prlimit` options: the kernel's per-process backstops.
    pub(crate) fn prlimit_args(&self) -> Vec<OsString> {
        // A single file may grow a little past the disk limit, so that the watchdog (or the
        // check when the work ends) sees the limit passed and says so.
        let file_size = self.disk_bytes.saturating_add(1 << 20);
        [
            format!("--nproc={}", self.processes),
            format!("--cpu={}", self.cpu_seconds),
            format!("--fsize={file_size}"),
            "--core=0".to_owned(),
            "--".to_owned(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect()
    }
}

/// Which limit a piece of work passed, with the limit, for its run page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("it used more than {} MiB of memory", .0 >> 20)]
    Memory(u64),
    #[error("it started more than {0} processes at once")]
    Processes(u64),
    #[error("it used more than {0} s of CPU time")]
    CpuTime(u64),
    #[error("it wrote more than {} MiB of log output", .0 >> 20)]
    Log(u64),
    #[error("it used more than {} MiB of disk", .0 >> 20)]
    Disk(u64),
}

/// What the watchdog of a process watches: the limits and the directories whose disk use counts.
#[derive(Debug, Clone)]
pub struct Watch {
    pub limits: Limits,
    pub writable: Vec<PathBuf>,
}

/// How often the process tree is sampled, and how often the (slower) disk use is.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
const DISK_EVERY: u32 = 20;

impl Watch {
    /// Samples the process tree under `root` until a limit is passed, and says which. Never
    /// returns while every limit holds (the caller races it against the process's end).
    pub(crate) async fn until_exceeded(&self, root: u32, log: Arc<AtomicU64>) -> LimitExceeded {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 0_u32.. {
            tick.tick().await;
            if let Some(exceeded) = self.check_log(&log) {
                return exceeded;
            }
            let tree = tokio::task::spawn_blocking(move || TreeUsage::sample(root))
                .await
                .unwrap_or_default();
            if let Some(exceeded) = self.check_tree(&tree) {
                return exceeded;
            }
            if n % DISK_EVERY == 0
                && let Some(exceeded) = self.check_disk().await
            {
                return exceeded;
            }
        }
        unreachable!("the sampling loop only ends with a passed limit")
    }

    pub(crate) fn check_log(&self, log: &AtomicU64) -> Option<LimitExceeded> {
        (log.load(Ordering::Relaxed) > self.limits.log_bytes)
            .then_some(LimitExceeded::Log(self.limits.log_bytes))
    }

    fn check_tree(&self, tree: &TreeUsage) -> Option<LimitExceeded> {
        let l = &self.limits;
        if tree.processes > l.processes {
            Some(LimitExceeded::Processes(l.processes))
        } else if tree.resident_bytes > l.memory_bytes {
            Some(LimitExceeded::Memory(l.memory_bytes))
        } else if tree.cpu_seconds > l.cpu_seconds as f64 {
            Some(LimitExceeded::CpuTime(l.cpu_seconds))
        } else {
            None
        }
    }

    /// Disk used in the writable directories, past the limit; also checked once the work ended,
    /// since a file that grew between two samples counts as much.
    pub(crate) async fn check_disk(&self) -> Option<LimitExceeded> {
        let dirs = self.writable.clone();
        let used = tokio::task::spawn_blocking(move || dirs.iter().map(|d| disk_used(d)).sum())
            .await
            .unwrap_or(0_u64);
        (used > self.limits.disk_bytes).then_some(LimitExceeded::Disk(self.limits.disk_bytes))
    }
}

/// What a process tree uses at one moment.
#[derive(Debug, Default, Clone, Copy)]
struct TreeUsage {
    processes: u64,
    resident_bytes: u64,
    cpu_seconds: f64,
}

/// One line of `/proc/<pid>/stat`, the fields the watchdog needs.
struct Stat {
    ppid: u32,
    /// User and system time of the process and of its children it has waited for, in ticks.
    ticks: u64,
    resident_pages: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces and parentheses.
    let after = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // Fields after the name, numbered from 3 in proc(5): ppid is 4, utime 14, stime 15, cutime
    // 16, cstime 17, rss 24.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        ticks: field(14)? + field(15)? + field(16)? + field(17)?,
        resident_pages: field(24)?,
    })
}

/// Clock ticks per second of `/proc` times and the page size of resident memory: the values of
/// every Linux architecture lablink runs on (x86_64, aarch64).
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_BYTES: u64 = 4096;

impl TreeUsage {
    /// Every live process descending from `root` (itself included).
    fn sample(root: u32) -> TreeUsage {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return TreeUsage::default();
        };
        let stats: HashMap<u32, Stat> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| Some((pid, read_stat(pid)?)))
            .collect();
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (pid, stat) in &stats {
            children.entry(stat.ppid).or_default().push(*pid);
        }
        let mut usage = TreeUsage::default();
        let mut stack = vec![root];
        while let Some(pid) = stack.pop() {
            let Some(stat) = stats.get(&pid) else {
                continue;
            };
            usage.processes += 1;
            usage.resident_bytes += stat.resident_pages * PAGE_BYTES;
            usage.cpu_seconds += stat.ticks as f64 / TICKS_PER_SECOND;
            if let Some(kids) = children.get(&pid) {
                stack.extend(kids);
            }
        }
        usage
    }
}

/// Bytes allocated to the files below `dir`, never following a symlink (the work may plant them).
fn disk_used(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return own;
    };
    own + entries
        .filter_map(Result::ok)
        .map(|e| disk_used(&e.path()))
        .sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_tree_is_seen() {
        let usage = TreeUsage::sample(std::process::id());
        assert!(usage.processes >= 1);
        assert!(usage.resident_bytes > 0);
    }

    #[test]
    fn disk_use_counts_files_and_not_what_symlinks_point_at() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 64 * 1024]).unwrap();
        let big = tempfile::tempdir().unwrap();
        std::fs::write(big.path().join("b"), vec![1u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink(big.path(), dir.path().join("link")).unwrap();
        let used = disk_used(dir.path());
        assert!((64 * 1024..1 << 20).contains(&used), "{used}");
    }

    #[test]
    fn each_limit_names_itself() {
        let watch = Watch {
            limits: Limits {
                memory_bytes: 1 << 20,
                processes: 2,
                cpu_seconds: 1,
                log_bytes: 10,
                disk_bytes: 1 << 20,
            },
            writable: vec![],
        };
        let tree = |processes, resident_bytes, cpu_seconds| TreeUsage {
            processes,
            resident_bytes,
            cpu_seconds,
        };
        assert_eq!(watch.check_tree(&tree(1, 1, 0.5)), None);
        assert_eq!(
            watch.check_tree(&tree(3, 1, 0.0)),
            Some(LimitExceeded::Processes(2))
        );
        assert_eq!(
            watch.check_tree(&tree(1, 2 << 20, 0.0)),
            Some(LimitExceeded::Memory(1 << 20))
        );
        assert_eq!(
            watch.check_tree(&tree(1, 1, 1.5)),
            Some(LimitExceeded::CpuTime(1))
        );
        assert_eq!(
            watch.check_log(&AtomicU64::new(11)),
            Some(LimitExceeded::Log(10))
        );
        assert_eq!(
            LimitExceeded::Disk(5 << 20).to_string(),
            "it used more than 5 MiB of disk"
        );
    }
}
