//! The checkout's transitions, one test per case, and the declaration's promises.

use std::time::Duration;

use bus::{Envelope, Outgoing};
use saga::{Events, Rejected, Saga};

use super::*;
use crate::contracts::*;
use crate::ids::{BuyerId, OrderId, ProductId};

fn saga() -> CheckoutSaga {
    CheckoutSaga {
        payment_timeout: Duration::from_secs(900),
    }
}

fn order() -> OrderId {
    OrderId(uuid::Uuid::from_u128(1))
}

fn buyer() -> BuyerId {
    BuyerId(uuid::Uuid::from_u128(2))
}

fn lines() -> Vec<OrderLine> {
    vec![OrderLine {
        product_id: ProductId(uuid::Uuid::from_u128(3)),
        product_name: "Mug".into(),
        quantity: 2,
    }]
}

fn submitted() -> CheckoutState {
    CheckoutState::Submitted {
        buyer_id: buyer(),
        items: lines(),
        from_cart: true,
    }
}

fn reserved() -> CheckoutState {
    CheckoutState::StockReserved {
        buyer_id: buyer(),
        items: lines(),
        from_cart: true,
    }
}

fn failed() -> CheckoutState {
    CheckoutState::Failed {
        reason: FailureReason::Other("x".into()),
    }
}

fn started() -> CheckoutEvent {
    CheckoutEvent::Started(CheckoutStarted {
        order_id: order(),
        buyer_id: buyer(),
        items: lines(),
        from_cart: true,
    })
}

fn stock_reserved() -> CheckoutEvent {
    CheckoutEvent::StockReserved(StockReservationCompleted { order_id: order() })
}

fn stock_short() -> CheckoutEvent {
    CheckoutEvent::StockShort(StockReservationFailed {
        order_id: order(),
        reason: FailureReason::OutOfStock {
            product: "Mug".into(),
        },
    })
}

fn paid() -> CheckoutEvent {
    CheckoutEvent::Paid(PaymentCompleted { order_id: order() })
}

fn declined() -> CheckoutEvent {
    CheckoutEvent::Declined(PaymentFailed {
        order_id: order(),
        reason: FailureReason::PaymentDeclined,
    })
}

fn timed_out() -> CheckoutEvent {
    CheckoutEvent::TimedOut(PaymentTimedOut { order_id: order() })
}

fn cancelled() -> CheckoutEvent {
    CheckoutEvent::Cancelled(CheckoutCancelled { order_id: order() })
}

fn all_events() -> [CheckoutEvent; 7] {
    [
        started(),
        stock_reserved(),
        stock_short(),
        paid(),
        declined(),
        timed_out(),
        cancelled(),
    ]
}

fn types(sent: &[Outgoing]) -> Vec<&'static str> {
    sent.iter().map(|m| m.message_type).collect()
}

#[test]
fn checkout_started_submits_and_asks_inventory_to_reserve_every_line() {
    let (state, sent) = saga().initially(&started()).unwrap();
    assert_eq!(state, submitted());
    let reserve: ReserveStockForOrder = sent[0].decode().unwrap();
    assert_eq!(reserve.items, lines());
    assert_eq!(sent.len(), 1);
}

#[test]
fn only_checkout_started_starts_a_checkout() {
    let saga = saga();
    for event in all_events() {
        assert_eq!(
            saga.is_start(&event),
            matches!(event, CheckoutEvent::Started(_))
        );
    }
    assert!(matches!(saga.initially(&paid()), Err(Rejected::Invalid(_))));
}

#[test]
fn reserved_stock_awaits_payment_with_a_timeout() {
    let (state, sent) = saga().during(&submitted(), &stock_reserved()).unwrap();
    assert_eq!(state, reserved());
    assert_eq!(types(&sent), ["PaymentTimedOut"]);
    assert_eq!(
        sent[0].delivery,
        bus::Delivery::After(Duration::from_secs(900))
    );
}

#[test]
fn stock_shortage_fails_the_order_with_the_inventory_reason_and_releases_nothing() {
    let (state, sent) = saga().during(&submitted(), &stock_short()).unwrap();
    assert_eq!(
        state,
        CheckoutState::Failed {
            reason: FailureReason::OutOfStock {
                product: "Mug".into()
            }
        }
    );
    assert_eq!(types(&sent), ["OrderFailed"]);
}

#[test]
fn a_payment_result_before_the_reservation_is_early() {
    let saga = saga();
    assert_eq!(saga.during(&submitted(), &paid()), Err(Rejected::Early));
    assert_eq!(saga.during(&submitted(), &declined()), Err(Rejected::Early));
}

#[test]
fn a_timeout_before_the_reservation_is_stale() {
    assert!(matches!(
        saga().during(&submitted(), &timed_out()),
        Err(Rejected::Stale(_))
    ));
}

#[test]
fn payment_confirms_deducts_and_clears_exactly_the_checked_out_items() {
    let (state, sent) = saga().during(&reserved(), &paid()).unwrap();
    assert_eq!(state, CheckoutState::Confirmed);
    assert_eq!(types(&sent), ["ConfirmOrder", "DeductStock", "ClearCart"]);
    let clear: ClearCart = sent[2].decode().unwrap();
    assert_eq!((clear.buyer_id, clear.items), (buyer(), lines()));
}

