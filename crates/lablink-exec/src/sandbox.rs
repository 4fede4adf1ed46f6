//! The sandbox every process that runs repository content starts in: bubblewrap (`bwrap`) with
//! its own user, PID, IPC, UTS and cgroup namespaces (and network namespace unless the work needs
//! the network), a non-root uid, a root file system of read-only system directories and the
//! dbt toolchain, the run's own directories read-write, a private `/tmp`, a `/proc` that shows only
//! the sandbox's processes, and kernel resource limits (`prlimit`) as a backstop to the watchdog
//! of [`crate::limits`].
//!
//! Nothing else of the host is visible: not lablink's data directory, database or master key, not
//! other runs' worktrees and profiles. A symlink in the worktree resolves inside this view only.
//! The environment reaches the sandbox through bubblewrap's own environment (never its
//! arguments, which other users of the host can read).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::limits::Limits;
use crate::process::ProcessSpec;

/// How processes that run repository content are isolated (setting `run_isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// In a bubblewrap sandbox. A run whose sandbox cannot start fails with the reason.
    Bubblewrap,
    /// On the host, as lablink's own user, with the resource limits only. For hosts without user
    /// namespaces; lablink warns about it wherever it matters.
    None,
}

/// System directories every sandbox sees read-only (those that exist on the host).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// The few files of `/etc` a dbt process needs: name resolution, TLS roots, users and groups,
/// the dynamic linker's cache, time zones. Nothing else of `/etc` (an operator's `lablink.toml`
/// may live there).
const ETC_ENTRIES: &[&str] = &[
    "/etc/alternatives",
    "/etc/ca-certificates",
    "/etc/ssl",
    "/etc/pki",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
];

/// The uid and gid processes have inside the sandbox: not root.
const SANDBOX_ID: &str = "1000";

/// Where one piece of work may go and what it may use.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub isolation: Isolation,
    /// Seen read-only at the same path (the dbt toolchain).
    pub read_only: Vec<PathBuf>,
    /// Seen read-write at the same path (the worktree, the run's directory, a DuckDB file's
    /// directory).
    pub writable: Vec<PathBuf>,
    /// Seen read-only at the same path although inside a writable directory (the worktree's
    /// `.git` file, which lablink's own git follows afterwards).
    pub protected: Vec<PathBuf>,
    /// Whether the work may use the network (a warehouse on a server, `dbt deps`).
    pub network: bool,
    pub limits: Limits,
}

impl Sandbox {
    /// `spec` as it runs in this sandbox: under `prlimit` and `bwrap`, with the watchdog of
    /// `limits` over its process tree and the writable directories.
    pub fn wrap(&self, spec: ProcessSpec) -> ProcessSpec {
        let mut wrapped = spec.clone();
        let mut args: Vec<OsString> = self.limits.prlimit_args();
        match self.isolation {
            Isolation::None => {
                args.push(spec.program);
            }
            Isolation::Bubblewrap => {
                args.push(bwrap_program().into());
                args.extend(self.bwrap_args(&spec.cwd));
                args.push("--".into());
                args.push(spec.program);
            }
        }
        args.extend(spec.args);
        wrapped.program = "prlimit".into();
        wrapped.args = args;
        // The host's TMPDIR is not inside the sandbox; its own /tmp is private.
        if self.isolation == Isolation::Bubblewrap {
            wrapped.inherit_env.retain(|name| name != "TMPDIR");
            wrapped = wrapped.env("TMPDIR", "/tmp");
        }
        wrapped.watch = Some(crate::limits::Watch {
            limits: self.limits,
            writable: self.writable.clone(),
        });
        wrapped
    }

    fn bwrap_args(&self, cwd: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "--die-with-parent",
            "--new-session",
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "lablink-run",
            "--uid",
            SANDBOX_ID,
            "--gid",
            SANDBOX_ID,
            "--cap-drop",
            "ALL",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        if !self.network {
            args.push("--unshare-net".into());
        }
        let mut bind = |flag: &str, path: &Path| {
            args.push(flag.into());
            args.push(path.into());
            args.push(path.into());
        };
        for dir in SYSTEM_DIRS.iter().chain(ETC_ENTRIES) {
            bind("--ro-bind-try", Path::new(dir));
        }
        for path in &self.read_only {
            bind("--ro-bind", path);
        }
        for path in &self.writable {
            bind("--bind", path);
        }
        for path in &self.protected {
            bind("--ro-bind", path);
        }
        args.push("--chdir".into());
        args.push(cwd.into());
        args
    }
}

