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
        /// Buyer-facing reason ("Insufficient stock for …").
        reason: String,
    }
);
order_message!(
    /// Payment → saga: the buyer paid.
    PaymentCompleted {}
);
order_message!(
    /// Payment → saga: the payment was declined.
    PaymentFailed {
        /// Buyer-facing reason.
        reason: String,
    }
);
order_message!(
    /// Saga → saga: the payment window closed (scheduled when stock is reserved).
    PaymentTimedOut {}
);
order_message!(
    /// Saga → ordering: the order is paid and confirmed.
    ConfirmOrder {}
);
order_message!(
    /// Saga → ordering: the order failed.
    OrderFailed {
        /// Buyer-facing reason.
        reason: String,
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
