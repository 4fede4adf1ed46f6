//! Project access token rotation against gitlab-sim over HTTP: lablink's own rotation, a token
//! rotated in GitLab, the crash cases (before the rotation reached GitLab, and after GitLab
//! rotated but the answer was lost), and scheduling at scale (only the due tokens are touched).

use lablink_service::doctor::Code;
use lablink_service::rotation::Rotation;

/// The rotation task's kind as stored in the queue.
const ROTATE_PROJECT_TOKEN_JOB: &str = "repositories.rotate_project_token";
use reqwest::Method;
use serde_json::{Value, json};

use crate::doctor::{World, codes, fix_and_expect_clean};
use crate::support::{Backend, TestApp};

crate::on_both_backends!(
    tokens_rotated_in_gitlab_and_lost_rotations_are_recovered,
    scheduling_enqueues_only_the_due_tokens,
    a_token_needing_a_person_is_not_enqueued_again_until_it_changes,
);

async fn tokens_rotated_in_gitlab_and_lost_rotations_are_recovered(backend: Backend) {
    let w = World::start(backend).await;
    let services = &w.app.services;

    // lablink rotates its own token: same name, new id, the old one revoked.
    let repo = w.repository().await;
    let old = repo.project_token_id.unwrap();
    let Rotation::Rotated { token_id, .. } =
        services.rotate_project_token(&repo.id, old).await.unwrap()
    else {
        panic!("not rotated");
    };
    assert_ne!(token_id, old);
    assert!(w.doctor(false).await.healthy());
    // Running the same job again does nothing (it names the replaced token).
    assert!(matches!(
        services.rotate_project_token(&repo.id, old).await.unwrap(),
        Rotation::Skipped(_)
    ));

    // Someone rotates the token in GitLab: detected as rotated outside lablink, and repaired.
    w.as_maintainer(
        Method::POST,
        &format!("/access_tokens/{token_id}/rotate"),
        json!({}),
    )
    .await;
    let report = w.doctor(false).await;
    assert_eq!(
        codes(&report),
        [Code::ProjectTokenRotatedOutside],
        "{:#?}",
        report.findings
    );
    fix_and_expect_clean(&w).await;

    // A crash before the rotation reached GitLab: the token still works, the mark is cleared.
    let repo = w.repository().await;
    let current = repo.project_token_id.unwrap();
    assert!(
        w.app
            .db
            .begin_token_rotation(&repo.id, current)
            .await
            .unwrap()
    );
    assert!(matches!(
        services
            .rotate_project_token(&repo.id, current)
            .await
            .unwrap(),
        Rotation::Skipped(_)
    ));
    assert_eq!(
        w.app.db.token_rotation_started(&repo.id).await.unwrap(),
        None
    );

    // A crash after GitLab rotated (the answer lost): the stored token is revoked and a newer
    // one exists. Recovery re-creates the token; it never rotates the revoked one again (which
    // would revoke the whole family, including the token it creates).
    assert!(
        w.app
            .db
            .begin_token_rotation(&repo.id, current)
            .await
            .unwrap()
    );
    w.as_maintainer(
        Method::POST,
        &format!("/access_tokens/{current}/rotate"),
        json!({}),
    )
    .await;
    let report = w.doctor(false).await;
    assert_eq!(codes(&report), [Code::ProjectTokenRotationInterrupted]);
    let Rotation::Recreated {
        token_id: recreated,
        ..
    } = services
        .rotate_project_token(&repo.id, current)
        .await
        .unwrap()
    else {
        panic!("not recreated");
    };
    let state = w.sim_state().await;
    let active: Vec<&Value> = state["project_access_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["revoked"] == false)
        .collect();
    assert_eq!(active.len(), 1, "{state:#}");
    assert_eq!(active[0]["id"], recreated);
    assert!(w.doctor(false).await.healthy());
    w.app.stop().await;
}

async fn scheduling_enqueues_only_the_due_tokens(backend: Backend) {
    let w = World::start(backend).await;
    let repo = w.repository().await;
    // 5,000 connected repositories (each of its own project) with expiries staggered over 500
    // days. They point at an unresolvable GitLab: scheduling must not call GitLab at all.
    let today = chrono::Utc::now().date_naive();
    let mut due = 0;
    for chunk in 0..50 {
        let mut projects = Vec::new();
        let mut repos = Vec::new();
        for i in 0..100 {
            let n = chunk * 100 + i;
            let days = n / 10;
            if days <= 30 {
                due += 1;
            }
            let project = uuid::Uuid::now_v7();
            projects.push(format!("('{project}', '{}', 'p{n}', '', 0, 0)", w.account));
            repos.push(format!(
                "('{id}', '{acct}', '{project}', 'http://gitlab.invalid', {gp}, 'g/p{n}', 'main', 'x', \
                 'x', 'connected', {tok}, '{exp}', 0, 0)",
                id = uuid::Uuid::now_v7(),
                acct = w.account,
                gp = 100_000 + n,
                tok = 500_000 + n,
                exp = (today + chrono::Days::new(days)).format("%Y-%m-%d"),
            ));
        }
        w.app
            .execute(&format!(
                "INSERT INTO projects (id, account_id, name, subdirectory, created_at, updated_at) \
                 VALUES {}",
                projects.join(", ")
            ))
            .await;
        w.app
            .execute(&format!(
                "INSERT INTO repositories (id, account_id, project_id, gitlab_instance_url, \
                 gitlab_project_id, path_with_namespace, default_branch, http_url_to_repo, web_url, \
                 status, project_token_id, project_token_expires_on, created_at, updated_at) VALUES {}",
                repos.join(", ")
            ))
            .await;
    }
    // Real connections in GitLab too: two due (one of them the first connection), two not.
    let real = [
        (repo.clone(), 3),
        (w.connect_another("due-later").await, 20),
        (w.connect_another("not-due").await, 60),
        (w.connect_another("far-off").await, 200),
    ];
    for (r, days) in &real {
        w.app
            .execute(&format!(
                "UPDATE repositories SET project_token_expires_on = '{}' WHERE id = '{}'",
                (today + chrono::Days::new(*days)).format("%Y-%m-%d"),
                r.id
            ))
            .await;
    }
    let real_due = real.iter().filter(|(_, days)| *days <= 30).count();
    let due = due + real_due;
    // Count GitLab's calls from here on: scheduling and the rotation jobs only.
    let sim = w.gitlab.sim();
    sim.reset_request_counts();
    let enqueued = w.app.services.schedule_token_rotations(30).await.unwrap();
    assert_eq!(enqueued, due);
    // One job per due token, each naming a due repository.
    let jobs = rotation_jobs(&w.app).await;
    assert_eq!(jobs.len(), due);
    let soon = (today + chrono::Days::new(30))
        .format("%Y-%m-%d")
        .to_string();
    for payload in &jobs {
        let id = payload["repository_id"].as_str().unwrap();
        let Some((r, days)) = real.iter().find(|(r, _)| r.id == id) else {
            let row = w.app.db.repository(id).await.unwrap().unwrap();
            assert!(row.project_token_expires_on.unwrap() <= soon);
            assert_eq!(row.project_token_id, payload["project_token_id"].as_i64());
            continue;
        };
        // Real ones may already have been rotated by the job workers.
        assert!(*days <= 30);
        assert_eq!(r.project_token_id, payload["project_token_id"].as_i64());
    }
    // The job workers run them: each real due token is rotated in GitLab once; the others
    // (and the 5,000 whose GitLab does not even resolve) are not touched.
    while unfinished_rotation_jobs(&w.app).await > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (r, days) in &real {
        let now = w.app.db.repository(&r.id).await.unwrap().unwrap();
        assert_eq!(
            now.project_token_id != r.project_token_id,
            *days <= 30,
            "{} due in {days} days",
            r.path_with_namespace
        );
    }
    let rotate = "/api/v4/projects/{id}/access_tokens/{token_id}/rotate";
    assert_eq!(sim.request_count("POST", rotate), real_due as u64);
    let calls: u64 = sim.request_counts().values().sum();
    assert_eq!(calls, real_due as u64, "{:#?}", sim.request_counts());
    let state = w.sim_state().await;
    let tokens = state["project_access_tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{state:#}");
    assert_eq!(tokens.iter().filter(|t| t["revoked"] == false).count(), 1);
    assert_eq!(failed_rotation_jobs(&w.app).await, 0);
    w.app.stop().await;
}

/// The payloads of the rotation jobs in the queue.
async fn rotation_jobs(app: &TestApp) -> Vec<Value> {
    let sql = "SELECT payload FROM jobs WHERE kind = $1";
    let rows: Vec<(String,)> = match &app.db {
        lablink_store::Db::Sqlite(pool) => sqlx::query_as(sql)
            .bind(ROTATE_PROJECT_TOKEN_JOB)
            .fetch_all(pool)
            .await
            .unwrap(),
        lablink_store::Db::Postgres(pool) => sqlx::query_as(sql)
            .bind(ROTATE_PROJECT_TOKEN_JOB)
            .fetch_all(pool)
            .await
            .unwrap(),
    };
    rows.iter()
        .map(|(p,)| serde_json::from_str(p).unwrap())
        .collect()
}

async fn count_rotation_jobs(app: &TestApp, condition: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM jobs WHERE kind = $1 AND {condition}");
    let (n,): (i64,) = match &app.db {
        lablink_store::Db::Sqlite(pool) => sqlx::query_as(&sql)
            .bind(ROTATE_PROJECT_TOKEN_JOB)
            .fetch_one(pool)
            .await
            .unwrap(),
        lablink_store::Db::Postgres(pool) => sqlx::query_as(&sql)
            .bind(ROTATE_PROJECT_TOKEN_JOB)
            .fetch_one(pool)
            .await
            .unwrap(),
    };
    n
}

async fn unfinished_rotation_jobs(app: &TestApp) -> i64 {
    count_rotation_jobs(app, "status IN ('queued', 'running')").await
}

/// Jobs that failed at least once.
async fn failed_rotation_jobs(app: &TestApp) -> i64 {
    count_rotation_jobs(app, "last_error IS NOT NULL").await
}

/// How many rotation jobs were ever queued for each repository.
async fn rotation_jobs_of(app: &TestApp, repository_id: &str) -> usize {
    rotation_jobs(app)
        .await
        .iter()
        .filter(|p| p["repository_id"] == repository_id)
        .count()
}

/// Runs one scheduling pass and waits for the job workers to run what it enqueued.
async fn schedule_and_run(app: &TestApp) -> usize {
    let enqueued = app.services.schedule_token_rotations(30).await.unwrap();
    while unfinished_rotation_jobs(app).await > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    enqueued
}

async fn a_token_needing_a_person_is_not_enqueued_again_until_it_changes(backend: Backend) {
    let w = World::start(backend).await;
    let stuck = w.repository().await;
    let healthy = w.connect_another("healthy").await;
    let due = |id: &str| {
        format!(
            "UPDATE repositories SET project_token_expires_on = '{}' WHERE id = '{id}'",
            (chrono::Utc::now().date_naive() + chrono::Days::new(3)).format("%Y-%m-%d")
        )
    };
    // Both tokens are due. The first was revoked in GitLab, and its connecting user is no longer
    // Maintainer there, so lablink cannot replace it: it needs a person.
    w.app.execute(&due(&stuck.id)).await;
    w.app.execute(&due(&healthy.id)).await;
    w.as_maintainer(
        Method::DELETE,
        &format!("/access_tokens/{}", stuck.project_token_id.unwrap()),
        json!({}),
    )
    .await;
    w.gitlab.member(w.gitlab_project, w.alice, 30).await;
    assert_eq!(schedule_and_run(&w.app).await, 2);
    let rotated = w.app.db.repository(&healthy.id).await.unwrap().unwrap();
    assert_ne!(rotated.project_token_id, healthy.project_token_id);
    let after = w.app.db.repository(&stuck.id).await.unwrap().unwrap();
    assert_eq!(
        after.project_token_id, stuck.project_token_id,
        "not replaced"
    );

    // The next passes leave the stuck token alone but still enqueue the due ones.
    w.app.execute(&due(&healthy.id)).await;
    assert_eq!(schedule_and_run(&w.app).await, 1);
    assert_eq!(rotation_jobs_of(&w.app, &healthy.id).await, 2);
    assert_eq!(schedule_and_run(&w.app).await, 0);
    assert_eq!(rotation_jobs_of(&w.app, &stuck.id).await, 1);

    // Once its repository changes, the token is scheduled again.
    w.app
        .db
        .set_repository_status_warning(&stuck.id, "checked by an administrator")
        .await
        .unwrap();
    assert_eq!(schedule_and_run(&w.app).await, 1);
    assert_eq!(rotation_jobs_of(&w.app, &stuck.id).await, 2);
    assert_eq!(failed_rotation_jobs(&w.app).await, 0);
    w.app.stop().await;
}
