//! The `profiles.yml` a run uses: one profile, one target, written into a run-private directory
//! with mode 0600 so warehouse secrets never touch the repository or another user's eyes.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::DbtError;

/// The profile name lablink writes; dbt is pointed at it with `DBT_PROFILE`, so the project's own
/// `profile:` setting does not have to match.
pub const PROFILE_NAME: &str = "lablink";

/// Where a run's models are built.
#[derive(Debug, Clone)]
pub struct DbtTarget {
    /// The dbt target name (`target.name` in Jinja); the dbt platform's default is `default`.
    pub name: String,
    /// The schema override, e.g. `lablink_pr_<job_id>_<mr_iid>`.
    pub schema: String,
    pub threads: u16,
    pub warehouse: WarehouseProfile,
}

/// The warehouse connection. Each variant is one dbt adapter; secrets stay in `SecretString`
/// until they are written to the private profile file.
#[derive(Debug, Clone)]
pub enum WarehouseProfile {
    /// dbt-duckdb with a database file (absolute path).
    DuckDb { path: PathBuf },
    /// dbt-postgres.
    Postgres(PostgresProfile),
    /// No warehouse: dbt-duckdb in memory, for work that must not reach one (a fork's commit
    /// parsed without the job's secrets).
    None,
}

#[derive(Debug, Clone)]
pub struct PostgresProfile {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: SecretString,
    pub dbname: String,
}

impl WarehouseProfile {
    /// Whether work with this warehouse needs the network (a database server).
    pub fn over_network(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Values that must never appear in a stored log.
    pub fn secrets(&self) -> Vec<&SecretString> {
        match self {
            Self::DuckDb { .. } | Self::None => Vec::new(),
            Self::Postgres(pg) => vec![&pg.password],
        }
    }
}

/// The longest identifier PostgreSQL keeps; a CI schema name never needs more.
const MAX_SCHEMA_LEN: usize = 63;

/// Schemas are restricted to names that need no quoting in any warehouse, which also keeps them
/// safe inside the cleanup macro.
pub(super) fn validate_schema(schema: &str) -> Result<(), DbtError> {
    let valid = !schema.is_empty()
        && schema.len() <= MAX_SCHEMA_LEN
        && schema
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && !schema.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(DbtError::InvalidSchema(schema.to_owned()))
    }
}

