//! Deliveries sent to lablink's intake the way GitLab sends them, for events the simulator does
//! not send itself (crafted payloads) or with credentials a test chooses.

/// Posts `body` as event `event` (`X-Gitlab-Event`) to the intake of `repository_id`, with
/// `secret` in `X-Gitlab-Token` and, when given, signed with `signing` (Standard Webhooks);
/// returns the HTTP status.
pub async fn deliver(
    base: &str,
    repository_id: &str,
    event: &str,
    body: &[u8],
    secret: &str,
    signing: Option<&str>,
) -> u16 {
    let id = uuid::Uuid::new_v4().to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let mut req = reqwest::Client::new()
        .post(format!("{base}/webhooks/gitlab/{repository_id}"))
        .header("Content-Type", "application/json")
        .header("X-Gitlab-Event", event)
        .header("Idempotency-Key", &id)
        .header("X-Gitlab-Token", secret);
    if let Some(signing) = signing {
        let signature =
            gitlab_sim::webhooks::delivery::signature(signing, &id, timestamp, body).unwrap();
        req = req
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature);
    }
    req.body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// GitLab's merge request event of `fixtures/webhook.merge_request.open.gitlab-com-capture.json`
/// with the given identity: target project, source project (a fork when they differ), iid,
/// head commit and branches.
pub fn merge_request_opened(
    target_project: u64,
    source_project: u64,
    iid: i64,
    sha: &str,
    source_branch: &str,
) -> Vec<u8> {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/gitlab/fixtures/webhook.merge_request.open.gitlab-com-capture.json"
    );
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let attributes = &mut event["object_attributes"];
    attributes["iid"] = iid.into();
    attributes["target_project_id"] = target_project.into();
    attributes["source_project_id"] = source_project.into();
    attributes["last_commit"]["id"] = sha.into();
    attributes["source_branch"] = source_branch.into();
    attributes["target_branch"] = "main".into();
    attributes["draft"] = false.into();
    attributes["work_in_progress"] = false.into();
    attributes["action"] = "open".into();
    event["project"]["id"] = target_project.into();
    serde_json::to_vec(&event).unwrap()
}
