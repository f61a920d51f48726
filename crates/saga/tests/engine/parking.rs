//! Events that arrive too early: parked, and offered again after every state change.

use bus::Message;
use uuid::Uuid;

use crate::helpers::*;

testkit::backend_tests! {
async fn an_early_event_is_parked_and_applied_right_after_the_state_it_needs(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    let paid = t.deliver(&Paid { id }).await;

    let waiting = t.instance(id).await.unwrap();
    assert_eq!((waiting.state.as_str(), waiting.version), ("Open", 1));
    assert_eq!(waiting.parked.len(), 1);
    assert_eq!(waiting.parked[0].message_id, paid);
    assert_eq!(waiting.parked[0].message_type, Paid::TYPE);
    assert_eq!(waiting.ignored_events, 0);

    let reserved = t.deliver(&Reserved { id }).await;

    let done = t.instance(id).await.unwrap();
    assert_eq!((done.state.as_str(), done.version), ("Confirmed", 3));
    assert!(done.parked.is_empty());
    let steps: Vec<_> = done
        .timeline
        .iter()
        .map(|s| (s.event.as_str(), s.message_id))
        .collect();
    assert_eq!(steps[1..], [(Reserved::TYPE, reserved), (Paid::TYPE, paid)]);
    assert_eq!(
        done.timeline[1].at, done.timeline[2].at,
        "in the same transaction"
    );
    assert_eq!(t.sent(id).await, ["Confirm"]);
    assert!(
        t.queued(id).await.is_empty(),
        "the timeout Reserved scheduled is withdrawn"
    );
}
}

testkit::backend_tests! {
/// A batch reads its instances ahead with one statement; an entry read ahead must not outlive
/// a write to its instance, such as the parking of an early event before the start that
/// follows it in the same batch.
async fn early_events_and_their_starts_in_one_batch_are_all_applied(backend) {
    let t = setup(backend, LONG).await;
    let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
    let mut tx = t.bus.begin().await.unwrap();
    tx.publish(&Noted { id: x, note: 1 }).await.unwrap();
    tx.publish(&Noted { id: y, note: 2 }).await.unwrap();
    tx.publish(&Started { id: x }).await.unwrap();
    tx.publish(&Started { id: y }).await.unwrap();
    tx.commit().await.unwrap();
    t.bus.run_pending().await.unwrap();

    for (id, note) in [(x, 1), (y, 2)] {
        let instance = t.instance(id).await.unwrap();
        assert_eq!(
            instance.data,
            serde_json::json!({ "Open": { "notes": [note] } })
        );
        assert_eq!(instance.version, 2);
        assert!(instance.parked.is_empty());
    }
}
}

testkit::backend_tests! {
/// The engine cannot tell an event for an instance that will start later from one for an
/// instance that never will, so a non-start event for no instance is parked, not rejected:
/// it is applied when the start arrives, and stays parked (invisible to `saga::get`) if it
/// never does.
async fn an_event_before_its_instance_exists_is_parked_until_the_start(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Noted { id, note: 1 }).await;

    assert!(
        t.instance(id).await.is_none(),
        "only a start creates an instance"
    );
    let parked: Vec<String> =
        sqlx::query_scalar("SELECT message_type FROM saga_parked WHERE correlation_id = $1")
            .bind(id.to_string())
            .fetch_all(t.db.reader())
            .await
            .unwrap();
    assert_eq!(parked, [Noted::TYPE]);
    assert_eq!(t.bus.dead_letter_count().await.unwrap(), 0);

    t.deliver(&Started { id }).await;

    let instance = t.instance(id).await.unwrap();
    assert_eq!(
        instance.data,
        serde_json::json!({ "Open": { "notes": [1] } })
    );
    assert_eq!(instance.version, 2);
    assert!(instance.parked.is_empty());
}
}

testkit::backend_tests! {
async fn a_never_valid_event_parked_before_the_start_is_dead_lettered_once_it_starts(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Bogus { id }).await;
    assert_eq!(
        t.bus.dead_letter_count().await.unwrap(),
        0,
        "parked, as no instance exists"
    );

    t.deliver(&Started { id }).await;

    let instance = t.instance(id).await.unwrap();
    assert_eq!((instance.state.as_str(), instance.version), ("Open", 1));
    assert!(instance.parked.is_empty());
    let letters = t.bus.dead_letters(10, 0).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].message_type, Bogus::TYPE);
    assert!(
        letters[0].error.contains("Bogus is never valid"),
        "{}",
        letters[0].error
    );
}
}

testkit::backend_tests! {
async fn an_event_still_parked_when_its_instance_finishes_is_dropped_and_counted(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Paid { id }).await;
    t.deliver(&Declined { id }).await;
    assert_eq!(t.instance(id).await.unwrap().parked.len(), 2);

    // Reserved lets Paid confirm the order; Declined is then an event for a finished instance.
    t.deliver(&Reserved { id }).await;

    let done = t.instance(id).await.unwrap();
    assert_eq!(done.state, "Confirmed");
    assert!(
        done.parked.is_empty(),
        "nothing waits on a finished instance: {:?}",
        done.parked
    );
    assert_eq!(done.ignored_events, 1);
    assert_eq!(t.sent(id).await, ["Confirm"]);
}
}
