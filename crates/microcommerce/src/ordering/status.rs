//! The statuses an order can be in: the API's names, said once by the variants themselves. Which
//! status follows which is declared by the checkout ([`super::checkout`]): its steps and the
//! order's life after it.

use serde::{Deserialize, Serialize};

/// Declares [`OrderStatus`] with its docs; each variant's name is its stored and wire name.
macro_rules! order_statuses {
    ($($(#[$doc:meta])* $status:ident),+ $(,)?) => {
        /// Where an order stands: during its checkout one of the checkout's steps (or Failed),
        /// afterwards one of the shipping steps. The names are stored, sent and shown as they are.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
        pub enum OrderStatus {
            $($(#[$doc])* $status,)+
        }

        impl OrderStatus {
            /// Every status, in lifecycle order.
            pub const ALL: &[OrderStatus] = &[$(Self::$status),+];

            /// The stored and wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$status => stringify!($status),)+
                }
            }
        }
    };
}

order_statuses! {
    /// Placed; stock not yet reserved.
    Submitted,
    /// Stock held; awaiting payment.
    StockReserved,
    /// Payment received; confirmation in progress.
    Paid,
    /// Paid, stock deducted.
    Confirmed,
    /// Handed to the carrier.
    Shipped,
    /// Received by the buyer.
    Delivered,
    /// Out of stock, declined or timed out.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl OrderStatus {
    /// Parses a stored name (the database holds only names this type wrote).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|status| status.as_str() == text)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus;

    #[test]
    fn the_stored_name_is_the_wire_name_and_reads_back() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(*status));
            let wire = serde_json::to_string(status).unwrap();
            assert_eq!(wire, format!("\"{status}\""));
        }
        assert_eq!(OrderStatus::parse("Lost"), None);
    }
}
