//! The checkout saga: reserve stock, wait for payment, then confirm or compensate.
//!
//! Pure functions only; `saga::Engine` persists it. The order's status follows the saga through
//! the messages it sends and the events ordering subscribes to, as [`super::STEPS`] declares.

use std::time::Duration;

use bus::Outgoing;
use saga::{Rejected, Saga, Transition};
use serde::{Deserialize, Serialize};

use crate::contracts::*;
use crate::ids::{BuyerId, OrderId, ProductId};
use crate::ordering::status::OrderStatus;

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
        /// Why.
        reason: FailureReason,
    },
}

impl CheckoutState {
    /// The order status this state shows: the saga's state names are these statuses' names.
    pub fn status(&self) -> OrderStatus {
        match self {
            Self::Submitted { .. } => OrderStatus::Submitted,
            Self::StockReserved { .. } => OrderStatus::StockReserved,
            Self::Confirmed => OrderStatus::Confirmed,
            Self::Failed { .. } => OrderStatus::Failed,
        }
    }

    /// One state of each kind, for drawing the diagram and testing every state.
    pub fn examples() -> Vec<Self> {
        let (buyer_id, items) = example_order();
        vec![
            Self::Submitted {
                buyer_id,
                items: items.clone(),
                from_cart: true,
            },
            Self::StockReserved {
                buyer_id,
                items,
                from_cart: true,
            },
            Self::Confirmed,
            Self::Failed {
                reason: FailureReason::PaymentDeclined,
            },
        ]
    }
}

/// The buyer and lines of the example states and events.
fn example_order() -> (BuyerId, Vec<OrderLine>) {
    let line = OrderLine {
        product_id: ProductId(uuid::Uuid::nil()),
        product_name: "Mug".into(),
        quantity: 1,
    };
    (BuyerId(uuid::Uuid::nil()), vec![line])
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
        /// An operator gave the checkout up.
        Cancelled(CheckoutCancelled),
    }
}

impl CheckoutEvent {
    /// One event of each kind, in the order they are declared.
    pub fn examples() -> Vec<Self> {
        let order_id = OrderId(uuid::Uuid::nil());
        let (buyer_id, items) = example_order();
        vec![
            Self::Started(CheckoutStarted {
                order_id,
                buyer_id,
                items,
                from_cart: true,
            }),
            Self::StockReserved(StockReservationCompleted { order_id }),
            Self::StockShort(StockReservationFailed {
                order_id,
                reason: FailureReason::OutOfStock {
                    product: "Mug".into(),
                },
            }),
            Self::Paid(PaymentCompleted { order_id }),
            Self::Declined(PaymentFailed {
                order_id,
                reason: FailureReason::PaymentDeclined,
            }),
            Self::TimedOut(PaymentTimedOut { order_id }),
            Self::Cancelled(CheckoutCancelled { order_id }),
        ]
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
            (S::Submitted { .. }, E::Cancelled(_)) => {
                Err(Rejected::Stale("a cancel before stock was reserved".into()))
            }
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
            (S::StockReserved { .. }, E::Declined(declined)) => Ok(fail(
                declined.order_id,
                FailureReason::PaymentDeclined,
                true,
            )),
            (S::StockReserved { .. }, E::TimedOut(timed_out)) => Ok(fail(
                timed_out.order_id,
                FailureReason::PaymentTimedOut,
                true,
            )),
            (S::StockReserved { .. }, E::Cancelled(cancelled)) => Ok(fail(
                cancelled.order_id,
                FailureReason::CancelledByOperator,
                true,
            )),
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
        state.status().as_str()
    }

    fn is_final(state: &CheckoutState) -> bool {
        matches!(
            state,
            CheckoutState::Confirmed | CheckoutState::Failed { .. }
        )
    }
}

/// The failed state and its messages; `release` when stock is held and must be given back.
fn fail(order_id: OrderId, reason: FailureReason, release: bool) -> (CheckoutState, Vec<Outgoing>) {
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
