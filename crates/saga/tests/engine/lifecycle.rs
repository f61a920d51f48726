//! Instances: creation, transitions, timeline, timeouts, finalization and queries.

use std::time::Duration;

use bus::Message;
use saga::Filter;
use uuid::Uuid;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(3600);

testkit::backend_tests! {
async fn a_start_event_creates_the_instance_once_and_a_duplicate_start_is_counted(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Started { id }).await;
    let instance = t.instance(id).await.unwrap();
    assert_eq!((instance.state.as_str(), instance.version), ("Open", 1));
    assert_eq!(instance.ignored_events, 1);
    assert_eq!(instance.timeline.len(), 1);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM saga_instances")
        .fetch_one(t.db.reader())
        .await
        .unwrap();
    assert_eq!(count, 1);
}
}

testkit::backend_tests! {
async fn a_transition_saves_state_version_timeline_and_messages_together(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    let started = t.deliver(&Started { id }).await;
    t.deliver(&Reserved { id }).await;
    let paid = t.deliver(&Paid { id }).await;
    let instance = t.instance(id).await.unwrap();
    assert_eq!(
        (instance.state.as_str(), instance.version),
        ("Confirmed", 3)
    );
    assert_eq!(
        instance.data,
        serde_json::json!({ "Confirmed": { "notes": [] } })
    );
    let steps: Vec<_> = instance
        .timeline
        .iter()
        .map(|s| {
            (
                s.seq,
                s.event.as_str(),
                s.from_state.as_deref(),
                s.to_state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (1, "Started", None, "Open"),
            (2, "Reserved", Some("Open"), "Reserved"),
            (3, "Paid", Some("Reserved"), "Confirmed"),
        ]
    );
    assert_eq!(instance.timeline[0].message_id, started);
    assert_eq!(instance.timeline[1].messages_sent, ["TimedOut"]);
    assert_eq!(instance.timeline[2].messages_sent, ["Confirm"]);
    assert_eq!(instance.timeline[2].message_id, paid);
    assert_eq!(t.sent(id).await, ["Confirm"]);
    let cause: Option<String> =
        sqlx::query_scalar("SELECT causation_id FROM sent WHERE correlation_id = $1")
            .bind(id.to_string())
            .fetch_one(t.db.reader())
            .await
            .unwrap();
    assert_eq!(
        cause,
        Some(paid.to_string()),
        "sent messages name the event that caused them"
    );
}
}

testkit::backend_tests! {
async fn the_same_event_message_delivered_many_times_is_applied_once(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    let message_id = bus::MessageId::new();
    for _ in 0..5 {
        let mut tx = t.bus.begin().await.unwrap();
        tx.write_with_id(message_id, &bus::Outgoing::publish(&Noted { id, note: 9 }))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        t.bus.run_pending().await.unwrap();
    }
    let instance = t.instance(id).await.unwrap();
    assert_eq!(
        instance.data,
        serde_json::json!({ "Open": { "notes": [9] } })
    );
    assert_eq!(instance.timeline.len(), 2);
}
}

testkit::backend_tests! {
async fn an_early_event_is_parked_and_applied_right_after_the_state_it_needs(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    let paid = t.deliver(&Paid { id }).await;
    let waiting = t.instance(id).await.unwrap();
    assert_eq!(waiting.state, "Open");
    assert_eq!(waiting.parked.len(), 1);
    assert_eq!(waiting.parked[0].message_id, paid);
    assert_eq!(waiting.parked[0].message_type, Paid::TYPE);

    t.deliver(&Reserved { id }).await;
    let done = t.instance(id).await.unwrap();
    assert_eq!(done.state, "Confirmed");
    assert!(done.parked.is_empty());
    let events: Vec<_> = done.timeline.iter().map(|s| s.event.as_str()).collect();
    assert_eq!(events, ["Started", "Reserved", "Paid"]);
    assert_eq!(t.sent(id).await, ["Confirm"]);
}
}

testkit::backend_tests! {
async fn an_event_before_its_instance_exists_is_parked_until_the_start(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Noted { id, note: 1 }).await;
    assert!(
        t.instance(id).await.is_none(),
        "only a start creates an instance"
    );
    let parked: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM saga_parked WHERE correlation_id = $1")
            .bind(id.to_string())
            .fetch_one(t.db.reader())
            .await
            .unwrap();
    assert_eq!(parked, 1);
    t.deliver(&Started { id }).await;
    let instance = t.instance(id).await.unwrap();
    assert_eq!(
        instance.data,
        serde_json::json!({ "Open": { "notes": [1] } })
    );
    assert!(instance.parked.is_empty());
}
}

