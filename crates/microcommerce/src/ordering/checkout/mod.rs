//! The checkout, declared once.
//!
//! Everything that knows how a checkout goes reads it from here: the saga's states, events and
//! transitions ([`transitions`], pure functions), the steps an order shows while it checks out
//! ([`STEPS`], [`FAILED`]), which statuses are settled, the words and progress list of the
//! storefront, the benchmark's notion of done, and the order's life after the checkout
//! ([`AFTER_CHECKOUT`]). The state diagram in `docs/architecture.md` is drawn from
//! [`diagram`], and a test fails when the two differ.
//!
//! Adding a step (a fraud check between reservation and payment, say) means a state and its
//! transitions in [`transitions`], a [`Step`] here, its messages in `contracts.rs`, the consumer that
//! answers them, and the status in [`OrderStatus`] with its migration.

#[cfg(test)]
mod tests;
mod transitions;

use bus::Message;

pub use self::transitions::{CheckoutEvent, CheckoutSaga, CheckoutState};
use super::status::OrderStatus;
pub use crate::contracts::FailureReason;
use crate::contracts::{ConfirmOrder, OrderFailed, PaymentCompleted, StockReservationCompleted};

/// One status an order passes through during its checkout, and how the storefront shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The order's status at this step.
    pub status: OrderStatus,
    /// The statuses an order may come from to reach this step; a message that arrives when
    /// the order is anywhere else changes nothing, which makes every move idempotent.
    pub from: &'static [OrderStatus],
    /// How the order gets here.
    pub reached: Reached,
    /// Its name in the storefront's progress list.
    pub label: &'static str,
    /// The status line while the order is here.
    pub headline: &'static str,
    /// What the buyer is asked to do here, if anything: an item of the progress list of its
    /// own, right after the label, current while the order is here.
    pub awaiting: Option<&'static str>,
}

/// How an order reaches a step of its checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// The order is written in this step when it is placed.
    Placed,
    /// The sender of this checkout message moves the order in the transaction that sends it,
    /// so its caller sees the order moved at once (a payment, told through
    /// [`crate::ordering::tell_payment`]).
    Told(&'static str),
    /// Ordering's status consumer moves the order when this checkout message arrives.
    Handled(&'static str),
}

impl Reached {
    /// The message that moves the order here, if one does.
    pub fn message(self) -> Option<&'static str> {
        match self {
            Self::Placed => None,
            Self::Told(message) | Self::Handled(message) => Some(message),
        }
    }
}

/// The checkout's steps in order; the last one is the success. While an order is in any other
/// step (or in none yet), the checkout is under way and may still fail ([`FAILED`]).
pub const STEPS: [Step; 4] = [
    Step {
        status: OrderStatus::Submitted,
        from: &[],
        reached: Reached::Placed,
        label: "Submitted",
        headline: "Submitted: reserving your items…",
        awaiting: None,
    },
    Step {
        status: OrderStatus::StockReserved,
        from: &[OrderStatus::Submitted],
        reached: Reached::Handled(StockReservationCompleted::TYPE),
        label: "Stock reserved",
        headline: "Stock reserved: awaiting payment",
        awaiting: Some("Awaiting payment"),
    },
    // Shown from the moment the payment is recorded until the saga's confirmation arrives. The
    // saga's reservation and the order's may arrive in either order, hence from Submitted too.
    Step {
        status: OrderStatus::Paid,
        from: &[OrderStatus::Submitted, OrderStatus::StockReserved],
        reached: Reached::Told(PaymentCompleted::TYPE),
        label: "Paid",
        headline: "Paid: confirming your order…",
        awaiting: None,
    },
    Step {
        status: OrderStatus::Confirmed,
        from: &[OrderStatus::Paid],
        reached: Reached::Handled(ConfirmOrder::TYPE),
        label: "Confirmed",
        headline: "Confirmed",
        awaiting: None,
    },
];

/// Where a checkout that cannot complete ends, from any step under way: out of stock, a
/// declined payment or no payment in time. Settled.
pub const FAILED: Step = Step {
    status: OrderStatus::Failed,
    from: &[
        OrderStatus::Submitted,
        OrderStatus::StockReserved,
        OrderStatus::Paid,
    ],
    reached: Reached::Handled(OrderFailed::TYPE),
    label: "Failed",
    headline: "Failed",
    awaiting: None,
};

