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

/// The GitLab user named in the push event GitLab delivered last for the repository (it
/// arrives shortly after the push; waits up to 10 s).
pub async fn last_pusher(db: &lablink_store::Db, repository_id: &str) -> String {
    use lablink_store::Db;
    let sql = "SELECT id FROM webhook_deliveries WHERE repository_id = $1 \
               AND event = 'Push Hook' ORDER BY received_at DESC LIMIT 1";
    for _ in 0..100 {
        let id: Option<String> = match db {
            Db::Sqlite(pool) => sqlx::query_scalar(sql)
                .bind(repository_id)
                .fetch_optional(pool)
                .await
                .unwrap(),
            Db::Postgres(pool) => sqlx::query_scalar(sql)
                .bind(repository_id)
                .fetch_optional(pool)
                .await
                .unwrap(),
        };
        if let Some(id) = id {
            let delivery = db.delivery(&id).await.unwrap().unwrap();
            let event: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
            return event["user_username"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("GitLab delivered no push event");
}
