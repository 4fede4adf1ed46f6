//! Webhook intake: verify, classify by header, store the delivery and its job in one
//! transaction. Nothing here calls GitLab or parses the body; that is the processing job's work
//! ([`super::events`]), so GitLab gets its 2xx fast and never disables the hook because of us.

use http::HeaderMap;
use lablink_gitlab::webhook::{delivery_key, verify};
use lablink_store::Db;
use lablink_store::deliveries::{NewDelivery, Recorded};
use tokio::sync::{mpsc, oneshot};

use crate::{ServiceError, Services};

/// Most deliveries committed together.
const MAX_BATCH: usize = 256;

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
        let writer = self
            .intake
            .get_or_init(|| IntakeWriter::spawn(self.db.clone()));
        let recorded = writer
            .record(OwnedDelivery {
                repository_id: repository_id.to_owned(),
                delivery_key: key,
                event: event.map(str::to_owned),
                body: body.to_vec(),
                ignored: ignored.clone(),
            })
            .await?;
        Ok(match (recorded, ignored) {
            (Recorded::Duplicate, _) => Accepted::Duplicate,
            (Recorded::New { .. }, Some(reason)) => Accepted::Ignored { reason },
            (Recorded::New { delivery_id }, None) => Accepted::Queued { delivery_id },
        })
    }
}

struct OwnedDelivery {
    repository_id: String,
    delivery_key: String,
    event: Option<String>,
    body: Vec<u8>,
    ignored: Option<String>,
}

type Reply = oneshot::Sender<Result<Recorded, String>>;

/// The group-commit writer of deliveries: requests queue their delivery and wait; one task
/// writes whatever has queued meanwhile in a single transaction, so concurrent deliveries share
/// one commit. A request still answers only after its delivery is committed.
#[derive(Debug)]
pub struct IntakeWriter {
    queue: mpsc::Sender<(OwnedDelivery, Reply)>,
}

impl std::fmt::Debug for OwnedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedDelivery")
            .field("repository_id", &self.repository_id)
            .field("delivery_key", &self.delivery_key)
            .finish_non_exhaustive()
    }
}

impl IntakeWriter {
    fn spawn(db: Db) -> IntakeWriter {
        let (queue, mut pending) = mpsc::channel::<(OwnedDelivery, Reply)>(MAX_BATCH * 4);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let news: Vec<NewDelivery<'_>> = batch
                    .iter()
                    .map(|(d, _)| NewDelivery {
                        repository_id: &d.repository_id,
                        delivery_key: &d.delivery_key,
                        event: d.event.as_deref(),
                        body: &d.body,
                        ignored: d.ignored.as_deref(),
                    })
                    .collect();
                let result = db.record_deliveries(&news).await;
                drop(news);
                match result {
                    Ok(recorded) => {
                        for ((_, reply), r) in batch.drain(..).zip(recorded) {
                            let _ = reply.send(Ok(r));
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for (_, reply) in batch.drain(..) {
                            let _ = reply.send(Err(message.clone()));
                        }
                    }
                }
            }
        });
        IntakeWriter { queue }
    }

    async fn record(&self, delivery: OwnedDelivery) -> Result<Recorded, ServiceError> {
        let gone = || ServiceError::Internal("the delivery writer stopped".into());
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((delivery, reply))
            .await
            .map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(ServiceError::Internal)
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
