//! OpenSSH public keys: GitLab's type validation and its MD5 / SHA256 fingerprints, on the
//! `ssh-key` crate's parser (the RustCrypto one, as re-exported by `russh`).

use md5::{Digest, Md5};
use russh::keys::ssh_key::{self, HashAlg, public::KeyData};

/// The key types GitLab accepts (`Gitlab::SSHPublicKey.supported_types`).
const TYPES: [&str; 8] = [
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-ed25519",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ssh-ed25519@openssh.com",
];

const MAX_RSA_BITS: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("type is forbidden. Must be RSA, DSA, ECDSA, ED25519, ECDSA_SK, or ED25519_SK")]
    ForbiddenType,
    #[error("is invalid")]
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// `type base64 [comment]`, whitespace-normalised.
    pub normalized: String,
    /// `4a:9d:...` (MD5 of the key blob).
    pub fingerprint: String,
    /// `SHA256:` + unpadded base64 of SHA-256 of the blob (OpenSSH's form).
    pub fingerprint_sha256: String,
}

/// The `SHA256:` fingerprint of a key presented over SSH, to find it among stored keys.
pub fn sha256_fingerprint(key: &ssh_key::PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn rsa_bits(data: &KeyData) -> Option<usize> {
    let KeyData::Rsa(rsa) = data else {
        return None;
    };
    let n = rsa.n.as_positive_bytes()?;
    let first = n.iter().position(|b| *b != 0)?;
    Some((n.len() - first) * 8 - n[first].leading_zeros() as usize)
}

pub fn parse(key: &str) -> Result<PublicKey, KeyError> {
    let mut parts = key.split_whitespace();
    let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
        return Err(KeyError::Invalid);
    };
    if !TYPES.contains(&kind) {
        return Err(KeyError::ForbiddenType);
    }
    // The parser checks the blob and that its embedded type is the announced one.
    let parsed = ssh_key::PublicKey::from_openssh(&format!("{kind} {b64}"))
        .map_err(|_| KeyError::Invalid)?;
    if kind == "ssh-rsa" && rsa_bits(parsed.key_data()).is_none_or(|bits| bits > MAX_RSA_BITS) {
        return Err(KeyError::Invalid);
    }
    let blob = parsed.to_bytes().map_err(|_| KeyError::Invalid)?;
    let comment: Vec<&str> = parts.collect();
    let mut normalized = format!("{kind} {b64}");
    if !comment.is_empty() {
        normalized.push(' ');
        normalized.push_str(&comment.join(" "));
    }
    Ok(PublicKey {
        normalized,
        fingerprint: Md5::digest(&blob)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
        fingerprint_sha256: sha256_fingerprint(&parsed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key and fingerprints of GitLab's documented example (fixture `api.deploy_key.get.json`).
    #[test]
    fn fingerprints_match_gitlab_fixture() {
        let key = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDNJAkI3Wdf0r13c8a5pEExB2YowPWCSVzfZV22pNBc1CuEbyYLHpUyaD0GwpGvFdx2aP7lMEk35k6Rz3ccBF6jRaVJyhsn5VNnW92PMpBJ/P1UebhXwsFHdQf5rTt082cSxWuk61kGWRQtk4ozt/J2DF/dIUVaLvc+z4HomT41fQ==";
        let parsed = parse(key).expect("valid key");
        assert_eq!(
            parsed.fingerprint,
            "4a:9d:64:15:ed:3a:e6:07:6e:89:36:b3:3b:03:05:d9"
        );
        assert_eq!(
            parsed.fingerprint_sha256,
            "SHA256:Jrs3LD1Ji30xNLtTVf9NDCj7kkBgPBb2pjvTZ3HfIgU"
        );
    }

    #[test]
    fn rejects_unknown_type_and_garbage() {
        assert_eq!(parse("ssh-foo AAAA"), Err(KeyError::ForbiddenType));
        assert_eq!(parse("ssh-rsa not-base64!"), Err(KeyError::Invalid));
        assert_eq!(parse(""), Err(KeyError::Invalid));
        // A valid ed25519 blob announced as rsa.
        let ed = "AAAAC3NzaC1lZDI1NTE5AAAAIGZ2b2ZoZm9vYmFyYmF6cXV4cXV1eHh4eHh4eHh4eA==";
        assert_eq!(parse(&format!("ssh-rsa {ed}")), Err(KeyError::Invalid));
    }
}
