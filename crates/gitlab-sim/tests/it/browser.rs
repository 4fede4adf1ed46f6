//! A small W3C WebDriver client for headless Chromium (Debian's `chromium` and
//! `chromium-driver`): starts chromedriver on a free port, opens a session with a fresh
//! profile, and offers the few commands the page tests need, screenshots included (written to
//! `$LABLINK_ARTIFACTS_DIR`, default `target/artifacts/gitlab-sim`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long to wait for chromedriver to start or for an element to appear.
const WAIT: Duration = Duration::from_secs(20);

/// A running chromedriver and one browser session; both end on drop.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Where screenshots go.
pub fn artifacts_dir() -> PathBuf {
    std::env::var_os("LABLINK_ARTIFACTS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/artifacts/gitlab-sim"),
        PathBuf::from,
    )
}

impl Browser {
    pub async fn start() -> Browser {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install `apt-get install -y chromium chromium-driver`"
            );
        }
        let port = free_port();
        let log = std::env::temp_dir().join(format!("gitlab-sim-chromedriver-{port}.log"));
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while !http
            .get(format!("{base}/status"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", "--window-size=1280,1000",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                },
            }},
        });
        let reply: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("new session reply");
        let session = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused the session: {reply}"))
            .to_owned();
        Browser {
            http,
            base,
            session,
            driver,
            _profile: profile,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply: Value = request
            .send()
            .await
            .expect("webdriver request")
            .json()
            .await
            .expect("webdriver reply");
        reply["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        let reply = self
            .command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
        assert!(reply.get("error").is_none(), "navigate to {url}: {reply}");
    }

    pub async fn url(&self) -> String {
        let reply = self.command(reqwest::Method::GET, "/url", None).await;
        reply.as_str().unwrap_or_default().to_owned()
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        let reply = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        reply[ELEMENT_KEY].as_str().map(str::to_owned)
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(id) = self.try_find(css).await {
                return Element { browser: self, id };
            }
            if Instant::now() >= deadline {
                let source = self.command(reqwest::Method::GET, "/source", None).await;
                panic!(
                    "no element matches `{css}` on {}; page:\n{source}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's visible text once it contains `needle`.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.find("body").await.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` did not appear on {}; the page says:\n{text}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the viewport as `<artifacts>/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let reply = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(reply.as_str().expect("screenshot data"))
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).expect("artifacts dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the session (Chromium exits with it).
    pub async fn quit(self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
    }
}

impl Element<'_> {
    fn path(&self, action: &str) -> String {
        format!("/element/{}/{action}", self.id)
    }

    pub async fn send_keys(&self, text: &str) {
        let reply = self
            .browser
            .command(
                reqwest::Method::POST,
                &self.path("value"),
                Some(json!({ "text": text })),
            )
            .await;
        assert!(reply.get("error").is_none(), "send keys: {reply}");
    }

    pub async fn click(&self) {
        let reply = self
            .browser
            .command(reqwest::Method::POST, &self.path("click"), Some(json!({})))
            .await;
        assert!(reply.get("error").is_none(), "click: {reply}");
    }

    pub async fn text(&self) -> String {
        let reply = self
            .browser
            .command(reqwest::Method::GET, &self.path("text"), None)
            .await;
        reply.as_str().unwrap_or_default().to_owned()
    }

    pub async fn attribute(&self, name: &str) -> String {
        let reply = self
            .browser
            .command(
                reqwest::Method::GET,
                &self.path(&format!("attribute/{name}")),
                None,
            )
            .await;
        reply.as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver is our child process; a session not ended by `quit` ends with it.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
