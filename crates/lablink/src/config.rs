//! lablink's configuration: `lablink.toml` (or the file given with `--config`), then `LABLINK_*`
//! environment variables, read once and turned into typed [`Settings`]. Every setting is
//! documented in `docs/configuration.md`; a bad value gives an error naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use lablink_service::OperatorGitlabApp;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

/// Every setting's name (the TOML key; the variable is `LABLINK_` + its upper case).
const SETTINGS: &[&str] = &[
    "database_url",
    "public_url",
    "listen",
    "metrics_listen",
    "secret_key",
    "data_dir",
    "log_format",
    "gitlab_url",
    "gitlab_app_id",
    "gitlab_app_secret",
    "allow_http_loopback_gitlab",
    "allow_private_network_gitlab",
    "session_idle_minutes",
    "session_absolute_hours",
    "project_token_days",
    "token_rotation_margin_days",
    "repository_deploy_keys",
    "background_work",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting `{setting}` (LABLINK_{env}): {message}", env = setting.to_uppercase())]
    Invalid { setting: String, message: String },
    #[error("the configuration file {path} cannot be read: {message}")]
    File { path: PathBuf, message: String },
}

fn unknown_setting(name: &str) -> ConfigError {
    invalid(
        name,
        format!("unknown setting; the settings are: {}", SETTINGS.join(", ")),
    )
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

/// The typed, validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    /// `None`: derived from the bound address (`http://<listen>`).
    pub public_url: Option<Url>,
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub secret_key: Option<SecretString>,
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
    /// Run the background loops (webhook processing, CI runs, commit statuses, token rotation)
    /// on this replica; `false` for a replica that only serves pages, the API and webhook intake.
    pub background_work: bool,
}

/// Values as read, before validation. Env values are parsed by figment as numbers or booleans
/// when they look like one, so text settings accept any scalar.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default, deserialize_with = "text")]
    database_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    public_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    listen: Option<String>,
    #[serde(default, deserialize_with = "text")]
    metrics_listen: Option<String>,
    #[serde(default, deserialize_with = "text")]
    secret_key: Option<String>,
    #[serde(default, deserialize_with = "text")]
    data_dir: Option<String>,
    #[serde(default, deserialize_with = "text")]
    log_format: Option<String>,
    #[serde(default, deserialize_with = "text")]
    gitlab_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    gitlab_app_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    gitlab_app_secret: Option<String>,
    #[serde(default, deserialize_with = "text")]
    allow_http_loopback_gitlab: Option<String>,
    #[serde(default, deserialize_with = "text")]
    allow_private_network_gitlab: Option<String>,
    #[serde(default, deserialize_with = "text")]
    session_idle_minutes: Option<String>,
    #[serde(default, deserialize_with = "text")]
    session_absolute_hours: Option<String>,
    #[serde(default, deserialize_with = "text")]
    project_token_days: Option<String>,
    #[serde(default, deserialize_with = "text")]
    token_rotation_margin_days: Option<String>,
    #[serde(default, deserialize_with = "text")]
    repository_deploy_keys: Option<String>,
    #[serde(default, deserialize_with = "text")]
    background_work: Option<String>,
}

/// Accepts a string, number or boolean as text.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    Ok(Some(match Scalar::deserialize(d)? {
        Scalar::S(s) => s,
        Scalar::I(i) => i.to_string(),
        Scalar::U(u) => u.to_string(),
        Scalar::F(f) => f.to_string(),
        Scalar::B(b) => b.to_string(),
    }))
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
    let figment = figment.merge(Env::prefixed("LABLINK_").only(SETTINGS));
    let raw: Raw = figment.extract().map_err(|e| {
        let setting = e.path.last().cloned().unwrap_or_else(|| "?".into());
        match e.kind {
            figment::error::Kind::UnknownField(field, _) => unknown_setting(&field),
            kind => invalid(&setting, kind.to_string()),
        }
    })?;
    from_raw(raw)
}

/// Settings from `key = value` pairs (as in `lablink.toml`), for the demo and tests.
pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut map = serde_json::Map::new();
    for (k, v) in pairs {
        if !SETTINGS.contains(k) {
            return Err(unknown_setting(k));
        }
        map.insert((*k).to_owned(), serde_json::Value::String((*v).to_owned()));
    }
    let raw: Raw = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| invalid("?", e.to_string()))?;
    from_raw(raw)
}

fn socket(setting: &str, value: Option<String>, default: &str) -> Result<SocketAddr, ConfigError> {
    let v = value.unwrap_or_else(|| default.to_owned());
    v.trim().parse().map_err(|_| {
        invalid(
            setting,
            format!("`{v}` is not an address and port like 127.0.0.1:8080"),
        )
    })
}

fn boolean(setting: &str, value: Option<String>, default: bool) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::trim) {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(v) => Err(invalid(setting, format!("`{v}` is not true or false"))),
    }
}

fn positive(setting: &str, value: Option<String>, default: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(setting, format!("`{v}` is not a positive whole number"))),
    }
}

fn http_url(setting: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim())
        .map_err(|e| invalid(setting, format!("`{value}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            setting,
            "the URL must start with https:// or http://",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            setting,
            "the URL must not contain a user name or password",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            setting,
            "the URL must not contain a query or fragment",
        ));
    }
    Ok(url)
}

