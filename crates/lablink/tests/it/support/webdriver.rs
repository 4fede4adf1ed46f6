//! A tiny W3C WebDriver client for headless Chromium: starts `chromedriver` on a free port, opens a
//! session with a fresh profile, and offers the handful of commands the browser tests need
//! (navigation, elements, scripts, viewport size, screenshots).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lablink_testkit::free_port;
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

/// A found element.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

fn require_installed() {
    for path in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the browser tests need Debian's Chromium and its driver. \
             Install them with `apt-get install -y chromium chromium-driver`."
        );
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh user-data dir.
    pub async fn start() -> Browser {
        require_installed();
        let port = free_port();
        let log: PathBuf = std::env::temp_dir().join(format!("chromedriver-{port}.log"));
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
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
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
                        "--disable-sync", "--no-first-run",
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

    /// The first element matching `css`, waiting for it to appear (pages load asynchronously).
    pub async fn find(&self, css: &str) -> Element<'_> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(id) = self.try_find(css).await {
                return Element { browser: self, id };
            }
            if Instant::now() >= deadline {
                let url = self.url().await;
                let source = self.command(reqwest::Method::GET, "/source", None).await;
                panic!("no element matches `{css}` on {url}; page source:\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page's text contains `needle`, and returns that text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self
                .try_find("body")
                .await
                .map(|id| Element { browser: self, id });
            if let Some(body) = text {
                let text = body.text().await;
                if text.contains(needle) {
                    return text;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "`{needle}` did not appear on {}; the page says:\n{text}",
                        self.url().await
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    pub async fn clear(&self) {
        self.browser
            .command(reqwest::Method::POST, &self.path("clear"), Some(json!({})))
            .await;
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
}

impl Browser {
    /// A command whose reply must not be a WebDriver error; `what` names it in the panic.
    async fn checked(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Value {
        let reply = self.command(method, path, body).await;
        if let Some(error) = reply.get("error").and_then(Value::as_str) {
            let message = reply["message"].as_str().unwrap_or_default();
            panic!("{what}: {error}: {message}");
        }
        reply
    }

    /// Runs `script` (the body of a function called with `args`) in the page; returns what it
    /// returns.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.checked(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
            "execute script",
        )
        .await
    }

    /// Runs `script` (a function body called with `args` and, last, a callback) in the page and
    /// returns the value it passes to the callback; waits at most the script timeout.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.checked(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
            "execute async script",
        )
        .await
    }

    /// How long [`Browser::execute_async`] waits for its callback.
    pub async fn set_script_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.checked(
            reqwest::Method::POST,
            "/timeouts",
            Some(json!({ "script": ms })),
            "set script timeout",
        )
        .await;
    }

    /// Makes the page's viewport `width` × `height` CSS pixels (the window is resized until
    /// `window.innerWidth` is `width`; headless Chromium draws no window frame, so it usually
    /// is at once). Returns the viewport's width as the page sees it.
    pub async fn set_viewport(&self, width: u32, height: u32) -> u32 {
        let (mut outer_w, mut outer_h) = (width, height);
        let mut inner = (0, 0);
        for _ in 0..3 {
            self.checked(
                reqwest::Method::POST,
                "/window/rect",
                Some(json!({ "width": outer_w, "height": outer_h })),
                "set window size",
            )
            .await;
            let seen = self
                .execute("return [window.innerWidth, window.innerHeight];", json!([]))
                .await;
            inner = (
                seen[0].as_u64().unwrap_or(0) as u32,
                seen[1].as_u64().unwrap_or(0) as u32,
            );
            if inner == (width, height) {
                break;
            }
            outer_w = (outer_w + width).saturating_sub(inner.0);
            outer_h = (outer_h + height).saturating_sub(inner.1);
        }
        inner.0
    }

    /// Saves a PNG of the whole page to `path`: down to its bottom, and as wide as the viewport or
    /// its content if wider (what sticks out past the viewport shows). Chromium lays the page out
    /// again at its full height for the capture, without a vertical scrollbar.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let size = self
            .execute(
                "const e = document.documentElement; \
                 return [Math.max(window.innerWidth, e.scrollWidth), \
                         Math.max(e.scrollHeight, document.body.scrollHeight)];",
                json!([]),
            )
            .await;
        let clip = json!({
            "x": 0, "y": 0, "scale": 1,
            "width": size[0].as_u64().unwrap_or(800),
            "height": size[1].as_u64().unwrap_or(600),
        });
        let shot = self
            .checked(
                reqwest::Method::POST,
                "/goog/cdp/execute",
                Some(json!({
                    "cmd": "Page.captureScreenshot",
                    "params": {"format": "png", "captureBeyondViewport": true, "clip": clip},
                })),
                "take a screenshot",
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Ends the session (Chromium exits with it).
    pub async fn quit(self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver is our child process; a session not ended by `quit` ends with it.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
