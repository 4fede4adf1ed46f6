//! Merge requests list/get and notes (MRs are stored through the state API here; the control
//! operations that open them and fire hooks belong to the webhook engine).

use gitlab_sim::state::{MrState, NewMergeRequest, SimEvent, access};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestSim, expect, json};

#[tokio::test]
async fn list_filters_get_and_notes() {
    let t = TestSim::start().await;
    let user = t.user("alice");
    let project = t.project_for(&user, access::DEVELOPER).await;
    let base_sha = t.commit(project.id, "main", "a.txt", "a");
    let repo = t.repo(project.id);
    std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&repo)
        .args(["branch", "feature", &base_sha])
        .status()
        .expect("branch");
    let head = t.commit(project.id, "feature", "b.txt", "b");
    let new = |title: &str, source: &str| NewMergeRequest {
        project_id: project.id,
        source_project_id: project.id,
        force_remove_source_branch: false,
        author_id: user.id,
        title: title.into(),
        description: "desc".into(),
        source_branch: source.into(),
        target_branch: "main".into(),
        sha: head.clone(),
        base_sha: base_sha.clone(),
        start_sha: base_sha.clone(),
    };
    let first = t
        .handle()
        .lock()
        .insert_merge_request(new("Draft: first", "feature"))
        .expect("mr");
    let second = t
        .handle()
        .lock()
        .insert_merge_request(new("second", "other"))
        .expect("mr");
    t.handle()
        .lock()
        .merge_request_mut(project.id, second.iid)
        .expect("mr")
        .state = MrState::Closed;
    let base = format!("/projects/{}/merge_requests", project.id);
    let all = json(t.get(&base, &user.token).await).await;
    assert_eq!(all.as_array().expect("a").len(), 2);
    let opened = json(t.get(&format!("{base}?state=opened"), &user.token).await).await;
    assert_eq!(opened.as_array().expect("a").len(), 1);
    assert_eq!(opened[0]["iid"], first.iid);
    let by_branch = json(
        t.get(
            &format!("{base}?source_branch=other&target_branch=main"),
            &user.token,
        )
        .await,
    )
    .await;
    assert_eq!(by_branch[0]["iid"], second.iid);
    let future = (t.handle().now() + chrono::Duration::hours(1)).to_rfc3339();
    let none = json(
        t.http
            .get(t.api(&base))
            .query(&[("updated_after", future.as_str())])
            .header("PRIVATE-TOKEN", &user.token)
            .send()
            .await
            .expect("r"),
    )
    .await;
    assert_eq!(none, json!([]));
    assert_eq!(
        expect(
            t.get(&format!("{base}?state=weird"), &user.token).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({"error": "state does not have a valid value"})
    );

    let mr = expect(
        t.get(&format!("{base}/{}", first.iid), &user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mr["draft"], true);
    assert_eq!(mr["sha"], head);
    assert_eq!(mr["source_branch"], "feature");
    assert_eq!(mr["target_branch"], "main");
    assert_eq!(
        mr["diff_refs"],
        json!({"base_sha": base_sha, "head_sha": head, "start_sha": base_sha})
    );
    assert_eq!(mr["detailed_merge_status"], "draft_status");
    assert_eq!(
        expect(
            t.get(&format!("{base}/999"), &user.token).await,
            StatusCode::NOT_FOUND
        )
        .await,
        json!({"message": "404 Not found"})
    );

    let mut events = t.handle().subscribe();
    let notes = format!("{base}/{}/notes", first.iid);
    let note = expect(
        t.post(&notes, &user.token, json!({"body": "lablink: run passed"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(note["body"], "lablink: run passed");
    assert_eq!(note["noteable_type"], "MergeRequest");
    assert_eq!(note["noteable_iid"], first.iid);
    assert_eq!(note["author"]["id"], user.id);
    let event = events.recv().await.expect("event");
    assert_eq!(
        event,
        SimEvent::MergeRequestNoteCreated {
            project_id: project.id,
            mr_iid: first.iid,
            note_id: note["id"].as_u64().expect("id"),
            user_id: user.id
        }
    );
    assert_eq!(
        expect(
            t.post(&notes, &user.token, json!({})).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({"error": "body is missing"})
    );
    let listed = json(t.get(&notes, &user.token).await).await;
    assert_eq!(listed.as_array().expect("a").len(), 1);
    let stranger = t.user("stranger");
    assert_eq!(
        t.get(&notes, &stranger.token).await.status(),
        StatusCode::NOT_FOUND
    );

    // Its author edits the note in place; nobody else may.
    let one = format!("{notes}/{}", note["id"]);
    let edited = expect(
        t.put(&one, &user.token, json!({"body": "lablink: run failed"}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(edited["id"], note["id"]);
    assert_eq!(edited["body"], "lablink: run failed");
    assert_eq!(
        json(t.get(&one, &user.token).await).await["body"],
        "lablink: run failed"
    );
    assert_eq!(
        expect(
            t.put(&one, &user.token, json!({"body": " "})).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({"message": {"note": ["can't be blank"]}})
    );
    assert_eq!(
        t.put(
            &format!("{notes}/999999"),
            &user.token,
            json!({"body": "x"})
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
}
