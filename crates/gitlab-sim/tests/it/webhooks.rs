//! Webhook delivery the way GitLab sends it: headers, Standard Webhooks signature, payload
//! shapes (against the fixtures), auto-disabling, delivery log, resend and test requests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gitlab_sim::changes::{CommitRequest, MergeRequestEdit};
use gitlab_sim::commits::FileChange;
use gitlab_sim::state::{Id, access};
use gitlab_sim::webhooks::{self, Delivery, EventKind};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestSim, TestUser, expect};
use crate::receiver::{Receiver, assert_shape_of_fixture, assert_shape_with_maps};

const SIGNING_TOKEN: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw1a2FOGLTw4A=";

struct Setup {
    sim: TestSim,
    owner: TestUser,
    project_id: Id,
    hook_id: Id,
    receiver: Receiver,
}

/// A project with one commit on `main` and a hook for every event the simulator sends.
async fn setup() -> Setup {
    let sim = TestSim::start().await;
    let owner = sim.user("owner");
    let project = sim.project_for(&owner, access::MAINTAINER).await;
    let receiver = Receiver::start().await;
    let hook = expect(
        sim.post(
            &format!("/projects/{}/hooks", project.id),
            &owner.token,
            json!({
                "url": receiver.url,
                "token": "plain-secret",
                "signing_token": SIGNING_TOKEN,
                "push_events": true,
                "tag_push_events": true,
                "merge_requests_events": true,
                "note_events": true,
            }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    Setup {
        project_id: project.id,
        hook_id: hook["id"].as_u64().expect("hook id"),
        sim,
        owner,
        receiver,
    }
}

fn file(path: &str, content: &str) -> FileChange {
    FileChange {
        path: path.into(),
        content: Some(content.as_bytes().to_vec()),
    }
}

async fn commit(s: &Setup, branch: &str, path: &str, content: &str) -> String {
    s.sim
        .handle()
        .commit_files(
            s.project_id,
            CommitRequest {
                branch: branch.into(),
                start_branch: None,
                message: format!("change {path}"),
                files: vec![file(path, content)],
                user_id: s.owner.id,
                author: None,
            },
        )
        .await
        .expect("commit")
}

fn verify_signature(request: &crate::receiver::Received) {
    let id = request.header("webhook-id");
    let timestamp = request.header("webhook-timestamp");
    let key = BASE64
        .decode(SIGNING_TOKEN.strip_prefix("whsec_").expect("prefix"))
        .expect("key");
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.raw_body);
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(&signed);
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    let signatures: Vec<&str> = request.header("webhook-signature").split(' ').collect();
    assert!(
        signatures.contains(&expected.as_str()),
        "{signatures:?} vs {expected}"
    );
}

#[tokio::test]
async fn push_hook_has_gitlab_headers_signature_and_payload_shape() {
    let mut s = setup().await;
    let first = commit(&s, "main", "README.md", "hello\n").await;
    let request = s.receiver.next_event("Push Hook").await;

    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(
        request.header("user-agent"),
        format!("GitLab/{}", gitlab_sim::GITLAB_VERSION)
    );
    assert_eq!(request.header("x-gitlab-token"), "plain-secret");
    assert_eq!(request.header("x-gitlab-instance"), s.sim.sim.base_url());
    let key = request.header("idempotency-key");
    assert!(uuid::Uuid::parse_str(key).is_ok());
    assert_eq!(request.header("webhook-id"), key);
    assert!(uuid::Uuid::parse_str(request.header("x-gitlab-event-uuid")).is_ok());
    let hook_uuid = request.header("x-gitlab-webhook-uuid").to_owned();
    assert!(request.header("webhook-timestamp").parse::<i64>().is_ok());
    verify_signature(&request);

    let body = &request.body;
    assert_eq!(body["object_kind"], "push");
    assert_eq!(body["before"], "0000000000000000000000000000000000000000");
    assert_eq!(body["after"], first);
    assert_eq!(body["ref"], "refs/heads/main");
    assert_eq!(body["ref_protected"], true);
    assert_eq!(body["total_commits_count"], 1);
    assert_eq!(body["commits"][0]["added"], json!(["README.md"]));
    assert_shape_of_fixture("webhook.push.gitlab-com-capture.json", body);

    // The next push: one new commit, another Idempotency-Key, the same hook UUID.
    let second = commit(&s, "main", "README.md", "hello again\n").await;
    let request = s.receiver.next_event("Push Hook").await;
    assert_eq!(request.body["before"], first);
    assert_eq!(request.body["after"], second);
    assert_eq!(request.body["commits"][0]["modified"], json!(["README.md"]));
    assert_ne!(request.header("idempotency-key"), key);
    assert_eq!(request.header("x-gitlab-webhook-uuid"), hook_uuid);
}

#[tokio::test]
async fn merge_request_lifecycle_fires_each_hook_like_gitlab() {
    let mut s = setup().await;
    commit(&s, "main", "README.md", "base\n").await;
    let first = commit(&s, "feature", "model.sql", "select 1\n").await;
    let handle = s.sim.handle().clone();
    let (p, me) = (s.project_id, s.owner.id);

    let mr = handle
        .open_merge_request(p, me, "feature", "main", "Add model", "")
        .await
        .expect("open");
    let open = s.receiver.next_event("Merge Request Hook").await.body;
    assert_eq!(open["object_attributes"]["action"], "open");
    assert_eq!(open["object_attributes"]["last_commit"]["id"], first);
    assert!(open["object_attributes"].get("oldrev").is_none());
    assert_shape_of_fixture("webhook.merge_request.open.gitlab-com-capture.json", &open);

    // Title only: an update without oldrev, with the change listed.
    let edit = MergeRequestEdit {
        title: Some("Add the model".into()),
        description: Some("Adds one model.".into()),
        ..MergeRequestEdit::default()
    };
    handle
        .edit_merge_request(p, mr.iid, me, edit)
        .await
        .expect("edit");
    let title = s.receiver.next_event("Merge Request Hook").await.body;
    assert_eq!(title["object_attributes"]["action"], "update");
    assert!(title["object_attributes"].get("oldrev").is_none());
    assert_eq!(
        title["changes"]["title"],
        json!({"previous": "Add model", "current": "Add the model"})
    );
    assert_shape_of_fixture(
        "webhook.merge_request.update_title_description_no_oldrev.gitlab-com-capture.json",
        &title,
    );

    // New commits on the source branch: Push Hook and an update with oldrev.
    let second = commit(&s, "feature", "model.sql", "select 2\n").await;
    let update = s.receiver.next_event("Merge Request Hook").await.body;
    assert_eq!(update["object_attributes"]["action"], "update");
    assert_eq!(update["object_attributes"]["oldrev"], first);
    assert_eq!(update["object_attributes"]["last_commit"]["id"], second);
    assert_shape_of_fixture(
        "webhook.merge_request.update_new_commits_oldrev.gitlab-com-capture.json",
        &update,
    );
    let state_mr = handle.lock().merge_request(p, mr.iid).cloned().expect("mr");
    assert_eq!(state_mr.sha, second);

    handle
        .set_merge_request_draft(p, mr.iid, me, true)
        .await
        .expect("draft");
    let draft = s.receiver.next_event("Merge Request Hook").await.body;
    assert_eq!(draft["object_attributes"]["draft"], true);
    assert_eq!(
        draft["changes"]["draft"],
        json!({"previous": false, "current": true})
    );
    assert!(
        handle.merge_merge_request(p, mr.iid, me).await.is_err(),
        "drafts cannot be merged"
    );
    handle
        .set_merge_request_draft(p, mr.iid, me, false)
        .await
        .expect("ready");
    let ready = s.receiver.next_event("Merge Request Hook").await.body;
    assert_eq!(
        ready["changes"]["draft"],
        json!({"previous": true, "current": false})
    );
    assert_eq!(ready["object_attributes"]["title"], "Add the model");

    handle
        .close_merge_request(p, mr.iid, me)
        .await
        .expect("close");
    let close = s.receiver.next_event("Merge Request Hook").await.body;
    assert_eq!(close["object_attributes"]["action"], "close");
    assert_eq!(close["object_attributes"]["state"], "closed");
    assert_shape_of_fixture(
        "webhook.merge_request.close.gitlab-com-capture.json",
        &close,
    );

    handle
        .reopen_merge_request(p, mr.iid, me)
        .await
        .expect("reopen");
    let reopen = s.receiver.next_event("Merge Request Hook").await.body;
    assert_eq!(reopen["object_attributes"]["action"], "reopen");
    assert_shape_of_fixture(
        "webhook.merge_request.reopen.gitlab-com-capture.json",
        &reopen,
    );

    handle
        .approve_merge_request(p, mr.iid, me)
        .await
        .expect("approve");
    let approved = s.receiver.next_event("Merge Request Hook").await.body;
    assert_eq!(approved["object_attributes"]["action"], "approved");
    assert_shape_of_fixture(
        "webhook.merge_request.approved.gitlab-com-capture.json",
        &approved,
    );

    let merged = handle
        .merge_merge_request(p, mr.iid, me)
        .await
        .expect("merge");
    let merge_commit = merged.merge_commit_sha.clone().expect("merge commit");
    let push = s.receiver.next_event("Push Hook").await.body;
    assert_eq!(push["ref"], "refs/heads/main");
    assert_eq!(push["after"], merge_commit);
    let merge = s.receiver.next_event("Merge Request Hook").await.body;
    assert_eq!(merge["object_attributes"]["action"], "merge");
    assert_eq!(merge["object_attributes"]["state"], "merged");
    assert_eq!(merge["object_attributes"]["merge_commit_sha"], merge_commit);
    assert_shape_of_fixture(
        "webhook.merge_request.merge.gitlab-com-capture.json",
        &merge,
    );
}

#[tokio::test]
async fn tag_push_and_note_hooks_match_their_fixtures() {
    let mut s = setup().await;
    let sha = commit(&s, "main", "README.md", "x\n").await;
    let handle = s.sim.handle().clone();
    let repo = handle.repo_path(s.project_id);
    let status = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&repo)
        .args([
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "tag",
            "-a",
            "v1.0",
            "-m",
            "release",
            &sha,
        ])
        .status()
        .expect("git tag");
    assert!(status.success());
    let tag_sha = String::from_utf8(
        std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&repo)
            .args(["rev-parse", "refs/tags/v1.0"])
            .output()
            .expect("rev-parse")
            .stdout,
    )
    .expect("utf8")
    .trim()
    .to_owned();
    let update = gitlab_sim::changes::RefUpdate {
        old: "0000000000000000000000000000000000000000".into(),
        new: tag_sha,
        git_ref: "refs/tags/v1.0".into(),
    };
    handle
        .after_push(s.project_id, s.owner.id, &[update])
        .await
        .expect("after push");
    let tag = s.receiver.next_event("Tag Push Hook").await.body;
    assert_eq!(tag["object_kind"], "tag_push");
    assert_eq!(tag["checkout_sha"], sha);
    assert_eq!(tag["message"], "release");
    assert_shape_of_fixture("webhook.tag_push.create.gitlab-com-capture.json", &tag);

    commit(&s, "feature", "a.sql", "select 1\n").await;
    let mr = handle
        .open_merge_request(s.project_id, s.owner.id, "feature", "main", "Notes", "")
        .await
        .expect("open");
    expect(
        s.sim
            .post(
                &format!("/projects/{}/merge_requests/{}/notes", s.project_id, mr.iid),
                &s.owner.token,
                json!({ "body": "Looks good" }),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let note = s.receiver.next_event("Note Hook").await.body;
    assert_eq!(note["object_attributes"]["note"], "Looks good");
    assert_eq!(note["merge_request"]["iid"], mr.iid);
    assert_shape_of_fixture("webhook.note.merge_request.docs-example.json", &note);
}

async fn hook_json(s: &Setup) -> Value {
    expect(
        s.sim
            .get(
                &format!("/projects/{}/hooks/{}", s.project_id, s.hook_id),
                &s.owner.token,
            )
            .await,
        StatusCode::OK,
    )
    .await
}

/// Fires one push event at the project's hooks and waits for its delivery outcome.
async fn fire_once(s: &Setup) -> Delivery {
    let handles = webhooks::fire(
        s.sim.handle(),
        s.project_id,
        EventKind::Push,
        Some("main"),
        &json!({ "object_kind": "push" }),
    );
    assert_eq!(handles.len(), 1);
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.expect("delivery task"));
    }
    outcomes[0]
}

