//! The checkout form: email and shipping address, validated by ordering's own rules, whose
//! `errors` map is shown beside each field; a valid form places the order from the cart.

use axum::extract::State;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Chrome, price};
use super::{Form, PageResult, see_other};
use crate::cart::{CartView, cart_of};
use crate::error::{FieldErrors, Holder, Limit};
use crate::http::Caller;
use crate::ordering::domain::{CheckoutRequest, ShippingAddress};
use crate::state::AppState;

/// The form as posted; every field is text, read leniently so that ordering's validation
/// decides what is wrong.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct CheckoutForm {
    email: String,
    name: String,
    street: String,
    city: String,
    state: String,
    zip_code: String,
    /// Drawn when the form is shown: posting the same form twice places one order.
    key: String,
}

/// The form's fields: input name, label, the `errors` keys shown beside it, autocomplete hint.
const FIELDS: [(&str, &str, &[&str], &str); 6] = [
    (
        "email",
        "Email",
        &["email", "shippingAddress.email"],
        "email",
    ),
    ("name", "Full name", &["shippingAddress.name"], "name"),
    (
        "street",
        "Street and number",
        &["shippingAddress.street"],
        "street-address",
    ),
    ("city", "City", &["shippingAddress.city"], "address-level2"),
    (
        "state",
        "State or region",
        &["shippingAddress.state"],
        "address-level1",
    ),
    (
        "zipCode",
        "Postal code",
        &["shippingAddress.zipCode"],
        "postal-code",
    ),
];

impl CheckoutForm {
    fn value(&self, field: &str) -> &str {
        match field {
            "email" => &self.email,
            "name" => &self.name,
            "street" => &self.street,
            "city" => &self.city,
            "state" => &self.state,
            _ => &self.zip_code,
        }
    }

    /// The API's checkout request for the buyer's cart; the address's email is the buyer's.
    fn request(&self) -> CheckoutRequest {
        CheckoutRequest {
            email: self.email.clone(),
            shipping_address: Some(ShippingAddress {
                name: self.name.clone(),
                email: self.email.clone(),
                street: self.street.clone(),
                city: self.city.clone(),
                state: self.state.clone(),
                zip_code: self.zip_code.clone(),
            }),
            items: None,
        }
    }

    fn idempotency_key(&self) -> Option<String> {
        let key = self.key.trim();
        (1..=200).contains(&key.len()).then(|| key.to_owned())
    }
}

/// `GET /checkout`: the empty form beside the cart's totals.
pub(super) async fn form(State(state): State<AppState>, caller: Caller) -> PageResult {
    let fresh = CheckoutForm {
        key: uuid::Uuid::new_v4().to_string(),
        ..CheckoutForm::default()
    };
    render(&state, &caller, &fresh, &FieldErrors::new()).await
}

/// `POST /checkout`: places the order and shows it, or shows the form again with the messages.
pub(super) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Form(form): Form<CheckoutForm>,
) -> PageResult {
    let placed = match form.request().validate() {
        Ok(valid) => {
            let key = form.idempotency_key();
            crate::ordering::check_out(&state, caller.buyer, caller.address, valid, key).await
        }
        Err(errors) => Err(crate::Error::Validation(errors)),
    };
    match placed {
        Ok(order) => Ok(see_other(&format!("/orders/{}", order.id))),
        Err(crate::Error::Validation(errors) | crate::Error::Unprocessable(errors)) => {
            render(&state, &caller, &form, &errors).await
        }
        Err(crate::Error::Limited(Limit::UnpaidCheckouts {
            holder,
            limit,
            retry_after,
        })) => {
            let refusal = unpaid_refusal(holder, limit, retry_after);
            let words = FieldErrors::from([(REFUSED.to_owned(), vec![refusal])]);
            let mut page = render(&state, &caller, &form, &words).await?;
            *page.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            let wait = HeaderValue::from(retry_after.as_secs().max(1));
            page.headers_mut().insert(RETRY_AFTER, wait);
            Ok(page)
        }
        Err(other) => Err(other.into()),
    }
}

/// The key under which a refusal of the whole checkout is shown above the form.
const REFUSED: &str = "checkout";

