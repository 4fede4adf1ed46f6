//! Is this delivery from GitLab? The plain shared secret in `X-Gitlab-Token` (all versions) and,
//! from GitLab 19.0, the Standard Webhooks HMAC signature (gitlab-api.md §3.3).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use http::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// How far `webhook-timestamp` may be from now (Standard Webhooks' 5 minutes), against replays.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// What proved the delivery genuine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// A valid `webhook-signature` entry.
    Signature,
    /// `X-Gitlab-Token` equals the current secret.
    Token,
    /// `X-Gitlab-Token` equals the previous secret (rotation grace window).
    PreviousToken,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the delivery carries no X-Gitlab-Token")]
    MissingToken,
    #[error("X-Gitlab-Token does not match the repository's webhook secret")]
    BadToken,
    #[error(
        "the delivery is not signed, but the repository's webhook has a signing token (GitLab signs every delivery of such a hook)"
    )]
    Unsigned,
    #[error("webhook-signature is present but webhook-id or webhook-timestamp is missing")]
    MissingSignatureHeaders,
    #[error(
        "webhook-timestamp is not within {SIGNATURE_TOLERANCE_SECS} s of now (replay or clock skew)"
    )]
    StaleTimestamp,
    #[error("no webhook-signature entry matches the signing token")]
    BadSignature,
    #[error("the stored signing token is not `whsec_` + base64")]
    BadSigningKey,
}

/// Verifies a delivery now. See [`verify_at`].
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secret: &SecretString,
    previous_secret: Option<&SecretString>,
    signing_key: Option<&SecretString>,
) -> Result<Verified, VerifyError> {
    let now = chrono::Utc::now().timestamp();
    verify_at(headers, body, secret, previous_secret, signing_key, now)
}

/// When a signing key is stored, the signature decides: a bad signature is refused even if the
/// token matches, and an unsigned delivery is refused too (someone who learnt the plain token
/// must not get around the signature), except while a rotation's grace window is open
/// (`previous_secret`), when the hook may still be the one from before the signing token.
/// Without a signing key `X-Gitlab-Token` must equal the secret or, during a rotation, the
/// previous one; both compared in constant time.
pub fn verify_at(
    headers: &HeaderMap,
    body: &[u8],
    secret: &SecretString,
    previous_secret: Option<&SecretString>,
    signing_key: Option<&SecretString>,
    now_unix: i64,
) -> Result<Verified, VerifyError> {
    match (signing_key, header(headers, "webhook-signature")) {
        (Some(key), Some(signature)) => {
            return verify_signature(headers, body, key, signature, now_unix);
        }
        (Some(_), None) if previous_secret.is_none() => return Err(VerifyError::Unsigned),
        _ => {}
    }
    check_token(headers, secret, previous_secret)
}

/// What can be checked before the body is read, so that a sender without the repository's
/// secret cannot make lablink read 25 MiB: `X-Gitlab-Token` must equal the secret (or, during a
/// rotation, the previous one; lablink's hooks always have one), and when a signing token is
/// stored, the signature's headers must be there and recent (the signature itself covers the
/// body: [`verify`] checks it once the body is read).
pub fn precheck(
    headers: &HeaderMap,
    secret: &SecretString,
    previous_secret: Option<&SecretString>,
    signing_key: Option<&SecretString>,
) -> Result<(), VerifyError> {
    precheck_at(
        headers,
        secret,
        previous_secret,
        signing_key,
        chrono::Utc::now().timestamp(),
    )
}

fn precheck_at(
    headers: &HeaderMap,
    secret: &SecretString,
    previous_secret: Option<&SecretString>,
    signing_key: Option<&SecretString>,
    now_unix: i64,
) -> Result<(), VerifyError> {
    check_token(headers, secret, previous_secret)?;
    match (signing_key, header(headers, "webhook-signature")) {
        (Some(_), Some(_)) => signature_headers(headers, now_unix).map(drop),
        (Some(_), None) if previous_secret.is_none() => Err(VerifyError::Unsigned),
        _ => Ok(()),
    }
}

fn check_token(
    headers: &HeaderMap,
    secret: &SecretString,
    previous_secret: Option<&SecretString>,
) -> Result<Verified, VerifyError> {
    let token = header(headers, "x-gitlab-token").ok_or(VerifyError::MissingToken)?;
    if secret_matches(token, secret) {
        Ok(Verified::Token)
    } else if previous_secret.is_some_and(|previous| secret_matches(token, previous)) {
        Ok(Verified::PreviousToken)
    } else {
        Err(VerifyError::BadToken)
    }
}

/// `webhook-id` and a `webhook-timestamp` within the tolerance of now.
fn signature_headers(headers: &HeaderMap, now_unix: i64) -> Result<(&str, &str), VerifyError> {
    let (Some(id), Some(timestamp)) = (
        header(headers, "webhook-id"),
        header(headers, "webhook-timestamp"),
    ) else {
        return Err(VerifyError::MissingSignatureHeaders);
    };
    let sent_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::StaleTimestamp)?;
    if now_unix.abs_diff(sent_at) > SIGNATURE_TOLERANCE_SECS.unsigned_abs() {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok((id, timestamp))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Compares digests so neither the content nor the length of the secret leaks through timing.
fn secret_matches(given: &str, secret: &SecretString) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(secret.expose_secret().as_bytes());
    given.ct_eq(&expected).into()
}

