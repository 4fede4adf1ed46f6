//! The SSH server's host key: one ed25519 key kept in the data directory, so clients' known_hosts
//! stay valid across restarts on the same data directory (a fresh data directory, the default,
//! gets a fresh key).

use std::path::Path;

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, PrivateKey};

const FILE: &str = "ssh_host_ed25519_key";

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("cannot read or write the SSH host key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the SSH host key {path} is not an OpenSSH private key: {reason}")]
    Invalid { path: String, reason: String },
}

/// Loads `<data_dir>/ssh_host_ed25519_key`, creating it on first use.
pub fn load_or_create(data_dir: &Path) -> Result<PrivateKey, HostKeyError> {
    let path = data_dir.join(FILE);
    let shown = path.display().to_string();
    let io = |source| HostKeyError::Io {
        path: shown.clone(),
        source,
    };
    let invalid = |reason: String| HostKeyError::Invalid {
        path: shown.clone(),
        reason,
    };
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(io)?;
        return PrivateKey::from_openssh(&text).map_err(|e| invalid(e.to_string()));
    }
    let key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)
        .map_err(|e| invalid(e.to_string()))?;
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| invalid(e.to_string()))?;
    std::fs::write(&path, text.as_bytes()).map_err(io)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(io)?;
    Ok(key)
}

/// The public half as an OpenSSH line, without comment: `ssh-ed25519 AAAA...`.
pub fn public_line(key: &PrivateKey) -> String {
    key.public_key().to_openssh().unwrap_or_default()
}
