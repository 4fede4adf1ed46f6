use std::collections::{BTreeMap, HashSet};

use lablink_core::ci::{ForkPolicy, JobKind, RunMode};
use lablink_core::run::RunState;
use lablink_store::Db;
use lablink_store::ci_jobs::CiJobInput;
use lablink_store::crypto::KeyRing;
use lablink_store::deliveries::{
    DeliveryOutcome, DeliveryStatus, NewDelivery, PROCESS_ATTEMPTS, PackedBody, Recorded,
};
use lablink_store::runs::{Holder, NewRun, Transition, Trigger};
use secrecy::{ExposeSecret, SecretString};

crate::on_both!(
    a_delivery_is_stored_once_and_queued,
    a_batch_answers_in_order_and_dedupes_within_itself,
    deliveries_are_claimed_once_retried_then_failed,
    a_backlog_is_claimed_oldest_first_past_leased_deliveries,
    ci_jobs_get_increasing_ids_and_sealed_variables,
    a_commit_runs_once_per_job_and_is_claimed_once,
    an_expired_run_lease_lets_another_worker_take_over,
    concurrent_workers_never_claim_the_same_run,
    the_outbox_keeps_the_latest_status_until_it_is_sent,
    bodies_of_earlier_versions_are_repacked_once,
    the_schema_ledger_knows_what_is_due,
    old_records_are_pruned_but_production_keeps_its_manifest,
);

fn keys() -> KeyRing {
    KeyRing::new(&[7; 32], &[])
}

const BODY: &[u8] = b"{\"object_kind\":\"merge_request\"}";

fn delivery<'a>(key: &'a str, ignored: Option<&'a str>) -> NewDelivery<'a> {
    static PACKED: std::sync::LazyLock<PackedBody> =
        std::sync::LazyLock::new(|| PackedBody::pack(BODY));
    NewDelivery {
        repository_id: "repo-1",
        delivery_key: key,
        event: Some("Merge Request Hook"),
        body: &PACKED,
        ignored,
    }
}

