//! Accessibility and narrow screens, in headless Chromium: every page of a realistic account
//! (an admin and a linked developer, a connected project with CI jobs, production and a merge
//! request's run, a project still to connect, IP rules, API tokens, the audit log), signed out,
//! as the admin and as the developer. On each page axe-core (npm, installed by `scripts/test.sh`)
//! must find no serious or critical violation, and at 1280 and 390 CSS pixels wide the page must
//! not scroll sideways. A screenshot of each page at each width is kept under the target
//! directory (`screenshots/accessibility/`) for CI's artifacts. All problems are collected and
//! reported together at the end.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lablink_core::{Plan, Role};
use reqwest::Method;
use serde_json::json;

use crate::ci::{GOOD_MODEL, MODEL_PATH, World, duckdb_job};
use crate::support::connected::create_project;
use crate::support::guide;
use crate::support::webdriver::Browser as Chromium;
use crate::support::{Backend, Browser, PASSWORD, TestApp};

/// The viewport widths every page is checked at: a laptop and a phone.
const WIDTHS: [u32; 2] = [1280, 390];
const HEIGHT: u32 = 900;
/// Violations of these impacts fail the test; axe's `minor` and `moderate` ones are not counted.
const FAILING_IMPACTS: [&str; 2] = ["serious", "critical"];

/// Where `axe.min.js` is: `LABLINK_AXE_JS` (exported by `scripts/test.sh`), else where
/// `scripts/test.sh` installs it. Never skipped: a missing file fails the test.
fn axe_source() -> String {
    let path = std::env::var_os("LABLINK_AXE_JS").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/browser/node_modules/axe-core/axe.min.js")
        },
        PathBuf::from,
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is missing ({}: {e}). The accessibility test needs the npm packages of \
             tests/browser: run `bash scripts/test.sh` (it runs `npm ci --prefix tests/browser` \
             and exports LABLINK_AXE_JS), or `npm ci --prefix tests/browser` yourself.",
            path.display()
        )
    })
}

/// One page to check: who looks at it, where, and a text its `<h1>` must contain (so a sign-in
/// redirect or an error page is not checked in its place).
struct Visit {
    who: &'static str,
    name: &'static str,
    url: String,
    h1: &'static str,
}

/// Runs axe on the page; resolves with the violations, each with its nodes' selectors.
const RUN_AXE: &str = r#"
const done = arguments[arguments.length - 1];
if (typeof window.axe === 'undefined') { done({failed: 'axe is not loaded'}); return; }
window.axe.run(document, {resultTypes: ['violations']}).then(
  (r) => done({violations: r.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({
      target: n.target.map((t) => Array.isArray(t) ? t.join(' >>> ') : t).join(', '),
      impact: n.impact, html: n.html.slice(0, 160),
    })),
  }))}),
  (e) => done({failed: String(e)}));
"#;

/// Whether the page scrolls sideways; if it does, what sticks out past the viewport (and is not
/// clipped by a scroll container), widest first: the outermost elements whose box does, and the
/// elements whose text does (a long word, a log line).
const MEASURE_WIDTH: &str = r#"
const root = document.documentElement;
const limit = root.clientWidth;
const out = {scrollWidth: root.scrollWidth, clientWidth: limit, innerWidth: window.innerWidth,
             offenders: []};
