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
    let census = census_now(t).await;
    assert_eq!(census.by_state, [("Open".to_owned(), 5)]);
    assert_eq!(census.moves.len(), 1);
    let taken = &census.moves[0];
    assert_eq!((taken.from.as_deref(), taken.to.as_str(), taken.count), (None, "Open", 5));
    let folded = saga::fold_tallies(&t.db).await.unwrap();
    let postgres = matches!(backend, Backend::Postgres);
    assert_eq!(folded > 0, postgres, "only PostgreSQL leaves the starts pending");
    assert_eq!(census_now(t).await, census, "folding changes no count");
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
    let census = census_now(&t).await;
    assert_eq!(census.by_state, counted_by_state(&t).await, "the pruned one left the count");
    saga::fold_tallies(&t.db).await.unwrap();
    assert_eq!(census_now(&t).await, census, "folding changes no count");
}
}

testkit::backend_tests! {
async fn the_census_kept_as_instances_move_equals_counting_them_whenever_it_is_folded(backend) {
    let t = setup(backend, LONG).await;
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
    for (n, id) in ids.iter().enumerate() {
        t.deliver(&Started { id: *id }).await;
        if n % 3 == 0 {
            saga::fold_tallies(&t.db).await.unwrap();
        }
        if n % 2 == 0 {
            t.deliver(&Reserved { id: *id }).await;
        }
        assert_eq!(census_now(&t).await.by_state, counted_by_state(&t).await);
    }
    t.deliver(&Paid { id: ids[0] }).await;
    t.deliver(&Declined { id: ids[2] }).await;
    let census = census_now(&t).await;
    assert_eq!(census.by_state, counted_by_state(&t).await);
    let moved: i64 = census.moves.iter().map(|m| m.count).sum();
    assert_eq!(moved, t.count("SELECT COUNT(*) FROM saga_timeline").await, "every move counted once");
    saga::fold_tallies(&t.db).await.unwrap();
    assert_eq!(census_now(&t).await, census);
    assert_eq!(t.count("SELECT COUNT(*) FROM saga_moves_pending").await, 0, "all folded");
    let later = storage::Timestamp(t.db.now().0 + 120_000_000);
    let census = saga::census(&mut t.db.read().await.unwrap(), OrderSaga::NAME, later).await.unwrap();
    assert!(census.moves.is_empty(), "no move after the window's start");
}
}

/// The census of the test saga, moves since the epoch.
async fn census_now(t: &TestSaga) -> saga::Census {
    let mut conn = t.db.read().await.unwrap();
    saga::census(&mut conn, OrderSaga::NAME, storage::Timestamp(0))
        .await
        .unwrap()
}

/// Instances per state, counted row by row.
async fn counted_by_state(t: &TestSaga) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT state, COUNT(*) FROM saga_instances GROUP BY state ORDER BY state")
        .fetch_all(t.db.reader())
        .await
        .unwrap()
}
