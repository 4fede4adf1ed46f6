//! Commit statuses: the job state machine, ref resolution through the real repository,
//! protected refs.

use gitlab_sim::state::access;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestSim, commit_to, expect, json};

fn transition_error(event: &str, from: &str) -> serde_json::Value {
    json!({"message": format!("Cannot transition status via :{event} from :{from} (Reason(s): Status cannot transition via \"{event}\")")})
}

#[tokio::test]
async fn state_machine_and_terminal_states_start_new_jobs() {
    let t = TestSim::start().await;
    let user = t.user("alice");
    let project = t.project_for(&user, access::MAINTAINER).await;
    let sha = t.commit(project.id, "feature", "a.txt", "a");
    let url = format!("/projects/{}/statuses/{sha}", project.id);
    let post = |state: &str| {
        t.post(&url, &user.token, json!({"state": state, "name": "lablink/ci", "target_url": "https://lablink.example/runs/1"}))
    };
    let pending = expect(post("pending").await, StatusCode::CREATED).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["ref"], "feature");
    assert_eq!(pending["author"]["id"], user.id);
    assert_eq!(
        expect(post("pending").await, StatusCode::BAD_REQUEST).await,
        transition_error("enqueue", "pending")
    );
    let running = expect(post("running").await, StatusCode::CREATED).await;
    assert_eq!(running["id"], pending["id"]);
    assert!(running["started_at"].is_string());
    assert_eq!(
        expect(post("running").await, StatusCode::BAD_REQUEST).await,
        transition_error("run", "running")
    );
    assert_eq!(
        expect(post("skipped").await, StatusCode::BAD_REQUEST).await,
        transition_error("skip", "running")
    );
    let success = expect(post("success").await, StatusCode::CREATED).await;
    assert_eq!(success["id"], pending["id"]);
    assert!(success["finished_at"].is_string());
    // After a terminal state a new job is created.
    let rerun = expect(post("running").await, StatusCode::CREATED).await;
    assert_ne!(rerun["id"], pending["id"]);
    assert_eq!(rerun["pipeline_id"], pending["pipeline_id"]);

    let list_url = format!("/projects/{}/repository/commits/{sha}/statuses", project.id);
    let latest = json(t.get(&list_url, &user.token).await).await;
    assert_eq!(latest.as_array().expect("a").len(), 1);
    assert_eq!(latest[0]["status"], "running");
    let all = json(t.get(&format!("{list_url}?all=true"), &user.token).await).await;
    assert_eq!(all.as_array().expect("a").len(), 2);
    // A different name is a different job.
    let other = expect(
        t.post(
            &url,
            &user.token,
            json!({"state": "failed", "context": "other"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(other["name"], "other");
    assert_eq!(
        json(t.get(&format!("{list_url}?name=other"), &user.token).await)
            .await
            .as_array()
            .expect("a")
            .len(),
        1
    );
    // A different user gets its own job even with the same name.
    let dev = t.user("dev");
    t.handle()
        .add_project_member(project.id, dev.id, access::DEVELOPER)
        .expect("member");
    let devs = expect(
        t.post(
            &url,
            &dev.token,
            json!({"state": "success", "name": "lablink/ci"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_ne!(devs["id"], rerun["id"]);
}

#[tokio::test]
async fn errors_refs_and_protected_branches() {
    let t = TestSim::start().await;
    let maintainer = t.user("maintainer");
    let dev = t.user("dev");
    let reporter = t.user("reporter");
    let project = t.project_for(&maintainer, access::MAINTAINER).await;
    t.handle()
        .add_project_member(project.id, dev.id, access::DEVELOPER)
        .expect("member");
    t.handle()
        .add_project_member(project.id, reporter.id, access::REPORTER)
        .expect("member");
    let main_sha = t.commit(project.id, "main", "m.txt", "main");
    let url = |sha: &str| format!("/projects/{}/statuses/{sha}", project.id);
    let unknown = t
        .post(
            &url("0123456789abcdef0123456789abcdef01234567"),
            &maintainer.token,
            json!({"state": "pending"}),
        )
        .await;
    assert_eq!(
        expect(unknown, StatusCode::NOT_FOUND).await,
        json!({"message": "404 Commit Not Found"})
    );
    let missing_state = t.post(&url(&main_sha), &maintainer.token, json!({})).await;
    assert_eq!(
        expect(missing_state, StatusCode::BAD_REQUEST).await,
        json!({"message": "State is required"})
    );
    let bad_state = t
        .post(&url(&main_sha), &maintainer.token, json!({"state": "done"}))
        .await;
    assert_eq!(
        expect(bad_state, StatusCode::BAD_REQUEST).await,
        json!({"error": "state does not have a valid value"})
    );
    // A commit on no branch has no ref to resolve.
    let orphan = commit_to(&t.repo(project.id), "refs/sim/orphan", "o.txt", "o");
    let no_ref = t
        .post(
            &url(&orphan),
            &maintainer.token,
            json!({"state": "pending"}),
        )
        .await;
    assert_eq!(
        expect(no_ref, StatusCode::NOT_FOUND).await,
        json!({"message": "404 References for commit Not Found"})
    );
    // `main` is protected: Developers may not post there, Maintainers may.
    let dev_main = t
        .post(&url(&main_sha), &dev.token, json!({"state": "pending"}))
        .await;
    assert_eq!(
        expect(dev_main, StatusCode::FORBIDDEN).await,
        json!({"message": "403 Forbidden"})
    );
    expect(
        t.post(
            &url(&main_sha),
            &maintainer.token,
            json!({"state": "pending"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let feature_sha = t.commit(project.id, "feature", "f.txt", "f");
    expect(
        t.post(
            &url(&feature_sha),
            &dev.token,
            json!({"state": "success", "ref": "feature"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let reporter_post = t
        .post(
            &url(&feature_sha),
            &reporter.token,
            json!({"state": "success"}),
        )
        .await;
    assert_eq!(reporter_post.status(), StatusCode::FORBIDDEN);
    let bad_pipeline = t
        .post(
            &url(&feature_sha),
            &dev.token,
            json!({"state": "success", "pipeline_id": 424242}),
        )
        .await;
    assert_eq!(
        expect(bad_pipeline, StatusCode::NOT_FOUND).await,
        json!({"message": "404 Pipeline for pipeline_id, sha and ref Not Found"})
    );
    let list_unknown = t
        .get(
            &format!(
                "/projects/{}/repository/commits/ffffffffffffffffffffffffffffffffffffffff/statuses",
                project.id
            ),
            &dev.token,
        )
        .await;
    assert_eq!(
        expect(list_unknown, StatusCode::NOT_FOUND).await,
        json!({"message": "404 Commit Not Found"})
    );
}