impl DbtTarget {
    fn validate(&self) -> Result<(), DbtError> {
        validate_schema(&self.schema)?;
        if self.threads == 0 {
            return Err(DbtError::InvalidTarget("threads must be at least 1".into()));
        }
        let name_ok = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(DbtError::InvalidTarget(format!(
                "target name `{}` must be letters, digits, `_` or `-`",
                self.name
            )));
        }
        if let WarehouseProfile::DuckDb { path } = &self.warehouse {
            // A relative path would resolve inside the checkout, i.e. in the repository.
            if !path.is_absolute() || path.to_str().is_none() {
                return Err(DbtError::InvalidTarget(format!(
                    "the DuckDB path {} must be absolute and valid UTF-8",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Writes `<dir>/profiles.yml` (creating `dir` with mode 0700) and returns its path.
    ///
    /// The file is JSON, which is valid YAML: serde's escaping makes any password or path safe,
    /// where hand-written YAML would need its own quoting rules.
    pub fn write_profiles(&self, dir: &Path) -> Result<PathBuf, DbtError> {
        self.validate()?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| DbtError::Io { path, source }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let file_path = dir.join("profiles.yml");
        // A fresh file, so the mode applies even when an earlier attempt left one behind.
        match std::fs::remove_file(&file_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&file_path)(e)),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file_path)
            .map_err(io(&file_path))?;
        serde_json::to_writer_pretty(&mut file, &self.document()).map_err(DbtError::Profile)?;
        file.write_all(b"\n").map_err(io(&file_path))?;
        Ok(file_path)
    }

    fn document(&self) -> BTreeMap<&'static str, Profile<'_>> {
        let output = match &self.warehouse {
            WarehouseProfile::DuckDb { path } => Output::Duckdb {
                path: path.to_str().unwrap_or_default(),
                schema: &self.schema,
                threads: self.threads,
            },
            WarehouseProfile::None => Output::Duckdb {
                path: ":memory:",
                schema: &self.schema,
                threads: self.threads,
            },
            WarehouseProfile::Postgres(pg) => Output::Postgres {
                host: &pg.host,
                port: pg.port,
                user: &pg.user,
                password: pg.password.expose_secret(),
                dbname: &pg.dbname,
                schema: &self.schema,
                threads: self.threads,
            },
        };
        BTreeMap::from([(
            PROFILE_NAME,
            Profile {
                target: &self.name,
                outputs: BTreeMap::from([(self.name.as_str(), output)]),
            },
        )])
    }
}

#[derive(Serialize)]
struct Profile<'a> {
    target: &'a str,
    outputs: BTreeMap<&'a str, Output<'a>>,
}

/// One dbt output; field names are the adapters' profile keys. Borrowed, so the password is not
/// copied into another owned string on its way to the file.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Output<'a> {
    Duckdb {
        path: &'a str,
        schema: &'a str,
        threads: u16,
    },
    Postgres {
        host: &'a str,
        port: u16,
        user: &'a str,
        password: &'a str,
        dbname: &'a str,
        schema: &'a str,
        threads: u16,
    },
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn duckdb(path: &str) -> DbtTarget {
        DbtTarget {
            name: "default".into(),
            schema: "lablink_pr_1_2".into(),
            threads: 4,
            warehouse: WarehouseProfile::DuckDb { path: path.into() },
        }
    }

    fn read_json(path: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn duckdb_profile_overrides_the_schema_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("run/profiles");
        let file = duckdb("/data/ci.duckdb").write_profiles(&profiles).unwrap();
        assert_eq!(file, profiles.join("profiles.yml"));
        assert_eq!(
            read_json(&file),
            serde_json::json!({"lablink": {"target": "default", "outputs": {"default": {
                "type": "duckdb", "path": "/data/ci.duckdb",
                "schema": "lablink_pr_1_2", "threads": 4}}}})
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&profiles), 0o700);
    }

    #[test]
    fn postgres_secrets_are_escaped_into_the_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let password = "p\"a: ss\n{{ x }}";
        let target = DbtTarget {
            warehouse: WarehouseProfile::Postgres(PostgresProfile {
                host: "127.0.0.1".into(),
                port: 5432,
                user: "ci".into(),
                password: SecretString::from(password),
                dbname: "analytics".into(),
            }),
            ..duckdb("/unused")
        };
        assert_eq!(
            target
                .warehouse
                .secrets()
                .iter()
                .map(|s| s.expose_secret())
                .collect::<Vec<_>>(),
            [password]
        );
        assert!(!format!("{target:?}").contains(password));
        // A leftover file with loose permissions is replaced, not reused.
        std::fs::write(dir.path().join("profiles.yml"), "old").unwrap();
        std::fs::set_permissions(
            dir.path().join("profiles.yml"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let file = target.write_profiles(dir.path()).unwrap();
        let doc = read_json(&file);
        let output = &doc["lablink"]["outputs"]["default"];
        assert_eq!(output["type"], "postgres");
        assert_eq!(output["password"], password);
        assert_eq!(output["port"], 5432);
        assert_eq!(output["schema"], "lablink_pr_1_2");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn bad_targets_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let bad = [
            DbtTarget {
                schema: "Robert'); drop".into(),
                ..duckdb("/x.duckdb")
            },
            DbtTarget {
                schema: "1abc".into(),
                ..duckdb("/x.duckdb")
            },
            DbtTarget {
                schema: "a".repeat(64),
                ..duckdb("/x.duckdb")
            },
            DbtTarget {
                threads: 0,
                ..duckdb("/x.duckdb")
            },
            DbtTarget {
                name: "my target".into(),
                ..duckdb("/x.duckdb")
            },
            duckdb("relative/ci.duckdb"),
        ];
        for target in bad {
            let err = target.write_profiles(dir.path()).unwrap_err();
            assert!(
                matches!(err, DbtError::InvalidSchema(_) | DbtError::InvalidTarget(_)),
                "{err}"
            );
        }
        assert!(!dir.path().join("profiles.yml").exists());
    }
}
