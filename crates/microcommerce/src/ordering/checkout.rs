//! The checkout saga: reserve stock, wait for payment, then confirm or compensate.
//!
//! Pure functions only; `saga::Engine` persists it. The order's status follows the saga through
//! the messages it sends (ConfirmOrder, OrderFailed) and the events ordering subscribes to.

use std::time::Duration;

use bus::Outgoing;
use saga::{Rejected, Saga, Transition};
use serde::{Deserialize, Serialize};

use crate::contracts::*;
use crate::ids::BuyerId;

/// Failure reason when the payment provider declines.
pub const PAYMENT_DECLINED: &str = "Payment declined (simulated)";
/// Failure reason when no payment arrives before the timeout.
pub const PAYMENT_TIMED_OUT: &str = "Payment not received in time";

/// State of one checkout, with the data each state needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum CheckoutState {
    /// Waiting for inventory to reserve every line.
    Submitted {
        /// Whose cart to clear on success.
        buyer_id: BuyerId,
        /// What was ordered.
        items: Vec<OrderLine>,
        /// Whether the lines came from the cart.
        from_cart: bool,
    },
    /// Stock is held; waiting for the payment result or the timeout.
    StockReserved {
        /// Whose cart to clear on success.
        buyer_id: BuyerId,
        /// What was ordered, and reserved.
        items: Vec<OrderLine>,
        /// Whether the lines came from the cart.
        from_cart: bool,
    },
    /// Paid: stock deducted, cart cleared. Final.
    Confirmed,
    /// Out of stock, declined or timed out; nothing is held any more. Final.
    Failed {
        /// Buyer-facing reason.
        reason: String,
    },
}

saga::events! {
    /// What the checkout reacts to.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum CheckoutEvent {
        /// The order was placed.
        Started(CheckoutStarted),
        /// Every line is reserved.
        StockReserved(StockReservationCompleted),
        /// Some line could not be reserved.
        StockShort(StockReservationFailed),
        /// The buyer paid.
        Paid(PaymentCompleted),
        /// The payment was declined.
        Declined(PaymentFailed),
        /// The payment window closed.
        TimedOut(PaymentTimedOut),
    }
}

/// The checkout saga definition; holds only configuration.
#[derive(Debug, Clone)]
pub struct CheckoutSaga {
    /// How long a buyer has to pay once stock is reserved.
    pub payment_timeout: Duration,
}

impl CheckoutSaga {
    /// Name under which instances are stored and the engine consumes.
    pub const NAME: &'static str = "checkout";
}

impl Saga for CheckoutSaga {
    type State = CheckoutState;
    type Event = CheckoutEvent;

    const NAME: &'static str = CheckoutSaga::NAME;

    fn is_start(&self, event: &CheckoutEvent) -> bool {
        matches!(event, CheckoutEvent::Started(_))
    }

    fn initially(&self, event: &CheckoutEvent) -> Transition<CheckoutState> {
        let CheckoutEvent::Started(started) = event else {
            return Err(Rejected::Invalid(
                "only CheckoutStarted starts a checkout".into(),
            ));
        };
        let reserve = ReserveStockForOrder {
            order_id: started.order_id,
            items: started.items.clone(),
        };
        let state = CheckoutState::Submitted {
            buyer_id: started.buyer_id,
            items: started.items.clone(),
            from_cart: started.from_cart,
        };
        Ok((state, vec![Outgoing::publish(&reserve)]))
    }

