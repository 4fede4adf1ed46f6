//! Webhook intake: verify, classify by header, store the delivery and its job in one
//! transaction. Nothing here calls GitLab or parses the body; that is the processing job's work
//! ([`super::events`]), so GitLab gets its 2xx fast and never disables the hook because of us.

use http::HeaderMap;
use lablink_gitlab::webhook::{delivery_key, verify};
use lablink_store::deliveries::{NewDelivery, Recorded};

use crate::{ServiceError, Services};

/// GitLab's maximum webhook payload (gitlab-api.md §3.6).
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// Why intake refused a delivery. Unauthorized carries no detail on purpose: the sender learns
/// nothing about which repositories exist or which secret was wrong.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("unauthorized")]
    Unauthorized,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// What happened to an accepted delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored; a job processes it.
    Queued { delivery_id: String },
    /// Stored as ignored, with the reason.
    Ignored { reason: String },
    /// Seen before under the same delivery key.
    Duplicate,
}

/// Events whose processing could start or cancel runs; everything else is recorded as ignored.
fn ignored_reason(event: Option<&str>) -> Option<String> {
    match event.map(str::trim) {
        Some("Merge Request Hook" | "Push Hook") => None,
        Some("Tag Push Hook") => Some("tag pushes start nothing".into()),
        Some(other) => Some(format!("event `{other}` is not one lablink acts on")),
        None => Some("no X-Gitlab-Event header".into()),
    }
}

impl Services {
    /// Accepts a delivery for `repository_id` if it proves it comes from the repository's hook.
    pub async fn receive_webhook(
        &self,
        repository_id: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Accepted, IntakeError> {
        let secrets = self
            .db
            .hook_secrets(&self.keys, repository_id)
            .await
            .map_err(ServiceError::from)?
            .ok_or(IntakeError::Unauthorized)?;
        verify(
            headers,
            body,
            &secrets.secret,
            secrets.previous.as_ref(),
            secrets.signing_token.as_ref(),
        )
        .map_err(|e| {
            tracing::info!(repository_id, error = %e, "webhook delivery refused");
            IntakeError::Unauthorized
        })?;
        let event = headers.get("x-gitlab-event").and_then(|v| v.to_str().ok());
        let ignored = ignored_reason(event);
        let key = delivery_key(headers, body);
        let recorded = self
            .db
            .record_delivery(&NewDelivery {
                repository_id,
                delivery_key: &key,
                event,
                body,
                ignored: ignored.as_deref(),
            })
            .await
            .map_err(ServiceError::from)?;
        Ok(match (recorded, ignored) {
            (Recorded::Duplicate, _) => Accepted::Duplicate,
            (Recorded::New { .. }, Some(reason)) => Accepted::Ignored { reason },
            (Recorded::New { delivery_id }, None) => Accepted::Queued { delivery_id },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_merge_request_and_push_events_are_processed() {
        assert_eq!(ignored_reason(Some("Merge Request Hook")), None);
        assert_eq!(ignored_reason(Some("Push Hook")), None);
        assert_eq!(
            ignored_reason(Some("Tag Push Hook")).as_deref(),
            Some("tag pushes start nothing")
        );
        assert!(
            ignored_reason(Some("Issue Hook"))
                .unwrap()
                .contains("Issue Hook")
        );
        assert!(ignored_reason(None).is_some());
    }
}
