use lablink_store::Db;
use lablink_store::queue::{FailOutcome, QueueItemStatus, Task};

/// The queue as a test starts it: empty, after the one-time tasks that migrations queue are done.
async fn emptied(db: Db) -> Db {
    while let Some(item) = db.claim_queue_item("setup", 60_000).await.unwrap() {
        assert_eq!(item.task, Task::RepackDeliveryBodies {});
        assert!(db.complete_queue_item(&item.id, "setup").await.unwrap());
    }
    db
}

fn task(n: i64) -> Task {
    Task::DropCiSchema {
        ci_job_id: n,
        mr_iid: 1,
    }
}

crate::on_both!(
    a_job_is_claimed_once_and_completed,
    a_failed_job_is_retried_then_given_up,
    an_expired_lease_makes_a_job_claimable_again,
    a_renewed_lease_keeps_a_long_job_from_being_taken_over,
    concurrent_workers_never_claim_the_same_job,
);

async fn a_job_is_claimed_once_and_completed(db: Db) {
    let db = emptied(db).await;
    let id = db.enqueue(&task(1), 3, 0).await.unwrap();
    let job = db.claim_queue_item("w1", 60_000).await.unwrap().unwrap();
    assert_eq!(job.id, id);
    assert_eq!(job.status, QueueItemStatus::Running);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.locked_by.as_deref(), Some("w1"));
    assert_eq!(job.task, task(1));
    assert!(db.claim_queue_item("w2", 60_000).await.unwrap().is_none());
    assert!(
        !db.complete_queue_item(&id, "w2").await.unwrap(),
        "only the lease holder completes"
    );
    assert!(db.complete_queue_item(&id, "w1").await.unwrap());
    assert_eq!(
        db.queue_item(&id).await.unwrap().unwrap().status,
        QueueItemStatus::Done
    );
    assert!(db.claim_queue_item("w1", 60_000).await.unwrap().is_none());
}

async fn a_failed_job_is_retried_then_given_up(db: Db) {
    let db = emptied(db).await;
    let id = db.enqueue(&task(2), 2, 0).await.unwrap();
    let _ = db.claim_queue_item("w", 60_000).await.unwrap().unwrap();
    let outcome = db
        .fail_queue_item(&id, "w", "boom", 0)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, FailOutcome::RetryAt(_)));
    let job = db.queue_item(&id).await.unwrap().unwrap();
    assert_eq!(job.status, QueueItemStatus::Queued);
    assert_eq!(job.last_error.as_deref(), Some("boom"));
    let again = db.claim_queue_item("w", 60_000).await.unwrap().unwrap();
    assert_eq!(again.attempts, 2);
    assert_eq!(
        db.fail_queue_item(&id, "w", "boom again", 0).await.unwrap(),
        Some(FailOutcome::GaveUp)
    );
    assert_eq!(
        db.queue_item(&id).await.unwrap().unwrap().status,
        QueueItemStatus::Failed
    );
    assert!(db.claim_queue_item("w", 60_000).await.unwrap().is_none());
}

async fn an_expired_lease_makes_a_job_claimable_again(db: Db) {
    let db = emptied(db).await;
    let id = db.enqueue(&task(3), 3, 0).await.unwrap();
    // A lease that is already over: the worker "died".
    let _ = db.claim_queue_item("dead", -1).await.unwrap().unwrap();
    let job = db.claim_queue_item("alive", 60_000).await.unwrap().unwrap();
    assert_eq!(job.id, id);
    assert_eq!(job.attempts, 2);
    assert!(
        !db.complete_queue_item(&id, "dead").await.unwrap(),
        "the dead worker lost its lease"
    );
    assert_eq!(
        db.fail_queue_item(&id, "dead", "late", 0).await.unwrap(),
        None
    );
    assert!(db.complete_queue_item(&id, "alive").await.unwrap());
}

async fn a_renewed_lease_keeps_a_long_job_from_being_taken_over(db: Db) {
    let db = emptied(db).await;
    let id = db.enqueue(&task(3), 3, 0).await.unwrap();
    // Claimed with a lease that has already run out, as if the job had run long...
    let _ = db.claim_queue_item("busy", -1).await.unwrap().unwrap();
    // ...but its worker renews it, so nobody else takes it over.
    assert!(db.renew_queue_lease(&id, "busy", 60_000).await.unwrap());
    assert!(
        db.claim_queue_item("other", 60_000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !db.renew_queue_lease(&id, "other", 60_000).await.unwrap(),
        "only the lease holder renews"
    );
    assert!(db.complete_queue_item(&id, "busy").await.unwrap());
    assert!(
        !db.renew_queue_lease(&id, "busy", 60_000).await.unwrap(),
        "a finished job has no lease to renew"
    );
}

async fn concurrent_workers_never_claim_the_same_job(db: Db) {
    let db = emptied(db).await;
    for i in 0..20 {
        db.enqueue(&task(i), 1, 0).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(job) = db.claim_queue_item(&format!("w{w}"), 60_000).await.unwrap() {
                got.push(job.id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(n, 20);
    assert_eq!(all.len(), 20);
}