fn verify_signature(
    headers: &HeaderMap,
    body: &[u8],
    key: &SecretString,
    signature: &str,
    now_unix: i64,
) -> Result<Verified, VerifyError> {
    let (id, timestamp) = signature_headers(headers, now_unix)?;
    let encoded = key.expose_secret();
    let key_bytes = STANDARD
        .decode(encoded.strip_prefix("whsec_").unwrap_or(encoded))
        .map_err(|_| VerifyError::BadSigningKey)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key_bytes).map_err(|_| VerifyError::BadSigningKey)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = signature
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|sig| STANDARD.decode(sig).ok())
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if matches {
        Ok(Verified::Signature)
    } else {
        Err(VerifyError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_700_000_000;

    fn sign(id: &str, ts: &str, body: &[u8]) -> String {
        let key = STANDARD
            .decode(KEY.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[test]
    fn token_current_previous_and_wrong() {
        let current = secret("current");
        let previous = secret("previous");
        let check = |token: &str| {
            verify_at(
                &headers(&[("X-Gitlab-Token", token.to_owned())]),
                b"{}",
                &current,
                Some(&previous),
                None,
                NOW,
            )
        };
        assert_eq!(check("current"), Ok(Verified::Token));
        assert_eq!(check("previous"), Ok(Verified::PreviousToken));
        assert_eq!(check("wrong"), Err(VerifyError::BadToken));
        assert_eq!(check("curren"), Err(VerifyError::BadToken));
        assert_eq!(
            verify_at(&HeaderMap::new(), b"{}", &current, None, None, NOW),
            Err(VerifyError::MissingToken)
        );
    }

    #[test]
    fn valid_signature_among_several_entries() {
        let body = br#"{"object_kind":"push"}"#;
        let ts = NOW.to_string();
        let good = sign("msg_1", &ts, body);
        let h = headers(&[
            ("webhook-id", "msg_1".to_owned()),
            ("webhook-timestamp", ts.clone()),
            (
                "webhook-signature",
                format!("v1,bm90IGl0 {good} v2,whatever"),
            ),
        ]);
        let key = secret(KEY);
        assert_eq!(
            verify_at(&h, body, &secret("x"), None, Some(&key), NOW),
            Ok(Verified::Signature)
        );
        // Tampered body, other id, or a stale timestamp are refused.
        assert_eq!(
            verify_at(&h, b"{}", &secret("x"), None, Some(&key), NOW),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify_at(&h, body, &secret("x"), None, Some(&key), NOW + 301),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            verify_at(&h, body, &secret("x"), None, Some(&key), NOW - 300),
            Ok(Verified::Signature)
        );
    }

    #[test]
    fn bad_signature_is_refused_even_with_the_right_token() {
        let ts = NOW.to_string();
        let h = headers(&[
            ("webhook-id", "msg_1".to_owned()),
            ("webhook-timestamp", ts),
            ("webhook-signature", "v1,AAAA".to_owned()),
            ("X-Gitlab-Token", "tok".to_owned()),
        ]);
        assert_eq!(
            verify_at(&h, b"{}", &secret("tok"), None, Some(&secret(KEY)), NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn the_precheck_needs_the_token_and_fresh_signature_headers_but_no_body() {
        let key = secret(KEY);
        let tok = secret("tok");
        let signed = |token: &str, ts: i64| {
            headers(&[
                ("X-Gitlab-Token", token.to_owned()),
                ("webhook-id", "m".to_owned()),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", "v1,AAAA".to_owned()),
            ])
        };
        assert_eq!(
            precheck_at(&signed("tok", NOW), &tok, None, Some(&key), NOW),
            Ok(())
        );
        // Without the token a sender gets nowhere, signature headers or not.
        assert_eq!(
            precheck_at(&signed("x", NOW), &tok, None, Some(&key), NOW),
            Err(VerifyError::BadToken)
        );
        assert_eq!(
            precheck_at(&HeaderMap::new(), &tok, None, None, NOW),
            Err(VerifyError::MissingToken)
        );
        assert_eq!(
            precheck_at(&signed("tok", NOW - 301), &tok, None, Some(&key), NOW),
            Err(VerifyError::StaleTimestamp)
        );
        let unsigned = headers(&[("X-Gitlab-Token", "tok".to_owned())]);
        assert_eq!(
            precheck_at(&unsigned, &tok, None, Some(&key), NOW),
            Err(VerifyError::Unsigned)
        );
        assert_eq!(precheck_at(&unsigned, &tok, None, None, NOW), Ok(()));
    }

    #[test]
    fn unsigned_deliveries_are_refused_when_signed_ones_are_due() {
        let key = secret(KEY);
        let h = headers(&[("X-Gitlab-Token", "tok".to_owned())]);
        // A signing token is stored: the right plain token alone is not enough ...
        assert_eq!(
            verify_at(&h, b"{}", &secret("tok"), None, Some(&key), NOW),
            Err(VerifyError::Unsigned)
        );
        // ... except in a rotation's grace window, when the hook may not be signed yet.
        assert_eq!(
            verify_at(
                &h,
                b"{}",
                &secret("tok"),
                Some(&secret("old")),
                Some(&key),
                NOW
            ),
            Ok(Verified::Token)
        );
        // Without a signing token the plain token decides.
        assert_eq!(
            verify_at(&h, b"{}", &secret("tok"), None, None, NOW),
            Ok(Verified::Token)
        );
        let h = headers(&[("webhook-signature", "v1,AAAA".to_owned())]);
        assert_eq!(
            verify_at(&h, b"{}", &secret("tok"), None, Some(&key), NOW),
            Err(VerifyError::MissingSignatureHeaders)
        );
        let h = headers(&[
            ("webhook-id", "m".to_owned()),
            ("webhook-timestamp", NOW.to_string()),
            ("webhook-signature", "v1,AAAA".to_owned()),
        ]);
        assert_eq!(
            verify_at(
                &h,
                b"{}",
                &secret("tok"),
                None,
                Some(&secret("whsec_!!!")),
                NOW
            ),
            Err(VerifyError::BadSigningKey)
        );
    }
}
