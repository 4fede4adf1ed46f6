//! One run's dbt setting: the project inside the checkout, and a private run directory beside it
//! that holds everything dbt writes (profile, target, logs, home), so the repository stays clean
//! and the artifacts are found in one known place.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::profile::PROFILE_NAME;
use super::{Artifacts, DbtCommand, DbtError, DbtInstall, DbtTarget};
use crate::limits::Limits;
use crate::process::{self, DEFAULT_INHERITED_ENV, LogLine, ProcessSpec, Termination};
use crate::redact::Redactor;
use crate::sandbox::{Isolation, Sandbox};

/// Variables lablink sets for every dbt process; a job may not set them itself.
const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "VIRTUAL_ENV",
    "PYTHONUNBUFFERED",
    "DO_NOT_TRACK",
    "DBT_PROFILES_DIR",
    "DBT_PROFILE",
    "DBT_TARGET",
    "DBT_PROJECT_DIR",
    "DBT_TARGET_PATH",
    "DBT_LOG_PATH",
    "DBT_USE_COLORS",
    "DBT_SEND_ANONYMOUS_USAGE_STATS",
];

/// Values of job variables with this prefix are secrets (the dbt convention); they are redacted
/// from the log.
pub const SECRET_ENV_PREFIX: &str = "DBT_ENV_SECRET_";

/// Every job variable starts with this, as on the dbt platform (`DBT_`, `DBT_ENV_SECRET_`,
/// `DBT_ENV_CUSTOM_ENV_`): an allow-list, so a job cannot set what changes how programs start
/// (`PYTHONPATH`, `LD_PRELOAD`, `PYTHONSTARTUP` and the like).
pub const JOB_ENV_PREFIX: &str = "DBT_";

/// What a run brings to [`DbtWorkspace::prepare`].
#[derive(Debug)]
pub struct DbtRunSetup<'a> {
    /// The checkout of the commit under test.
    pub worktree: &'a Path,
    /// Where `dbt_project.yml` is, relative to the repository root (`None`: the root).
    pub project_subdir: Option<&'a str>,
    /// A directory of this run only, outside the worktree; created if missing.
    pub run_dir: &'a Path,
    pub target: &'a DbtTarget,
    /// The job's environment variables.
    pub env: &'a [(String, SecretString)],
    pub isolation: Isolation,
    pub limits: Limits,
}

/// A prepared dbt setting for one run: the profile is written, the directories exist.
#[derive(Debug)]
pub struct DbtWorkspace {
    install: DbtInstall,
    worktree: PathBuf,
    project_dir: PathBuf,
    run_dir: PathBuf,
    target_name: String,
    job_env: Vec<(String, SecretString)>,
    redactor: Arc<Redactor>,
    /// The directory of the DuckDB file, when the warehouse is one.
    duckdb_dir: Option<PathBuf>,
    /// Whether the warehouse is reached over the network.
    warehouse_over_network: bool,
    isolation: Isolation,
    limits: Limits,
}

fn private_dir(path: &Path) -> Result<(), DbtError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| DbtError::Io {
            path: path.to_owned(),
            source,
        })
}