if (root.scrollWidth > limit) {
  // Whether a scroll container clips `el`: an absolutely positioned element escapes every
  // container up to its containing block (the nearest positioned ancestor), a fixed one all.
  const clipped = (el) => {
    let position = getComputedStyle(el).position;
    for (let p = el.parentElement; p && p !== document.body && p !== root; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (position === 'fixed') return false;
      if (position === 'absolute' && style.position === 'static' && style.transform === 'none') {
        continue;
      }
      if (style.overflowX !== 'visible') return true;
      position = style.position;
    }
    return false;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    [...el.classList].map((c) => '.' + c).join('');
  // The element and up to three parents, after the nearest ancestor with an id.
  const path = (el) => {
    const parts = [];
    let e = el;
    for (; e && e !== document.body && parts.length < 4; e = e.parentElement) {
      parts.unshift(name(e));
    }
    for (; e && e !== document.body; e = e.parentElement) {
      if (e.id) { parts.unshift(name(e) + ' …'); break; }
    }
    return parts.join(' > ');
  };
  const found = new Map();
  const over = [...document.body.querySelectorAll('*')].filter(
    (el) => el.getBoundingClientRect().right > limit + 0.5 && !clipped(el));
  const set = new Set(over);
  for (const el of over.filter((el) => !set.has(el.parentElement))) {
    const r = el.getBoundingClientRect();
    found.set(el, {element: path(el), width: Math.round(r.width), right: Math.round(r.right)});
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    const el = t.parentElement;
    if (!el || found.has(el) || set.has(el) || !t.textContent.trim() || clipped(el)) continue;
    const range = document.createRange();
    range.selectNodeContents(t);
    const r = range.getBoundingClientRect();
    if (r.right > limit + 0.5) {
      found.set(el, {element: path(el) + ' (its text: “' + t.textContent.trim().slice(0, 40) + '…”)',
                     width: Math.round(r.width), right: Math.round(r.right)});
    }
  }
  out.offenders = [...found.values()].sort((a, b) => b.right - a.right).slice(0, 5);
}
return out;
"#;

/// Whether a part of the page still refreshes itself (`data-live`), the text of its first `<h1>`.
const PAGE_STATE: &str = r#"
const h1 = document.querySelector('h1');
return {refresh: document.querySelector('[data-live]') !== null,
        h1: h1 ? h1.textContent.trim() : '', title: document.title};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_and_fits_narrow_screens() {
    let started = Instant::now();
    let axe = axe_source();
    let shots = guide::screenshot_dir("accessibility");

    // The account: the developer `dev@acme.test` (linked to alice in GitLab) has the project
    // Analytics connected with the CI job `ci`; production is built by the merge job `prod`, and
    // a merge request's run of `ci` has finished with its report of what changed.
    let w = World::start(Backend::Sqlite).await;
    w.make_production(&duckdb_job("ci")).await;
    let sha = w.commit("feature", &[(MODEL_PATH, GOOD_MODEL)]).await;
    w.open_mr("feature", "Count orders per customer").await;
    w.wait_for_status(&sha, "success").await;
    let run = w.runs_at(&sha).await[0]["id"].as_str().unwrap().to_owned();
    w.wait_for_delivered(&run, "success").await;
    w.wait_until_settled().await;
    let app = &w.app;
    let project = &w.project;
    // A second project, not connected yet: its repository page lists what can be imported.
    let unconnected = create_project(&w.browser, &w.csrf, "Marketing attribution", "dbt").await;
    warm_import_list(&w.browser, &unconnected).await;
    app.create_user(
        "acme",
        Plan::Enterprise,
        "admin@acme.test",
        Role::AccountAdmin,
    )
    .await;
    let admin = app.login("admin@acme.test").await;
    arrange_admin(&admin).await;
    create_token(&w.browser, "laptop CLI").await;
    // Someone changed the webhook in GitLab: Check connection lists problems and fixes.
    break_webhook(&w).await;
    // The developer ran dbt in their workspace: the command box shows its output and target/.
    run_in_workspace(&w, "dbt build").await;

    // The signed-out pages: sign-in, an unknown page, and first-time setup (on a server of its
    // own, whose database is still empty).
    let fresh = TestApp::spawn(Backend::Sqlite).await;
    let setup = fresh
        .setup_link
        .clone()
        .expect("a fresh server offers setup");
    let base = &app.base;
    let signed_out = vec![
        visit("signed-out", "login", format!("{base}/login"), "Sign in"),
        visit(
            "signed-out",
            "not-found",
            format!("{base}/no-such-page"),
            "Not Found",
        ),
        visit("signed-out", "setup", setup, "Set up lablink"),
    ];

    let admin_pages = vec![
        ("dashboard", "/".to_owned(), "Welcome"),
        ("projects", "/projects".to_owned(), "Projects"),
        ("project", format!("/projects/{project}"), "Analytics"),
        (
            "repository",
            format!("/projects/{project}/repository"),
            "Repository",
        ),
        (
            "repository-import",
            format!("/projects/{unconnected}/repository"),
            "Repository",
        ),
        (
            "repository-disconnect",
            format!("/projects/{project}/repository/disconnect"),
            "Disconnect",
        ),
        ("ci-jobs", format!("/projects/{project}/ci-jobs"), "CI jobs"),
        ("runs", format!("/projects/{project}/runs"), "Runs"),
        (
            "workspace",
            format!("/projects/{project}/workspace?file={MODEL_PATH}"),
            "Workspace",
        ),
        (
            "workspace-dbt",
            format!("/projects/{project}/workspace/dbt"),
            "Run dbt in your workspace",
        ),
        ("run", format!("/runs/{run}"), "lablink/ci"),
        (
            "connection",
            format!("/projects/{project}/connection"),
            "Check connection",
        ),
        ("profile", "/profile".to_owned(), "Profile"),
        (
            "linked-accounts",
            "/profile/linked-accounts".to_owned(),
            "Linked accounts",
        ),
        ("settings", "/settings".to_owned(), "Account settings"),
        ("audit", "/settings/audit".to_owned(), "Audit log"),
        (
            "ip-restrictions",
            "/settings/ip-restrictions".to_owned(),
            "IP restrictions",
        ),
        (
            "ip-restrictions-test",
            "/settings/ip-restrictions?test=198.51.100.7".to_owned(),
            "IP restrictions",
        ),
        (
            "integration",
            "/settings/integrations/gitlab".to_owned(),
            "GitLab",
        ),
        ("sign-out", "/logout".to_owned(), "Sign out"),
    ];
    let developer_pages: Vec<Visit> = admin_pages
        .iter()
        .filter(|(name, _, _)| {
            !matches!(
                *name,
                "settings" | "audit" | "ip-restrictions" | "ip-restrictions-test" | "integration"
            )
        })
        .map(|(name, path, h1)| visit("developer", name, format!("{base}{path}"), h1))
        .chain([visit(
            "developer",
            "forbidden",
            format!("{base}/settings/audit"),
            "Forbidden",
        )])
        .collect();
    let admin_pages: Vec<Visit> = admin_pages
        .into_iter()
        .map(|(name, path, h1)| visit("admin", name, format!("{base}{path}"), h1))
        .collect();

    let mut found = Findings::default();
    let mut checked = 0;
    for (email, visits) in [
        (None, signed_out),
        (Some("admin@acme.test"), admin_pages),
        (Some("dev@acme.test"), developer_pages),
    ] {
        let chromium = Chromium::start().await;
        chromium.set_script_timeout(Duration::from_secs(120)).await;
        if let Some(email) = email {
            sign_in(&chromium, base, email).await;
        }
        for v in &visits {
            check_page(&chromium, &axe, &shots, v, &mut found).await;
            checked += 1;
        }
        chromium.quit().await;
    }

    println!(
        "accessibility: {checked} pages at {WIDTHS:?} px in {:.0?}; screenshots in {}",
        started.elapsed(),
        shots.display()
    );
    if !found.not_counted.is_empty() {
        println!(
            "axe's minor and moderate findings (not failures): {:?}",
            found.not_counted
        );
    }
    guide_pictures(&shots);
    let mut report = String::new();
    for p in &found.problems {
        let _ = writeln!(report, "- {p}");
    }
    assert!(
        found.problems.is_empty(),
        "{} accessibility or layout problems (screenshots in {}):\n{report}",
        found.problems.len(),
        shots.display()
    );
}

fn visit(who: &'static str, name: &'static str, url: String, h1: &'static str) -> Visit {
    Visit { who, name, url, h1 }
}

async fn sign_in(chromium: &Chromium, base: &str, email: &str) {
    chromium.goto(&format!("{base}/login")).await;
    chromium.find("#email").await.send_keys(email).await;
    chromium.find("#password").await.send_keys(PASSWORD).await;
    chromium.find("button[type=submit]").await.click().await;
    chromium.wait_for_text("Sign out").await;
}

/// What the checks found.
#[derive(Default)]
struct Findings {
    /// Everything that fails the test, one line each.
    problems: Vec<String>,
    /// axe's violations that do not fail it (minor, moderate): rule → elements.
    not_counted: std::collections::BTreeMap<String, usize>,
}

/// Loads the page at each width: its `<h1>`, sideways scrolling, axe's violations (each rule and
/// element once, whichever width found it), then a screenshot.
async fn check_page(chromium: &Chromium, axe: &str, shots: &Path, v: &Visit, found: &mut Findings) {
    let mut seen = BTreeSet::new();
    for width in WIDTHS {
        let viewport = chromium.set_viewport(width, HEIGHT).await;
        assert_eq!(
            viewport, width,
            "Chromium's viewport did not become {width} px"
        );
        load_settled(chromium, &v.url).await;
        let page = format!("{} {} ({}) at {width} px", v.who, v.name, v.url);
        let state = chromium.execute(PAGE_STATE, json!([])).await;
        let h1 = state["h1"].as_str().unwrap_or_default();
        if h1.contains(v.h1) {
            if let Some(problem) = sideways_scrolling(chromium).await {
                found.problems.push(format!("{page}: {problem}"));
            }
            run_axe(chromium, axe, &page, &mut seen, found).await;
        } else {
            found.problems.push(format!(
                "{page}: expected a page titled “{}”, got “{h1}” ({})",
                v.h1, state["title"]
            ));
        }
        // Last: capturing the whole page lays it out again at its full height for a moment.
        let file = format!("{}-{}-{width}.png", v.who, v.name);
        chromium.screenshot(&shots.join(file)).await;
    }
}

/// `None` when the page fits its viewport; else how wide it is and what sticks out.
async fn sideways_scrolling(chromium: &Chromium) -> Option<String> {
    let layout = chromium.execute(MEASURE_WIDTH, json!([])).await;
    let (scroll, client) = (&layout["scrollWidth"], &layout["clientWidth"]);
    if scroll.as_u64() <= client.as_u64() {
        return None;
    }
    let offenders: Vec<String> = layout["offenders"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            format!(
                "{} ({} px wide, right edge at {} px)",
                o["element"].as_str().unwrap_or("?"),
                o["width"],
                o["right"]
            )
        })
        .collect();
    Some(format!(
        "scrolls sideways: the page is {scroll} px wide in a {client} px viewport (innerWidth \
         {}); sticking out: {}",
        layout["innerWidth"],
        if offenders.is_empty() {
            "(nothing found)".to_owned()
        } else {
            offenders.join("; ")
        }
    ))
}

