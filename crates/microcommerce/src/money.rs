//! Exact money: integer cents, never floating point.

use std::fmt;
use std::ops::{Add, Mul};

use serde::{Deserialize, Serialize};

/// An amount in US cents (the only currency the shop sells in).
///
/// On the wire it is a JSON number with two decimals (`12.5` → `12.50`); inside it is an
/// integer, so that totals are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

impl Money {
    /// Zero cents.
    pub const ZERO: Money = Money(0);

    /// `percent` % of this amount, rounded to the cent half away from zero.
    pub fn percent(self, percent: i64) -> Money {
        let scaled = i128::from(self.0) * i128::from(percent);
        let rounded = if scaled >= 0 {
            (scaled + 50) / 100
        } else {
            (scaled - 50) / 100
        };
        Money(i64::try_from(rounded).unwrap_or(i64::MAX))
    }

    /// Parses a decimal amount with at most two decimals (`"12.5"`, `"3"`, `"0.99"`).
    pub fn parse_decimal(text: &str) -> Option<Money> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty()
            || fraction.len() > 2
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let cents: i64 = format!("{fraction:0<2}").parse().ok()?;
        let total = whole.checked_mul(100)?.checked_add(cents)?;
        Some(Money(if negative { -total } else { total }))
    }
}

impl Add for Money {
    type Output = Money;

    fn add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }
}

impl Mul<u32> for Money {
    type Output = Money;

    fn mul(self, quantity: u32) -> Money {
        Money(self.0.saturating_mul(i64::from(quantity)))
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// Written as a JSON number with exactly two decimals.
impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let number = serde_json::value::RawValue::from_string(self.to_string())
            .map_err(serde::ser::Error::custom)?;
        number.serialize(serializer)
    }
}

/// Read from a JSON number (or numeric string) with at most two decimals.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let text = match &value {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.clone(),
            _ => return Err(serde::de::Error::custom("expected an amount like 12.99")),
        };
        Money::parse_decimal(&text)
            .ok_or_else(|| serde::de::Error::custom("expected an amount with at most 2 decimals"))
    }
}

/// Documented as a JSON number with two decimals.
impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
            .description(Some("Amount in USD with two decimals"))
            .examples([serde_json::json!(19.99)])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_rounds_half_away_from_zero() {
        assert_eq!(Money(1_000).percent(8), Money(80));
        assert_eq!(Money(1_006).percent(8), Money(80)); // 80.48 -> 80
        assert_eq!(Money(1_019).percent(8), Money(82)); // 81.52 -> 82
        assert_eq!(Money(625).percent(8), Money(50)); // 50.00 exactly
        assert_eq!(Money(1_881).percent(8), Money(150)); // 150.48
        assert_eq!(Money(1_875).percent(8), Money(150)); // 150.00
        assert_eq!(Money(-1_019).percent(8), Money(-82));
        assert_eq!(Money(1_937).percent(8), Money(155)); // 154.96 -> 155
        assert_eq!(Money(6_875).percent(8), Money(550));
        assert_eq!(Money(1_931).percent(8), Money(154)); // 154.48 -> 154
        assert_eq!(Money(1_932).percent(8), Money(155)); // 154.56 -> 155
    }

    #[test]
    fn half_a_cent_rounds_up() {
        // 8 % of 0.0625 dollars is exactly half a cent.
        assert_eq!(Money(625).percent(1), Money(6)); // 6.25 -> 6
        assert_eq!(Money(650).percent(1), Money(7)); // 6.5 -> 7
        assert_eq!(Money(-650).percent(1), Money(-7));
    }

    #[test]
    fn amounts_serialize_with_two_decimals() {
        assert_eq!(serde_json::to_string(&Money(1250)).unwrap(), "12.50");
        assert_eq!(serde_json::to_string(&Money(5)).unwrap(), "0.05");
        assert_eq!(serde_json::to_string(&Money(-5)).unwrap(), "-0.05");
    }

    #[test]
    fn amounts_parse_from_numbers_and_reject_fractions_of_a_cent() {
        assert_eq!(serde_json::from_str::<Money>("12.5").unwrap(), Money(1250));
        assert_eq!(serde_json::from_str::<Money>("3").unwrap(), Money(300));
        assert_eq!(
            serde_json::from_str::<Money>("\"0.99\"").unwrap(),
            Money(99)
        );
        assert!(serde_json::from_str::<Money>("0.999").is_err());
        assert!(serde_json::from_str::<Money>("\"abc\"").is_err());
        assert!(serde_json::from_str::<Money>("true").is_err());
    }

    #[test]
    fn money_adds_and_multiplies_exactly() {
        assert_eq!(Money(10) + Money(20), Money(30));
        assert_eq!(Money(333) * 3, Money(999));
        assert_eq!([Money(1), Money(2)].into_iter().sum::<Money>(), Money(3));
    }
}