#[tokio::test]
async fn failing_hooks_are_disabled_like_gitlab_and_a_test_request_re_enables_them() {
    let mut s = setup().await;
    s.receiver.respond_with(500);
    for _ in 0..3 {
        assert_eq!(fire_once(&s).await, Delivery::Answered(500));
    }
    assert_eq!(hook_json(&s).await["alert_status"], "executable");
    assert_eq!(fire_once(&s).await, Delivery::Answered(500));
    let hook = hook_json(&s).await;
    assert_eq!(hook["alert_status"], "temporarily_disabled");
    assert!(hook["disabled_until"].is_string());
    assert_eq!(s.receiver.drain().len(), 4);

    // Dropped while disabled: nothing sent, nothing logged, no retry later.
    assert_eq!(fire_once(&s).await, Delivery::Dropped);
    let events = expect(
        s.sim
            .get(
                &format!("/projects/{}/hooks/{}/events", s.project_id, s.hook_id),
                &s.owner.token,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(events.as_array().expect("list").len(), 4);
    assert!(s.receiver.drain().is_empty());

    // After the 1 minute backoff it is tried again; each further failure doubles the backoff,
    // and the 40th consecutive failure disables it for good.
    for _ in 4..40 {
        s.sim.handle().advance_clock(24 * 3600 + 1);
        assert_eq!(fire_once(&s).await, Delivery::Answered(500));
    }
    s.sim.handle().advance_clock(24 * 3600 + 1);
    assert_eq!(hook_json(&s).await["alert_status"], "disabled");
    assert_eq!(fire_once(&s).await, Delivery::Dropped);

    // A test request goes out anyway, and a 2xx re-enables the hook.
    commit(&s, "main", "README.md", "x\n").await;
    s.receiver.respond_with(200);
    let tested = expect(
        s.sim
            .post(
                &format!(
                    "/projects/{}/hooks/{}/test/push_events",
                    s.project_id, s.hook_id
                ),
                &s.owner.token,
                json!({}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(tested, json!({ "message": "201 Created" }));
    assert_eq!(hook_json(&s).await["alert_status"], "executable");
    assert_eq!(fire_once(&s).await, Delivery::Answered(200));
}

#[tokio::test]
async fn backoff_doubles_from_one_minute() {
    let s = setup().await;
    s.receiver.respond_with(503);
    for _ in 0..4 {
        fire_once(&s).await;
    }
    // Backoff is measured from the failed delivery's own time.
    let backoff = |s: &Setup| {
        let state = s.sim.handle().lock();
        let hook = &state.hooks[&s.hook_id];
        let failed_at = hook.deliveries.last().expect("logged").created_at;
        (hook.disabled_until.expect("disabled") - failed_at).num_seconds()
    };
    assert_eq!(backoff(&s), 60);
    s.sim.handle().advance_clock(61);
    fire_once(&s).await;
    assert_eq!(backoff(&s), 120);
    s.sim.handle().advance_clock(121);
    fire_once(&s).await;
    assert_eq!(backoff(&s), 240);
}

#[tokio::test]
async fn delivery_log_has_gitlab_shape_and_resend_keeps_the_idempotency_key() {
    let mut s = setup().await;
    commit(&s, "main", "README.md", "x\n").await;
    let original = s.receiver.next_event("Push Hook").await;
    let key = original.header("idempotency-key").to_owned();

    let events = expect(
        s.sim
            .get(
                &format!(
                    "/projects/{}/hooks/{}/events?status=successful",
                    s.project_id, s.hook_id
                ),
                &s.owner.token,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let entry = &events[0];
    assert_shape_with_maps(
        "api.project_hook.event.list_item.json",
        entry,
        &["$.response_headers"],
    );
    assert_eq!(entry["trigger"], "push_hooks");
    assert_eq!(entry["response_status"], "200");
    assert_eq!(entry["request_headers"]["X-Gitlab-Token"], "[REDACTED]");
    assert_eq!(entry["request_headers"]["Idempotency-Key"], key);
    let failures = expect(
        s.sim
            .get(
                &format!(
                    "/projects/{}/hooks/{}/events?status=server_failure",
                    s.project_id, s.hook_id
                ),
                &s.owner.token,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(failures, json!([]));

    let event_id = entry["id"].as_u64().expect("id");
    let resent = expect(
        s.sim
            .post(
                &format!(
                    "/projects/{}/hooks/{}/events/{event_id}/resend",
                    s.project_id, s.hook_id
                ),
                &s.owner.token,
                json!({}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(resent, json!({ "response_status": 200 }));
    let again = s.receiver.next_event("Push Hook").await;
    assert_eq!(again.header("idempotency-key"), key);
    assert_eq!(again.header("webhook-id"), key);
    assert_eq!(again.body, original.body);
    verify_signature(&again);
}

#[tokio::test]
async fn unreachable_receivers_count_as_failures_and_are_logged_as_internal_errors() {
    let s = setup().await;
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    expect(
        s.sim
            .put(
                &format!("/projects/{}/hooks/{}", s.project_id, s.hook_id),
                &s.owner.token,
                json!({ "url": format!("http://{closed}/hook") }),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(fire_once(&s).await, Delivery::Failed);
    let events = expect(
        s.sim
            .get(
                &format!("/projects/{}/hooks/{}/events", s.project_id, s.hook_id),
                &s.owner.token,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(events[0]["response_status"], "internal error");
    assert_eq!(s.sim.handle().lock().hooks[&s.hook_id].recent_failures, 1);
}
