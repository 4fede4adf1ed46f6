use std::collections::BTreeMap;
use std::sync::Mutex;

/// What the tests' browser says it is (the audit trail records it).
pub const USER_AGENT: &str = "lablink-test-browser";

/// An HTTP client that keeps cookies like a browser and does not follow redirects (so tests see
/// them).
pub struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
    /// Raw `Set-Cookie` headers seen, to check cookie attributes.
    pub set_cookies: Mutex<Vec<String>>,
}

/// A response, read completely.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The CSRF token of the (first) form on the page.
    pub fn csrf(&self) -> String {
        self.hidden("csrf_token")
    }

    /// The value of a hidden input.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no input {name} on the page:\n{}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }

    /// A response header as text (`None` when absent).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(USER_AGENT)
                .build()
                .unwrap(),
            cookies: Mutex::new(BTreeMap::new()),
            set_cookies: Mutex::new(Vec::new()),
        }
    }

    /// A browser whose requests arrive through a trusted proxy that says they come from
    /// `address` (`X-Forwarded-For`), for an app started with `trusted_proxies = "127.0.0.1"`.
    pub fn from_address(base: &str, address: &str) -> Browser {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", address.parse().unwrap());
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(USER_AGENT)
                .default_headers(headers)
                .build()
                .unwrap(),
            ..Browser::new(base)
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sets a cookie as if someone else had planted it in this browser.
    pub fn plant_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.lock().unwrap().contains_key(name)
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Page {
        let res = req
            .header(reqwest::header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        for sc in res.headers().get_all(reqwest::header::SET_COOKIE) {
            let sc = sc.to_str().unwrap().to_owned();
            let pair = sc.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            let expired = sc.contains("Max-Age=0") || v.is_empty();
            let mut jar = self.cookies.lock().unwrap();
            if expired {
                jar.remove(k);
            } else {
                jar.insert(k.to_owned(), v.to_owned());
            }
            self.set_cookies.lock().unwrap().push(sc);
        }
        Page {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            location: res
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|l| l.to_str().unwrap().to_owned()),
            body: res.text().await.unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(self.client.post(self.url(path)).form(form)).await
    }

    /// A JSON API call with the browser's session (and its CSRF token as a header, if given).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        csrf: Option<&str>,
    ) -> Page {
        let mut req = self.client.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        self.send(req).await
    }

    /// A JSON API call with a bearer token and no cookies.
    pub async fn bearer(
        base: &str,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Page {
        Browser::new(base)
            .with_bearer(token, method, path, body)
            .await
    }

    /// A JSON API call from this browser's client with a bearer token and no session.
    pub async fn with_bearer(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Page {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }
}
