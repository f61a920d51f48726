//! Timeouts: scheduled messages written with the state, fired by the workers when due, and
//! withdrawn when the instance finishes first.

use std::time::Duration;

use bus::{Message, MessageId, Outgoing};
use uuid::Uuid;

use crate::helpers::*;

testkit::backend_tests! {
async fn a_timeout_is_scheduled_in_the_transaction_that_reaches_its_state(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    let reserved = t.deliver(&Reserved { id }).await;

    let instance = t.instance(id).await.unwrap();
    assert_eq!(instance.state, "Reserved");
    let queued = t.queued(id).await;
    assert_eq!(
        queued,
        [Queued {
            consumer: OrderSaga::NAME.into(),
            message_type: TimedOut::TYPE.into(),
            causation_id: Some(reserved.to_string()),
            // The transition's own clock reading plus the delay: one transaction wrote both.
            available_at: instance.updated_at.plus(LONG).0,
        }]
    );
}
}

testkit::backend_tests! {
async fn a_due_timeout_fires_and_fails_the_order(backend) {
    let t = setup(backend, Duration::from_millis(200)).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    let workers = t.bus.start();
    t.publish(&Reserved { id }).await;

    let failed = eventually("the timeout to fire", Duration::from_secs(30), || async {
        t.instance(id).await.filter(|i| i.state == "Failed")
    })
    .await;
    eventually(
        "the release to be consumed",
        Duration::from_secs(30),
        || async { (t.sent(id).await == ["Release"]).then_some(()) },
    )
    .await;
    workers.shutdown().await;

    assert_eq!(
        failed.data,
        serde_json::json!({ "Failed": { "reason": "timed out" } })
    );
    let last = failed.timeline.last().unwrap();
    assert_eq!(
        (last.event.as_str(), last.from_state.as_deref()),
        (TimedOut::TYPE, Some("Reserved"))
    );
    assert!(
        last.at.0 >= failed.timeline[1].at.plus(Duration::from_millis(200)).0,
        "not before it was due"
    );
    assert!(t.queued(id).await.is_empty());
}
}

testkit::backend_tests! {
async fn a_timeout_that_arrives_before_its_state_is_a_stale_no_op(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    let before = t.instance(id).await.unwrap();

    t.deliver(&TimedOut { id }).await;

    let after = t.instance(id).await.unwrap();
    assert_eq!(after.ignored_events, 1);
    assert_eq!(
        saga::Instance {
            ignored_events: 0,
            ..after
        },
        before
    );
    assert_eq!(t.bus.dead_letter_count().await.unwrap(), 0);
}
}

testkit::backend_tests! {
/// The timeout was already due, hence not withdrawn, when the payment finished the order (an
/// overloaded worker, say): it reaches a finished instance and changes nothing.
async fn a_timeout_that_fires_after_the_order_finished_is_a_no_op(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Reserved { id }).await;
    t.deliver(&Paid { id }).await;
    let confirmed = t.instance(id).await.unwrap();

    let mut tx = t.bus.begin().await.unwrap();
    tx.write_with_id(
        MessageId::new(),
        &Outgoing::publish(&TimedOut { id }).at(confirmed.updated_at),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    t.bus.run_pending().await.unwrap();

    let after = t.instance(id).await.unwrap();
    assert_eq!(after.ignored_events, 1);
    assert_eq!(
        saga::Instance {
            ignored_events: 0,
            ..after
        },
        confirmed
    );
    assert_eq!(
        t.sent(id).await,
        ["Confirm"],
        "no Release after the Confirm"
    );
}
}

testkit::backend_tests! {
async fn finishing_an_instance_withdraws_its_pending_timeout(backend) {
    let t = setup(backend, LONG).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.deliver(&Reserved { id }).await;
    let other = Uuid::now_v7();
    t.deliver(&Started { id: other }).await;
    t.deliver(&Reserved { id: other }).await;
    assert_eq!(t.queued(id).await.len(), 1);

    t.deliver(&Paid { id }).await;

    assert!(
        t.queued(id).await.is_empty(),
        "withdrawn with the final state"
    );
    assert_eq!(
        t.queued(other).await.len(),
        1,
        "another instance's timeout stays"
    );
    assert_eq!(t.instance(id).await.unwrap().state, "Confirmed");
}
}