fn from_raw(raw: Raw) -> Result<Settings, ConfigError> {
    let data_dir = PathBuf::from(raw.data_dir.unwrap_or_else(|| "./lablink-data".into()));
    let database_url = match raw.database_url {
        Some(url) => {
            let url = url.trim().to_owned();
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:"))
            {
                return Err(invalid(
                    "database_url",
                    "the URL must start with sqlite: (a file) or postgres:// (a server)",
                ));
            }
            url
        }
        None => format!("sqlite://{}", data_dir.join("lablink.db").display()),
    };
    let public_url = raw
        .public_url
        .map(|u| http_url("public_url", &u))
        .transpose()?;
    if let Some(u) = &public_url
        && u.path() != "/"
    {
        return Err(invalid(
            "public_url",
            "lablink must be served at the root of its address (no path after the host)",
        ));
    }
    let secret_key = match raw.secret_key {
        Some(k) => {
            lablink_store::crypto::KeyRing::decode_key(&k)
                .map_err(|e| invalid("secret_key", e.to_string()))?;
            Some(SecretString::from(k))
        }
        None => None,
    };
    let log_format = match raw.log_format.as_deref().map(str::trim) {
        None | Some("pretty") => LogFormat::Pretty,
        Some("json") => LogFormat::Json,
        Some(v) => {
            return Err(invalid(
                "log_format",
                format!("`{v}` is not pretty or json"),
            ));
        }
    };
    let allow_http_loopback_gitlab = boolean(
        "allow_http_loopback_gitlab",
        raw.allow_http_loopback_gitlab,
        false,
    )?;
    let gitlab_url = http_url(
        "gitlab_url",
        raw.gitlab_url.as_deref().unwrap_or("https://gitlab.com"),
    )?;
    if gitlab_url.scheme() == "http" && !allow_http_loopback_gitlab {
        return Err(invalid(
            "gitlab_url",
            "GitLab must be reached over https (http only on loopback with allow_http_loopback_gitlab = true)",
        ));
    }
    let operator_gitlab = match (raw.gitlab_app_id, raw.gitlab_app_secret) {
        (Some(app_id), Some(secret)) => Some(OperatorGitlabApp {
            url: gitlab_url,
            app_id: app_id.trim().to_owned(),
            secret: SecretString::from(secret.trim().to_owned()),
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
    let project_token_days = positive("project_token_days", raw.project_token_days, 365)?;
    if project_token_days > 365 {
        return Err(invalid(
            "project_token_days",
            "GitLab allows project access tokens to live at most 365 days",
        ));
    }
    let token_rotation_margin_days = positive(
        "token_rotation_margin_days",
        raw.token_rotation_margin_days,
        30,
    )?;
    if token_rotation_margin_days > 300 {
        return Err(invalid(
            "token_rotation_margin_days",
            "the margin is at most 300 days (tokens live at most 365)",
        ));
    }
    Ok(Settings {
        project_token_days: project_token_days as u32,
        token_rotation_margin_days: token_rotation_margin_days as u32,
        repository_deploy_keys: boolean(
            "repository_deploy_keys",
            raw.repository_deploy_keys,
            false,
        )?,
        background_work: boolean("background_work", raw.background_work, true)?,
        database_url,
        public_url,
        listen: socket("listen", raw.listen, "127.0.0.1:8080")?,
        metrics_listen: socket("metrics_listen", raw.metrics_listen, "127.0.0.1:9090")?,
        secret_key,
        data_dir,
        log_format,
        operator_gitlab,
        allow_http_loopback_gitlab,
        allow_private_network_gitlab: boolean(
            "allow_private_network_gitlab",
            raw.allow_private_network_gitlab,
            false,
        )?,
        session_idle: Duration::from_secs(
            60 * positive("session_idle_minutes", raw.session_idle_minutes, 8 * 60)?,
        ),
        session_absolute: Duration::from_secs(
            3600 * positive("session_absolute_hours", raw.session_absolute_hours, 7 * 24)?,
        ),
    })
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
        for name in SETTINGS {
            assert!(
                docs.contains(&format!("| `{name}` |")),
                "{name} is missing from docs/configuration.md"
            );
        }
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
        assert!(s.background_work);
        assert!(
            !from_pairs(&[("background_work", "false")])
                .unwrap()
                .background_work
        );
    }

    #[test]
    fn bad_values_name_their_setting() {
        assert!(err(&[("listen", "nowhere")]).starts_with("setting `listen` (LABLINK_LISTEN)"));
        assert!(err(&[("metrics_listen", "1.2.3.4")]).contains("`metrics_listen`"));
        assert!(err(&[("database_url", "mysql://x")]).contains("`database_url`"));
        assert!(err(&[("public_url", "ftp://x")]).contains("`public_url`"));
        assert!(err(&[("public_url", "https://a:b@x")]).contains("`public_url`"));
        assert!(err(&[("secret_key", "c2hvcnQ=")]).contains("`secret_key`"));
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
        assert!(err(&[("background_work", "sometimes")]).contains("`background_work`"));
        assert!(err(&[("session_idle_minutes", "0")]).contains("`session_idle_minutes`"));
        assert!(err(&[("session_absolute_hours", "x")]).contains("`session_absolute_hours`"));
        assert!(
            err(&[("data_dir_typo", "x")])
                .starts_with("setting `data_dir_typo` (LABLINK_DATA_DIR_TYPO): unknown setting")
        );
    }

    #[test]
    fn the_operator_application_needs_id_and_secret() {
        let s = from_pairs(&[("gitlab_app_id", "123"), ("gitlab_app_secret", "s")]).unwrap();
        let app = s.operator_gitlab.unwrap();
        assert_eq!(app.app_id, "123");
        assert_eq!(app.url.as_str(), "https://gitlab.com/");
    }
}
