//! The checkout's messages: the contract between ordering (whose saga sends and receives
//! them), inventory, cart and payment, so that none of those modules depends on another's
//! internals. Named as in the original system, each correlated by order id.

use bus::Message;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{BuyerId, OrderId, ProductId};

/// One product and quantity of an order, with the name used in failure reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// The product.
    pub product_id: ProductId,
    /// Its name when the order was placed.
    pub product_name: String,
    /// How many.
    pub quantity: u32,
}

/// Why a checkout failed, typed so that pages and tools tell the cases apart by their kind;
/// on the wire and in the order it is the buyer-facing sentence the API has always shown, so
/// stored orders and messages in flight read the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum FailureReason {
    /// A line could not be reserved: not enough of this product left.
    OutOfStock {
        /// The product's name as ordered.
        product: String,
    },
    /// The payment provider declined.
    PaymentDeclined,
    /// No payment arrived before the payment window closed.
    PaymentTimedOut,
    /// An operator cancelled the checkout while it awaited payment.
    CancelledByOperator,
    /// A reason this version does not know (written by another version): shown as it is.
    Other(String),
}

impl FailureReason {
    const OUT_OF_STOCK: &str = "Insufficient stock for ";
    const PAYMENT_DECLINED: &str = "Payment declined (simulated)";
    const PAYMENT_TIMED_OUT: &str = "Payment not received in time";
    const CANCELLED_BY_OPERATOR: &str = "Cancelled by an operator";
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OutOfStock { product } => write!(f, "{}{product}", Self::OUT_OF_STOCK),
            Self::PaymentDeclined => f.write_str(Self::PAYMENT_DECLINED),
            Self::PaymentTimedOut => f.write_str(Self::PAYMENT_TIMED_OUT),
            Self::CancelledByOperator => f.write_str(Self::CANCELLED_BY_OPERATOR),
            Self::Other(text) => f.write_str(text),
        }
    }
}

/// Reads the sentence back: the inverse of `Display`, so the typed reason survives storage.
impl From<String> for FailureReason {
    fn from(text: String) -> Self {
        if let Some(product) = text.strip_prefix(Self::OUT_OF_STOCK) {
            return Self::OutOfStock {
                product: product.to_owned(),
            };
        }
        match text.as_str() {
            Self::PAYMENT_DECLINED => Self::PaymentDeclined,
            Self::PAYMENT_TIMED_OUT => Self::PaymentTimedOut,
            Self::CANCELLED_BY_OPERATOR => Self::CancelledByOperator,
            _ => Self::Other(text),
        }
    }
}

impl From<FailureReason> for String {
    fn from(reason: FailureReason) -> Self {
        reason.to_string()
    }
}

macro_rules! order_message {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// The order this is about: the correlation id.
            pub order_id: OrderId,
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl Message for $name {
            const TYPE: &'static str = stringify!($name);

            fn correlation_id(&self) -> Uuid {
                self.order_id.0
            }
        }
    };
}

order_message!(
    /// A buyer checked out: the order exists (Submitted) and its saga starts.
    CheckoutStarted {
        /// Who placed it.
        buyer_id: BuyerId,
        /// What was ordered.
        items: Vec<OrderLine>,
        /// True when the lines came from the buyer's cart, which is then cleared on success.
        from_cart: bool,
    }
);
order_message!(
    /// Saga → inventory: reserve every line, all or nothing.
    ReserveStockForOrder {
        /// Lines to reserve.
        items: Vec<OrderLine>,
    }
);
order_message!(
    /// Inventory → saga: every line is reserved.
    StockReservationCompleted {}
);
order_message!(
    /// Inventory → saga: some line could not be reserved; nothing is held.
    StockReservationFailed {
        /// Which product ran short.
        reason: FailureReason,
    }
);
order_message!(
    /// Payment → saga: the buyer paid.
    PaymentCompleted {}
);
order_message!(
    /// Payment → saga: the payment was declined.
    PaymentFailed {
        /// Why.
        reason: FailureReason,
    }
);
order_message!(
    /// Saga → saga: the payment window closed (scheduled when stock is reserved).
    PaymentTimedOut {}
);
order_message!(
    /// Operator → saga: give up a checkout that awaits payment, as its timeout would. Sent
    /// only by the one who took the pending timeout, so it cannot race a payment.
    CheckoutCancelled {}
);
order_message!(
    /// Saga → ordering: the order is paid and confirmed.
    ConfirmOrder {}
);
order_message!(
    /// Saga → ordering: the order failed.
    OrderFailed {
        /// Why.
        reason: FailureReason,
    }
);
order_message!(
    /// Saga → inventory: turn the order's reservations into permanent deductions.
    DeductStock {}
);
order_message!(
    /// Saga → inventory: compensation, release every reservation of the order.
    ReleaseStockReservations {}
);
order_message!(
    /// Saga → cart: remove exactly the checked-out quantities from the buyer's cart.
    ClearCart {
        /// Whose cart.
        buyer_id: BuyerId,
        /// What was checked out.
        items: Vec<OrderLine>,
    }
);

#[cfg(test)]
mod tests {
    use super::FailureReason;

    #[test]
    fn a_failure_reason_reads_back_from_the_sentence_it_shows() {
        for reason in [
            FailureReason::OutOfStock {
                product: "Mug".into(),
            },
            FailureReason::PaymentDeclined,
            FailureReason::PaymentTimedOut,
            FailureReason::CancelledByOperator,
            FailureReason::Other("Lost at sea".into()),
        ] {
            assert_eq!(FailureReason::from(reason.to_string()), reason);
        }
        assert_eq!(
            FailureReason::OutOfStock {
                product: "Mug".into()
            }
            .to_string(),
            "Insufficient stock for Mug"
        );
        let json = serde_json::to_string(&FailureReason::PaymentDeclined).unwrap();
        assert_eq!(json, r#""Payment declined (simulated)""#);
    }
}
