use std::collections::{BTreeMap, HashSet};

use lablink_store::Db;
use lablink_store::ci_jobs::CiJobInput;
use lablink_store::crypto::KeyRing;
use lablink_store::deliveries::{NewDelivery, PROCESS_DELIVERY_JOB, Recorded};
use lablink_store::runs::{Holder, NewRun, Transition};
use secrecy::{ExposeSecret, SecretString};

crate::on_both!(
    a_delivery_is_stored_once_with_its_job,
    ci_jobs_get_increasing_ids_and_sealed_variables,
    a_commit_runs_once_per_job_and_is_claimed_once,
    an_expired_run_lease_lets_another_worker_take_over,
    concurrent_workers_never_claim_the_same_run,
    the_outbox_keeps_the_latest_status_until_it_is_sent,
);

fn keys() -> KeyRing {
    KeyRing::new(&[7; 32], &[])
}

fn delivery<'a>(key: &'a str, ignored: Option<&'a str>) -> NewDelivery<'a> {
    NewDelivery {
        repository_id: "repo-1",
        delivery_key: key,
        event: Some("Merge Request Hook"),
        body: b"{\"object_kind\":\"merge_request\"}",
        ignored,
    }
}

async fn a_delivery_is_stored_once_with_its_job(db: Db) {
    let first = db.record_delivery(&delivery("k1", None)).await.unwrap();
    let Recorded::New { delivery_id } = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        db.record_delivery(&delivery("k1", None)).await.unwrap(),
        Recorded::Duplicate
    );
    let stored = db.delivery(&delivery_id).await.unwrap().unwrap();
    assert_eq!(stored.body, b"{\"object_kind\":\"merge_request\"}");
    assert_eq!(stored.status, "received");
    // An ignored event is stored with its reason and no job.
    let ignored = db
        .record_delivery(&delivery("k2", Some("tag pushes start nothing")))
        .await
        .unwrap();
    assert!(matches!(ignored, Recorded::New { .. }));
    assert_eq!(db.count_deliveries("repo-1", "ignored").await.unwrap(), 1);
    let job = db.claim_job("w", 60_000).await.unwrap().unwrap();
    assert_eq!(job.kind, PROCESS_DELIVERY_JOB);
    assert!(job.payload.contains(&delivery_id));
    assert!(db.claim_job("w", 60_000).await.unwrap().is_none());
    // The same key in another repository is another delivery.
    let other = NewDelivery {
        repository_id: "repo-2",
        ..delivery("k1", None)
    };
    assert!(matches!(
        db.record_delivery(&other).await.unwrap(),
        Recorded::New { .. }
    ));
}

fn job_input(name: &str) -> CiJobInput {
    CiJobInput {
        name: name.into(),
        kind: "ci".into(),
        commands: vec![],
        target_branch_filter: None,
        run_on_draft: false,
        enabled: true,
        timeout_secs: 60,
        env: BTreeMap::from([("DBT_ENV_SECRET_KEY".into(), SecretString::from("hunter2"))]),
        warehouse: r#"{"type":"duckdb","path":"/tmp/x.duckdb"}"#.into(),
        warehouse_secret: None,
        mr_note: false,
    }
}

async fn ci_jobs_get_increasing_ids_and_sealed_variables(db: Db) {
    let keys = keys();
    let a = db
        .create_ci_job(&keys, "acct", "proj", &job_input("ci"))
        .await
        .unwrap();
    let b = db
        .create_ci_job(&keys, "acct", "proj", &job_input("nightly"))
        .await
        .unwrap();
    assert_eq!((a, b), (1, 2));
    let err = db
        .create_ci_job(&keys, "acct", "proj", &job_input("ci"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let job = db.ci_job(&keys, a).await.unwrap().unwrap();
    assert_eq!(
        job.input.env["DBT_ENV_SECRET_KEY"].expose_secret(),
        "hunter2"
    );
    let raw: Vec<u8> = lablink_store::on_db!(&db, |pool| {
        sqlx::query_scalar("SELECT env_enc FROM ci_jobs WHERE id = 1")
            .fetch_one(pool)
            .await
    })
    .unwrap();
    assert!(!raw.windows(7).any(|w| w == b"hunter2"));
    assert_eq!(db.ci_jobs_of_project(&keys, "proj").await.unwrap().len(), 2);
    assert!(db.delete_ci_job(b).await.unwrap());
}

fn new_run<'a>(job: i64, sha: &'a str) -> NewRun<'a> {
    NewRun {
        ci_job_id: job,
        account_id: "acct",
        project_id: "proj",
        repository_id: "repo-1",
        sha,
        ref_name: "feature",
        mr_iid: Some(7),
        triggered_by: "webhook",
        reason: "queued",
        status_state: "pending",
    }
}

const CLAIM: Transition<'static> = Transition {
    from: "queued",
    to: "starting",
    reason: "claimed by a worker",
    status_state: "running",
    terminal: false,
};

