//! The key that deduplicates deliveries.

use http::HeaderMap;
use sha2::{Digest as _, Sha256};

/// Header values longer than this are hashed, so stored keys stay small.
const MAX_KEY_LEN: usize = 128;

/// A key identical for every (re)delivery of one event: `webhook-id` (19.0+, constant across
/// resends, and covered by the signature, so a replayed body cannot pick another key), else
/// `Idempotency-Key` (17.4+, the same value unsigned), else `X-Gitlab-Event-UUID`.
/// `X-Gitlab-Webhook-UUID` names the hook, not the delivery, so it is combined with a hash of the
/// body; with no header at all the body hash alone is the key.
pub fn delivery_key(headers: &HeaderMap, body: &[u8]) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let body_hash = || hex::encode(Sha256::digest(body));
    let key = match ["webhook-id", "idempotency-key", "x-gitlab-event-uuid"]
        .into_iter()
        .find_map(header)
    {
        Some(key) => key.to_owned(),
        None => match header("x-gitlab-webhook-uuid") {
            Some(hook) => format!("{hook}:{}", body_hash()),
            None => format!("body-sha256:{}", body_hash()),
        },
    };
    if key.len() > MAX_KEY_LEN {
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    } else {
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn prefers_the_signed_webhook_id_then_idempotency_key_then_event_uuid() {
        let all = headers(&[
            ("Idempotency-Key", "idem"),
            ("webhook-id", "wid"),
            ("X-Gitlab-Event-UUID", "event"),
            ("X-Gitlab-Webhook-UUID", "hook"),
        ]);
        assert_eq!(delivery_key(&all, b"{}"), "wid");
        let unsigned = headers(&[
            ("Idempotency-Key", "idem"),
            ("X-Gitlab-Event-UUID", "event"),
        ]);
        assert_eq!(delivery_key(&unsigned, b"{}"), "idem");
        let old = headers(&[
            ("X-Gitlab-Event-UUID", "event"),
            ("X-Gitlab-Webhook-UUID", "hook"),
        ]);
        assert_eq!(delivery_key(&old, b"{}"), "event");
    }

    #[test]
    fn hook_uuid_alone_is_combined_with_the_body() {
        let hook = headers(&[("X-Gitlab-Webhook-UUID", "hook")]);
        let a = delivery_key(&hook, b"{\"a\":1}");
        let b = delivery_key(&hook, b"{\"a\":2}");
        assert!(a.starts_with("hook:"));
        assert_ne!(a, b);
        assert_eq!(a, delivery_key(&hook, b"{\"a\":1}"));
        assert!(delivery_key(&HeaderMap::new(), b"x").starts_with("body-sha256:"));
    }

    #[test]
    fn long_keys_are_hashed() {
        let long = "k".repeat(1000);
        let key = delivery_key(&headers(&[("Idempotency-Key", &long)]), b"");
        assert!(key.starts_with("sha256:"));
        assert!(key.len() <= MAX_KEY_LEN);
    }
}
