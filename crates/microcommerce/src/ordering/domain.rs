//! Ordering's domain types: totals, order numbers, and the parsed checkout request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::contracts::FailureReason;
use crate::domain::{BoundedText, Email, Quantity};
use crate::error::FieldErrors;
use crate::ids::{BuyerId, OrderId, ProductId};
use crate::money::Money;
use crate::ordering::status::OrderStatus;
use storage::Timestamp;

/// Flat shipping charged on every order.
pub const SHIPPING: Money = Money(599);
/// Sales tax, in percent of the subtotal.
pub const TAX_PERCENT: i64 = 8;
/// Most lines one order may have.
pub const MAX_LINES: usize = 50;

/// An order as stored.
#[derive(Debug, Clone)]
pub struct Order {
    /// Its id.
    pub id: OrderId,
    /// Human-friendly number (`MC-7KQ2ZP`).
    pub order_number: String,
    /// Who placed it.
    pub buyer_id: BuyerId,
    /// Where confirmations go.
    pub buyer_email: String,
    /// Where it ships.
    pub address: ShippingAddress,
    /// Where it stands.
    pub status: OrderStatus,
    /// Its money.
    pub totals: Totals,
    /// Why it failed, if it did.
    pub failure_reason: Option<FailureReason>,
    /// When it was placed.
    pub created_at: Timestamp,
    /// When it was paid.
    pub paid_at: Option<Timestamp>,
}

/// A line snapshotted from the catalog at checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItem {
    /// The product.
    pub product_id: ProductId,
    /// Its name at checkout.
    pub product_name: String,
    /// Its price at checkout.
    pub unit_price: Money,
    /// How many.
    pub quantity: u32,
    /// Its picture at checkout.
    pub image_url: Option<String>,
}

/// An order's money, computed by the server only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Sum of the lines.
    pub subtotal: Money,
    /// Flat shipping.
    pub shipping: Money,
    /// 8 % of the subtotal, rounded half away from zero.
    pub tax: Money,
    /// Subtotal + shipping + tax.
    pub total: Money,
}

impl Totals {
    /// Totals of lines given as (unit price, quantity).
    pub fn of(lines: impl IntoIterator<Item = (Money, u32)>) -> Self {
        let subtotal: Money = lines.into_iter().map(|(price, qty)| price * qty).sum();
        let tax = subtotal.percent(TAX_PERCENT);
        Self {
            subtotal,
            shipping: SHIPPING,
            tax,
            total: subtotal + SHIPPING + tax,
        }
    }
}

const ORDER_NUMBER_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A fresh order number: `MC-` and six characters without look-alikes (no I, O, 0, 1).
pub fn new_order_number() -> String {
    let suffix: String = (0..6)
        .map(|_| char::from(ORDER_NUMBER_ALPHABET[fastrand::usize(..ORDER_NUMBER_ALPHABET.len())]))
        .collect();
    format!("MC-{suffix}")
}

/// The shipping address as the buyer sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShippingAddress {
    /// Recipient.
    #[serde(default)]
    #[schema(value_type = BoundedText, required = true)]
    pub name: String,
    /// Recipient's email.
    #[serde(default)]
    #[schema(required = true, format = Email, max_length = 254)]
    pub email: String,
    /// Street and number.
    #[serde(default)]
    #[schema(value_type = BoundedText, required = true)]
    pub street: String,
    /// City.
    #[serde(default)]
    #[schema(value_type = BoundedText, required = true)]
    pub city: String,
    /// State or region.
    #[serde(default)]
    #[schema(value_type = BoundedText, required = true)]
    pub state: String,
    /// Postal code, at most 10 characters.
    #[serde(default)]
    #[schema(value_type = BoundedText<10>, required = true)]
    pub zip_code: String,
}

/// One requested line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestedLine {
    /// The product.
    pub product_id: ProductId,
    /// How many (1..=99).
    #[schema(minimum = 1, maximum = 99)]
    #[serde(deserialize_with = "crate::http::integer")]
    pub quantity: i64,
}

/// A checkout request body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutRequest {
    /// Buyer's email, where confirmations go.
    #[serde(default)]
    #[schema(required = true, format = Email, max_length = 254)]
    pub email: String,
    /// Where to ship.
    #[schema(value_type = ShippingAddress, required = true)]
    pub shipping_address: Option<ShippingAddress>,
    /// Lines to order (1 to 50; a product's lines total at most 99 units); absent or null
    /// means "the buyer's cart".
    #[schema(min_items = 1, max_items = 50)]
    pub items: Option<Vec<RequestedLine>>,
}

/// A checkout request that passed validation, lines merged by product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCheckout {
    /// Buyer's email, parsed (and so trimmed).
    pub email: Email,
    /// Address, trimmed.
    pub address: ShippingAddress,
    /// Product → units, each total within 1..=[`Quantity::MAX`], or `None` to take the cart.
    pub lines: Option<BTreeMap<ProductId, u32>>,
}