/// Injects axe into the page and runs it; serious and critical violations are problems.
async fn run_axe(
    chromium: &Chromium,
    axe: &str,
    page: &str,
    seen: &mut BTreeSet<(String, String)>,
    found: &mut Findings,
) {
    chromium.execute(axe, json!([])).await;
    let result = chromium.execute_async(RUN_AXE, json!([])).await;
    if let Some(failed) = result.get("failed") {
        found
            .problems
            .push(format!("{page}: axe did not run: {failed}"));
        return;
    }
    for violation in result["violations"].as_array().into_iter().flatten() {
        let rule = violation["id"].as_str().unwrap_or("?");
        for node in violation["nodes"].as_array().into_iter().flatten() {
            let impact = node["impact"]
                .as_str()
                .or(violation["impact"].as_str())
                .unwrap_or("unknown");
            let target = node["target"].as_str().unwrap_or("?");
            if !seen.insert((rule.to_owned(), target.to_owned())) {
                continue;
            }
            if !FAILING_IMPACTS.contains(&impact) {
                *found
                    .not_counted
                    .entry(format!("{rule} ({impact})"))
                    .or_default() += 1;
                continue;
            }
            found.problems.push(format!(
                "{page}: axe {rule} ({impact}) at `{target}`: {} [{}] {}",
                violation["help"].as_str().unwrap_or_default(),
                violation["helpUrl"].as_str().unwrap_or_default(),
                node["html"].as_str().unwrap_or_default(),
            ));
        }
    }
}

