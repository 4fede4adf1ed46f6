//! lablink's configuration: `lablink.toml` (or the file given with `--config`), then `LABLINK_*`
//! environment variables, read once by figment straight into typed [`Settings`]. Every setting is
//! documented in `docs/configuration.md`; a bad value gives an error naming the setting.

mod field_names;
pub mod roles;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use lablink_core::ip_range::IpNet;
use lablink_exec::limits::Limits;
use lablink_exec::sandbox::Isolation;
use lablink_service::OperatorGitlabApp;
use lablink_service::retention::Retention;
use lablink_service::settings::RunSettings;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

pub use roles::Roles;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting `{setting}` (LABLINK_{env}): {message}", env = setting.to_uppercase())]
    Invalid { setting: String, message: String },
    #[error("the configuration file {path} cannot be read: {message}")]
    File { path: PathBuf, message: String },
}

fn invalid(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The settings as written (file, environment), each read and checked by its reader in
/// [`values`]; [`Settings::from_values`] adds the rules that involve two settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Values {
    #[serde(default, deserialize_with = "values::database_url")]
    database_url: Option<String>,
    #[serde(default, deserialize_with = "values::public_url")]
    public_url: Option<Url>,
    #[serde(default = "defaults::listen", deserialize_with = "values::socket")]
    listen: SocketAddr,
    #[serde(
        default = "defaults::metrics_listen",
        deserialize_with = "values::socket"
    )]
    metrics_listen: SocketAddr,
    #[serde(default, deserialize_with = "values::secret_key")]
    secret_key: Option<SecretString>,
    #[serde(default, deserialize_with = "values::previous_secret_keys")]
    previous_secret_keys: Vec<SecretString>,
    #[serde(default = "defaults::data_dir", deserialize_with = "values::path")]
    data_dir: PathBuf,
    #[serde(
        default = "defaults::log_format",
        deserialize_with = "values::log_format"
    )]
    log_format: LogFormat,
    #[serde(
        default = "defaults::gitlab_url",
        deserialize_with = "values::http_url"
    )]
    gitlab_url: Url,
    #[serde(default, deserialize_with = "values::text")]
    gitlab_app_id: Option<String>,
    #[serde(default, deserialize_with = "values::secret")]
    gitlab_app_secret: Option<SecretString>,
    #[serde(default, deserialize_with = "values::boolean")]
    allow_http_loopback_gitlab: bool,
    #[serde(default, deserialize_with = "values::boolean")]
    allow_private_network_gitlab: bool,
    #[serde(
        default = "defaults::session_idle_minutes",
        deserialize_with = "values::positive"
    )]
    session_idle_minutes: u64,
    #[serde(
        default = "defaults::session_absolute_hours",
        deserialize_with = "values::positive"
    )]
    session_absolute_hours: u64,
    #[serde(
        default = "defaults::project_token_days",
        deserialize_with = "values::project_token_days"
    )]
    project_token_days: u32,
    #[serde(
        default = "defaults::rotation_margin_days",
        deserialize_with = "values::rotation_margin_days"
    )]
    token_rotation_margin_days: u32,
    #[serde(default, deserialize_with = "values::boolean")]
    repository_deploy_keys: bool,
    #[serde(default = "defaults::roles", deserialize_with = "values::roles")]
    roles: Roles,
    #[serde(
        default = "defaults::max_concurrent_runs",
        deserialize_with = "values::positive"
    )]
    max_concurrent_runs: u64,
    #[serde(
        default = "defaults::shutdown_grace_seconds",
        deserialize_with = "values::seconds"
    )]
    shutdown_grace_seconds: u64,
    #[serde(
        default = "defaults::isolation",
        deserialize_with = "values::isolation"
    )]
    run_isolation: Isolation,
    #[serde(
        default = "defaults::run_memory_mb",
        deserialize_with = "values::positive"
    )]
    run_memory_mb: u64,
    #[serde(
        default = "defaults::run_max_processes",
        deserialize_with = "values::positive"
    )]
    run_max_processes: u64,
    #[serde(
        default = "defaults::run_cpu_seconds",
        deserialize_with = "values::positive"
    )]
    run_cpu_seconds: u64,
    #[serde(
        default = "defaults::run_log_mb",
        deserialize_with = "values::positive"
    )]
    run_log_mb: u64,
    #[serde(
        default = "defaults::run_disk_mb",
        deserialize_with = "values::positive"
    )]
    run_disk_mb: u64,
    #[serde(default, deserialize_with = "values::optional_path")]
    warehouse_root: Option<PathBuf>,
    #[serde(
        default = "defaults::schema_ttl_days",
        deserialize_with = "values::positive"
    )]
    ci_schema_ttl_days: u64,
    #[serde(
        default = "defaults::retention_deliveries_days",
        deserialize_with = "values::positive"
    )]
    retention_deliveries_days: u64,
    #[serde(
        default = "defaults::retention_runs_days",
        deserialize_with = "values::positive"
    )]
    retention_runs_days: u64,
    #[serde(
        default = "defaults::retention_audit_days",
        deserialize_with = "values::positive"
    )]
    retention_audit_days: u64,
    #[serde(
        default = "defaults::retention_workspace_checkout_days",
        deserialize_with = "values::positive"
    )]
    retention_workspace_checkout_days: u64,
    #[serde(default, deserialize_with = "values::ip_ranges")]
    trusted_proxies: Vec<IpNet>,
}