/// A hoarding limit's refusal in the buyer's words: how many wait for payment, what to do and
/// when trying again will work.
fn unpaid_refusal(holder: Holder, limit: u32, retry_after: std::time::Duration) -> String {
    let orders = match limit {
        1 => "1 order".to_owned(),
        n => format!("{n} orders"),
    };
    let minutes = retry_after.as_secs().div_ceil(60).max(1);
    let when = match minutes {
        1 => "in about a minute".to_owned(),
        n => format!("in about {n} minutes"),
    };
    match holder {
        Holder::Buyer => format!(
            "You already have {orders} waiting for payment. Pay under Your orders, or try \
             again {when}, when the oldest one's payment window closes."
        ),
        Holder::Address => format!(
            "Your network has {orders} waiting for payment, as many as we hold for one \
             network at once. Try again {when}, when the oldest one's payment window closes."
        ),
    }
}

async fn render(
    state: &AppState,
    caller: &Caller,
    form: &CheckoutForm,
    errors: &FieldErrors,
) -> PageResult {
    let cart = cart_of(state, caller.buyer).await?;
    let chrome = Chrome::of(state, caller).await;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let main = html! {
        h1 { "Checkout" }
        @match &cart {
            None => section.panel {
                p { "Your cart is empty: add something before checking out." }
                p { a.button href="/" { "Start shopping" } }
            },
            Some(cart) => div.checkout {
                (fields(form, errors))
                (summary(cart))
            },
        }
    };
    Ok(super::page(status, layout::page("Checkout", &chrome, main)))
}

fn fields(form: &CheckoutForm, errors: &FieldErrors) -> Markup {
    let shown: Vec<&str> = FIELDS
        .iter()
        .flat_map(|(_, _, keys, _)| *keys)
        .copied()
        .collect();
    let general: Vec<&String> = errors
        .iter()
        .filter(|(key, _)| !shown.contains(&key.as_str()))
        .flat_map(|(_, messages)| messages)
        .collect();
    html! {
        form.checkout-form method="post" action="/checkout" novalidate {
            @if !errors.is_empty() {
                div.alert role="alert" {
                    @if errors.keys().any(|key| key != REFUSED) {
                        p { "Please correct the marked fields." }
                    }
                    @for message in &general { p { (super::capitalized(message)) } }
                }
            }
            input type="hidden" name="key" value=(form.key);
            @for (name, label, keys, autocomplete) in FIELDS {
                (field(name, label, autocomplete, form.value(name), messages(errors, keys)))
            }
            button.primary type="submit" { "Place order" }
        }
    }
}

/// The messages `errors` holds for any of `keys`.
fn messages<'a>(errors: &'a FieldErrors, keys: &[&str]) -> Vec<&'a String> {
    let mut found: Vec<&String> = Vec::new();
    for message in keys.iter().filter_map(|key| errors.get(*key)).flatten() {
        if !found.contains(&message) {
            found.push(message);
        }
    }
    found
}

fn field(
    name: &str,
    label: &str,
    autocomplete: &str,
    value: &str,
    messages: Vec<&String>,
) -> Markup {
    let error_id = format!("{name}-error");
    let kind = if name == "email" { "email" } else { "text" };
    let invalid = !messages.is_empty();
    html! {
        div.field {
            label for=(name) { (label) }
            input id=(name) name=(name) type=(kind) value=(value) autocomplete=(autocomplete)
                aria-invalid=[invalid.then_some("true")]
                aria-describedby=[invalid.then_some(&error_id)];
            @if invalid {
                p.error id=(error_id) { (sentences(&messages)) }
            }
        }
    }
}

/// Messages as one line, each starting with a capital.
fn sentences(messages: &[&String]) -> String {
    let capitalized: Vec<String> = messages.iter().map(|m| super::capitalized(m)).collect();
    capitalized.join(". ")
}

fn summary(cart: &CartView) -> Markup {
    html! {
        aside.summary aria-label="Order summary" {
            h2 { "Your order" }
            ul.plain {
                @for item in &cart.items {
                    li { (item.quantity) " × " (item.product_name) " " span.muted { (price(item.line_total)) } }
                }
            }
            (layout::totals(&layout::cart_totals(cart)))
            p { a href="/cart" { "Change the cart" } }
        }
    }
}