async fn job(db: &Db) -> i64 {
    db.create_ci_job(&keys(), "acct", "proj", &job_input("ci"))
        .await
        .unwrap()
}

async fn a_commit_runs_once_per_job_and_is_claimed_once(db: Db) {
    let job = job(&db).await;
    let id = db.create_run(&new_run(job, "a1")).await.unwrap().unwrap();
    assert!(db.create_run(&new_run(job, "a1")).await.unwrap().is_none());
    assert!(db.run_exists(job, "a1").await.unwrap());
    let run = db.claim_run("w1", 60_000, &CLAIM).await.unwrap().unwrap();
    assert_eq!(run.id, id);
    assert_eq!(run.state, "starting");
    assert_eq!(run.attempts, 1);
    assert!(db.claim_run("w2", 60_000, &CLAIM).await.unwrap().is_none());
    // Only the holder finishes it.
    let succeed = |from| Transition {
        from,
        to: "success",
        reason: "every dbt command succeeded",
        status_state: "success",
        terminal: true,
    };
    assert!(
        !db.transition_run(&id, Holder::Worker("w2"), &succeed("starting"))
            .await
            .unwrap()
    );
    assert!(
        db.transition_run(&id, Holder::Worker("w1"), &succeed("starting"))
            .await
            .unwrap()
    );
    let done = db.run(&id).await.unwrap().unwrap();
    assert_eq!(done.state, "success");
    assert!(done.finished_at.is_some() && done.locked_by.is_none());
    // Cancellation requests only reach active runs.
    assert!(!db.request_run_cancel(&id, "closed").await.unwrap());
}

async fn an_expired_run_lease_lets_another_worker_take_over(db: Db) {
    let job = job(&db).await;
    let id = db.create_run(&new_run(job, "b1")).await.unwrap().unwrap();
    db.claim_run("dead", -1, &CLAIM).await.unwrap().unwrap();
    assert_eq!(
        db.renew_run_lease(&id, "other", 60_000).await.unwrap(),
        None
    );
    let expired = db.runs_with_expired_lease().await.unwrap();
    assert_eq!(expired.len(), 1);
    let requeue = Transition {
        from: "starting",
        to: "queued",
        reason: "the worker stopped responding; queued again",
        status_state: "pending",
        terminal: false,
    };
    let now = lablink_store::now_ms();
    assert!(
        db.transition_run(&id, Holder::ExpiredBefore(now), &requeue)
            .await
            .unwrap()
    );
    let again = db.claim_run("w2", 60_000, &CLAIM).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), (id.as_str(), 2));
    // A cancellation asked meanwhile reaches the new holder at its next renewal.
    assert!(db.request_run_cancel(&id, "closed").await.unwrap());
    assert_eq!(
        db.renew_run_lease(&id, "w2", 60_000).await.unwrap(),
        Some(Some("closed".into()))
    );
}

async fn concurrent_workers_never_claim_the_same_run(db: Db) {
    let job = job(&db).await;
    for i in 0..6 {
        db.create_run(&new_run(job, &format!("c{i}")))
            .await
            .unwrap()
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(run) = db
                .claim_run(&format!("w{w}"), 60_000, &CLAIM)
                .await
                .unwrap()
            {
                mine.push(run.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (6, 6));
}

async fn the_outbox_keeps_the_latest_status_until_it_is_sent(db: Db) {
    let job = job(&db).await;
    let id = db.create_run(&new_run(job, "d1")).await.unwrap().unwrap();
    db.claim_run("w", 60_000, &CLAIM).await.unwrap().unwrap();
    // pending then running: only the latest is due.
    let status = db.claim_status("s1", 60_000).await.unwrap().unwrap();
    assert_eq!(
        (status.run_id.as_str(), status.wanted_state.as_str()),
        (id.as_str(), "running")
    );
    assert!(db.claim_status("s2", 60_000).await.unwrap().is_none());
    // A failed post is retried later, not now.
    db.status_failed(&status, "s1", "502", lablink_store::now_ms() + 60_000)
        .await
        .unwrap();
    assert!(db.claim_status("s2", 60_000).await.unwrap().is_none());
    // A newer state makes it due again at once; once sent, nothing is due.
    let finish = Transition {
        from: "starting",
        to: "error",
        reason: "`dbt build` failed with exit code 1",
        status_state: "failed",
        terminal: true,
    };
    assert!(
        db.transition_run(&id, Holder::Worker("w"), &finish)
            .await
            .unwrap()
    );
    let status = db.claim_status("s2", 60_000).await.unwrap().unwrap();
    assert_eq!(status.wanted_state, "failed");
    db.status_sent(&status, "s2").await.unwrap();
    assert!(db.claim_status("s3", 60_000).await.unwrap().is_none());
    let (wanted, sent, _) = db.run_status_delivery(&id).await.unwrap().unwrap();
    assert_eq!(
        (wanted.as_str(), sent.as_deref()),
        ("failed", Some("failed"))
    );
}