mod defaults {
    use super::*;

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn metrics_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9090))
    }
    pub fn data_dir() -> PathBuf {
        PathBuf::from("./lablink-data")
    }
    pub fn log_format() -> LogFormat {
        LogFormat::Pretty
    }
    pub fn gitlab_url() -> Url {
        Url::parse("https://gitlab.com").expect("a valid URL")
    }
    pub fn session_idle_minutes() -> u64 {
        8 * 60
    }
    pub fn session_absolute_hours() -> u64 {
        7 * 24
    }
    pub fn project_token_days() -> u32 {
        365
    }
    pub fn rotation_margin_days() -> u32 {
        30
    }
    pub fn roles() -> Roles {
        Roles::ALL
    }
    pub fn max_concurrent_runs() -> u64 {
        2
    }
    pub fn shutdown_grace_seconds() -> u64 {
        60
    }
    pub fn isolation() -> Isolation {
        Isolation::Bubblewrap
    }
    pub fn run_memory_mb() -> u64 {
        Limits::default().memory_bytes >> 20
    }
    pub fn run_max_processes() -> u64 {
        Limits::default().processes
    }
    pub fn run_cpu_seconds() -> u64 {
        Limits::default().cpu_seconds
    }
    pub fn run_log_mb() -> u64 {
        Limits::default().log_bytes >> 20
    }
    pub fn schema_ttl_days() -> u64 {
        7
    }
    fn days(d: std::time::Duration) -> u64 {
        d.as_secs() / (24 * 3600)
    }
    pub fn retention_deliveries_days() -> u64 {
        days(Retention::default().deliveries)
    }
    pub fn retention_runs_days() -> u64 {
        days(Retention::default().runs)
    }
    pub fn retention_audit_days() -> u64 {
        days(Retention::default().audit)
    }
    pub fn retention_workspace_checkout_days() -> u64 {
        days(Retention::default().workspace_checkouts)
    }
    pub fn run_disk_mb() -> u64 {
        Limits::default().disk_bytes >> 20
    }
}

/// The typed, validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    /// `None`: derived from the bound address (`http://<listen>`).
    pub public_url: Option<Url>,
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub secret_key: Option<SecretString>,
    /// Older master keys, kept only to open what they sealed until `lablink admin rekey` re-sealed
    /// it under the current key.
    pub previous_secret_keys: Vec<SecretString>,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub operator_gitlab: Option<OperatorGitlabApp>,
    pub allow_http_loopback_gitlab: bool,
    pub allow_private_network_gitlab: bool,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    /// Lifetime of the project access token created when a repository is connected (1–365).
    pub project_token_days: u32,
    /// Project access tokens expiring within this many days are rotated (1–300).
    pub token_rotation_margin_days: u32,
    /// Also create an ed25519 SSH deploy key with write access when connecting.
    pub repository_deploy_keys: bool,
    /// What this replica does: pages and API, webhook intake, the workers, the fleet's
    /// periodic passes.
    pub roles: Roles,
    /// How many runs a worker executes at once.
    pub max_concurrent_runs: usize,
    /// How long a stopping worker lets its runs go on before it hands them back to the queue.
    pub shutdown_grace: Duration,
    /// How dbt processes are isolated and limited, and where DuckDB warehouses live.
    pub runs: RunSettings,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers tell the client's address.
    pub trusted_proxies: Vec<IpNet>,
    /// How long handled deliveries, run logs and artifacts, and audit entries are kept.
    pub retention: Retention,
}

/// Every setting's name (the TOML key; the variable is `LABLINK_` + its upper case), read off
/// [`Values`] itself so that the list cannot fall behind it.
fn setting_names() -> &'static [&'static str] {
    field_names::of::<Values>()
}

