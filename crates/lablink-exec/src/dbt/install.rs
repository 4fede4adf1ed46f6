//! Where dbt is installed: a Python virtualenv with dbt-core and the adapters.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::DbtError;

/// Names the virtualenv explicitly; otherwise `$HOME/.cache/lablink/venv` is used, the place
/// `scripts/test.sh` installs into.
pub const VENV_ENV: &str = "LABLINK_DBT_VENV";

/// The dbt packages lablink runs with: one list (`scripts/dbt-requirements.txt`), shared by
/// `scripts/test.sh`, `lablink demo` and the tests, so all install the same versions.
pub const REQUIREMENTS: &str = include_str!("../../../../scripts/dbt-requirements.txt");

/// A virtualenv that has a `dbt` executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbtInstall {
    venv: PathBuf,
}

impl DbtInstall {
    /// The virtualenv named by `LABLINK_DBT_VENV`, else the one under `$HOME/.cache/lablink`.
    pub fn locate() -> Result<Self, DbtError> {
        let venv = venv_location(std::env::var_os(VENV_ENV), std::env::var_os("HOME"))
            .ok_or(DbtError::NoVenvLocation)?;
        Self::at(venv)
    }

    /// The virtualenv named as in [`DbtInstall::locate`], created with [`REQUIREMENTS`] when it
    /// has no dbt yet (a minute or two the first time). Blocking: call it off the async runtime.
    pub fn locate_or_create() -> Result<Self, DbtError> {
        let venv = venv_location(std::env::var_os(VENV_ENV), std::env::var_os("HOME"))
            .ok_or(DbtError::NoVenvLocation)?;
        Self::at(&venv).or_else(|_| Self::create(venv))
    }

    /// Creates (or completes) the virtualenv at `venv` with `python3 -m venv` and installs
    /// [`REQUIREMENTS`] into it. Blocking.
    pub fn create(venv: impl Into<PathBuf>) -> Result<Self, DbtError> {
        let venv = venv.into();
        let fail = |reason: String| DbtError::Install {
            venv: venv.clone(),
            reason,
        };
        let run = |program: &Path, args: &[&std::ffi::OsStr]| -> Result<(), DbtError> {
            let out = std::process::Command::new(program)
                .args(args)
                .output()
                .map_err(|e| fail(format!("cannot run {}: {e}", program.display())))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(fail(format!(
                    "{} exited with {}: {}",
                    program.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        };
        run(
            Path::new("python3"),
            &["-m".as_ref(), "venv".as_ref(), venv.as_os_str()],
        )?;
        let requirements = venv.join("lablink-dbt-requirements.txt");
        std::fs::write(&requirements, REQUIREMENTS)
            .map_err(|e| fail(format!("cannot write {}: {e}", requirements.display())))?;
        run(
            &venv.join("bin/pip"),
            &[
                "install".as_ref(),
                "--quiet".as_ref(),
                "-r".as_ref(),
                requirements.as_os_str(),
            ],
        )?;
        Self::at(venv)
    }

    /// The virtualenv at `venv`, which must contain `bin/dbt`.
    pub fn at(venv: impl Into<PathBuf>) -> Result<Self, DbtError> {
        let install = Self { venv: venv.into() };
        if install.dbt().is_file() {
            Ok(install)
        } else {
            Err(DbtError::NotInstalled { venv: install.venv })
        }
    }

    pub fn venv(&self) -> &Path {
        &self.venv
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.venv.join("bin")
    }

    pub fn dbt(&self) -> PathBuf {
        self.bin_dir().join("dbt")
    }

    /// The directories dbt needs to run, read-only in its sandbox: the virtualenv and the Python
    /// installation it was made from (`home` in `pyvenv.cfg`, whose parent is the prefix with the
    /// standard library), when that is not a system directory every sandbox has anyway.
    pub fn toolchain_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.venv.clone()];
        let config = std::fs::read_to_string(self.venv.join("pyvenv.cfg")).unwrap_or_default();
        let home = config.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "home").then(|| PathBuf::from(value.trim()))
        });
        if let Some(prefix) = home.as_deref().and_then(Path::parent)
            && !prefix.starts_with("/usr")
            && prefix.is_absolute()
            && prefix != Path::new("/")
        {
            dirs.push(prefix.to_owned());
        }
        dirs
    }

    /// `PATH` for dbt: the virtualenv first, so dbt and the adapters' helpers are the ones found.
    pub(super) fn search_path(&self) -> String {
        let mut path = self.bin_dir().to_string_lossy().into_owned();
        if let Some(inherited) = std::env::var_os("PATH").filter(|p| !p.is_empty()) {
            path.push(':');
            path.push_str(&inherited.to_string_lossy());
        }
        path
    }
}

fn venv_location(explicit: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    match (
        explicit.filter(|v| !v.is_empty()),
        home.filter(|h| !h.is_empty()),
    ) {
        (Some(venv), _) => Some(venv.into()),
        (None, Some(home)) => Some(Path::new(&home).join(".cache/lablink/venv")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_explicit_venv_wins_over_home() {
        let some = |s: &str| Some(OsString::from(s));
        assert_eq!(
            venv_location(some("/opt/dbt"), some("/home/u")),
            Some(PathBuf::from("/opt/dbt"))
        );
        assert_eq!(
            venv_location(some(""), some("/home/u")),
            Some(PathBuf::from("/home/u/.cache/lablink/venv"))
        );
        assert_eq!(venv_location(None, None), None);
    }

    #[test]
    fn a_venv_without_dbt_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = DbtInstall::at(dir.path()).unwrap_err();
        assert!(matches!(&err, DbtError::NotInstalled { venv } if venv == dir.path()));
        assert!(err.to_string().contains(VENV_ENV));
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/dbt"), "").unwrap();
        let install = DbtInstall::at(dir.path()).unwrap();
        assert_eq!(install.dbt(), dir.path().join("bin/dbt"));
        assert!(
            install
                .search_path()
                .starts_with(&*dir.path().join("bin").to_string_lossy())
        );
    }
}