impl ValidCheckout {
    /// What makes two checkouts under one `Idempotency-Key` the same request: a SHA-256 (hex)
    /// over the parsed request (email, address, lines merged by product), so that spacing, the
    /// order of fields or of lines in the JSON do not matter, while any value that does is
    /// seen. Stable across versions and instances: it is stored with the order.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let canonical = serde_json::json!({
            "email": self.email.as_str(),
            "address": self.address,
            "lines": self.lines,
        });
        let digest = sha2::Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

impl CheckoutRequest {
    /// Applies the validation rules of the original system: email format, every address field
    /// present, zip ≤ 10 characters, 1..=50 lines of quantity 1..=99.
    pub fn validate(self) -> Result<ValidCheckout, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut fail = |field: &str, message: &str| {
            errors
                .entry(field.to_owned())
                .or_default()
                .push(message.to_owned())
        };
        let email = Email::parse(&self.email)
            .map_err(|error| fail("email", &error.to_string()))
            .ok();
        let address = self.shipping_address.unwrap_or_default();
        check_address(&address, &mut fail);
        let address = address.trimmed();
        let lines = self.items.map(|items| merge_lines(&items, &mut fail));
        match email {
            Some(email) if errors.is_empty() => Ok(ValidCheckout {
                email,
                address,
                lines,
            }),
            _ => Err(errors),
        }
    }
}

impl ShippingAddress {
    /// The address with the whitespace around every field removed.
    fn trimmed(self) -> Self {
        Self {
            name: crate::domain::trimmed(&self.name).to_owned(),
            email: crate::domain::trimmed(&self.email).to_owned(),
            street: crate::domain::trimmed(&self.street).to_owned(),
            city: crate::domain::trimmed(&self.city).to_owned(),
            state: crate::domain::trimmed(&self.state).to_owned(),
            zip_code: crate::domain::trimmed(&self.zip_code).to_owned(),
        }
    }
}

/// Every field a [`BoundedText`] (present, at most 200 characters as sent), the zip one of at
/// most 10, a valid email.
fn check_address(address: &ShippingAddress, fail: &mut impl FnMut(&str, &str)) {
    for (field, value) in [
        ("shippingAddress.name", &address.name),
        ("shippingAddress.street", &address.street),
        ("shippingAddress.city", &address.city),
        ("shippingAddress.state", &address.state),
    ] {
        if let Err(refused) = <BoundedText>::parse(value) {
            fail(field, &refused.to_string());
        }
    }
    if let Err(refused) = BoundedText::<10>::parse(&address.zip_code) {
        fail("shippingAddress.zipCode", &refused.to_string());
    }
    if let Err(error) = Email::parse(&address.email) {
        fail("shippingAddress.email", &error.to_string());
    }
}

/// Why a line was refused when a product's lines add up to more than [`Quantity::MAX`].
const OVER_THE_TOTAL: &str = "must total at most 99 per product";

/// The API's answer to a refused checkout request: a 422 when the only fault is lines of one
/// product adding up past the limit (each line is within the document's bounds, which cannot
/// say how lines add up), a 400 for anything else.
pub fn refusal(errors: FieldErrors) -> crate::Error {
    let only_totals = errors
        .values()
        .flatten()
        .all(|message| message == OVER_THE_TOTAL);
    if only_totals {
        crate::Error::Unprocessable(errors)
    } else {
        crate::Error::Validation(errors)
    }
}

