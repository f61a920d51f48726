//! Ordering: orders, their totals and statuses, and the checkout saga that drives them.

pub mod checkout;
pub mod messages;
