//! Repository content as an attacker writes it, run by real dbt in the real sandbox: every attack
//! is checked from the host side (the file it wanted to write does not exist, the secret it
//! wanted to read appears nowhere), and every limit ends the work with its name.

use std::path::{Path, PathBuf};

use lablink_exec::Termination;
use lablink_exec::dbt::{DbtCommand, DbtError};
use lablink_exec::limits::{LimitExceeded, Limits};

use crate::dbt::Scene;

/// A secret on the host, outside everything a run may see (like lablink's master key).
struct HostSecret {
    dir: tempfile::TempDir,
    value: String,
}

impl HostSecret {
    fn new() -> HostSecret {
        let dir = tempfile::tempdir().unwrap();
        let value = format!("master-key-{}", uuid_like());
        std::fs::write(dir.path().join("secret.key"), &value).unwrap();
        HostSecret { dir, value }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("secret.key")
    }

    /// A host path the attack wants to write to (it must not appear).
    fn drop_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A commit's worth of attacks in one project: each model tries one thing; dbt builds them all.
#[tokio::test]
async fn repository_content_reaches_nothing_of_the_host() {
    let secret = HostSecret::new();
    let scene = Scene::new();
    let models = scene.repo().join("models/attacks");
    let host_tmp = PathBuf::from(format!("/tmp/lablink-stolen-{}", uuid_like()));
    // DuckDB reads the key with a pre-hook and writes it to the host's /tmp.
    write(
        &models.join("steal_key.sql"),
        &format!(
            "{{{{ config(pre_hook=\"COPY (SELECT content FROM read_text('{}')) TO '{}'\") }}}}\nselect 1 as x\n",
            secret.path().display(),
            host_tmp.display()
        ),
    );
    // A Python model runs a shell: it writes into the host's /tmp and next to the secret, and
    // prints lablink's environment (the test process plays lablink here: cargo gave it
    // `CARGO_PKG_NAME`, which the run's own environment does not have).
    let shell_out = secret.drop_path("pwned");
    write(
        &models.join("shell.py"),
        &format!(
            "import subprocess\n\
             def model(dbt, session):\n\
             \x20   subprocess.run(['sh', '-c', 'cat {key} > {tmp}-shell; echo pwned > {out}; \
             cat /proc/{pid}/environ; cat {key}'])\n\
             \x20   return session.sql('select 1 as x')\n",
            key = secret.path().display(),
            tmp = host_tmp.display(),
            out = shell_out.display(),
            pid = std::process::id(),
        ),
    );
    let target = scene.target("lablink_pr_9_1");
    let ws = scene.workspace_with("r1", &target, &[], Limits::default());
    let (termination, log) = scene
        .run(&ws, &[DbtCommand::parse("dbt build -s attacks").unwrap()])
        .await;
    let log = log.join("\n");
    // dbt ran (the pre-hook failed to read the key: there is no such file inside).
    assert!(
        matches!(termination, Termination::Exited(_)),
        "{termination:?}"
    );
    assert!(!host_tmp.exists(), "the pre-hook wrote to the host's /tmp");
    assert!(
        !PathBuf::from(format!("{}-shell", host_tmp.display())).exists(),
        "the shell wrote to the host's /tmp"
    );
    assert!(
        !shell_out.exists(),
        "the shell wrote next to the host secret"
    );
    assert!(
        !log.contains(&secret.value),
        "the secret reached the log:\n{log}"
    );
    assert!(
        !log.contains("CARGO_PKG_NAME="),
        "lablink's environment reached the log:\n{log}"
    );
    let artifacts = ws.artifacts().unwrap();
    for text in [artifacts.run_results, artifacts.manifest]
        .into_iter()
        .flatten()
    {
        assert!(!text.contains(&secret.value));
    }
}

/// A committed symlink to a host file (a model, and `target/` for the artifacts) leads nowhere:
/// inside the sandbox it points at nothing, and lablink does not follow it afterwards.
#[tokio::test]
async fn symlinks_in_the_checkout_resolve_inside_the_sandbox_only() {
    let secret = HostSecret::new();
    let scene = Scene::new();
    std::os::unix::fs::symlink(secret.path(), scene.repo().join("models/leak.sql")).unwrap();
    let target = scene.target("lablink_pr_9_2");
    let ws = scene.workspace_with("r1", &target, &[], Limits::default());
    let (_, log) = scene
        .run(&ws, &[DbtCommand::parse("dbt build").unwrap()])
        .await;
    assert!(!log.join("\n").contains(&secret.value));
    // The run's target directory replaced by a symlink to the secret's directory: the artifacts
    // are refused, not read.
    let target_path = ws.run_dir().join("target");
    if target_path.exists() {
        std::fs::remove_dir_all(&target_path).unwrap();
    }
    std::fs::create_dir_all(secret.dir.path().join("t")).unwrap();
    std::os::unix::fs::symlink(secret.path(), secret.dir.path().join("t/manifest.json")).unwrap();
    std::os::unix::fs::symlink(secret.dir.path().join("t"), &target_path).unwrap();
    assert!(matches!(ws.artifacts(), Err(DbtError::Io { .. })));
}

/// A model, the limits it runs under, and whether the limit it passes is the expected one.
type LimitCase = (
    &'static str,
    &'static str,
    Limits,
    fn(LimitExceeded) -> bool,
);

/// Each limit, set small, ends the work with its name.
#[tokio::test]
async fn passing_a_limit_ends_the_work_with_its_name() {
    let cases: [LimitCase; 4] = [
        (
            "fork_bomb",
            "import os, time\n\
             def model(dbt, session):\n\
             \x20   while True:\n\
             \x20       os.fork()\n\
             \x20       time.sleep(0.05)\n\
             \x20   return session.sql('select 1 as x')\n",
            Limits {
                processes: 16,
                ..Limits::default()
            },
            |e| matches!(e, LimitExceeded::Processes(16)),
        ),
        (
            "disk_filler",
            "def model(dbt, session):\n\
             \x20   with open('filler.bin', 'wb') as f:\n\
             \x20       for _ in range(200):\n\
             \x20           f.write(b'x' * (1 << 20))\n\
             \x20   return session.sql('select 1 as x')\n",
            Limits {
                disk_bytes: 60 << 20,
                ..Limits::default()
            },
            |e| matches!(e, LimitExceeded::Disk(_)),
        ),
        (
            "log_flood",
            "def model(dbt, session):\n\
             \x20   for i in range(200000):\n\
             \x20       print('flooding the log ' * 8, flush=True)\n\
             \x20   return session.sql('select 1 as x')\n",
            Limits {
                log_bytes: 1 << 20,
                ..Limits::default()
            },
            |e| matches!(e, LimitExceeded::Log(_)),
        ),
        (
            "memory_hog",
            "import time\n\
             def model(dbt, session):\n\
             \x20   hog = [bytearray(1 << 20) for _ in range(2048)]\n\
             \x20   time.sleep(5)\n\
             \x20   return session.sql('select 1 as x')\n",
            Limits {
                memory_bytes: 512 << 20,
                ..Limits::default()
            },
            |e| matches!(e, LimitExceeded::Memory(_)),
        ),
    ];
    for (name, model, limits, expected) in cases {
        let scene = Scene::new();
        write(&scene.repo().join(format!("models/{name}.py")), model);
        let target = scene.target("lablink_pr_9_3");
        let ws = scene.workspace_with("r1", &target, &[], limits);
        let (termination, log) = scene
            .run(
                &ws,
                &[DbtCommand::parse(&format!("dbt run -s {name}")).unwrap()],
            )
            .await;
        match termination {
            Termination::LimitExceeded(exceeded) if expected(exceeded) => {}
            other => panic!("{name}: {other:?}\n{}", log.join("\n")),
        }
        // The log kept stops at its limit.
        let kept: usize = log.iter().map(|l| l.len() + 1).sum();
        assert!(
            kept as u64 <= limits.log_bytes + (64 << 10),
            "{name}: {kept}"
        );
    }
}