fn merge_lines(
    items: &[RequestedLine],
    fail: &mut impl FnMut(&str, &str),
) -> BTreeMap<ProductId, u32> {
    if items.is_empty() {
        fail("items", "must contain at least one item");
    }
    if items.len() > MAX_LINES {
        fail("items", "must contain at most 50 items");
    }
    let mut merged = BTreeMap::new();
    for (index, line) in items.iter().enumerate() {
        let field = format!("items[{index}].quantity");
        match Quantity::new(line.quantity) {
            Ok(quantity) => {
                let total: &mut u32 = merged.entry(line.product_id).or_default();
                *total += quantity.get();
                if *total > Quantity::MAX.get() {
                    fail(&field, OVER_THE_TOTAL);
                }
            }
            Err(error) => fail(&field, &error.to_string()),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> ShippingAddress {
        ShippingAddress {
            name: "Ada".into(),
            email: "ada@example.com".into(),
            street: "1 Loop".into(),
            city: "London".into(),
            state: "LDN".into(),
            zip_code: "N1".into(),
        }
    }

    fn request(items: Option<Vec<RequestedLine>>) -> CheckoutRequest {
        CheckoutRequest {
            email: "ada@example.com".into(),
            shipping_address: Some(address()),
            items,
        }
    }

    fn line(n: u128, quantity: i64) -> RequestedLine {
        RequestedLine {
            product_id: ProductId(uuid::Uuid::from_u128(n)),
            quantity,
        }
    }

    fn fingerprint(items: Vec<RequestedLine>) -> String {
        request(Some(items))
            .validate()
            .expect("valid")
            .fingerprint()
    }

    #[test]
    fn fingerprints_see_values_not_spelling() {
        let split_and_reordered = fingerprint(vec![line(2, 1), line(1, 2), line(1, 1)]);
        assert_eq!(
            fingerprint(vec![line(1, 3), line(2, 1)]),
            split_and_reordered
        );
        assert_ne!(
            fingerprint(vec![line(1, 3), line(2, 2)]),
            split_and_reordered
        );
        let mut moved = request(Some(vec![line(1, 3), line(2, 1)]));
        moved.shipping_address.as_mut().expect("address").city = "Paris".into();
        let moved = moved.validate().expect("valid").fingerprint();
        assert_ne!(moved, split_and_reordered);
        assert_eq!(moved.len(), 64);
    }

    #[test]
    fn totals_add_flat_shipping_and_eight_percent_tax() {
        let totals = Totals::of([(Money(1999), 2), (Money(500), 1)]);
        assert_eq!(totals.subtotal, Money(4498));
        assert_eq!(totals.shipping, Money(599));
        assert_eq!(totals.tax, Money(360)); // 359.84
        assert_eq!(totals.total, Money(4498 + 599 + 360));
    }

    #[test]
    fn order_numbers_use_the_unambiguous_alphabet() {
        for _ in 0..200 {
            let number = new_order_number();
            assert_eq!(number.len(), 9);
            assert!(number.starts_with("MC-"));
            assert!(
                number[3..]
                    .bytes()
                    .all(|b| ORDER_NUMBER_ALPHABET.contains(&b))
            );
        }
    }

    #[test]
    fn a_valid_request_merges_lines_by_product() {
        let valid = request(Some(vec![line(1, 2), line(1, 3), line(2, 1)]))
            .validate()
            .unwrap();
        let lines = valid.lines.unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[&ProductId(uuid::Uuid::from_u128(1))], 5);
    }

    #[test]
    fn absent_items_mean_the_cart_but_an_empty_list_is_invalid() {
        assert_eq!(request(None).validate().unwrap().lines, None);
        let errors = request(Some(vec![])).validate().unwrap_err();
        assert!(errors.contains_key("items"));
    }

    #[test]
    fn quantities_outside_one_to_ninety_nine_are_invalid() {
        let errors = request(Some(vec![line(1, 0), line(2, 100), line(3, -1)]))
            .validate()
            .unwrap_err();
        assert_eq!(errors.len(), 3);
        let errors = request(Some(vec![line(1, 60), line(1, 60)]))
            .validate()
            .unwrap_err();
        assert!(errors.contains_key("items[1].quantity"));
    }

    #[test]
    fn more_than_fifty_lines_are_invalid() {
        let lines = (0..51).map(|n| line(n, 1)).collect();
        assert!(
            request(Some(lines))
                .validate()
                .unwrap_err()
                .contains_key("items")
        );
    }

    #[test]
    fn address_fields_are_required_and_zip_is_short() {
        let mut bad = request(None);
        bad.email = "not-an-email".into();
        bad.shipping_address = Some(ShippingAddress {
            zip_code: "12345678901".into(),
            city: " ".into(),
            ..address()
        });
        let errors = bad.validate().unwrap_err();
        assert!(errors.contains_key("email"));
        assert!(errors.contains_key("shippingAddress.city"));
        assert!(errors.contains_key("shippingAddress.zipCode"));
        let mut missing = request(None);
        missing.shipping_address = None;
        assert!(missing.validate().unwrap_err().len() >= 5);
    }

    #[test]
    fn the_valid_checkout_carries_the_parsed_email_as_sent_but_trimmed() {
        let mut sent = request(None);
        sent.email = "  Ada@Example.com ".into();
        let valid = sent.validate().unwrap();
        assert_eq!(valid.email.as_str(), "Ada@Example.com");
        let mut bad = request(None);
        bad.shipping_address = Some(ShippingAddress {
            email: "ada@".into(),
            ..address()
        });
        let errors = bad.validate().unwrap_err();
        assert_eq!(
            errors["shippingAddress.email"],
            ["must be a valid email address"]
        );
    }

    #[test]
    fn quantity_messages_name_the_one_limit() {
        let errors = request(Some(vec![line(1, 100), line(2, 90), line(2, 10)]))
            .validate()
            .unwrap_err();
        assert_eq!(errors["items[0].quantity"], ["must be between 1 and 99"]);
        assert_eq!(
            errors["items[2].quantity"],
            ["must total at most 99 per product"]
        );
    }
}