async fn a_delivery_is_stored_once_and_queued(db: Db) {
    let first = db.record_delivery(&delivery("k1", None)).await.unwrap();
    let Recorded::New { delivery_id } = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        db.record_delivery(&delivery("k1", None)).await.unwrap(),
        Recorded::Duplicate
    );
    let stored = db.delivery(&delivery_id).await.unwrap().unwrap();
    assert_eq!(stored.body, BODY);
    assert_eq!(stored.status, DeliveryStatus::Received);
    // An ignored event is stored with its reason and is not queued.
    let ignored = db
        .record_delivery(&delivery("k2", Some("tag pushes start nothing")))
        .await
        .unwrap();
    assert!(matches!(ignored, Recorded::New { .. }));
    assert_eq!(
        db.count_deliveries("repo-1", DeliveryStatus::Ignored)
            .await
            .unwrap(),
        1
    );
    let claimed = db.claim_deliveries("w", 60_000, 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [delivery_id.as_str()]
    );
    assert_eq!(claimed[0].attempts, 1);
    assert!(
        db.claim_deliveries("w2", 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
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

async fn a_batch_answers_in_order_and_dedupes_within_itself(db: Db) {
    db.record_delivery(&delivery("seen", None)).await.unwrap();
    let batch = [
        delivery("a", None),
        delivery("seen", None),
        delivery("b", Some("comments start nothing")),
        delivery("a", None),
    ];
    let recorded = db.record_deliveries(&batch).await.unwrap();
    assert!(matches!(recorded[0], Recorded::New { .. }));
    assert_eq!(recorded[1], Recorded::Duplicate);
    assert!(matches!(recorded[2], Recorded::New { .. }));
    assert_eq!(recorded[3], Recorded::Duplicate);
    assert_eq!(
        db.count_deliveries("repo-1", DeliveryStatus::Received)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        db.count_deliveries("repo-1", DeliveryStatus::Ignored)
            .await
            .unwrap(),
        1
    );
    assert!(db.record_deliveries(&[]).await.unwrap().is_empty());
}

async fn a_backlog_is_claimed_oldest_first_past_leased_deliveries(db: Db) {
    let keys: Vec<String> = (0..300).map(|i| format!("k{i:03}")).collect();
    for chunk in keys.chunks(50) {
        let batch: Vec<_> = chunk.iter().map(|k| delivery(k, None)).collect();
        db.record_deliveries(&batch).await.unwrap();
    }
    let order = |claimed: &[lablink_store::deliveries::Delivery]| {
        claimed
            .iter()
            .map(|d| (d.received_at, d.id.clone()))
            .collect::<Vec<_>>()
    };
    let leased = db.claim_deliveries("a", 60_000, 100).await.unwrap();
    let next = db.claim_deliveries("b", 60_000, 100).await.unwrap();
    assert_eq!((leased.len(), next.len()), (100, 100));
    // Every delivery "b" got is younger than every one "a" holds: the claim skipped the
    // leased ones and went on in order.
    assert!(order(&leased).last().unwrap() < order(&next).first().unwrap());
    // Finished ones leave the queue; a retry waiting for its time is passed over too.
    let outcomes: Vec<_> = leased
        .iter()
        .skip(1)
        .map(|d| (d.id.clone(), DeliveryOutcome::Processed(String::new())))
        .collect();
    db.finish_deliveries("a", &outcomes).await.unwrap();
    db.retry_delivery(&leased[0].id, "a", "warehouse down", 60_000)
        .await
        .unwrap();
    let rest = db.claim_deliveries("c", 60_000, 1000).await.unwrap();
    assert_eq!(rest.len(), 100);
    assert!(order(&next).last().unwrap() < order(&rest).first().unwrap());
    assert_eq!(
        db.count_deliveries("repo-1", DeliveryStatus::Processed)
            .await
            .unwrap(),
        99
    );
}

async fn deliveries_are_claimed_once_retried_then_failed(db: Db) {
    let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    for key in &keys {
        db.record_delivery(&delivery(key, None)).await.unwrap();
    }
    // Two processors taking batches at once never share a delivery, and get the oldest first.
    let (a, b) = tokio::join!(
        db.claim_deliveries("a", 60_000, 3),
        db.claim_deliveries("b", 60_000, 3)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 5);
    let mut all: Vec<&str> = a
        .iter()
        .chain(&b)
        .map(|d| d.delivery_key.as_str())
        .collect();
    all.sort();
    assert_eq!(all, ["k0", "k1", "k2", "k3", "k4"]);
    let first = if a.len() == 3 { &a } else { &b };
    let worker = if a.len() == 3 { "a" } else { "b" };
    assert!(
        first
            .windows(2)
            .all(|w| w[0].received_at <= w[1].received_at)
    );

    // Another worker's outcome does not count; the holder's does.
    let done = (
        first[0].id.clone(),
        DeliveryOutcome::Processed("ran nothing".to_owned()),
    );
    db.finish_deliveries("intruder", std::slice::from_ref(&done))
        .await
        .unwrap();
    assert_eq!(
        db.count_deliveries("repo-1", DeliveryStatus::Processed)
            .await
            .unwrap(),
        0
    );
    db.finish_deliveries(worker, &[done]).await.unwrap();
    assert_eq!(
        db.count_deliveries("repo-1", DeliveryStatus::Processed)
            .await
            .unwrap(),
        1
    );

    // A failed attempt waits for its retry time, and the last attempt marks it failed.
    let failing = &first[1];
    db.retry_delivery(&failing.id, worker, "warehouse down", 60_000)
        .await
        .unwrap();
    let stored = db.delivery(&failing.id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeliveryStatus::Received);
    assert_eq!(stored.note.as_deref(), Some("warehouse down"));
    let retried = |d: &lablink_store::deliveries::Delivery| d.id == failing.id;
    assert!(
        !db.claim_deliveries("c", 60_000, 10)
            .await
            .unwrap()
            .iter()
            .any(retried)
    );
    expire_delivery_lock(&db, &failing.id).await;
    for attempt in 2..=PROCESS_ATTEMPTS {
        let claimed = db.claim_deliveries("c", 60_000, 10).await.unwrap();
        let again = claimed.iter().find(|d| retried(d)).expect("retried");
        assert_eq!(again.attempts, attempt);
        db.retry_delivery(&failing.id, "c", "warehouse down", 0)
            .await
            .unwrap();
    }
    let stored = db.delivery(&failing.id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeliveryStatus::Failed);
    assert!(
        !db.claim_deliveries("d", 60_000, 10)
            .await
            .unwrap()
            .iter()
            .any(retried)
    );
}

async fn expire_delivery_lock(db: &Db, id: &str) {
    lablink_store::on_db!(db, |pool| {
        sqlx::query("UPDATE webhook_deliveries SET locked_until = 0 WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(drop)
            .unwrap()
    });
}

pub(crate) fn job_input(name: &str) -> CiJobInput {
    CiJobInput {
        name: name.into(),
        kind: JobKind::Ci,
        commands: vec![],
        target_branch_filter: None,
        run_on_draft: false,
        enabled: true,
        timeout_secs: 60,
        env: BTreeMap::from([("DBT_ENV_SECRET_KEY".into(), SecretString::from("hunter2"))]),
        warehouse: r#"{"type":"duckdb"}"#.into(),
        warehouse_secret: None,
        mr_note: false,
        forks: ForkPolicy::Approval,
        watch_paths: vec!["models/".into()],
        compare_max_models: 20,
        compare_timeout_secs: 300,
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
        triggered_by: Trigger::Webhook,
        reason: "queued",
        mode: RunMode::Full,
        awaits_approval: false,
        target_branch: Some("main"),
    }
}

const CLAIM: Transition<'static> = Transition {
    from: RunState::Queued,
    to: RunState::Starting,
    reason: "claimed by a worker",
    approved_by: None,
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
    assert_eq!(run.state, RunState::Starting);
    assert_eq!(run.attempts, 1);
    assert!(db.claim_run("w2", 60_000, &CLAIM).await.unwrap().is_none());
    // Only the holder finishes it.
    let succeed = |from| Transition {
        from,
        to: RunState::Success,
        reason: "every dbt command succeeded",
        approved_by: None,
    };
    assert!(
        !db.transition_run(&id, Holder::Worker("w2"), &succeed(RunState::Starting))
            .await
            .unwrap()
    );
    assert!(
        db.transition_run(&id, Holder::Worker("w1"), &succeed(RunState::Starting))
            .await
            .unwrap()
    );
    let done = db.run(&id).await.unwrap().unwrap();
    assert_eq!(done.state, RunState::Success);
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
        from: RunState::Starting,
        to: RunState::Queued,
        reason: "the worker stopped responding; queued again",
        approved_by: None,
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
    // queued then claimed (both pending until dbt starts): only the latest is due.
    let status = db.claim_status("s1", 60_000).await.unwrap().unwrap();
    assert_eq!(
        (
            status.run_id.as_str(),
            status.wanted_state.as_str(),
            status.description.as_str()
        ),
        (id.as_str(), "pending", "claimed by a worker")
    );
    assert!(db.claim_status("s2", 60_000).await.unwrap().is_none());
    // A failed post is retried later, not now.
    db.status_failed(&status, "s1", "502", lablink_store::now_ms() + 60_000)
        .await
        .unwrap();
    assert!(db.claim_status("s2", 60_000).await.unwrap().is_none());
    // A newer state makes it due again at once; once sent, nothing is due.
    let finish = Transition {
        from: RunState::Starting,
        to: RunState::Error,
        reason: "`dbt build` failed with exit code 1",
        approved_by: None,
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

/// PostgreSQL moves rows over 2 KB out of line by default; packed bodies up to a page stay in
/// the row (one heap write per delivery), and applying the settings again changes nothing.
#[tokio::test]
async fn delivery_rows_up_to_a_page_stay_inline_on_postgres() {
    let t = crate::support::TestDb::new(crate::support::Backend::Postgres).await;
    t.db.migrate().await.unwrap();
    // 6 KiB that LZ4 cannot shrink.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let raw: Vec<u8> = (0..6144)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let packed = PackedBody::pack(&raw);
    let keys: Vec<String> = (0..20).map(|i| format!("big{i}")).collect();
    let batch: Vec<_> = keys
        .iter()
        .map(|key| NewDelivery {
            body: &packed,
            ..delivery(key, None)
        })
        .collect();
    let recorded = t.db.record_deliveries(&batch).await.unwrap();
    let Recorded::New { delivery_id } = &recorded[0] else {
        panic!("{recorded:?}")
    };
    assert_eq!(t.db.delivery(delivery_id).await.unwrap().unwrap().body, raw);
    let Db::Postgres(pool) = &t.db else {
        unreachable!()
    };
    let toasted: i64 = sqlx::query_scalar(
        "SELECT pg_relation_size(reltoastrelid) FROM pg_class \
         WHERE oid = 'webhook_deliveries'::regclass",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(toasted, 0, "delivery bodies went to the TOAST table");
}

/// Migration 0010 queues the repack once; it turns zstd and deflate bodies into LZ4, reading the
/// same bytes back, and leaves a body it cannot unpack as it was.
async fn bodies_of_earlier_versions_are_repacked_once(db: Db) {
    use lablink_store::queue::Task;
    use std::io::Write;
    let queued = db.claim_queue_item("w", 60_000).await.unwrap().unwrap();
    assert_eq!(queued.task, Task::RepackDeliveryBodies {});
    assert!(db.claim_queue_item("w2", 60_000).await.unwrap().is_none());

    let zstd = ruzstd::encoding::compress_to_vec(BODY, ruzstd::encoding::CompressionLevel::Fastest);
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    deflate.write_all(BODY).unwrap();
    let deflate = deflate.finish().unwrap();
    let mut ids = Vec::new();
    for (key, encoding, body) in [
        ("z", "zstd", zstd),
        ("d", "deflate", deflate),
        ("bad", "zstd", vec![0xff; 12]),
    ] {
        let Recorded::New { delivery_id } = db.record_delivery(&delivery(key, None)).await.unwrap()
        else {
            panic!("stored")
        };
        lablink_store::on_db!(&db, |pool| sqlx::query(
            "UPDATE webhook_deliveries SET body = $1, body_encoding = $2 WHERE id = $3"
        )
        .bind(&body)
        .bind(encoding)
        .bind(&delivery_id)
        .execute(pool)
        .await
        .map(drop))
        .unwrap();
        ids.push(delivery_id);
    }
    let mut after = String::new();
    while let Some(last) = db.repack_legacy_delivery_bodies(&after, 2).await.unwrap() {
        after = last;
    }
    for id in &ids[..2] {
        assert_eq!(db.delivery(id).await.unwrap().unwrap().body, BODY);
    }
    let encodings: Vec<String> = lablink_store::on_db!(&db, |pool| sqlx::query_scalar(
        "SELECT body_encoding FROM webhook_deliveries ORDER BY delivery_key"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    assert_eq!(encodings, ["zstd", "lz4", "lz4"]);
}

/// Schemas are recorded once per name and used again on later runs; a close or the TTL makes
/// them due; a failed drop stays due with its error; a dropped one is used again by a new run.
async fn the_schema_ledger_knows_what_is_due(db: Db) {
    use lablink_store::ledger::SchemaOwner;
    let owner = |mr_iid| SchemaOwner {
        project_id: "proj",
        ci_job_id: 1,
        repository_id: "repo-1",
        mr_iid,
    };
    let pr = |s: &str| vec![("warehouse".to_owned(), s.to_owned())];
    db.record_schemas(&owner(7), &pr("lablink_pr_1_7"))
        .await
        .unwrap();
    db.record_schemas(&owner(7), &pr("lablink_pr_1_7"))
        .await
        .unwrap();
    db.record_schemas(&owner(8), &pr("custom_8")).await.unwrap();
    assert_eq!(db.schemas_of_mr(1, 7).await.unwrap().len(), 1);
    assert_eq!(db.mrs_with_open_schemas("repo-1").await.unwrap(), [7, 8]);
    // Nothing is due: both were used just now and no merge request is closed.
    let an_hour_ago = lablink_store::now_ms() - 3_600_000;
    assert!(db.schemas_due(an_hour_ago).await.unwrap().is_empty());
    // Closing !7 makes its schema due; a TTL in the future makes every one due.
    db.mark_mr_schemas_closed("repo-1", 7).await.unwrap();
    let due = db.schemas_due(an_hour_ago).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].schema_name, "lablink_pr_1_7");
    assert_eq!(db.mrs_with_open_schemas("repo-1").await.unwrap(), [8]);
    let later = lablink_store::now_ms() + 1;
    assert_eq!(db.schemas_due(later).await.unwrap().len(), 2);
    // A failed drop stays due, with the reason; a dropped schema is not.
    db.schema_drop_outcome(&due[0].id, Some("warehouse unreachable"))
        .await
        .unwrap();
    let still = db.schemas_due(an_hour_ago).await.unwrap();
    assert_eq!(
        still[0].drop_error.as_deref(),
        Some("warehouse unreachable")
    );
    db.schema_drop_outcome(&due[0].id, None).await.unwrap();
    assert!(db.schemas_due(an_hour_ago).await.unwrap().is_empty());
    assert!(db.live_schemas_of(1, 7).await.unwrap().is_empty());
    // A new run of a reopened merge request uses it again: live and not closed.
    db.record_schemas(&owner(7), &pr("lablink_pr_1_7"))
        .await
        .unwrap();
    let revived = db.live_schemas_of(1, 7).await.unwrap();
    assert_eq!(revived.len(), 1);
    assert_eq!(
        (revived[0].dropped_at, revived[0].mr_closed_at),
        (None, None)
    );
}

async fn finished_run(db: &Db, job: i64, sha: &str, mr_iid: Option<i64>) -> String {
    let id = db
        .create_run(&NewRun {
            mr_iid,
            ..new_run(job, sha)
        })
        .await
        .unwrap()
        .unwrap();
    let claimed = db.claim_run("w", 60_000, &CLAIM).await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
    let done = Transition {
        from: RunState::Starting,
        to: RunState::Success,
        reason: "every dbt command succeeded",
        approved_by: None,
    };
    assert!(
        db.transition_run(&id, Holder::Worker("w"), &done)
            .await
            .unwrap()
    );
    db.append_run_logs(&id, 0, &[("stdout".into(), format!("built {sha}"))])
        .await
        .unwrap();
    db.save_run_artifact(&id, "manifest.json", "{}")
        .await
        .unwrap();
    id
}

async fn old_records_are_pruned_but_production_keeps_its_manifest(db: Db) {
    use lablink_store::audit::AuditEvent;
    use lablink_store::retention::PruneBefore;
    let job = job(&db).await;
    let older_production = finished_run(&db, job, "p1", None).await;
    let merge_request = finished_run(&db, job, "m1", Some(7)).await;
    let production = finished_run(&db, job, "p2", None).await;
    db.record_delivery(&delivery("waiting", None))
        .await
        .unwrap();
    db.record_delivery(&delivery("handled", Some("tag pushes start nothing")))
        .await
        .unwrap();
    db.record_audit(AuditEvent {
        action: "login.failed",
        ..AuditEvent::default()
    })
    .await
    .unwrap();
    let now = lablink_store::now_ms();
    db.count_failed_login("account|stale", now - 10, now - 60_000)
        .await
        .unwrap();
    db.count_failed_login("account|locked", now - 10, now - 60_000)
        .await
        .unwrap();
    db.lock_throttle("account|locked", now + 60_000)
        .await
        .unwrap();
    for _ in 0..2 {
        db.count_webhook_refusal("repo-1", "198.51.100.9")
            .await
            .unwrap();
    }
    let refused = db.webhook_refusals_since("repo-1", now - 1).await.unwrap();
    assert_eq!(
        (
            refused.len(),
            refused[0].address.as_str(),
            refused[0].refusals
        ),
        (1, "198.51.100.9", 2)
    );

    // Nothing is old enough yet.
    let past = PruneBefore {
        deliveries: now - 60_000,
        runs: now - 60_000,
        audit: now - 60_000,
        throttle: now - 60_000,
        now,
    };
    assert_eq!(db.prune(past).await.unwrap(), Default::default());

    // Everything is: handled deliveries, every log, every artifact but production's, the audit
    // entry and the unlocked counter go; the waiting delivery and the locked counter stay.
    let later = now + 60_000;
    let pruned = db
        .prune(PruneBefore {
            deliveries: later,
            runs: later,
            audit: later,
            throttle: later,
            now,
        })
        .await
        .unwrap();
    assert_eq!(pruned.deliveries, 1);
    assert_eq!(pruned.run_logs, 3);
    assert_eq!(pruned.run_artifacts, 2);
    assert_eq!(pruned.audit_entries, 1);
    assert_eq!(pruned.throttle_rows, 1);
    assert_eq!(pruned.webhook_refusals, 1);
    for run in [&older_production, &merge_request] {
        assert!(
            db.run_artifact(run, "manifest.json")
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(
        db.production_run("proj").await.unwrap().unwrap().id,
        production
    );
    assert!(db.run_logs(&production, 0, 10).await.unwrap().is_empty());
    assert_eq!(
        db.throttle_locked_until("account|locked").await.unwrap(),
        now + 60_000
    );
    assert_eq!(db.throttle_locked_until("account|stale").await.unwrap(), 0);
    assert!(matches!(
        db.record_delivery(&delivery("waiting", None))
            .await
            .unwrap(),
        Recorded::Duplicate
    ));
}
