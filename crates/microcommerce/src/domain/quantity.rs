//! How many units of one product a line may hold.

use std::fmt;

/// Units of one product on a cart line or a checkout line, 1..=[`Quantity::MAX`]: the one
/// limit the cart and the checkout share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u32);

/// A quantity outside 1..=[`Quantity::MAX`]; its text is the validation message clients get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be between 1 and {max}", max = Quantity::MAX)]
pub struct QuantityOutOfRange;

impl Quantity {
    /// The most units of one product a line may hold, in a cart or in an order.
    pub const MAX: Quantity = Quantity(99);

    /// `units`, if it is within 1..=[`Quantity::MAX`].
    pub fn new(units: i64) -> Result<Self, QuantityOutOfRange> {
        match u32::try_from(units) {
            Ok(units) if (1..=Self::MAX.0).contains(&units) => Ok(Self(units)),
            _ => Err(QuantityOutOfRange),
        }
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl From<Quantity> for u32 {
    fn from(quantity: Quantity) -> u32 {
        quantity.0
    }
}

impl From<Quantity> for i64 {
    fn from(quantity: Quantity) -> i64 {
        i64::from(quantity.0)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_ninety_nine_are_quantities() {
        for units in [1, 2, 98, 99] {
            assert_eq!(Quantity::new(units).map(Quantity::get), Ok(units as u32));
        }
        assert_eq!(Quantity::MAX.get(), 99);
    }

    #[test]
    fn zero_negatives_and_more_than_the_limit_are_not() {
        for units in [0, -1, 100, i64::from(u32::MAX) + 1, i64::MIN, i64::MAX] {
            assert_eq!(Quantity::new(units), Err(QuantityOutOfRange), "{units}");
        }
    }

    #[test]
    fn the_refusal_reads_as_the_validation_message() {
        assert_eq!(QuantityOutOfRange.to_string(), "must be between 1 and 99");
    }

    #[test]
    fn a_quantity_converts_to_the_integers_stored_and_sent() {
        let quantity = Quantity::new(7).unwrap();
        assert_eq!(u32::from(quantity), 7);
        assert_eq!(i64::from(quantity), 7);
        assert_eq!(quantity.to_string(), "7");
    }
}