    fn during(&self, state: &CheckoutState, event: &CheckoutEvent) -> Transition<CheckoutState> {
        use CheckoutEvent as E;
        use CheckoutState as S;
        match (state, event) {
            (
                S::Submitted {
                    buyer_id,
                    items,
                    from_cart,
                },
                E::StockReserved(reserved),
            ) => {
                let timeout = PaymentTimedOut {
                    order_id: reserved.order_id,
                };
                let next = S::StockReserved {
                    buyer_id: *buyer_id,
                    items: items.clone(),
                    from_cart: *from_cart,
                };
                Ok((
                    next,
                    vec![Outgoing::publish(&timeout).after(self.payment_timeout)],
                ))
            }
            (S::Submitted { .. }, E::StockShort(short)) => {
                Ok(fail(short.order_id, short.reason.clone(), false))
            }
            (S::Submitted { .. }, E::Paid(_) | E::Declined(_)) => Err(Rejected::Early),
            (S::Submitted { .. }, E::TimedOut(_)) => Err(Rejected::Stale(
                "a payment timeout before stock was reserved".into(),
            )),
            (
                S::StockReserved {
                    buyer_id,
                    items,
                    from_cart,
                },
                E::Paid(paid),
            ) => {
                let order_id = paid.order_id;
                let mut sent = vec![
                    Outgoing::publish(&ConfirmOrder { order_id }),
                    Outgoing::publish(&DeductStock { order_id }),
                ];
                if *from_cart {
                    sent.push(Outgoing::publish(&ClearCart {
                        order_id,
                        buyer_id: *buyer_id,
                        items: items.clone(),
                    }));
                }
                Ok((S::Confirmed, sent))
            }
            (S::StockReserved { .. }, E::Declined(declined)) => {
                Ok(fail(declined.order_id, PAYMENT_DECLINED.into(), true))
            }
            (S::StockReserved { .. }, E::TimedOut(timed_out)) => {
                Ok(fail(timed_out.order_id, PAYMENT_TIMED_OUT.into(), true))
            }
            (S::StockReserved { .. }, E::StockReserved(_)) => {
                Err(Rejected::Stale("stock was already reserved".into()))
            }
            (S::StockReserved { .. }, E::StockShort(_)) => Err(Rejected::Invalid(
                "a stock shortage after every line was reserved".into(),
            )),
            (_, E::Started(_)) => Err(Rejected::Stale("the checkout already started".into())),
            (S::Confirmed | S::Failed { .. }, _) => {
                Err(Rejected::Stale("the checkout has finished".into()))
            }
        }
    }

    fn state_name(state: &CheckoutState) -> &'static str {
        match state {
            CheckoutState::Submitted { .. } => "Submitted",
            CheckoutState::StockReserved { .. } => "StockReserved",
            CheckoutState::Confirmed => "Confirmed",
            CheckoutState::Failed { .. } => "Failed",
        }
    }

    fn is_final(state: &CheckoutState) -> bool {
        matches!(
            state,
            CheckoutState::Confirmed | CheckoutState::Failed { .. }
        )
    }
}

/// The failed state and its messages; `release` when stock is held and must be given back.
fn fail(
    order_id: crate::ids::OrderId,
    reason: String,
    release: bool,
) -> (CheckoutState, Vec<Outgoing>) {
    let mut sent = Vec::with_capacity(2);
    if release {
        sent.push(Outgoing::publish(&ReleaseStockReservations { order_id }));
    }
    sent.push(Outgoing::publish(&OrderFailed {
        order_id,
        reason: reason.clone(),
    }));
    (CheckoutState::Failed { reason }, sent)
}

#[cfg(test)]
mod tests {
    use bus::Envelope;
    use saga::Events;

    use super::*;
    use crate::ids::{OrderId, ProductId};

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
        CheckoutState::Failed { reason: "x".into() }
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
            reason: "Insufficient stock for Mug".into(),
        })
    }

    fn paid() -> CheckoutEvent {
        CheckoutEvent::Paid(PaymentCompleted { order_id: order() })
    }

    fn declined() -> CheckoutEvent {
        CheckoutEvent::Declined(PaymentFailed {
            order_id: order(),
            reason: "declined".into(),
        })
    }

    fn timed_out() -> CheckoutEvent {
        CheckoutEvent::TimedOut(PaymentTimedOut { order_id: order() })
    }

    fn all_events() -> [CheckoutEvent; 6] {
        [
            started(),
            stock_reserved(),
            stock_short(),
            paid(),
            declined(),
            timed_out(),
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
                reason: "Insufficient stock for Mug".into()
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
                reason: PAYMENT_DECLINED.into()
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
                reason: PAYMENT_TIMED_OUT.into()
            }
        );
        assert_eq!(types(&sent), ["ReleaseStockReservations", "OrderFailed"]);
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
}
