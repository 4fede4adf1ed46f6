//! A webhook receiver over real HTTP: records every request and answers with a status the test
//! sets. Plus the fixture comparison used for webhook payloads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Lower-case header names.
    pub headers: HashMap<String, String>,
    pub raw_body: Bytes,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map_or("", String::as_str)
    }
}

#[derive(Clone)]
struct ReceiverState {
    status: Arc<AtomicU16>,
    sink: mpsc::UnboundedSender<Received>,
}

pub struct Receiver {
    pub url: String,
    status: Arc<AtomicU16>,
    requests: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    pub async fn start() -> Self {
        let status = Arc::new(AtomicU16::new(200));
        let (sink, requests) = mpsc::unbounded_channel();
        let state = ReceiverState {
            status: Arc::clone(&status),
            sink,
        };
        let app = axum::Router::new().fallback(receive).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self {
            url: format!("http://{addr}/hook"),
            status,
            requests,
        }
    }

    /// The status the receiver answers from now on.
    pub fn respond_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The next request (waits for it, bounded so a missing delivery fails the test).
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.requests.recv())
            .await
            .expect("a webhook request arrives")
            .expect("receiver open")
    }

    /// The next request with this `X-Gitlab-Event`, skipping others.
    pub async fn next_event(&mut self, event: &str) -> Received {
        loop {
            let request = self.next().await;
            if request.header("x-gitlab-event") == event {
                return request;
            }
        }
    }

    /// Requests that already arrived, without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Ok(r) = self.requests.try_recv() {
            out.push(r);
        }
        out
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let parsed = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = state.sink.send(Received {
        headers,
        raw_body: body,
        body: parsed,
    });
    StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of the fixture is present with the same JSON type. Null on either side is
/// accepted: GitLab itself sends null for the same field depending on data (an avatar, an
/// assignee, a pipeline), and receivers must handle both. Objects at `free_maps` paths are
/// maps whose keys are data (e.g. a receiver's response headers): only their type counts.
fn same_shape(
    actual: &Value,
    expected: &Value,
    path: &str,
    free_maps: &[&str],
    errors: &mut Vec<String>,
) {
    match (expected, actual) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(_), Value::Object(_)) if free_maps.contains(&path) => {}
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => same_shape(av, ev, &format!("{path}.{k}"), free_maps, errors),
                    None => errors.push(format!("{path}.{k} missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(shape) = e.first() {
                for (i, item) in a.iter().enumerate() {
                    same_shape(item, shape, &format!("{path}[{i}]"), free_maps, errors);
                }
            }
        }
        (e, a) if kind(e) == kind(a) => {}
        (e, a) => errors.push(format!("{path}: expected {}, got {}", kind(e), kind(a))),
    }
}

pub fn assert_shape_of_fixture(name: &str, actual: &Value) {
    assert_shape_with_maps(name, actual, &[]);
}

pub fn assert_shape_with_maps(name: &str, actual: &Value, free_maps: &[&str]) {
    let path = format!("{}/{name}", crate::fixtures::DIR);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let expected: Value = serde_json::from_str(&text).expect("fixture parses");
    let mut errors = Vec::new();
    same_shape(actual, &expected, "$", free_maps, &mut errors);
    assert!(errors.is_empty(), "{name}: {errors:#?}\nactual: {actual:#}");
}
