//! Values that the catalog, the cart and the checkout accept from clients, parsed once at the
//! boundary so that the code behind it can rely on them. Below every business module, like
//! [`crate::money`] and [`crate::ids`], so that cart and ordering share them without depending
//! on each other.

mod email;
mod quantity;
mod text;

pub use email::{Email, InvalidEmail};
pub use quantity::{Quantity, QuantityOutOfRange};
pub use text::{BoundedText, NUL_REFUSED, TextRefused, has_nul, is_blank, trimmed};
