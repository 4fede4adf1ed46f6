use lablink_store::Db;

crate::on_both!(
    a_due_pass_is_taken_by_one_holder_and_not_again_until_due,
    a_pass_whose_holder_died_is_taken_over_when_its_lease_ran_out,
    concurrent_replicas_never_both_take_a_pass,
);

const HOUR: i64 = 3_600_000;

async fn a_due_pass_is_taken_by_one_holder_and_not_again_until_due(db: Db) {
    let now = 1_000_000;
    assert!(
        db.take_periodic_pass("prune", "a", now, 60_000)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        db.take_periodic_pass("prune", "b", now, 60_000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.take_periodic_pass("prune", "a", now, 60_000)
            .await
            .unwrap()
            .is_none(),
        "not twice by the same holder either"
    );
    assert!(
        db.take_periodic_pass("reconcile", "b", now, 60_000)
            .await
            .unwrap()
            .is_some(),
        "passes are independent"
    );
    assert!(
        db.renew_periodic_pass("prune", "a", now + 120_000)
            .await
            .unwrap()
    );
    assert!(
        !db.renew_periodic_pass("prune", "b", now + 120_000)
            .await
            .unwrap()
    );
    assert!(
        !db.finish_periodic_pass("prune", "b", (now, now), now + HOUR)
            .await
            .unwrap()
    );
    assert!(
        db.finish_periodic_pass("prune", "a", (now, now + 10), now + HOUR)
            .await
            .unwrap()
    );
    let prune = db
        .periodic_passes()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name == "prune")
        .unwrap();
    assert_eq!(prune.due_at, now + HOUR);
    assert_eq!(prune.locked_by, None);
    assert_eq!(prune.times_run, 1);
    assert_eq!(prune.last_ran_by.as_deref(), Some("a"));
    assert_eq!(prune.last_started_at, Some(now));
    assert_eq!(prune.last_finished_at, Some(now + 10));
    // Done for this period, for everybody; due again an hour later.
    assert!(
        db.take_periodic_pass("prune", "b", now + 20, 60_000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.take_periodic_pass("prune", "b", now + HOUR, 60_000)
            .await
            .unwrap()
            .is_some()
    );
}

async fn a_pass_whose_holder_died_is_taken_over_when_its_lease_ran_out(db: Db) {
    let now = 5_000_000;
    assert!(
        db.take_periodic_pass("prune", "dead", now, 60_000)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        db.take_periodic_pass("prune", "b", now + 60_000, 60_000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.take_periodic_pass("prune", "b", now + 60_001, 60_000)
            .await
            .unwrap()
            .is_some()
    );
    // The replica that lost its lease cannot end the pass the other one now runs.
    assert!(
        !db.renew_periodic_pass("prune", "dead", now + 200_000)
            .await
            .unwrap()
    );
    assert!(
        !db.finish_periodic_pass("prune", "dead", (now, now), now + HOUR)
            .await
            .unwrap()
    );
    assert!(
        db.finish_periodic_pass("prune", "b", (now, now + 70_000), now + HOUR)
            .await
            .unwrap()
    );
}

async fn concurrent_replicas_never_both_take_a_pass(db: Db) {
    let now = 9_000_000;
    let attempts = (0..16).map(|n| {
        let db = db.clone();
        tokio::spawn(async move {
            db.take_periodic_pass("rotation", &format!("replica-{n}"), now, 60_000)
                .await
                .unwrap()
                .is_some()
        })
    });
    let mut taken = 0;
    for attempt in attempts {
        taken += usize::from(attempt.await.unwrap());
    }
    assert_eq!(taken, 1);
}