fn canonical(path: &Path) -> Result<PathBuf, DbtError> {
    path.canonicalize().map_err(|source| DbtError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Whether `name` may be a job variable: a well-formed name on the allow-list, not one lablink
/// sets itself.
pub fn check_env_name(name: &str) -> Result<(), DbtError> {
    let mut bytes = name.bytes();
    let well_formed = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !well_formed {
        return Err(DbtError::InvalidEnv {
            name: name.to_owned(),
            reason: "names are letters, digits and `_`, not starting with a digit",
        });
    }
    if RESERVED_ENV.contains(&name) {
        return Err(DbtError::InvalidEnv {
            name: name.to_owned(),
            reason: "lablink sets it for every run",
        });
    }
    if !name.starts_with(JOB_ENV_PREFIX) {
        return Err(DbtError::InvalidEnv {
            name: name.to_owned(),
            reason: "job variables start with DBT_ (DBT_ENV_SECRET_ for secrets), as on the dbt platform",
        });
    }
    Ok(())
}

/// The project directory inside `worktree`, refusing paths that leave it (`..`, absolute paths,
/// symlinks pointing elsewhere) and directories without `dbt_project.yml`.
fn project_dir(worktree: &Path, subdir: Option<&str>) -> Result<PathBuf, DbtError> {
    let worktree = canonical(worktree)?;
    let dir = match subdir.filter(|s| !s.is_empty()) {
        None => worktree.clone(),
        Some(sub) => {
            let relative = Path::new(sub);
            if !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
            {
                return Err(DbtError::InvalidProjectDir {
                    subdir: sub.to_owned(),
                    reason: "it must be a relative path inside the repository",
                });
            }
            let joined = worktree.join(relative);
            if !joined.is_dir() {
                return Err(DbtError::NoDbtProject(joined));
            }
            let dir = canonical(&joined)?;
            if !dir.starts_with(&worktree) {
                return Err(DbtError::InvalidProjectDir {
                    subdir: sub.to_owned(),
                    reason: "it leads outside the repository",
                });
            }
            dir
        }
    };
    if !dir.join("dbt_project.yml").is_file() {
        return Err(DbtError::NoDbtProject(dir));
    }
    Ok(dir)
}

impl DbtWorkspace {
    /// Checks the setup, creates the run directory (mode 0700) and writes the profile into it.
    pub fn prepare(install: DbtInstall, setup: DbtRunSetup<'_>) -> Result<Self, DbtError> {
        for (name, _) in setup.env {
            check_env_name(name)?;
        }
        let project_dir = project_dir(setup.worktree, setup.project_subdir)?;
        private_dir(setup.run_dir)?;
        let run_dir = canonical(setup.run_dir)?;
        let worktree = canonical(setup.worktree)?;
        if run_dir.starts_with(&worktree) {
            return Err(DbtError::RunDirInsideRepository { run_dir, worktree });
        }
        let duckdb_dir = match &setup.target.warehouse {
            super::WarehouseProfile::DuckDb { path } => path.parent().map(Path::to_owned),
            super::WarehouseProfile::Postgres(_) | super::WarehouseProfile::None => None,
        };
        if let Some(dir) = &duckdb_dir {
            private_dir(dir)?;
        }
        let workspace = Self {
            install,
            worktree,
            duckdb_dir,
            warehouse_over_network: setup.target.warehouse.over_network(),
            isolation: setup.isolation,
            limits: setup.limits,
            project_dir,
            target_name: setup.target.name.clone(),
            redactor: Arc::new(Redactor::new(
                setup
                    .target
                    .warehouse
                    .secrets()
                    .into_iter()
                    .chain(
                        setup
                            .env
                            .iter()
                            .filter(|(name, _)| name.starts_with(SECRET_ENV_PREFIX))
                            .map(|(_, value)| value),
                    )
                    .map(|secret| secret.expose_secret().to_owned()),
            )),
            job_env: setup.env.to_vec(),
            run_dir,
        };
        setup.target.write_profiles(&workspace.profiles_dir())?;
        private_dir(&workspace.home_dir())?;
        Ok(workspace)
    }

    pub fn project_dir(&self) -> &Path {
        &self.project_dir
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn profiles_dir(&self) -> PathBuf {
        self.run_dir.join("profiles")
    }

    /// `DBT_TARGET_PATH`: where dbt writes `manifest.json` and `run_results.json`.
    pub fn target_path(&self) -> PathBuf {
        self.run_dir.join("target")
    }

    pub fn log_path(&self) -> PathBuf {
        self.run_dir.join("logs")
    }

    /// `HOME` for dbt: private, so nothing in the service user's home (`~/.dbt`, `~/.netrc`,
    /// git configuration) reaches the job's code.
    fn home_dir(&self) -> PathBuf {
        self.run_dir.join("home")
    }

    /// The redactor for this run's output: the warehouse secrets and secret job variables.
    pub fn redactor(&self) -> Arc<Redactor> {
        Arc::clone(&self.redactor)
    }

    /// Whether the project declares packages, so `dbt deps` must run first.
    pub fn needs_deps(&self) -> bool {
        ["packages.yml", "dependencies.yml"]
            .iter()
            .any(|file| self.project_dir.join(file).is_file())
    }

    /// Writes production's `manifest.json` for deferral and returns the state directory to pass
    /// to [`DbtCommand::for_job`].
    pub fn install_production_manifest(&self, manifest: &[u8]) -> Result<PathBuf, DbtError> {
        let state = self.run_dir.join("production-state");
        private_dir(&state)?;
        let file = state.join("manifest.json");
        std::fs::write(&file, manifest).map_err(|source| DbtError::Io { path: file, source })?;
        Ok(state)
    }

    /// The process for `command`: the virtualenv's dbt in the project directory, with lablink's
    /// variables after the job's so they always win.
    pub fn process_spec(&self, command: &DbtCommand, timeout: Duration) -> ProcessSpec {
        self.spec_of(self.install.dbt(), command.args(), timeout)
    }

    /// `program` with `args` in the project directory, in dbt's environment.
    fn spec_of(&self, program: PathBuf, args: &[String], timeout: Duration) -> ProcessSpec {
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut spec = ProcessSpec::new(program, &self.project_dir, timeout)
            .args(args)
            .redactor(self.redactor());
        spec.inherit_env = DEFAULT_INHERITED_ENV
            .iter()
            .filter(|name| !RESERVED_ENV.contains(name))
            .map(|name| name.to_string())
            .collect();
        for (name, value) in &self.job_env {
            spec = spec.env(name, value.expose_secret());
        }
        spec.env("PATH", self.install.search_path())
            .env("HOME", path(self.home_dir()))
            .env("VIRTUAL_ENV", path(self.install.venv().to_owned()))
            // Python buffers stdout into a pipe; unbuffered, the log streams as dbt works.
            .env("PYTHONUNBUFFERED", "1")
            .env("DO_NOT_TRACK", "1")
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .env("DBT_USE_COLORS", "false")
            .env("DBT_PROFILES_DIR", path(self.profiles_dir()))
            .env("DBT_PROFILE", PROFILE_NAME)
            .env("DBT_TARGET", &self.target_name)
            .env("DBT_PROJECT_DIR", path(self.project_dir.clone()))
            .env("DBT_TARGET_PATH", path(self.target_path()))
            .env("DBT_LOG_PATH", path(self.log_path()))
    }

    /// The sandbox `command` runs in: the toolchain read-only; the worktree (but its `.git`
    /// file, which lablink's git follows later), the run directory and the DuckDB file's
    /// directory writable; the network only for a warehouse on a server and for `dbt deps`
    /// (which downloads packages).
    pub fn sandbox(&self, command: &DbtCommand) -> Sandbox {
        self.sandbox_reaching_network(command.needs_network())
    }

    /// The sandbox of the run's processes; `network`: also without a warehouse on a server.
    fn sandbox_reaching_network(&self, network: bool) -> Sandbox {
        let mut writable = vec![self.worktree.clone(), self.run_dir.clone()];
        writable.extend(self.duckdb_dir.clone());
        let git_file = self.worktree.join(".git");
        Sandbox {
            isolation: self.isolation,
            read_only: self.install.toolchain_dirs(),
            writable,
            protected: std::fs::symlink_metadata(&git_file)
                .is_ok()
                .then_some(git_file)
                .into_iter()
                .collect(),
            network: self.warehouse_over_network || network,
            limits: self.limits,
        }
    }

    /// Runs one dbt command in its sandbox, streaming its redacted output to `sink`.
    pub async fn run(
        &self,
        command: &DbtCommand,
        timeout: Duration,
        sink: mpsc::Sender<LogLine>,
        cancel: &CancellationToken,
    ) -> Result<Termination, DbtError> {
        let spec = self
            .sandbox(command)
            .wrap(self.process_spec(command, timeout));
        Ok(process::run(&spec, sink, cancel).await?)
    }

    /// Runs the virtualenv's Python with `args` (`-c <script> ...`: lablink's own code that
    /// drives dbt through its Python API) in the sandbox and environment a dbt command would get.
    pub(crate) async fn run_python(
        &self,
        args: &[String],
        timeout: Duration,
        sink: mpsc::Sender<LogLine>,
        cancel: &CancellationToken,
    ) -> Result<Termination, DbtError> {
        let spec = self.sandbox_reaching_network(false).wrap(self.spec_of(
            self.install.bin_dir().join("python"),
            args,
            timeout,
        ));
        Ok(process::run(&spec, sink, cancel).await?)
    }

    /// Reads `run_results.json` and `manifest.json` from the run's target path. The run could
    /// write there, so neither the directory nor the files may be symlinks.
    pub fn artifacts(&self) -> Result<Artifacts, DbtError> {
        Artifacts::read(&self.target_path())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::dbt::WarehouseProfile;

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        install: DbtInstall,
        target: DbtTarget,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        std::fs::create_dir_all(root.join("venv/bin")).unwrap();
        std::fs::write(root.join("venv/bin/dbt"), "").unwrap();
        std::fs::create_dir_all(root.join("repo/analytics")).unwrap();
        std::fs::write(root.join("repo/dbt_project.yml"), "name: a").unwrap();
        std::fs::write(root.join("repo/analytics/dbt_project.yml"), "name: b").unwrap();
        Fixture {
            install: DbtInstall::at(root.join("venv")).unwrap(),
            target: DbtTarget {
                name: "default".into(),
                schema: "lablink_pr_1_2".into(),
                threads: 2,
                warehouse: WarehouseProfile::DuckDb {
                    path: root.join("wh.duckdb"),
                },
            },
            root,
            _dir: dir,
        }
    }

    impl Fixture {
        fn prepare(
            &self,
            subdir: Option<&str>,
            run_dir: &Path,
            env: &[(String, SecretString)],
        ) -> Result<DbtWorkspace, DbtError> {
            DbtWorkspace::prepare(
                self.install.clone(),
                DbtRunSetup {
                    worktree: &self.root.join("repo"),
                    project_subdir: subdir,
                    run_dir,
                    target: &self.target,
                    env,
                    isolation: Isolation::Bubblewrap,
                    limits: Limits::default(),
                },
            )
        }
    }

    fn var(name: &str, value: &str) -> (String, SecretString) {
        (name.to_owned(), SecretString::from(value))
    }

    #[test]
    fn the_environment_points_dbt_at_the_private_run_directory() {
        let f = fixture();
        let run_dir = f.root.join("runs/r1");
        let env = [
            var("DBT_MY_FLAG", "1"),
            var("DBT_ENV_SECRET_KEY", "hunter22"),
        ];
        let ws = f.prepare(Some("analytics"), &run_dir, &env).unwrap();
        let run_dir = run_dir.canonicalize().unwrap();
        let project = f.root.join("repo/analytics").canonicalize().unwrap();
        assert_eq!(ws.project_dir(), project);
        assert!(run_dir.join("profiles/profiles.yml").is_file());

        let cmd = DbtCommand::parse("dbt build -s state:modified+").unwrap();
        let spec = ws.process_spec(&cmd, Duration::from_secs(9));
        assert_eq!(spec.program, f.root.join("venv/bin/dbt").into_os_string());
        assert_eq!(spec.args, ["build", "-s", "state:modified+"]);
        assert_eq!(spec.cwd, project);
        assert!(!spec.inherit_env.iter().any(|name| name == "PATH"));
        let vars: HashMap<_, _> = spec.env.iter().cloned().collect();
        let dir = |p: &Path| p.to_string_lossy().into_owned();
        assert_eq!(vars["DBT_PROFILES_DIR"], dir(&run_dir.join("profiles")));
        assert_eq!(vars["DBT_TARGET_PATH"], dir(&run_dir.join("target")));
        assert_eq!(vars["DBT_LOG_PATH"], dir(&run_dir.join("logs")));
        assert_eq!(vars["DBT_PROJECT_DIR"], dir(&project));
        assert_eq!(vars["HOME"], dir(&run_dir.join("home")));
        assert_eq!(vars["DBT_PROFILE"], "lablink");
        assert_eq!(vars["DBT_TARGET"], "default");
        assert_eq!(vars["DBT_MY_FLAG"], "1");
        assert!(vars["PATH"].starts_with(&dir(&f.root.join("venv/bin"))));
        // Every variable lablink sets is one a job may not set.
        for (name, _) in &spec.env {
            assert!(
                RESERVED_ENV.contains(&name.as_str())
                    || name == "DBT_MY_FLAG"
                    || name.starts_with(SECRET_ENV_PREFIX),
                "{name}"
            );
        }
        assert_eq!(
            ws.redactor().redact("key=hunter22 flag=1"),
            "key=[REDACTED] flag=1"
        );
    }

    #[test]
    fn setups_that_would_touch_the_repository_or_leave_it_are_refused() {
        let f = fixture();
        let inside = f.root.join("repo/.lablink");
        assert!(matches!(
            f.prepare(None, &inside, &[]),
            Err(DbtError::RunDirInsideRepository { .. })
        ));
        assert!(!inside.join("profiles").exists());
        for subdir in ["../repo", "/etc", "analytics/../../x"] {
            assert!(
                matches!(
                    f.prepare(Some(subdir), &f.root.join("run"), &[]),
                    Err(DbtError::InvalidProjectDir { .. })
                ),
                "{subdir}"
            );
        }
        std::os::unix::fs::symlink(&f.root, f.root.join("repo/escape")).unwrap();
        assert!(matches!(
            f.prepare(Some("escape"), &f.root.join("run"), &[]),
            Err(DbtError::InvalidProjectDir { .. })
        ));
        std::fs::create_dir(f.root.join("repo/empty")).unwrap();
        assert!(matches!(
            f.prepare(Some("empty"), &f.root.join("run"), &[]),
            Err(DbtError::NoDbtProject(_))
        ));
        for name in [
            "PATH",
            "DBT_PROFILES_DIR",
            "1X",
            "A-B",
            "",
            "PYTHONPATH",
            "LD_PRELOAD",
            "PYTHONSTARTUP",
            "MY_FLAG",
        ] {
            assert!(
                matches!(
                    f.prepare(None, &f.root.join("run"), &[var(name, "v")]),
                    Err(DbtError::InvalidEnv { .. })
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn artifacts_and_production_state_live_in_the_run_directory() {
        let f = fixture();
        let ws = f.prepare(None, &f.root.join("run"), &[]).unwrap();
        assert_eq!(ws.artifacts().unwrap(), Artifacts::default());
        std::fs::create_dir_all(ws.target_path()).unwrap();
        std::fs::write(ws.target_path().join("run_results.json"), "{}").unwrap();
        assert_eq!(
            ws.artifacts().unwrap(),
            Artifacts {
                run_results: Some("{}".into()),
                manifest: None
            }
        );
        let state = ws.install_production_manifest(b"{\"nodes\":{}}").unwrap();
        assert!(state.starts_with(ws.run_dir()));
        assert_eq!(
            std::fs::read(state.join("manifest.json")).unwrap(),
            b"{\"nodes\":{}}"
        );
        assert!(!ws.needs_deps());
        std::fs::write(f.root.join("repo/packages.yml"), "packages: []").unwrap();
        assert!(ws.needs_deps());
    }
}
