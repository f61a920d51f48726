//! One instance from start to finish: creation, transitions and what they write, duplicate
//! deliveries, late and never-valid events, and finalization.

use bus::{Message, MessageId, Outgoing};
use saga::Engine;
use uuid::Uuid;

use crate::helpers::*;

testkit::backend_tests! {
async fn a_start_event_creates_the_instance_once_and_a_duplicate_start_is_a_counted_no_op(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    let first = t.deliver(&Started { id }).await;
    let second = t.deliver(&Started { id }).await;
    assert_ne!(first, second, "two start messages, not one delivered twice");

    let instance = t.instance(id).await.unwrap();
    assert_eq!((instance.state.as_str(), instance.version), ("Open", 1));
    assert_eq!(instance.ignored_events, 1);
    assert_eq!(instance.timeline.len(), 1);
    assert_eq!(instance.timeline[0].message_id, first);
    assert_eq!(t.count("SELECT COUNT(*) FROM saga_instances").await, 1);
    assert_eq!(t.bus.dead_letter_count().await.unwrap(), 0);
}
}

testkit::backend_tests! {
async fn a_transition_saves_state_version_timeline_and_messages_together(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    let started = t.deliver(&Started { id }).await;
    let reserved = t.deliver(&Reserved { id }).await;
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
    let mut conn = t.db.read().await.unwrap();
    assert_eq!(
        Engine::<OrderSaga>::state(&mut conn, id).await.unwrap(),
        Some(OrderState::Confirmed { notes: vec![] }),
        "the typed state reads back"
    );
    let steps: Vec<_> = instance
        .timeline
        .iter()
        .map(|s| {
            (
                s.seq,
                s.message_id,
                s.event.as_str(),
                s.from_state.as_deref(),
                s.to_state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (1, started, "Started", None, "Open"),
            (2, reserved, "Reserved", Some("Open"), "Reserved"),
            (3, paid, "Paid", Some("Reserved"), "Confirmed"),
        ]
    );
    let sent: Vec<_> = instance
        .timeline
        .iter()
        .map(|s| s.messages_sent.clone())
        .collect();
    assert_eq!(sent, [vec![], vec!["TimedOut"], vec!["Confirm"]]);
    // One clock reading per transaction: the entry's time is the instance's.
    assert_eq!(instance.timeline[0].at, instance.created_at);
    assert_eq!(instance.timeline[2].at, instance.updated_at);
    assert!(instance.timeline.windows(2).all(|w| w[0].at <= w[1].at));
}
}

testkit::backend_tests! {
async fn the_messages_a_transition_sends_reach_their_consumers_naming_their_cause(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Reserved { id }).await;
    assert!(t.sent(id).await.is_empty());
    let paid = t.deliver(&Paid { id }).await;

    assert_eq!(t.sent(id).await, ["Confirm"]);
    let cause: Option<String> =
        sqlx::query_scalar("SELECT causation_id FROM sent WHERE correlation_id = $1")
            .bind(id.to_string())
            .fetch_one(t.db.reader())
            .await
            .unwrap();
    assert_eq!(cause, Some(paid.to_string()));
}
}

testkit::backend_tests! {
async fn the_same_event_message_delivered_many_times_is_applied_once(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    let message_id = MessageId::new();
    let write_again = || async {
        let mut tx = t.bus.begin().await.unwrap();
        tx.write_with_id(message_id, &Outgoing::publish(&Noted { id, note: 9 }))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    // Three copies while the first is still queued, two after it was handled.
    for _ in 0..3 {
        write_again().await;
    }
    t.bus.run_pending().await.unwrap();
    for _ in 0..2 {
        write_again().await;
        t.bus.run_pending().await.unwrap();
    }

    let instance = t.instance(id).await.unwrap();
    assert_eq!(
        instance.data,
        serde_json::json!({ "Open": { "notes": [9] } })
    );
    assert_eq!(instance.version, 2);
    assert_eq!(instance.timeline.len(), 2);
    assert_eq!(instance.timeline[1].message_id, message_id);
    assert_eq!(
        t.bus.stats().duplicates,
        2,
        "later copies are skipped by the inbox"
    );
}
}

testkit::backend_tests! {
async fn an_event_for_a_finished_instance_is_ignored_counted_and_changes_nothing(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Reserved { id }).await;
    t.deliver(&Declined { id }).await;
    let failed = t.instance(id).await.unwrap();
    assert_eq!(failed.state, "Failed");

    t.deliver(&Paid { id }).await;
    t.deliver(&Noted { id, note: 1 }).await;
    t.deliver(&Bogus { id }).await;

    let after = t.instance(id).await.unwrap();
    assert_eq!(after.ignored_events, 3);
    assert_eq!(
        saga::Instance {
            ignored_events: 0,
            ..after
        },
        failed
    );
    assert_eq!(t.sent(id).await, ["Release"], "nothing sent again");
    assert_eq!(
        t.bus.dead_letter_count().await.unwrap(),
        0,
        "ignored, not failed"
    );
}
}

testkit::backend_tests! {
async fn a_duplicate_start_after_the_finish_does_not_recreate_the_instance(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Reserved { id }).await;
    t.deliver(&Paid { id }).await;
    let confirmed = t.instance(id).await.unwrap();

    t.deliver(&Started { id }).await;

    let after = t.instance(id).await.unwrap();
    assert_eq!((after.state.as_str(), after.version), ("Confirmed", 3));
    assert_eq!(
        after.created_at, confirmed.created_at,
        "the tombstone, not a new instance"
    );
    assert_eq!(after.ignored_events, 1);
    assert_eq!(after.timeline, confirmed.timeline);
}
}

testkit::backend_tests! {
async fn a_never_valid_event_is_dead_lettered_with_its_reason_and_changes_nothing(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    let before = t.instance(id).await.unwrap();
    let bogus = t.deliver(&Bogus { id }).await;

    let letters = t.bus.dead_letters(10, 0).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        (letter.message_id, letter.consumer.as_str()),
        (bogus, OrderSaga::NAME)
    );
    assert_eq!(letter.attempts, 1, "permanent: not retried");
    for part in ["Bogus is never valid", "rejected Bogus", "state Open"] {
        assert!(
            letter.error.contains(part),
            "{:?} lacks {part:?}",
            letter.error
        );
    }
    assert_eq!(t.instance(id).await.unwrap(), before);
}
}

testkit::backend_tests! {
async fn a_final_state_sets_completed_at_and_keeps_the_timeline_readable(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Reserved { id }).await;
    assert_eq!(t.instance(id).await.unwrap().completed_at, None);

    t.deliver(&Declined { id }).await;

    let done = t.instance(id).await.unwrap();
    assert_eq!(done.completed_at, Some(done.updated_at));
    let events: Vec<_> = done.timeline.iter().map(|s| s.event.as_str()).collect();
    assert_eq!(events, [Started::TYPE, Reserved::TYPE, Declined::TYPE]);
    assert_eq!(
        done.data,
        serde_json::json!({ "Failed": { "reason": "declined" } })
    );
}
}
