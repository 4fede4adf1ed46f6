//! Sending one webhook request the way GitLab does (gitlab-api.md §3.2–3.5): headers, Standard
//! Webhooks signature, 10 s timeout, delivery log, auto-disabling. No automatic retry.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::state::{Hook, HookDelivery, Id, SimHandle, State, Time};

/// GitLab's webhook timeout (`webhook_timeout`, 10 s on GitLab.com and by default).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Failures after which a hook is temporarily disabled (`> 3`) and permanently disabled (`> 39`).
const TEMPORARY_THRESHOLD: u32 = 3;
const PERMANENT_THRESHOLD: u32 = 39;
const MAX_FAILURES: u32 = 40;
/// What the delivery log shows instead of secret header values.
const REDACTED: &str = "[REDACTED]";

/// One request to send to one hook.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub hook_id: Id,
    /// `push_hooks`, `merge_request_hooks`, ... as in the delivery log.
    pub trigger: String,
    /// `X-Gitlab-Event`, e.g. `Merge Request Hook`.
    pub event: String,
    pub event_uuid: String,
    pub idempotency_key: String,
    pub payload: Value,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The hook is gone.
    NoHook,
    /// The hook is disabled: the event is dropped, as GitLab does.
    Dropped,
    /// The receiver answered with this status.
    Answered(u16),
    /// Connection error or timeout (logged as `internal error`).
    Failed,
}

impl Delivery {
    pub fn succeeded(self) -> bool {
        matches!(self, Self::Answered(status) if (200..300).contains(&status))
    }
}

/// Whether a hook takes deliveries now (GitLab drops events for disabled hooks, unqueued).
pub fn executable(hook: &Hook, now: Time) -> bool {
    !(hook.recent_failures > PERMANENT_THRESHOLD
        || (hook.recent_failures > TEMPORARY_THRESHOLD
            && hook.disabled_until.is_some_and(|until| until >= now)))
}

/// `alert_status` as GitLab derives it from the failure count and `disabled_until`.
pub fn alert_status(hook: &Hook, now: Time) -> &'static str {
    if hook.recent_failures > PERMANENT_THRESHOLD {
        "disabled"
    } else if !executable(hook, now) {
        "temporarily_disabled"
    } else {
        "executable"
    }
}

/// `WebHooks::AutoDisabling`: success re-enables; each failure counts, and from the 4th in a row
/// the hook backs off for 1 min × 2^(n−4), at most a day; the 40th disables it for good.
fn record_outcome(hook: &mut Hook, success: bool, now: Time) {
    if success {
        hook.recent_failures = 0;
        hook.backoff_count = 0;
        hook.disabled_until = None;
    } else {
        let previous = hook.recent_failures;
        hook.recent_failures = (previous + 1).min(MAX_FAILURES);
        if hook.recent_failures > TEMPORARY_THRESHOLD {
            let exponent = previous.saturating_sub(TEMPORARY_THRESHOLD).min(20);
            let minutes = (1i64 << exponent).min(24 * 60);
            hook.backoff_count = exponent + 1;
            hook.disabled_until = Some(now + chrono::Duration::minutes(minutes));
        }
    }
    hook.alert_status = alert_status(hook, now).to_owned();
}

