//! The master key and the older keys kept to open what they sealed: from the settings
//! `secret_key` and `previous_secret_keys`, or else from the key file `<data_dir>/secret.key`, whose
//! first line is the current key and whose further lines are previous keys.
//!
//! Changing the key (docs/security.md): a new current key with the old one kept as previous
//! (`lablink admin new-key` for the key file), every process restarted, then `lablink admin rekey`
//! re-seals every stored secret, then the previous keys can go.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use lablink_store::crypto::KeyRing;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::config::Settings;

/// The key file's path for these settings.
pub fn key_file(settings: &Settings) -> PathBuf {
    settings.data_dir.join("secret.key")
}

/// The keys lablink opens secrets with, the first one sealing new ones; the key file is created
/// (mode 0600) on first start when no key is configured.
pub fn load_key_ring(settings: &Settings) -> anyhow::Result<KeyRing> {
    let texts: Vec<Zeroizing<String>> = match &settings.secret_key {
        Some(key) => std::iter::once(key)
            .chain(&settings.previous_secret_keys)
            .map(|k| Zeroizing::new(k.expose_secret().to_owned()))
            .collect(),
        None => {
            let path = key_file(settings);
            if !path.exists() {
                create_key_file(settings, &path)?;
            }
            let mut keys = read_key_file(&path)?;
            keys.extend(
                settings
                    .previous_secret_keys
                    .iter()
                    .map(|k| Zeroizing::new(k.expose_secret().to_owned())),
            );
            keys
        }
    };
    let mut decoded = texts.iter().enumerate().map(|(n, text)| {
        KeyRing::decode_key(text).with_context(|| match n {
            0 => "the master key (setting `secret_key` or the key file's first line) is not valid"
                .to_owned(),
            n => format!(
                "previous key {n} (setting `previous_secret_keys` or the key file) is not valid"
            ),
        })
    });
    let current = decoded.next().context("the key file holds no key")??;
    let previous: Vec<[u8; 32]> = decoded
        .map(|k| k.map(|k| *k))
        .collect::<anyhow::Result<_>>()?;
    let ring = KeyRing::new(&current, &previous);
    if ring.previous_keys() > 0 {
        tracing::warn!(
            previous_keys = ring.previous_keys(),
            "older master keys are configured; once `lablink admin rekey` reports every secret \
             re-sealed, remove them"
        );
    }
    Ok(ring)
}

/// The keys in a key file, one per line, blank lines skipped.
fn read_key_file(path: &Path) -> anyhow::Result<Vec<Zeroizing<String>>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?,
    );
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| Zeroizing::new(l.to_owned()))
        .collect())
}

fn create_key_file(settings: &Settings, path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let key = KeyRing::generate_key();
    write_private_file(path, key.as_bytes())?;
    tracing::info!(path = %path.display(), "created a new master key file");
    Ok(())
}

/// Puts a fresh key at the top of the key file, keeping the keys it held below it, and returns
/// the file's path.
pub fn add_new_key(settings: &Settings) -> anyhow::Result<PathBuf> {
    if settings.secret_key.is_some() {
        anyhow::bail!(
            "the master key is in the setting `secret_key`, not in a key file: set `secret_key` \
             to a new key (openssl rand -base64 32), add the current one to \
             `previous_secret_keys`, restart every lablink process, then run `lablink admin rekey`"
        );
    }
    let path = key_file(settings);
    if !path.exists() {
        anyhow::bail!(
            "there is no key file at {} yet: lablink creates one on its first start",
            path.display()
        );
    }
    let kept = read_key_file(&path)?;
    let mut text = Zeroizing::new(KeyRing::generate_key().to_string());
    for key in &kept {
        text.push('\n');
        text.push_str(key);
    }
    text.push('\n');
    replace_key_file(&path, &text)?;
    Ok(path)
}

/// Removes every key but the first from the key file (after a complete rekey).
pub fn forget_previous_keys(settings: &Settings) -> anyhow::Result<Option<PathBuf>> {
    if settings.secret_key.is_some() {
        return Ok(None);
    }
    let path = key_file(settings);
    let keys = read_key_file(&path)?;
    let Some(current) = keys.first() else {
        anyhow::bail!("the key file {} holds no key", path.display());
    };
    replace_key_file(&path, current)?;
    Ok(Some(path))
}

/// Replaces the key file in one rename, so a crash leaves either the old or the new file.
fn replace_key_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let temporary = path.with_extension("key.new");
    // A leftover from an interrupted run holds no key in use.
    let _ = std::fs::remove_file(&temporary);
    write_private_file(&temporary, text.as_bytes())?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot replace the key file {}", path.display()))
}

fn write_private_file(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    file.write_all(content)?;
    file.sync_all()?;
    Ok(())
}