/// Where settings come from: an explicit file (must exist), or `./lablink.toml` when present, then
/// the environment.
pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
    let mut figment = Figment::new();
    match config_file {
        Some(path) => {
            if !path.is_file() {
                return Err(ConfigError::File {
                    path: path.to_owned(),
                    message: "no such file".into(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        None => {
            if Path::new("lablink.toml").is_file() {
                figment = figment.merge(Toml::file_exact("lablink.toml"));
            }
        }
    }
    // Only lablink's own settings: other `LABLINK_*` variables (tools, tests) are not ours.
    extract(figment.merge(Env::prefixed("LABLINK_").only(setting_names())))
}

/// Settings from `key = value` pairs (as in `lablink.toml`), for the demo and tests.
pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: std::collections::BTreeMap<&str, &str> = pairs.iter().copied().collect();
    extract(Figment::from(Serialized::defaults(map)))
}

fn extract(figment: Figment) -> Result<Settings, ConfigError> {
    let values: Values = figment.extract().map_err(|e| {
        let setting = e.path.last().cloned().unwrap_or_else(|| "?".into());
        match e.kind {
            figment::error::Kind::UnknownField(field, _) => invalid(
                &field,
                format!(
                    "unknown setting; the settings are: {}",
                    setting_names().join(", ")
                ),
            ),
            kind => invalid(&setting, kind.to_string()),
        }
    })?;
    Settings::from_values(values)
}

impl Settings {
    /// The rules between settings, and the defaults that depend on another setting.
    fn from_values(v: Values) -> Result<Settings, ConfigError> {
        if v.gitlab_url.scheme() == "http" && !v.allow_http_loopback_gitlab {
            return Err(invalid(
                "gitlab_url",
                "GitLab must be reached over https (http only on loopback with allow_http_loopback_gitlab = true)",
            ));
        }
        let operator_gitlab = match (v.gitlab_app_id, v.gitlab_app_secret) {
            (Some(app_id), Some(secret)) => Some(OperatorGitlabApp {
                url: v.gitlab_url,
                app_id,
                secret,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "gitlab_app_secret",
                    "missing: gitlab_app_id is set, so its secret is needed too",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "gitlab_app_id",
                    "missing: gitlab_app_secret is set, so the application id is needed too",
                ));
            }
        };
        Ok(Settings {
            database_url: v
                .database_url
                .unwrap_or_else(|| format!("sqlite://{}", v.data_dir.join("lablink.db").display())),
            public_url: v.public_url,
            listen: v.listen,
            metrics_listen: v.metrics_listen,
            secret_key: v.secret_key,
            previous_secret_keys: v.previous_secret_keys,
            log_format: v.log_format,
            operator_gitlab,
            allow_http_loopback_gitlab: v.allow_http_loopback_gitlab,
            allow_private_network_gitlab: v.allow_private_network_gitlab,
            session_idle: Duration::from_secs(60 * v.session_idle_minutes),
            session_absolute: Duration::from_secs(3600 * v.session_absolute_hours),
            project_token_days: v.project_token_days,
            token_rotation_margin_days: v.token_rotation_margin_days,
            repository_deploy_keys: v.repository_deploy_keys,
            roles: v.roles,
            max_concurrent_runs: usize::try_from(v.max_concurrent_runs).unwrap_or(usize::MAX),
            shutdown_grace: Duration::from_secs(v.shutdown_grace_seconds),
            runs: RunSettings {
                isolation: v.run_isolation,
                limits: Limits {
                    memory_bytes: v.run_memory_mb << 20,
                    processes: v.run_max_processes,
                    cpu_seconds: v.run_cpu_seconds,
                    log_bytes: v.run_log_mb << 20,
                    disk_bytes: v.run_disk_mb << 20,
                },
                warehouse_root: v
                    .warehouse_root
                    .unwrap_or_else(|| v.data_dir.join("warehouses")),
                schema_ttl: Duration::from_secs(24 * 3600 * v.ci_schema_ttl_days),
            },
            data_dir: v.data_dir,
            trusted_proxies: v.trusted_proxies,
            retention: Retention {
                deliveries: Duration::from_secs(24 * 3600 * v.retention_deliveries_days),
                runs: Duration::from_secs(24 * 3600 * v.retention_runs_days),
                audit: Duration::from_secs(24 * 3600 * v.retention_audit_days),
                workspace_checkouts: Duration::from_secs(
                    24 * 3600 * v.retention_workspace_checkout_days,
                ),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(pairs: &[(&str, &str)]) -> String {
        from_pairs(pairs).unwrap_err().to_string()
    }

    #[test]
    fn every_setting_is_documented() {
        let docs = include_str!("../../../docs/configuration.md");
        for name in setting_names() {
            assert!(
                docs.contains(&format!("| `{name}` |")),
                "{name} is missing from docs/configuration.md"
            );
        }
    }

    #[test]
    fn the_settings_are_read_off_the_struct() {
        let names = setting_names();
        assert_eq!(names.first(), Some(&"database_url"));
        assert_eq!(names.last(), Some(&"trusted_proxies"));
        assert_eq!(names.len(), 34);
    }

    #[test]
    fn defaults() {
        let s = from_pairs(&[]).unwrap();
        assert_eq!(s.database_url, "sqlite://./lablink-data/lablink.db");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.metrics_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert!(s.operator_gitlab.is_none());
        assert!(!s.allow_http_loopback_gitlab);
        assert_eq!(s.roles, Roles::ALL);
        assert_eq!(s.max_concurrent_runs, 2);
        assert_eq!(s.shutdown_grace, Duration::from_secs(60));
        assert_eq!(s.retention, Retention::default());
        let worker = from_pairs(&[("roles", "worker"), ("shutdown_grace_seconds", "0")]).unwrap();
        assert_eq!(worker.roles.to_string(), "worker");
        assert_eq!(worker.shutdown_grace, Duration::ZERO);
        let toml = figment::Figment::from(figment::providers::Toml::string(
            "roles = [\"web\", \"intake\"]",
        ));
        assert_eq!(extract(toml).unwrap().roles.to_string(), "web, intake");
    }

    #[test]
    fn bad_values_name_their_setting() {
        assert!(err(&[("listen", "nowhere")]).starts_with("setting `listen` (LABLINK_LISTEN)"));
        assert!(err(&[("metrics_listen", "1.2.3.4")]).contains("`metrics_listen`"));
        assert!(err(&[("database_url", "mysql://x")]).contains("`database_url`"));
        assert!(err(&[("public_url", "ftp://x")]).contains("`public_url`"));
        assert!(err(&[("public_url", "https://a:b@x")]).contains("`public_url`"));
        assert!(err(&[("secret_key", "c2hvcnQ=")]).contains("`secret_key`"));
        let bad_previous = err(&[("previous_secret_keys", "c2hvcnQ=")]);
        assert!(bad_previous.contains("`previous_secret_keys`") && bad_previous.contains("key 1"));
        assert!(!bad_previous.contains("c2hvcnQ="), "{bad_previous}");
        assert!(err(&[("log_format", "xml")]).contains("`log_format`"));
        assert!(err(&[("gitlab_url", "http://gitlab.example")]).contains("`gitlab_url`"));
        assert!(err(&[("gitlab_app_id", "abc")]).contains("`gitlab_app_secret`"));
        assert!(
            err(&[("allow_http_loopback_gitlab", "maybe")])
                .contains("`allow_http_loopback_gitlab`")
        );
        assert!(
            err(&[("allow_private_network_gitlab", "2")])
                .contains("`allow_private_network_gitlab`")
        );
        assert!(err(&[("roles", "web, cron")]).contains(
            "setting `roles` (LABLINK_ROLES): `cron` is not a role; the roles are web, \
                 intake, worker, scheduler"
        ));
        assert!(err(&[("roles", "")]).contains("give at least one role"));
        assert!(err(&[("max_concurrent_runs", "0")]).contains("`max_concurrent_runs`"));
        assert!(err(&[("shutdown_grace_seconds", "-1")]).contains("`shutdown_grace_seconds`"));
        assert!(err(&[("background_work", "false")]).contains("unknown setting"));
        assert!(err(&[("session_idle_minutes", "0")]).contains("`session_idle_minutes`"));
        assert!(err(&[("session_absolute_hours", "x")]).contains("`session_absolute_hours`"));
        assert!(
            err(&[("data_dir_typo", "x")])
                .starts_with("setting `data_dir_typo` (LABLINK_DATA_DIR_TYPO): unknown setting")
        );
    }

    #[test]
    fn trusted_proxies_are_ranges_from_a_list_or_a_comma_separated_text() {
        assert!(from_pairs(&[]).unwrap().trusted_proxies.is_empty());
        let s = from_pairs(&[("trusted_proxies", "10.1.0.0/16, 2001:db8::1")]).unwrap();
        let shown: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["10.1.0.0/16", "2001:db8::1/128"]);
        let e = err(&[("trusted_proxies", "10.0.0.0/8, proxy.internal")]);
        assert!(e.starts_with("setting `trusted_proxies`"), "{e}");
        assert!(
            e.contains("`proxy.internal` is not an address or a range"),
            "{e}"
        );
        let toml = figment::Figment::from(figment::providers::Toml::string(
            "trusted_proxies = [\"127.0.0.1\", \"::1\"]",
        ));
        assert_eq!(extract(toml).unwrap().trusted_proxies.len(), 2);
    }

    #[test]
    fn the_operator_application_needs_id_and_secret() {
        let s = from_pairs(&[("gitlab_app_id", "123"), ("gitlab_app_secret", "s")]).unwrap();
        let app = s.operator_gitlab.unwrap();
        assert_eq!(app.app_id, "123");
        assert_eq!(app.url.as_str(), "https://gitlab.com/");
    }
}