testkit::backend_tests! {
async fn an_event_for_a_finished_instance_is_ignored_counted_and_never_recreates_it(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Reserved { id }).await;
    t.deliver(&Declined { id }).await;
    let failed = t.instance(id).await.unwrap();
    assert_eq!(failed.state, "Failed");
    t.deliver(&Paid { id }).await;
    t.deliver(&Started { id }).await;
    let after = t.instance(id).await.unwrap();
    assert_eq!(
        (after.state.as_str(), after.version),
        ("Failed", failed.version)
    );
    assert_eq!(after.ignored_events, 2);
    assert_eq!(after.timeline, failed.timeline);
    assert_eq!(t.sent(id).await, ["Release"]);
}
}

testkit::backend_tests! {
async fn a_never_valid_event_is_dead_lettered_with_its_reason_and_changes_nothing(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Bogus { id }).await;
    let letters = t.bus.dead_letters(10, 0).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].error.contains("Bogus is never valid"),
        "{}",
        letters[0].error
    );
    assert!(
        letters[0].error.contains("state Open"),
        "{}",
        letters[0].error
    );
    assert_eq!(t.instance(id).await.unwrap().version, 1);
}
}

testkit::backend_tests! {
async fn a_timeout_is_written_with_the_state_and_fires_when_due(backend) {
    let t = setup(backend, Duration::from_millis(300)).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Reserved { id }).await;
    let scheduled: (String, i64) = sqlx::query_as(
        "SELECT message_type, available_at FROM bus_queue WHERE correlation_id = $1",
    )
    .bind(id.to_string())
    .fetch_one(t.db.reader())
    .await
    .unwrap();
    assert_eq!(scheduled.0, "TimedOut");
    assert!(scheduled.1 > bus::Timestamp::now().0, "due in the future");
    let workers = t.bus.start();
    let failed = eventually("the timeout to fire", LIMIT, || async {
        t.instance(id).await.filter(|i| i.state == "Failed")
    })
    .await;
    assert_eq!(
        failed.data,
        serde_json::json!({ "Failed": { "reason": "timed out" } })
    );
    workers.shutdown().await;
}
}

testkit::backend_tests! {
async fn a_timeout_after_the_state_moved_on_is_a_no_op(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    // A timeout that arrives while the instance is still Open is stale.
    t.deliver(&TimedOut { id }).await;
    let instance = t.instance(id).await.unwrap();
    assert_eq!(
        (
            instance.state.as_str(),
            instance.version,
            instance.ignored_events
        ),
        ("Open", 1, 1)
    );
}
}

testkit::backend_tests! {
async fn finishing_withdraws_the_pending_timeout_and_marks_completion(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Reserved { id }).await;
    let pending = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM bus_queue WHERE correlation_id = $1")
            .bind(id.to_string())
            .fetch_one(t.db.reader())
            .await
            .unwrap()
    };
    assert_eq!(pending().await, 1);
    t.deliver(&Paid { id }).await;
    assert_eq!(pending().await, 0);
    let done = t.instance(id).await.unwrap();
    assert!(done.completed_at.is_some());
    assert_eq!(done.timeline.len(), 3, "the timeline stays readable");
}
}

testkit::backend_tests! {
async fn queries_list_by_state_and_age_and_pruning_removes_only_old_tombstones(backend) {
    let t = setup(backend, LONG).await;
    let (open, reserved, done) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for id in [open, reserved, done] {
        t.deliver(&Started { id }).await;
    }
    t.deliver(&Reserved { id: reserved }).await;
    t.deliver(&Reserved { id: done }).await;
    t.deliver(&Declined { id: done }).await;
    let in_state = |state: &str| Filter {
        state: Some(state.into()),
        ..Filter::default()
    };
    let ids = |list: Vec<saga::Summary>| {
        list.into_iter()
            .map(|s| s.correlation_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(saga::list(t.db.reader(), "order", &in_state("Open"))
            .await
            .unwrap()),
        [open]
    );
    assert_eq!(
        ids(saga::list(t.db.reader(), "order", &in_state("Failed"))
            .await
            .unwrap()),
        [done]
    );
    let active = Filter {
        active_only: true,
        ..Filter::default()
    };
    assert_eq!(
        saga::list(t.db.reader(), "order", &active)
            .await
            .unwrap()
            .len(),
        2
    );
    let stuck = Filter {
        updated_before: Some(bus::Timestamp::now()),
        active_only: true,
        ..Filter::default()
    };
    assert_eq!(
        ids(saga::list(t.db.reader(), "order", &stuck).await.unwrap()),
        [open, reserved]
    );
    let none_yet = Filter {
        updated_before: Some(bus::Timestamp(0)),
        ..Filter::default()
    };
    assert!(
        saga::list(t.db.reader(), "order", &none_yet)
            .await
            .unwrap()
            .is_empty()
    );

    let pruned_early = saga::prune_completed(&t.bus, "order", bus::Timestamp(0))
        .await
        .unwrap();
    assert_eq!(pruned_early, 0);
    let pruned = saga::prune_completed(
        &t.bus,
        "order",
        bus::Timestamp::now().plus(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    assert_eq!(pruned, 1);
    assert!(t.instance(done).await.is_none());
    assert!(t.instance(open).await.is_some());
}
}
