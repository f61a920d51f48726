//! Reading instances back with `saga::list`, and pruning finished ones.

use saga::{Filter, Summary};
use uuid::Uuid;

use crate::helpers::*;

fn ids(list: Vec<Summary>) -> Vec<Uuid> {
    list.into_iter().map(|s| s.correlation_id).collect()
}

testkit::backend_tests! {
async fn instances_are_listed_by_state_age_and_activity_oldest_update_first(backend) {
    let t = &setup(backend, LONG).await;
    let (open, reserved, failed) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for id in [failed, reserved, open] {
        t.deliver(&Started { id }).await;
    }
    t.deliver(&Reserved { id: failed }).await;
    t.deliver(&Reserved { id: reserved }).await;
    t.deliver(&Declined { id: failed }).await;
    // Last updated: open (Started), then reserved (Reserved), then failed (Declined).
    let list = |filter: Filter| {
        let pool = t.db.reader().clone();
        async move { ids(saga::list(&pool, OrderSaga::NAME, &filter).await.unwrap()) }
    };

    assert_eq!(list(Filter::default()).await, [open, reserved, failed]);
    let in_state = |state: &str| Filter {
        state: Some(state.into()),
        ..Filter::default()
    };
    assert_eq!(list(in_state("Open")).await, [open]);
    assert_eq!(list(in_state("Reserved")).await, [reserved]);
    assert_eq!(list(in_state("Failed")).await, [failed]);
    assert!(list(in_state("Confirmed")).await.is_empty());

    let active = Filter {
        active_only: true,
        ..Filter::default()
    };
    assert_eq!(list(active.clone()).await, [open, reserved]);

    let updated_at = |id| async move { t.instance(id).await.unwrap().updated_at };
    let stuck_since = |at| Filter {
        updated_before: Some(at),
        ..Filter::default()
    };
    assert_eq!(
        list(stuck_since(updated_at(reserved).await)).await,
        [open],
        "strictly before"
    );
    assert_eq!(
        list(stuck_since(updated_at(failed).await)).await,
        [open, reserved]
    );
    assert!(list(stuck_since(updated_at(open).await)).await.is_empty());
    let stuck_and_active = Filter {
        updated_before: Some(storage::Timestamp(i64::MAX)),
        ..active
    };
    assert_eq!(list(stuck_and_active).await, [open, reserved]);

    assert_eq!(
        list(Filter {
            limit: Some(1),
            ..Filter::default()
        })
        .await,
        [open]
    );
    let summary = saga::list(t.db.reader(), OrderSaga::NAME, &in_state("Failed"))
        .await
        .unwrap();
    let instance = t.instance(failed).await.unwrap();
    assert_eq!(
        summary,
        [Summary {
            correlation_id: failed,
            state: "Failed".into(),
            version: 3,
            created_at: instance.created_at,
            updated_at: instance.updated_at,
            completed_at: instance.completed_at,
        }]
    );
    assert!(
        saga::list(t.db.reader(), "another saga", &Filter::default())
            .await
            .unwrap()
            .is_empty()
    );
}
}

testkit::backend_tests! {
async fn a_listing_pages_by_position_without_skipping_or_repeating(backend) {
    let t = &setup(backend, LONG).await;
    let mut started = Vec::new();
    for _ in 0..5 {
        let id = Uuid::now_v7();
        t.deliver(&Started { id }).await;
        started.push(id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let filter = Filter { limit: Some(2), after, ..Filter::default() };
        let page = saga::list(t.db.reader(), OrderSaga::NAME, &filter).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(saga::Position { updated_at: last.updated_at, correlation_id: last.correlation_id });
        let text = after.unwrap().to_string();
        assert_eq!(text.parse::<saga::Position>().unwrap(), after.unwrap(), "a position reads back");
        seen.extend(ids(page));
    }
    assert_eq!(seen, started, "each once, least recently updated first");
    let counts = saga::count_by_state(&mut t.db.read().await.unwrap(), OrderSaga::NAME).await.unwrap();
    assert_eq!(counts, [("Open".to_owned(), 5)]);
    let since = storage::Timestamp(0);
    let moves = saga::moves_since(&mut t.db.read().await.unwrap(), OrderSaga::NAME, &["Open"], since)
        .await
        .unwrap();
    assert_eq!(moves.len(), 1);
    assert_eq!((moves[0].from.as_deref(), moves[0].to.as_str(), moves[0].count), (None, "Open", 5));
}
}

testkit::backend_tests! {
async fn pruning_removes_only_instances_completed_before_the_cutoff_with_their_history(backend) {
    let t = setup(backend, LONG).await;
    let (older, newer, active) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for id in [older, newer, active] {
        t.deliver(&Started { id }).await;
        t.deliver(&Reserved { id }).await;
    }
    t.deliver(&Declined { id: older }).await;
    t.deliver(&Paid { id: newer }).await;
    let cutoff = t.instance(newer).await.unwrap().completed_at.unwrap();
    assert!(t.instance(older).await.unwrap().completed_at.unwrap() < cutoff);

    assert_eq!(
        saga::prune_completed(&t.bus, OrderSaga::NAME, storage::Timestamp(0))
            .await
            .unwrap(),
        0
    );
    let pruned = saga::prune_completed(&t.bus, OrderSaga::NAME, cutoff)
        .await
        .unwrap();

    assert_eq!(pruned, 1);
    assert!(t.instance(older).await.is_none());
    assert_eq!(
        t.instance(newer).await.unwrap().state,
        "Confirmed",
        "not strictly before"
    );
    assert_eq!(
        t.instance(active).await.unwrap().state,
        "Reserved",
        "never finished"
    );
    let history: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM saga_timeline WHERE correlation_id = $1")
            .bind(older.to_string())
            .fetch_one(t.db.reader())
            .await
            .unwrap();
    assert_eq!(history, 0);
    assert_eq!(t.count("SELECT COUNT(*) FROM saga_timeline").await, 3 + 2);
}
}
