//! Webhook intake: verify, classify by header, store the delivery (one row, which is also its
//! queue item). Nothing here calls GitLab or parses the body; that is the delivery processor's
//! work ([`super::events`]), so GitLab gets its 2xx fast and never disables the hook because of us.

use http::HeaderMap;
use lablink_gitlab::webhook::{VerifyError, delivery_key, precheck, verify};
use std::sync::Arc;

use lablink_store::Db;
use lablink_store::deliveries::{HookSecrets, NewDelivery, PackedBody, Recorded};
use tokio::sync::{mpsc, oneshot};

use super::wake::Wakeups;
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
    /// A delivery with the right secret, from outside the account's webhook source ranges.
    #[error("deliveries from this address are not accepted")]
    OutsideSources,
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
    /// Checks what can be checked of a delivery before its body is read (the token, the
    /// signature's headers), so that strangers cannot make lablink read large bodies.
    #[tracing::instrument(skip_all, fields(repository_id = %repository_id))]
    pub async fn precheck_webhook(
        &self,
        repository_id: &str,
        headers: &HeaderMap,
        client_ip: Option<&str>,
    ) -> Result<(), IntakeError> {
        self.check_delivery(repository_id, client_ip, |secrets| {
            precheck(
                headers,
                &secrets.secret,
                secrets.previous.as_ref(),
                secrets.signing_token.as_ref(),
            )
        })
        .await
    }

    /// Accepts a delivery for `repository_id` if it proves it comes from the repository's hook
    /// (and, where the account restricts webhook sources, from inside them).
    #[tracing::instrument(skip_all, fields(repository_id = %repository_id))]
    pub async fn receive_webhook(
        &self,
        repository_id: &str,
        headers: &HeaderMap,
        body: &[u8],
        client_ip: Option<&str>,
    ) -> Result<Accepted, IntakeError> {
        self.verify_delivery(repository_id, headers, body, client_ip)
            .await?;
        let event = headers.get("x-gitlab-event").and_then(|v| v.to_str().ok());
        let ignored = ignored_reason(event);
        let key = delivery_key(headers, body);
        let writer = self
            .intake
            .get_or_init(|| IntakeWriter::spawn(self.db.clone(), Arc::clone(&self.wake)));
        let recorded = writer
            .record(OwnedDelivery {
                repository_id: repository_id.to_owned(),
                delivery_key: key,
                event: event.map(str::to_owned),
                // Packed here, on the request's task, so the single writer only writes.
                body: PackedBody::pack(body),
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

impl Services {
    /// Verifies the whole delivery, signature included.
    async fn verify_delivery(
        &self,
        repository_id: &str,
        headers: &HeaderMap,
        body: &[u8],
        client_ip: Option<&str>,
    ) -> Result<(), IntakeError> {
        self.check_delivery(repository_id, client_ip, |secrets| {
            verify(
                headers,
                body,
                &secrets.secret,
                secrets.previous.as_ref(),
                secrets.signing_token.as_ref(),
            )
            .map(drop)
        })
        .await
    }

    /// Checks a delivery with `check` against the repository's secrets: the ones kept from a
    /// recent delivery first, then the stored ones (which are kept when they pass); then its
    /// address against the account's webhook sources. Only a delivery with the right secret is
    /// counted as refused by address: strangers' guesses are no news for the doctor.
    async fn check_delivery(
        &self,
        repository_id: &str,
        client_ip: Option<&str>,
        check: impl Fn(&HookSecrets) -> Result<(), VerifyError>,
    ) -> Result<(), IntakeError> {
        if let Some(kept) = self.hook_secrets.fresh(repository_id)
            && check(&kept).is_ok()
        {
            return self
                .check_source(&kept.account_id, repository_id, client_ip)
                .await;
        }
        let Some(stored) = self
            .db
            .hook_secrets(&self.keys, repository_id)
            .await
            .map_err(ServiceError::from)?
        else {
            self.hook_secrets.forget(repository_id);
            return Err(IntakeError::Unauthorized);
        };
        check(&stored).map_err(|e| {
            tracing::info!(repository_id, error = %e, "webhook delivery refused");
            IntakeError::Unauthorized
        })?;
        let account_id = stored.account_id.clone();
        self.hook_secrets.remember(repository_id, Arc::new(stored));
        self.check_source(&account_id, repository_id, client_ip)
            .await
    }

    async fn check_source(
        &self,
        account_id: &str,
        repository_id: &str,
        client_ip: Option<&str>,
    ) -> Result<(), IntakeError> {
        if self.webhook_source_allowed(account_id, client_ip)? {
            return Ok(());
        }
        let address = client_ip.unwrap_or("an unknown address");
        tracing::info!(
            repository_id,
            address,
            "webhook delivery refused: outside the webhook sources"
        );
        self.db
            .count_webhook_refusal(repository_id, address)
            .await
            .map_err(ServiceError::from)?;
        Err(IntakeError::OutsideSources)
    }
}

struct OwnedDelivery {
    repository_id: String,
    delivery_key: String,
    event: Option<String>,
    body: PackedBody,
    ignored: Option<String>,
}

type Reply = oneshot::Sender<Result<Recorded, String>>;

/// The group-commit writer of deliveries: requests queue their delivery and wait; a writer task
/// writes whatever has queued meanwhile in a single statement, so concurrent deliveries share
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
    fn spawn(db: Db, wake: Arc<Wakeups>) -> IntakeWriter {
        let (queue, pending) = mpsc::channel::<(OwnedDelivery, Reply)>(MAX_BATCH * 4);
        let pending = Arc::new(tokio::sync::Mutex::new(pending));
        for _ in 0..writers_for(&db) {
            let (db, wake, pending) = (db.clone(), Arc::clone(&wake), Arc::clone(&pending));
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                // The lock is held only while taking a batch: the next writer takes the next
                // batch while this one commits.
                while pending.lock().await.recv_many(&mut batch, MAX_BATCH).await > 0 {
                    commit_batch(&db, &wake, &mut batch).await;
                }
            });
        }
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

/// How many batches may commit at once. PostgreSQL spends most of a commit waiting for its log
/// flush, and flushes concurrent commits together, so a second and third writer fill that wait
/// (and a delivery arriving during a flush does not wait for it). SQLite has one write lock:
/// more writers would only queue on it.
fn writers_for(db: &Db) -> usize {
    match db {
        Db::Sqlite(_) => 1,
        Db::Postgres(_) => 4,
    }
}

/// Stores `batch` in one statement and answers each of its requests.
async fn commit_batch(db: &Db, wake: &Wakeups, batch: &mut Vec<(OwnedDelivery, Reply)>) {
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
            wake.intake.record_batch(recorded.len());
            wake.deliveries.notify_one();
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