/// Opens `url` and waits until the page no longer refreshes itself (a list still loading, a run
/// still running), so what is checked is the page a user reads.
async fn load_settled(chromium: &Chromium, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        chromium.goto(url).await;
        let state = chromium.execute(PAGE_STATE, json!([])).await;
        if state["refresh"] != true {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} still refreshes itself after a minute"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Loads the import list of `project` until GitLab's list is complete (it fills in the
/// background), so the browser sees it without a refresh.
async fn warm_import_list(browser: &Browser, project: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = browser
            .get(&format!("/projects/{project}/repository"))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        if !page.body.contains("id=\"import-progress\"") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the import list did not finish loading"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The admin's part: two IP rules (not enforced), a token, and a look at the pages' actions that
/// leave entries in the audit log.
async fn arrange_admin(admin: &Browser) {
    let page = admin.get("/settings/ip-restrictions").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    for (name, kind, ranges, description) in [
        (
            "Office and VPN",
            "allow",
            "127.0.0.0/8\n::1\n203.0.113.0/24\n2001:db8:abcd:0012:0000:0000:0000:0000/64",
            "The Berlin office's fixed range and the company VPN's exit addresses",
        ),
        ("Old data centre", "deny", "198.51.100.0/24", ""),
    ] {
        let res = admin
            .post_form(
                "/settings/ip-restrictions/rules",
                &[
                    ("csrf_token", &csrf),
                    ("name", name),
                    ("kind", kind),
                    ("ranges", ranges),
                    ("description", description),
                ],
            )
            .await;
        assert!(
            res.status == 303 || res.status == 200,
            "adding rule {name}: {} {}",
            res.status,
            res.body
        );
    }
    create_token(admin, "nightly export").await;
}

/// Turns push events and TLS verification off on lablink's webhook, through GitLab's API as the
/// Maintainer alice.
async fn break_webhook(w: &World) {
    let hooks = w.sim_state().await["hooks"].clone();
    let hook = hooks[0]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no webhook: {hooks}"));
    let token = w.gitlab.personal_token(w.alice.id, "maintainer").await;
    let res = reqwest::Client::new()
        .put(format!(
            "{}/api/v4/projects/{}/hooks/{hook}",
            w.gitlab.base, w.gitlab_project
        ))
        .header("PRIVATE-TOKEN", token)
        .json(&json!({"url": hooks[0]["url"], "push_events": false,
                      "enable_ssl_verification": false}))
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "changing the webhook: {}",
        res.status()
    );
}

async fn create_token(browser: &Browser, name: &str) {
    let csrf = browser.get("/profile").await.csrf();
    let res = browser
        .post_form(
            "/profile/tokens",
            &[
                ("csrf_token", &csrf),
                ("name", name),
                ("expires_in_days", "90"),
            ],
        )
        .await;
    assert!(
        res.status == 303 || res.status == 200,
        "creating token {name}: {} {}",
        res.status,
        res.body
    );
}

/// docs/guide.md shows pages as this test sees them: every picture it names is a screenshot taken
/// here, and present in docs/guide/. With `LABLINK_GUIDE_SCREENSHOTS=1` the pictures are renewed
/// from this run.
/// Runs `command` in the developer's workspace of the project and waits for it to end.
async fn run_in_workspace(w: &World, command: &str) {
    let base = format!("/api/v1/projects/{}/workspace/dbt", w.project);
    let started = w
        .browser
        .api(
            Method::POST,
            &base,
            Some(json!({"command": command})),
            Some(&w.csrf),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let id = started.json()["id"].as_str().unwrap().to_owned();
    for _ in 0..600 {
        let now = w
            .browser
            .api(Method::GET, &format!("{base}/{id}"), None, None)
            .await
            .json();
        if now["state"] != "running" {
            assert_eq!(now["state"], "succeeded", "{now}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("`{command}` did not end in the workspace");
}

fn guide_pictures(shots: &Path) {
    let guide = std::fs::read_to_string(guide::docs().join("guide.md")).expect("docs/guide.md");
    let mut named = 0;
    for link in guide.split("](guide/").skip(1) {
        let picture = &link[..link.find(')').expect("a closed link")];
        // The walks' pictures are taken and kept by their own tests.
        if picture.starts_with("walks/") {
            continue;
        }
        let taken = shots.join(picture);
        assert!(
            taken.exists(),
            "docs/guide.md shows {picture}, which this test does not take"
        );
        guide::keep(&taken, picture);
        named += 1;
    }
    assert!(named > 0, "docs/guide.md shows no picture");
}
