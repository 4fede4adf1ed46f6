//! A tiny HTTP server that records every request and answers with a test-supplied function.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use lablink_gitlab::{Instance, InstanceConfig, NetworkPolicy};
use url::Url;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    pub fn form_value(&self, key: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn query_value(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

pub struct Server {
    pub url: Url,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Server {
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn instance(&self) -> Instance {
        Instance::new(InstanceConfig {
            base_url: self.url.clone(),
            ca_bundle_pem: None,
            policy: NetworkPolicy {
                allow_http_loopback: true,
                allow_private_networks: false,
            },
            timeout: Duration::from_secs(10),
        })
        .unwrap()
    }
}

/// Starts a server on 127.0.0.1:0; `respond` gets each request and its 0-based index.
pub async fn serve<F>(respond: F) -> Server
where
    F: Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
{
    let requests = Arc::new(Mutex::new(Vec::new()));
    let recorded = requests.clone();
    let respond = Arc::new(respond);
    let app = axum::Router::new().fallback(move |request: Request| {
        let recorded = recorded.clone();
        let respond = respond.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = to_bytes(body, 1 << 20).await.unwrap_or_default();
            let entry = Recorded {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let index = {
                let mut all = recorded.lock().unwrap();
                all.push(entry.clone());
                all.len() - 1
            };
            let reply = respond(&entry, index);
            let mut response =
                Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
            for (name, value) in reply.headers {
                response = response.header(name, value);
            }
            response.body(Body::from(reply.body)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        url: Url::parse(&format!("http://{addr}/")).unwrap(),
        requests,
    }
}

/// The text of a fixture from `shared/gitlab/fixtures/`.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../../shared/gitlab/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}