#[test]
fn payment_for_explicit_items_leaves_the_cart_alone() {
    let explicit = CheckoutState::StockReserved {
        buyer_id: buyer(),
        items: lines(),
        from_cart: false,
    };
    let (state, sent) = saga().during(&explicit, &paid()).unwrap();
    assert_eq!(state, CheckoutState::Confirmed);
    assert_eq!(types(&sent), ["ConfirmOrder", "DeductStock"]);
}

#[test]
fn payment_decline_releases_every_reservation_and_fails_the_order() {
    let (state, sent) = saga().during(&reserved(), &declined()).unwrap();
    assert_eq!(
        state,
        CheckoutState::Failed {
            reason: FailureReason::PaymentDeclined
        }
    );
    assert_eq!(types(&sent), ["ReleaseStockReservations", "OrderFailed"]);
}

#[test]
fn payment_timeout_releases_every_reservation_and_fails_the_order() {
    let (state, sent) = saga().during(&reserved(), &timed_out()).unwrap();
    assert_eq!(
        state,
        CheckoutState::Failed {
            reason: FailureReason::PaymentTimedOut
        }
    );
    assert_eq!(types(&sent), ["ReleaseStockReservations", "OrderFailed"]);
}

#[test]
fn an_operators_cancel_releases_every_reservation_and_fails_the_order_as_a_timeout_does() {
    let (state, sent) = saga().during(&reserved(), &cancelled()).unwrap();
    assert_eq!(
        state,
        CheckoutState::Failed {
            reason: FailureReason::CancelledByOperator
        }
    );
    assert_eq!(types(&sent), ["ReleaseStockReservations", "OrderFailed"]);
}

#[test]
fn a_cancel_before_stock_is_reserved_or_after_the_end_changes_nothing() {
    for state in [submitted(), CheckoutState::Confirmed] {
        assert!(matches!(
            saga().during(&state, &cancelled()),
            Err(Rejected::Stale(_))
        ));
    }
}

#[test]
fn a_second_reservation_while_awaiting_payment_is_stale() {
    assert!(matches!(
        saga().during(&reserved(), &stock_reserved()),
        Err(Rejected::Stale(_))
    ));
}

#[test]
fn a_shortage_after_reservation_is_never_valid() {
    assert!(matches!(
        saga().during(&reserved(), &stock_short()),
        Err(Rejected::Invalid(_))
    ));
}

#[test]
fn a_repeated_start_is_stale_in_every_state() {
    for state in [submitted(), reserved(), CheckoutState::Confirmed, failed()] {
        assert!(matches!(
            saga().during(&state, &started()),
            Err(Rejected::Stale(_))
        ));
    }
}

#[test]
fn finished_checkouts_accept_nothing() {
    for state in [CheckoutState::Confirmed, failed()] {
        assert!(CheckoutSaga::is_final(&state));
        for event in all_events() {
            assert!(matches!(
                saga().during(&state, &event),
                Err(Rejected::Stale(_))
            ));
        }
    }
}

#[test]
fn state_names_are_stable() {
    let names: Vec<_> = [submitted(), reserved(), CheckoutState::Confirmed, failed()]
        .iter()
        .map(CheckoutSaga::state_name)
        .collect();
    assert_eq!(names, ["Submitted", "StockReserved", "Confirmed", "Failed"]);
    assert!(!CheckoutSaga::is_final(&submitted()) && !CheckoutSaga::is_final(&reserved()));
}

#[test]
fn every_message_type_decodes_into_its_event() {
    for event in all_events() {
        let outgoing = match &event {
            CheckoutEvent::Started(m) => Outgoing::publish(m),
            CheckoutEvent::StockReserved(m) => Outgoing::publish(m),
            CheckoutEvent::StockShort(m) => Outgoing::publish(m),
            CheckoutEvent::Paid(m) => Outgoing::publish(m),
            CheckoutEvent::Declined(m) => Outgoing::publish(m),
            CheckoutEvent::TimedOut(m) => Outgoing::publish(m),
            CheckoutEvent::Cancelled(m) => Outgoing::publish(m),
        };
        let envelope = Envelope {
            message_id: bus::MessageId::new(),
            message_type: outgoing.message_type.into(),
            correlation_id: outgoing.correlation_id,
            causation_id: None,
            headers: Default::default(),
            payload: outgoing.payload,
            created_at: storage::Timestamp(0),
            available_at: storage::Timestamp(0),
            attempts: 0,
        };
        assert_eq!(CheckoutEvent::decode(&envelope).unwrap(), event);
    }
}

#[test]
fn every_saga_state_is_a_declared_step_and_names_itself_by_its_status() {
    for state in CheckoutState::examples() {
        let status = state.status();
        assert!(step(status).is_some(), "{status} is not a declared step");
        assert_eq!(CheckoutSaga::state_name(&state), status.as_str());
        assert_eq!(CheckoutSaga::is_final(&state), status.is_settled());
    }
}

