//! How each setting's value is read: every reader accepts the scalar figment hands over (an
//! environment value looks like a number or a boolean to it, so text settings take any scalar),
//! checks it and gives it its type, or says in plain words what is wrong. figment adds which
//! setting it was.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::{Deserializer, Error};
use url::Url;

use lablink_core::ip_range::{IpNet, parse_ip_range};
use lablink_exec::sandbox::Isolation;

use super::LogFormat;
use super::roles::Roles;

/// Any scalar, as text.
fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    Ok(match Scalar::deserialize(d)? {
        Scalar::S(s) => s,
        Scalar::I(i) => i.to_string(),
        Scalar::U(u) => u.to_string(),
        Scalar::F(f) => f.to_string(),
        Scalar::B(b) => b.to_string(),
    })
}

pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    scalar(d).map(|s| Some(s.trim().to_owned()))
}

pub fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    scalar(d).map(|s| Some(SecretString::from(s.trim().to_owned())))
}

pub fn path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    scalar(d).map(PathBuf::from)
}

pub fn optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let path = PathBuf::from(scalar(d)?.trim());
    if path.is_absolute() {
        Ok(Some(path))
    } else {
        Err(D::Error::custom("give an absolute path"))
    }
}

pub fn isolation<'de, D: Deserializer<'de>>(d: D) -> Result<Isolation, D::Error> {
    let v = scalar(d)?;
    match v.trim() {
        "bubblewrap" => Ok(Isolation::Bubblewrap),
        "none" => Ok(Isolation::None),
        _ => Err(D::Error::custom(format!("`{v}` is not bubblewrap or none"))),
    }
}

/// A TOML list, or one text with the items separated by commas (as an environment variable
/// gives it).
fn texts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Texts {
        List(Vec<String>),
        One(String),
    }
    Ok(match Texts::deserialize(d)? {
        Texts::List(list) => list,
        Texts::One(text) => text
            .split(',')
            .map(str::to_owned)
            .filter(|t| !t.trim().is_empty())
            .collect(),
    })
}

/// The roles of a replica, as a list (see [`texts`]).
pub fn roles<'de, D: Deserializer<'de>>(d: D) -> Result<Roles, D::Error> {
    Roles::from_names(&texts(d)?).map_err(D::Error::custom)
}

/// Address ranges, as a list (see [`texts`]).
pub fn ip_ranges<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    texts(d)?
        .iter()
        .map(|t| parse_ip_range(t).map_err(D::Error::custom))
        .collect()
}

/// Older master keys, as a list (see [`texts`]); each is checked like `secret_key`, and the
/// error never repeats a key.
pub fn previous_secret_keys<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<SecretString>, D::Error> {
    texts(d)?
        .into_iter()
        .enumerate()
        .map(|(n, key)| {
            lablink_store::crypto::KeyRing::decode_key(&key)
                .map_err(|e| D::Error::custom(format!("key {} of the list: {e}", n + 1)))?;
            Ok(SecretString::from(key.trim().to_owned()))
        })
        .collect()
}

pub fn socket<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let v = scalar(d)?;
    v.trim().parse().map_err(|_| {
        D::Error::custom(format!(
            "`{v}` is not an address and port like 127.0.0.1:8080"
        ))
    })
}

pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = scalar(d)?;
    match v.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(D::Error::custom(format!("`{v}` is not true or false"))),
    }
}

fn whole_number<'de, D: Deserializer<'de>>(d: D, max: u64, why: &str) -> Result<u64, D::Error> {
    let v = scalar(d)?;
    let n = v
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| D::Error::custom(format!("`{v}` is not a positive whole number")))?;
    if n > max {
        return Err(D::Error::custom(why));
    }
    Ok(n)
}

/// A whole number of seconds, 0 included.
pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = scalar(d)?;
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n <= u64::MAX / 1000)
        .ok_or_else(|| D::Error::custom(format!("`{v}` is not a whole number of seconds")))
}

pub fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    whole_number(d, u64::MAX / 3600, "the number is too large")
}

pub fn project_token_days<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let days = whole_number(
        d,
        365,
        "GitLab allows project access tokens to live at most 365 days",
    )?;
    Ok(days as u32)
}

pub fn rotation_margin_days<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let days = whole_number(
        d,
        300,
        "the margin is at most 300 days (tokens live at most 365)",
    )?;
    Ok(days as u32)
}

pub fn log_format<'de, D: Deserializer<'de>>(d: D) -> Result<LogFormat, D::Error> {
    let v = scalar(d)?;
    match v.trim() {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        _ => Err(D::Error::custom(format!("`{v}` is not pretty or json"))),
    }
}

pub fn database_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let url = scalar(d)?.trim().to_owned();
    if ["sqlite:", "postgres:", "postgresql:"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        Ok(Some(url))
    } else {
        Err(D::Error::custom(
            "the URL must start with sqlite: (a file) or postgres:// (a server)",
        ))
    }
}

pub fn secret_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    let key = scalar(d)?;
    lablink_store::crypto::KeyRing::decode_key(&key).map_err(D::Error::custom)?;
    Ok(Some(SecretString::from(key)))
}

/// An http(s) URL without credentials, query or fragment.
fn http_url_text<E: Error>(value: &str) -> Result<Url, E> {
    let url =
        Url::parse(value.trim()).map_err(|e| E::custom(format!("`{value}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(E::custom("the URL must start with https:// or http://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(E::custom(
            "the URL must not contain a user name or password",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(E::custom("the URL must not contain a query or fragment"));
    }
    Ok(url)
}

pub fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
    http_url_text(&scalar(d)?)
}

/// lablink's own address: http(s) at the root of the host.
pub fn public_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    let url: Url = http_url_text(&scalar(d)?)?;
    if url.path() != "/" {
        return Err(D::Error::custom(
            "lablink must be served at the root of its address (no path after the host)",
        ));
    }
    Ok(Some(url))
}