/// The request URL with `{name}` URL variables filled in.
fn interpolate(hook: &Hook) -> String {
    hook.url_variables.iter().fold(hook.url.clone(), |url, kv| {
        url.replace(&format!("{{{}}}", kv.key), &kv.value)
    })
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` (Standard Webhooks).
pub fn signature(signing_token: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = BASE64.decode(signing_token.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// Headers in GitLab's order, as sent and as logged (secrets replaced in the log).
fn headers(
    hook: &Hook,
    out: &Outgoing,
    instance: &str,
    timestamp: i64,
    body: &[u8],
) -> (Vec<(String, String)>, BTreeMap<String, String>) {
    let mut sent: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/json".into()),
        (
            "User-Agent".into(),
            format!("GitLab/{}", crate::GITLAB_VERSION),
        ),
        ("Idempotency-Key".into(), out.idempotency_key.clone()),
        ("X-Gitlab-Event".into(), out.event.clone()),
        ("X-Gitlab-Webhook-UUID".into(), hook.uuid.clone()),
        ("X-Gitlab-Instance".into(), instance.into()),
        ("X-Gitlab-Event-UUID".into(), out.event_uuid.clone()),
    ];
    let mut logged: BTreeMap<String, String> = sent.iter().cloned().collect();
    if let Some(token) = &hook.token {
        sent.push(("X-Gitlab-Token".into(), token.clone()));
        logged.insert("X-Gitlab-Token".into(), REDACTED.into());
    }
    for (name, value) in [
        ("webhook-id", out.idempotency_key.clone()),
        ("webhook-timestamp", timestamp.to_string()),
    ] {
        sent.push((name.into(), value.clone()));
        logged.insert(name.into(), value);
    }
    if let Some(sig) = hook
        .signing_token
        .as_deref()
        .and_then(|t| signature(t, &out.idempotency_key, timestamp, body))
    {
        sent.push(("webhook-signature".into(), sig.clone()));
        logged.insert("webhook-signature".into(), sig);
    }
    for kv in &hook.custom_headers {
        sent.push((kv.key.clone(), kv.value.clone()));
        logged.insert(kv.key.clone(), REDACTED.into());
    }
    (sent, logged)
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

/// What was prepared under the lock and is sent after it.
struct Prepared {
    url: String,
    sent_headers: Vec<(String, String)>,
    logged_headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn prepare(state: &State, instance: &str, out: &Outgoing) -> Option<Prepared> {
    let hook = state.hooks.get(&out.hook_id)?;
    let body = serde_json::to_vec(&out.payload).ok()?;
    // The wall clock, not the simulated one: receivers check freshness against their own
    // clock, which tests that advance the simulator's clock do not move.
    let timestamp = chrono::Utc::now().timestamp();
    let (sent_headers, logged_headers) = headers(hook, out, instance, timestamp, &body);
    Some(Prepared {
        url: interpolate(hook),
        sent_headers,
        logged_headers,
        body,
    })
}

/// Sends `out` now and records it.
///
/// `force` sends even to a disabled hook (test requests and resends do; a 2xx re-enables it).
pub async fn deliver(sim: &SimHandle, out: Outgoing, force: bool) -> Delivery {
    let prepared = {
        let state = sim.lock();
        let Some(hook) = state.hooks.get(&out.hook_id) else {
            return Delivery::NoHook;
        };
        if !force && !executable(hook, state.now()) {
            // GitLab: `ServiceResponse.error(message: 'Hook disabled')`, nothing queued or logged.
            return Delivery::Dropped;
        }
        match prepare(&state, sim.base_url(), &out) {
            Some(prepared) => prepared,
            None => return Delivery::NoHook,
        }
    };
    let started = Instant::now();
    let mut request = client().post(&prepared.url).body(prepared.body.clone());
    for (name, value) in &prepared.sent_headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let (status, response_headers, response_body) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let body = response.text().await.unwrap_or_default();
            (Some(status), headers, body)
        }
        Err(e) => (None, BTreeMap::new(), transport_error(&e)),
    };
    let duration = started.elapsed().as_secs_f64();
    let result = status.map_or(Delivery::Failed, Delivery::Answered);
    let mut state = sim.lock();
    let now = state.now();
    let id = state.next_id();
    let Some(hook) = state.hooks.get_mut(&out.hook_id) else {
        return Delivery::NoHook;
    };
    record_outcome(hook, result.succeeded(), now);
    hook.deliveries.push(HookDelivery {
        id,
        url: prepared.url,
        trigger: out.trigger,
        request_headers: prepared.logged_headers,
        request_data: out.payload,
        response_headers,
        response_body,
        response_status: status.map_or_else(|| "internal error".to_owned(), |s| s.to_string()),
        execution_duration: duration,
        idempotency_key: out.idempotency_key,
        created_at: now,
    });
    result
}

/// The delivery log's body for a request that got no answer. The error text is left out on
/// purpose: it contains the URL, which may carry URL variables (secrets).
fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "Net::ReadTimeout".into()
    } else if e.is_connect() {
        "Failed to open TCP connection".into()
    } else {
        "internal error".into()
    }
}
