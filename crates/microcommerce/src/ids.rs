//! Typed identifiers: an order id cannot be passed where a product id is expected.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
                 serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(text).map(Self)
            }
        }
    };
}

id_type!(
    /// A catalog product, also the key of its stock item.
    ProductId
);
id_type!(
    /// A catalog category.
    CategoryId
);
id_type!(
    /// An order, also the correlation id of its checkout saga and of every message about it.
    OrderId
);
id_type!(
    /// A buyer, known only through the `buyer_id` cookie.
    BuyerId
);
id_type!(
    /// A line of a cart.
    CartItemId
);