/// bubblewrap as Debian installs it, else whatever `bwrap` the search path finds.
fn bwrap_program() -> &'static str {
    if Path::new("/usr/bin/bwrap").is_file() {
        "/usr/bin/bwrap"
    } else {
        "bwrap"
    }
}

/// Why sandboxes cannot start on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxUnavailable {
    #[error(
        "bubblewrap (`bwrap`) is not installed: install the Debian package `bubblewrap`, or set \
         run_isolation = \"none\" on hosts without user namespaces (not recommended)"
    )]
    NotInstalled,
    #[error(
        "bubblewrap cannot create a sandbox here ({0}): user namespaces are probably disabled; \
         enable them (sysctl kernel.unprivileged_userns_clone=1) or set run_isolation = \"none\" \
         (not recommended)"
    )]
    Refused(String),
}

/// Starts an empty sandbox once, to tell at start-up (and in the doctor) whether runs can start.
pub async fn probe() -> Result<(), SandboxUnavailable> {
    let out = tokio::process::Command::new(bwrap_program())
        .args([
            "--unshare-user",
            "--unshare-pid",
            "--unshare-net",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "true",
        ])
        .env_clear()
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SandboxUnavailable::NotInstalled,
            _ => SandboxUnavailable::Refused(e.to_string()),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SandboxUnavailable::Refused(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(isolation: Isolation, network: bool) -> Sandbox {
        Sandbox {
            isolation,
            read_only: vec!["/opt/venv".into()],
            writable: vec![
                "/data/ci/worktrees/job-1-0".into(),
                "/data/ci/runs/r".into(),
            ],
            protected: vec!["/data/ci/worktrees/job-1-0/.git".into()],
            network,
            limits: Limits::default(),
        }
    }

    fn text(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_command_runs_under_prlimit_and_bwrap_with_only_its_own_directories() {
        let spec = ProcessSpec::new(
            "/opt/venv/bin/dbt",
            "/data/ci/worktrees/job-1-0",
            Default::default(),
        )
        .args(["build"])
        .env("DBT_ENV_SECRET_KEY", "hunter2");
        let wrapped = sandbox(Isolation::Bubblewrap, false).wrap(spec);
        assert_eq!(wrapped.program, "prlimit");
        let args = text(&wrapped.args);
        let separator = args.iter().rposition(|a| a == "--").unwrap();
        assert_eq!(args[separator + 1..], ["/opt/venv/bin/dbt", "build"]);
        assert!(args.iter().any(|a| a.ends_with("bwrap")));
        for flag in [
            "--unshare-net",
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
        ] {
            assert!(args.contains(&flag.to_owned()), "{flag}");
        }
        let window = |flag: &str, path: &str| {
            args.windows(3)
                .any(|w| w[0] == flag && w[1] == path && w[2] == path)
        };
        assert!(window("--bind", "/data/ci/runs/r"));
        assert!(window("--ro-bind", "/opt/venv"));
        // The protected file is mounted after (over) its writable directory.
        let rw = args
            .iter()
            .position(|a| a == "/data/ci/worktrees/job-1-0")
            .unwrap();
        let ro = args
            .iter()
            .position(|a| a == "/data/ci/worktrees/job-1-0/.git")
            .unwrap();
        assert!(ro > rw);
        // No secret in the arguments: they stay in the environment.
        assert!(!args.iter().any(|a| a.contains("hunter2")));
        assert!(wrapped.env.iter().any(|(k, _)| k == "DBT_ENV_SECRET_KEY"));
        assert!(wrapped.watch.is_some());
    }

    #[test]
    fn network_work_keeps_the_network_and_no_isolation_keeps_the_limits() {
        let spec = ProcessSpec::new("dbt", "/w", Default::default());
        let args = text(&sandbox(Isolation::Bubblewrap, true).wrap(spec.clone()).args);
        assert!(!args.contains(&"--unshare-net".to_owned()));
        let bare = sandbox(Isolation::None, false).wrap(spec);
        let args = text(&bare.args);
        assert!(!args.iter().any(|a| a.contains("bwrap")));
        assert!(args.iter().any(|a| a.starts_with("--nproc=")));
        assert_eq!(args.last().map(String::as_str), Some("dbt"));
    }
}
