//! Webhooks sent the way GitLab sends them: which hooks an event reaches ([`fire`]), the
//! payloads ([`payload`]), delivery with auto-disabling ([`delivery`]) and the hook event API
//! (delivery log, resend, test: [`api`]).
//!
//! Deliveries run in background tasks, like GitLab's Sidekiq jobs: the action that caused them
//! (a push, an MR change) does not wait for receivers.

pub mod api;
pub mod delivery;
pub mod payload;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use delivery::{Delivery, alert_status, executable, signature};

use crate::commits;
use crate::state::{Hook, Id, SimEvent, SimHandle, State};

/// The kinds of events the simulator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Push,
    TagPush,
    MergeRequest,
    Note,
    ConfidentialNote,
}

impl EventKind {
    /// The hook flag that subscribes to this event.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Push => "push_events",
            Self::TagPush => "tag_push_events",
            Self::MergeRequest => "merge_requests_events",
            Self::Note => "note_events",
            Self::ConfidentialNote => "confidential_note_events",
        }
    }

    /// `X-Gitlab-Event`.
    pub fn header(self) -> &'static str {
        match self {
            Self::Push => "Push Hook",
            Self::TagPush => "Tag Push Hook",
            Self::MergeRequest => "Merge Request Hook",
            Self::Note | Self::ConfidentialNote => "Note Hook",
        }
    }

    /// `trigger` in the delivery log.
    pub fn trigger(self) -> &'static str {
        match self {
            Self::Push => "push_hooks",
            Self::TagPush => "tag_push_hooks",
            Self::MergeRequest => "merge_request_hooks",
            Self::Note => "note_hooks",
            Self::ConfidentialNote => "confidential_note_hooks",
        }
    }
}

/// Whether a push to `branch` passes the hook's branch filter.
fn branch_matches(hook: &Hook, branch: &str) -> bool {
    let filter = hook.push_events_branch_filter.as_str();
    match hook.branch_filter_strategy.as_str() {
        "all_branches" => true,
        "regex" => regex::Regex::new(filter).is_ok_and(|re| re.is_match(branch)),
        _ => filter.is_empty() || crate::wildcard::matches(filter, branch),
    }
}

/// Sends `payload` to every hook of the project subscribed to `kind` (pushes: whose branch
/// filter matches `branch`), each in its own task. One event shares one `X-Gitlab-Event-UUID`;
/// each delivery gets its own `Idempotency-Key`.
pub fn fire(
    sim: &SimHandle,
    project_id: Id,
    kind: EventKind,
    branch: Option<&str>,
    payload: &Value,
) -> Vec<JoinHandle<Delivery>> {
    let hook_ids: Vec<Id> = sim
        .lock()
        .hooks_of(project_id)
        .filter(|h| h.wants(kind.flag()))
        .filter(|h| kind != EventKind::Push || branch.is_none_or(|b| branch_matches(h, b)))
        .map(|h| h.id)
        .collect();
    let event_uuid = uuid::Uuid::new_v4().to_string();
    hook_ids
        .into_iter()
        .map(|hook_id| {
            let out = delivery::Outgoing {
                hook_id,
                trigger: kind.trigger().into(),
                event: kind.header().into(),
                event_uuid: event_uuid.clone(),
                idempotency_key: uuid::Uuid::new_v4().to_string(),
                payload: payload.clone(),
            };
            let sim = sim.clone();
            tokio::spawn(async move { delivery::deliver(&sim, out, false).await })
        })
        .collect()
}

/// Sends Note Hooks for notes created through the REST API until `stop` fires.
pub fn spawn_note_listener(sim: &SimHandle, stop: CancellationToken) -> JoinHandle<()> {
    let mut events = sim.subscribe();
    let sim = sim.clone();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                () = stop.cancelled() => break,
            };
            match event {
                Ok(SimEvent::MergeRequestNoteCreated {
                    project_id,
                    mr_iid,
                    note_id,
                    user_id,
                }) => {
                    if let Err(e) = note_created(&sim, project_id, mr_iid, note_id, user_id).await {
                        tracing::warn!(error = %e, "could not send a note hook");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "note hooks dropped: event bus overflow");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

async fn note_created(
    sim: &SimHandle,
    project_id: Id,
    mr_iid: u64,
    note_id: Id,
    user_id: Id,
) -> Result<(), crate::repo::RepoError> {
    let Some(sha) = sim
        .lock()
        .merge_request(project_id, mr_iid)
        .map(|mr| mr.sha.clone())
    else {
        return Ok(());
    };
    let last_commit = commits::commit_info(&sim.repo_path(project_id), &sha).await?;
    let built = note_payload(
        &sim.lock(),
        sim.base_url(),
        project_id,
        mr_iid,
        note_id,
        user_id,
        &last_commit,
    );
    if let Some((kind, body)) = built {
        fire(sim, project_id, kind, None, &body);
    }
    Ok(())
}

/// The Note Hook kind and payload of a note, if everything it refers to still exists.
fn note_payload(
    state: &State,
    base: &str,
    project_id: Id,
    mr_iid: u64,
    note_id: Id,
    user_id: Id,
    last_commit: &commits::CommitInfo,
) -> Option<(EventKind, Value)> {
    let project = state.projects.get(&project_id)?;
    let mr = state.merge_request(project_id, mr_iid)?;
    let note = mr.notes.iter().find(|n| n.id == note_id)?;
    let author = state.users.get(&user_id)?;
    let kind = if note.internal {
        EventKind::ConfidentialNote
    } else {
        EventKind::Note
    };
    let body = payload::merge_request_note(state, base, project, mr, note, author, last_commit);
    Some((kind, body))
}