/// The order's life after a successful checkout, `(from, to)`: the moves an admin may make.
/// Every other move belongs to the checkout.
pub const AFTER_CHECKOUT: [(OrderStatus, OrderStatus); 2] = [
    (OrderStatus::Confirmed, OrderStatus::Shipped),
    (OrderStatus::Shipped, OrderStatus::Delivered),
];

/// The steps and the failure, as one list.
fn every_step() -> impl Iterator<Item = &'static Step> {
    STEPS.iter().chain(std::iter::once(&FAILED))
}

/// The step an order in `status` is at, if it is checking out or has just finished.
pub fn step(status: OrderStatus) -> Option<&'static Step> {
    every_step().find(|step| step.status == status)
}

/// The status an order shows once the checkout message `message_type` is handled, if that
/// message moves it.
pub fn status_after(message_type: &str) -> Option<OrderStatus> {
    every_step()
        .find(|step| step.reached.message() == Some(message_type))
        .map(|step| step.status)
}

/// The checkout messages ordering's status consumer moves orders on: what it subscribes to.
pub fn handled_messages() -> Vec<&'static str> {
    every_step()
        .filter_map(|step| match step.reached {
            Reached::Handled(message) => Some(message),
            _ => None,
        })
        .collect()
}

/// The status of an order that waits for its buyer to pay: the only one a payment is taken in.
pub fn awaiting_payment() -> OrderStatus {
    STEPS
        .iter()
        .find(|step| step.awaiting.is_some())
        .expect("the checkout declares a step that awaits the buyer")
        .status
}

/// The statuses of a checkout that holds (or is about to hold) stock and is not paid: the steps
/// up to and including the one that awaits payment. What the hoarding limits count.
pub fn unpaid() -> Vec<OrderStatus> {
    let awaiting = awaiting_payment();
    let through = STEPS
        .iter()
        .position(|step| step.status == awaiting)
        .expect("the awaited step is a step");
    STEPS[..=through].iter().map(|step| step.status).collect()
}

/// When the payment window of a checkout in state `state` since `moved_at` closes: only one
/// that awaits payment has one, and it closes `payment_timeout` after the checkout got there
/// (the saga schedules its timeout then).
pub fn payment_window_closes(
    state: &str,
    moved_at: storage::Timestamp,
    payment_timeout: std::time::Duration,
) -> Option<storage::Timestamp> {
    (state == awaiting_payment().as_str()).then(|| moved_at.plus(payment_timeout))
}

/// The checkout's state diagram, read off the saga's transitions once (every event offered to
/// every state) and kept: the code cannot change while the process runs.
pub fn diagram() -> &'static saga::Diagram {
    static DRAWN: std::sync::LazyLock<saga::Diagram> = std::sync::LazyLock::new(|| {
        // Any payment window draws the same diagram.
        let saga = CheckoutSaga {
            payment_timeout: std::time::Duration::from_secs(1),
        };
        saga::Diagram::of(
            &saga,
            &CheckoutState::examples(),
            &CheckoutEvent::examples(),
        )
    });
    &DRAWN
}

impl OrderStatus {
    /// True while the checkout is under way: the status will change by itself.
    pub fn in_checkout(self) -> bool {
        STEPS[..STEPS.len() - 1]
            .iter()
            .any(|step| step.status == self)
    }

    /// True once nothing will change by itself: the checkout succeeded or failed, or the order
    /// is past it.
    pub fn is_settled(self) -> bool {
        !self.in_checkout()
    }

    /// True when the order waits for its buyer (to pay).
    pub fn awaits_buyer(self) -> bool {
        step(self).is_some_and(|step| step.awaiting.is_some())
    }

    /// True for orders that count as sold: the checkout succeeded.
    pub fn is_sold(self) -> bool {
        self == STEPS[STEPS.len() - 1].status || AFTER_CHECKOUT.iter().any(|(_, to)| *to == self)
    }

    /// The statuses an order may come from to reach `self`.
    pub fn reachable_from(self) -> Vec<OrderStatus> {
        if let Some(step) = step(self) {
            return step.from.to_vec();
        }
        AFTER_CHECKOUT
            .iter()
            .filter(|(_, to)| *to == self)
            .map(|(from, _)| *from)
            .collect()
    }

    /// True if an admin may move an order from `self` to `next`.
    pub fn admin_may_move_to(self, next: OrderStatus) -> bool {
        AFTER_CHECKOUT.contains(&(self, next))
    }
}