#[test]
fn every_step_is_reached_by_a_message_of_the_checkout() {
    let diagram = diagram();
    let mut messages: Vec<&str> = diagram.edges.iter().map(|edge| edge.event).collect();
    for edge in &diagram.edges {
        if let saga::Outcome::Moves { sends, .. } = &edge.outcome {
            messages.extend(sends.iter().map(|sent| sent.message_type));
        }
    }
    for step in STEPS.iter().chain([&FAILED]) {
        if let Some(message) = step.reached.message() {
            assert!(
                messages.contains(&message),
                "{message} is not a checkout message"
            );
            assert_eq!(status_after(message), Some(step.status));
        }
    }
}

#[test]
fn the_status_consumer_takes_exactly_the_messages_it_moves_orders_on() {
    assert_eq!(
        handled_messages(),
        ["StockReservationCompleted", "ConfirmOrder", "OrderFailed"]
    );
    assert_eq!(status_after("PaymentCompleted"), Some(OrderStatus::Paid));
    assert_eq!(status_after("DeductStock"), None);
}

#[test]
fn the_diagram_lists_every_move_of_the_saga() {
    let moves: Vec<_> = diagram().moves().collect();
    assert_eq!(
        moves,
        [
            (None, "CheckoutStarted", "Submitted"),
            (
                Some("Submitted"),
                "StockReservationCompleted",
                "StockReserved"
            ),
            (Some("Submitted"), "StockReservationFailed", "Failed"),
            (Some("StockReserved"), "PaymentCompleted", "Confirmed"),
            (Some("StockReserved"), "PaymentFailed", "Failed"),
            (Some("StockReserved"), "PaymentTimedOut", "Failed"),
            (Some("StockReserved"), "CheckoutCancelled", "Failed"),
        ]
    );
}

/// `docs/architecture.md` shows the diagram as the saga draws it; `UPDATE_SNAPSHOTS=1`
/// redraws it there.
#[test]
fn the_architecture_page_shows_the_diagram_drawn_from_the_declaration() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/architecture.md");
    let page = std::fs::read_to_string(path).expect("docs/architecture.md");
    let drawn = format!("```mermaid\n{}```", diagram().mermaid());
    let (start, end) = ("```mermaid\n", "```\n<!-- end of checkout diagram -->");
    let from = page
        .find(start)
        .expect("a mermaid block in docs/architecture.md");
    let to = page[from..].find(end).expect("the diagram's end marker") + from + 3;
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        let redrawn = format!("{}{drawn}{}", &page[..from], &page[to..]);
        std::fs::write(path, redrawn).expect("write docs/architecture.md");
        return;
    }
    assert_eq!(
        page[from..to],
        drawn,
        "docs/architecture.md must hold the checkout's diagram as drawn now \
         (UPDATE_SNAPSHOTS=1 redraws it)"
    );
}

#[test]
fn only_the_checkout_and_the_shipping_steps_move_statuses() {
    use OrderStatus::*;
    assert!(Confirmed.admin_may_move_to(Shipped));
    assert!(Shipped.admin_may_move_to(Delivered));
    for (from, to) in [
        (Submitted, Confirmed),
        (Confirmed, Delivered),
        (Failed, Shipped),
        (Delivered, Shipped),
    ] {
        assert!(!from.admin_may_move_to(to));
    }
    assert_eq!(Failed.reachable_from(), [Submitted, StockReserved, Paid]);
    assert_eq!(Shipped.reachable_from(), [Confirmed]);
    assert!(Cancelled.reachable_from().is_empty());
}

#[test]
fn settled_statuses_are_the_ends_of_the_checkout_and_what_follows() {
    let under_way: Vec<_> = OrderStatus::ALL
        .iter()
        .filter(|status| status.in_checkout())
        .collect();
    assert_eq!(
        under_way,
        [
            &OrderStatus::Submitted,
            &OrderStatus::StockReserved,
            &OrderStatus::Paid
        ]
    );
    assert!(OrderStatus::StockReserved.awaits_buyer());
    assert!(!OrderStatus::Paid.awaits_buyer());
    let sold: Vec<_> = OrderStatus::ALL.iter().filter(|s| s.is_sold()).collect();
    assert_eq!(
        sold,
        [
            &OrderStatus::Confirmed,
            &OrderStatus::Shipped,
            &OrderStatus::Delivered
        ]
    );
}

#[test]
fn the_unpaid_orders_indexes_hold_the_statuses_the_hoarding_limits_count() {
    let unpaid = unpaid();
    assert_eq!(unpaid, [OrderStatus::Submitted, OrderStatus::StockReserved]);
    let listed: Vec<String> = unpaid.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let condition = format!("WHERE status IN ({})", listed.join(", "));
    for backend in ["sqlite", "postgres"] {
        let path = format!(
            "{}/migrations/{backend}/20261207000600_unpaid_by_holder.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        let migration = std::fs::read_to_string(&path).expect("the migration");
        assert_eq!(
            migration.matches(&condition).count(),
            2,
            "{path} indexes by {condition}"
        );
    }
}
