//! Every API response the simulator serves is a structural superset of the matching real GitLab
//! payload in `shared/gitlab/fixtures/`: same keys, same JSON types (null only where the fixture
//! has null).

use gitlab_sim::state::{Namespace, access};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestSim, expect, json};

pub const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/gitlab/fixtures"
);

/// Fixtures served by another part of the simulator (webhook engine), checked there.
const ELSEWHERE: [&str; 1] = ["api.project_hook.event.list_item.json"];

fn fixture(name: &str) -> Value {
    let text =
        std::fs::read_to_string(format!("{DIR}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
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

fn superset(actual: &Value, expected: &Value, path: &str, errors: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Null, _) => {}
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => superset(av, ev, &format!("{path}.{k}"), errors),
                    None => errors.push(format!("{path}.{k} missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(shape) = e.first() {
                for (i, item) in a.iter().enumerate() {
                    superset(item, shape, &format!("{path}[{i}]"), errors);
                }
            }
        }
        (e, a) if kind(e) == kind(a) => {}
        (e, a) => errors.push(format!("{path}: expected {}, got {}", kind(e), kind(a))),
    }
}

fn assert_superset(name: &str, actual: &Value) {
    let expected = fixture(name);
    let mut errors = Vec::new();
    superset(actual, &expected, "$", &mut errors);
    assert!(errors.is_empty(), "{name}: {errors:#?}\nactual: {actual:#}");
}

fn check(checked: &mut Vec<&'static str>, name: &'static str, actual: &Value) {
    assert_superset(name, actual);
    checked.push(name);
}

#[tokio::test]
async fn api_responses_are_supersets_of_the_fixtures() {
    let t = TestSim::start().await;
    let mut checked: Vec<&str> = Vec::new();
    let user = t.user("john_smith");
    let top = t.group("diaspora", None);
    let sub = t.group("site", Some(top));
    t.handle()
        .add_group_member(top, user.id, access::OWNER)
        .expect("member");
    let project = t
        .project("diaspora-project-site", Namespace::Group(sub))
        .await;
    t.handle()
        .add_project_member(project.id, user.id, access::MAINTAINER)
        .expect("member");
    let personal = t.project("personal", Namespace::User(user.id)).await;

    check(
        &mut checked,
        "api.user.current_user.json",
        &expect(t.get("/user", &user.token).await, StatusCode::OK).await,
    );
    check(
        &mut checked,
        "api.user.get_users_id.json",
        &expect(
            t.get(&format!("/users/{}", user.id), &user.token).await,
            StatusCode::OK,
        )
        .await,
    );

    // `owner` exists only for personal projects, `namespace.parent_id` only in subgroups:
    // the group project is checked without `owner`, the personal project's `owner` separately.
    let project_json = expect(
        t.get(&format!("/projects/{}", project.id), &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    let mut project_fixture = fixture("api.project.get.json");
    let owner_fixture = project_fixture
        .as_object_mut()
        .and_then(|o| o.remove("owner"))
        .expect("owner");
    let mut errors = Vec::new();
    superset(&project_json, &project_fixture, "$", &mut errors);
    let personal_json = expect(
        t.get(&format!("/projects/{}", personal.id), &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    superset(
        &personal_json["owner"],
        &owner_fixture,
        "$.owner",
        &mut errors,
    );
    assert!(errors.is_empty(), "api.project.get.json: {errors:#?}");
    checked.push("api.project.get.json");

    let hook = expect(
        t.post(&format!("/projects/{}/hooks", project.id), &user.token, json!({"url": "https://example.com/hook", "name": "n", "description": "d", "custom_webhook_template": "{\"event\":\"{{object_kind}}\"}", "custom_headers": [{"key": "Authorization", "value": "x"}]})).await,
        StatusCode::CREATED,
    )
    .await;
    let hook_get = expect(
        t.get(
            &format!("/projects/{}/hooks/{}", project.id, hook["id"]),
            &user.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    check(&mut checked, "api.project_hook.get.json", &hook_get);

    let tokens = format!("/projects/{}/access_tokens", project.id);
    let prat = expect(t.post(&tokens, &user.token, json!({"name": "token 10", "description": "Test Token description", "scopes": ["api", "read_repository"], "access_level": 40})).await, StatusCode::CREATED).await;
    check(&mut checked, "api.project_access_token.create.json", &prat);
    check(
        &mut checked,
        "api.project_access_token.create.docs-example.json",
        &prat,
    );
    check(
        &mut checked,
        "api.project_access_token.get.json",
        &expect(
            t.get(&format!("{tokens}/{}", prat["id"]), &user.token)
                .await,
            StatusCode::OK,
        )
        .await,
    );
    let rotated = expect(
        t.post(
            &format!("{tokens}/{}/rotate", prat["id"]),
            &user.token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    check(
        &mut checked,
        "api.project_access_token.rotate.json",
        &rotated,
    );
    // The bot's membership has a creator, as in the fixture.
    let member = expect(
        t.get(
            &format!("/projects/{}/members/all/{}", project.id, prat["user_id"]),
            &user.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    check(&mut checked, "api.member.get_all_user_id.json", &member);

    let deploy = format!("/projects/{}/deploy_tokens", project.id);
    let dt = expect(t.post(&deploy, &user.token, json!({"name": "My deploy token", "scopes": ["read_repository"], "expires_at": "2099-01-01T00:00:00Z", "username": "custom-user"})).await, StatusCode::CREATED).await;
    check(&mut checked, "api.deploy_token.create.json", &dt);
    check(
        &mut checked,
        "api.deploy_token.list.json",
        &json(t.get(&deploy, &user.token).await).await,
    );

    let key = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDNJAkI3Wdf0r13c8a5pEExB2YowPWCSVzfZV22pNBc1CuEbyYLHpUyaD0GwpGvFdx2aP7lMEk35k6Rz3ccBF6jRaVJyhsn5VNnW92PMpBJ/P1UebhXwsFHdQf5rTt082cSxWuk61kGWRQtk4ozt/J2DF/dIUVaLvc+z4HomT41fQ==";
    let dk = expect(
        t.post(
            &format!("/projects/{}/deploy_keys", project.id),
            &user.token,
            json!({"title": "Public key", "key": key}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    check(&mut checked, "api.deploy_key.create.json", &dk);
    let dk_get = expect(
        t.get(
            &format!("/projects/{}/deploy_keys/{}", project.id, dk["id"]),
            &user.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        dk_get["fingerprint"],
        fixture("api.deploy_key.get.json")["fingerprint"]
    );
    check(&mut checked, "api.deploy_key.get.json", &dk_get);

    let sha = t.commit(project.id, "cccct", "f.txt", "x");
    let statuses = format!("/projects/{}/statuses/{sha}", project.id);
    let simple = expect(
        t.post(
            &statuses,
            &user.token,
            json!({"state": "success", "coverage": 100.0}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    check(&mut checked, "api.commit_status.create.json", &simple);
    expect(t.post(&statuses, &user.token, json!({"state": "running", "name": "extci", "ref": "cccct", "target_url": "https://example.com/ext", "description": "External check"})).await, StatusCode::CREATED).await;
    let failed = expect(
        t.post(
            &statuses,
            &user.token,
            json!({"state": "failed", "name": "extci", "ref": "cccct", "coverage": 10.8}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    check(
        &mut checked,
        "api.commit_status.with_pipeline_id.json",
        &failed,
    );

    // OAuth payloads.
    let app = crate::oauth::app(&t, true);
    let first = crate::oauth::tokens_for(&t, &app, &user).await;
    check(
        &mut checked,
        "api.oauth.token.authorization_code.json",
        &first,
    );
    let refresh_body = [
        ("grant_type", "refresh_token"),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.secret.as_str()),
        ("refresh_token", first["refresh_token"].as_str().expect("r")),
    ];
    let second = expect(
        crate::oauth::exchange(&t, &refresh_body).await,
        StatusCode::OK,
    )
    .await;
    check(&mut checked, "api.oauth.token.refresh.json", &second);
    let info = t
        .http
        .get(t.url("/oauth/token/info"))
        .bearer_auth(second["access_token"].as_str().expect("a"))
        .send()
        .await
        .expect("info");
    check(
        &mut checked,
        "api.oauth.token_info.json",
        &expect(info, StatusCode::OK).await,
    );
    let reuse = expect(
        crate::oauth::exchange(&t, &refresh_body).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(reuse, fixture("api.oauth.error.invalid_grant.json"));
    checked.push("api.oauth.error.invalid_grant.json");

    // Every API fixture is covered here or by the part of the sim that serves it.
    let mut all: Vec<String> = std::fs::read_dir(DIR)
        .expect("fixtures dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("api.") && n.ends_with(".json"))
        .collect();
    all.sort();
    let uncovered: Vec<&String> = all
        .iter()
        .filter(|n| !checked.contains(&n.as_str()) && !ELSEWHERE.contains(&n.as_str()))
        .collect();
    assert!(
        uncovered.is_empty(),
        "fixtures without a check: {uncovered:?}"
    );
}

/// The simulator's own fixtures (GitLab's documented examples, `tests/fixtures/README.md`).
const OWN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

#[tokio::test]
async fn protected_branches_and_push_rules_match_gitlabs_documented_examples() {
    let t = TestSim::start().await;
    let user = t.user("alice");
    let project = t.project("warehouse", Namespace::User(user.id)).await;
    let p = format!("/projects/{}", project.id);
    expect(
        t.post(
            &format!("{p}/push_rule"),
            &user.token,
            json!({ "max_file_size": 5 }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    for (name, path) in [
        (
            "api.protected_branch.list.docs-example.json",
            format!("{p}/protected_branches"),
        ),
        (
            "api.push_rule.get.docs-example.json",
            format!("{p}/push_rule"),
        ),
    ] {
        let text = std::fs::read_to_string(format!("{OWN_DIR}/{name}"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let actual = expect(t.get(&path, &user.token).await, StatusCode::OK).await;
        let mut errors = Vec::new();
        superset(&actual, &expected, "$", &mut errors);
        assert!(errors.is_empty(), "{name}: {errors:#?}\nactual: {actual:#}");
    }
}
