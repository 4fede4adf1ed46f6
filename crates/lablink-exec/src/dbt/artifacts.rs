//! What a dbt invocation leaves behind for the run page, the status description and deferral.

use std::fmt;
use std::path::Path;

use super::DbtError;

/// The artifacts of one run, as dbt wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Artifacts {
    /// `run_results.json`; absent when dbt stopped before running anything.
    pub run_results: Option<String>,
    /// `manifest.json`; absent when the project did not parse.
    pub manifest: Option<String>,
}

/// The largest artifact kept: a manifest of a very large project stays well below it.
const MAX_ARTIFACT_BYTES: u64 = 256 << 20;

impl Artifacts {
    /// Reads both files from a dbt target path; a missing file is `None`, not an error. The run
    /// wrote the directory, so the target path and each file must be what they claim: not
    /// symlinks (which would make lablink read whatever they point at), regular files, and not
    /// larger than [`MAX_ARTIFACT_BYTES`]. The run's processes are gone when this is called, so
    /// nothing changes between the check and the read.
    pub(super) fn read(target_path: &Path) -> Result<Self, DbtError> {
        match std::fs::symlink_metadata(target_path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(not_regular(target_path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(DbtError::Io {
                    path: target_path.to_owned(),
                    source,
                });
            }
        }
        let read = |name: &str| {
            let path = target_path.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() && meta.len() <= MAX_ARTIFACT_BYTES => {}
                Ok(_) => return Err(not_regular(&path)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(source) => return Err(DbtError::Io { path, source }),
            }
            std::fs::read_to_string(&path)
                .map(Some)
                .map_err(|source| DbtError::Io { path, source })
        };
        Ok(Self {
            run_results: read("run_results.json")?,
            manifest: read("manifest.json")?,
        })
    }
}

fn not_regular(path: &Path) -> DbtError {
    DbtError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(
            "not a regular file of the run (a symlink, a special file or too large); not read",
        ),
    }
}

/// How the nodes of a run ended, for a commit status description such as
/// `6 passed, 1 failed, 2 skipped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResultCounts {
    pub passed: u32,
    pub warned: u32,
    pub failed: u32,
    pub skipped: u32,
}

impl ResultCounts {
    /// Counts the `results[].status` values of a `run_results.json`; `None` when the text is not
    /// one. Statuses dbt may add later are not counted.
    pub fn from_run_results(json: &str) -> Option<Self> {
        let doc: serde_json::Value = serde_json::from_str(json).ok()?;
        let mut counts = Self::default();
        for result in doc.get("results")?.as_array()? {
            let slot = match result.get("status").and_then(|s| s.as_str()) {
                Some("success" | "pass") => &mut counts.passed,
                Some("warn") => &mut counts.warned,
                Some("error" | "fail" | "runtime error") => &mut counts.failed,
                Some("skipped" | "no-op") => &mut counts.skipped,
                _ => continue,
            };
            *slot += 1;
        }
        Some(counts)
    }
}

impl fmt::Display for ResultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            (self.passed, "passed"),
            (self.warned, "warned"),
            (self.failed, "failed"),
            (self.skipped, "skipped"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            f.write_str("nothing ran")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_none_and_present_ones_are_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Artifacts::read(dir.path()).unwrap(), Artifacts::default());
        std::fs::write(dir.path().join("manifest.json"), "{}").unwrap();
        assert_eq!(
            Artifacts::read(dir.path()).unwrap(),
            Artifacts {
                run_results: None,
                manifest: Some("{}".into())
            }
        );
    }

    #[test]
    fn result_counts_summarise_statuses() {
        let json = r#"{"results": [
            {"status": "success"}, {"status": "pass"}, {"status": "warn"},
            {"status": "error"}, {"status": "fail"}, {"status": "skipped"},
            {"status": "something new"}, {}
        ]}"#;
        let counts = ResultCounts::from_run_results(json).unwrap();
        assert_eq!(
            counts,
            ResultCounts {
                passed: 2,
                warned: 1,
                failed: 2,
                skipped: 1
            }
        );
        assert_eq!(
            counts.to_string(),
            "2 passed, 1 warned, 2 failed, 1 skipped"
        );
        assert_eq!(
            ResultCounts::from_run_results(r#"{"results": []}"#)
                .unwrap()
                .to_string(),
            "nothing ran"
        );
        for bad in ["", "[]", r#"{"results": 3}"#, "{"] {
            assert_eq!(ResultCounts::from_run_results(bad), None, "{bad}");
        }
    }
}
