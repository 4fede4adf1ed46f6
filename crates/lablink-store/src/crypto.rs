//! The secret envelope: XChaCha20-Poly1305 with a random 192-bit nonce, the row's identity as
//! associated data (so a ciphertext copied to another row or column does not decrypt), and a key
//! id so the master key can be rotated while old rows stay readable.
//!
//! Layout: `version (1) | key id (8) | nonce (24) | ciphertext + tag`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("the ciphertext is malformed")]
    Malformed,
    #[error("the ciphertext was sealed with a key that is not configured (key id {0})")]
    UnknownKey(String),
    #[error("the ciphertext does not belong to this row or was tampered with")]
    Tampered,
}

/// The master keys: one current key used to seal, and older keys kept only to open.
pub struct KeyRing {
    current: ([u8; KEY_ID_LEN], XChaCha20Poly1305),
    previous: Vec<([u8; KEY_ID_LEN], XChaCha20Poly1305)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &hex::encode(self.current.0))
            .field("previous", &self.previous.len())
            .finish()
    }
}

fn key_id(key: &[u8; 32]) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::digest(key);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

fn cipher(key: &[u8; 32]) -> ([u8; KEY_ID_LEN], XChaCha20Poly1305) {
    (key_id(key), XChaCha20Poly1305::new(key.into()))
}

impl KeyRing {
    pub fn new(current: &[u8; 32], previous: &[[u8; 32]]) -> KeyRing {
        KeyRing {
            current: cipher(current),
            previous: previous.iter().map(cipher).collect(),
        }
    }

    /// Decodes a base64 (standard alphabet) 32-byte key.
    pub fn decode_key(text: &str) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        use base64::Engine;
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| CryptoError::BadKey)?,
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadKey)?;
        Ok(Zeroizing::new(key))
    }

    /// A fresh random key, base64-encoded, for first start.
    pub fn generate_key() -> Zeroizing<String> {
        use base64::Engine;
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.as_ref()))
    }

    /// Encrypts `plaintext`, binding it to `aad` (for example `"linked_accounts.access_token:<id>"`).
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let (id, cipher) = &self.current;
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a value sealed by [`KeyRing::seal`] with the same `aad`.
    pub fn open(&self, aad: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if blob.len() < HEADER_LEN + 16 || blob[0] != VERSION {
            return Err(CryptoError::Malformed);
        }
        let id = &blob[1..1 + KEY_ID_LEN];
        let nonce = &blob[1 + KEY_ID_LEN..HEADER_LEN];
        let cipher = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|(kid, _)| kid.as_slice() == id)
            .map(|(_, c)| c)
            .ok_or_else(|| CryptoError::UnknownKey(hex::encode(id)))?;
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: &blob[HEADER_LEN..],
                    aad: aad.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Tampered)
    }

    /// The id of the key that sealed `blob` (hex), when it has the envelope's layout.
    pub fn key_id_of(blob: &[u8]) -> Option<String> {
        (blob.len() >= HEADER_LEN && blob[0] == VERSION)
            .then(|| hex::encode(&blob[1..1 + KEY_ID_LEN]))
    }

    /// The current key's id (hex), the one new values are sealed with.
    pub fn current_key_id(&self) -> String {
        hex::encode(self.current.0)
    }

    /// Whether `blob` was sealed with the current key.
    pub fn is_current(&self, blob: &[u8]) -> bool {
        blob.len() >= HEADER_LEN && blob[0] == VERSION && blob[1..1 + KEY_ID_LEN] == self.current.0
    }

    /// How many older keys are kept to open values.
    pub fn previous_keys(&self) -> usize {
        self.previous.len()
    }

    /// Seals a string secret.
    pub fn seal_str(&self, aad: &str, secret: &secrecy::SecretString) -> Vec<u8> {
        use secrecy::ExposeSecret;
        self.seal(aad, secret.expose_secret().as_bytes())
    }

    /// Opens a string secret.
    pub fn open_str(&self, aad: &str, blob: &[u8]) -> Result<secrecy::SecretString, CryptoError> {
        let bytes = self.open(aad, blob)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| CryptoError::Malformed)?;
        Ok(secrecy::SecretString::from(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(&[7u8; 32], &[])
    }

    #[test]
    fn round_trip_with_matching_aad() {
        let r = ring();
        let blob = r.seal("t.c:1", b"glpat-secret");
        assert_eq!(r.open("t.c:1", &blob).unwrap().as_slice(), b"glpat-secret");
        assert!(!blob.windows(12).any(|w| w == b"glpat-secret"));
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_does_not_open() {
        let r = ring();
        let blob = r.seal("t.c:1", b"x");
        assert_eq!(r.open("t.c:2", &blob), Err(CryptoError::Tampered));
    }

    #[test]
    fn tampering_is_detected() {
        let r = ring();
        let mut blob = r.seal("a", b"hello");
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(r.open("a", &blob), Err(CryptoError::Tampered));
        assert_eq!(r.open("a", &blob[..10]), Err(CryptoError::Malformed));
    }

    #[test]
    fn rotation_keeps_old_rows_readable() {
        let old = KeyRing::new(&[1u8; 32], &[]);
        let blob = old.seal("a", b"v");
        let rotated = KeyRing::new(&[2u8; 32], &[[1u8; 32]]);
        assert_eq!(rotated.open("a", &blob).unwrap().as_slice(), b"v");
        let fresh = KeyRing::new(&[2u8; 32], &[]);
        assert!(matches!(
            fresh.open("a", &blob),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_decode_from_base64() {
        let text = KeyRing::generate_key();
        assert_eq!(KeyRing::decode_key(&text).unwrap().len(), 32);
        assert_eq!(KeyRing::decode_key("c2hvcnQ="), Err(CryptoError::BadKey));
    }
}
