//! The chrome around every page: head, header with search and cart count, footer; and small
//! pieces several pages share (prices, totals, availability, pictures).

use maud::{DOCTYPE, Markup, html};

use crate::cart::CartView;
use crate::http::Caller;
use crate::inventory::{LOW_STOCK, StockView};
use crate::money::Money;
use crate::ordering::domain::{TAX_PERCENT, Totals};
use crate::state::AppState;

/// What the header shows about the buyer.
#[derive(Debug, Default, Clone)]
pub(crate) struct Chrome {
    /// Units in the buyer's cart, for the header's count.
    pub cart_units: i64,
    /// The search box's text, kept after a search.
    pub search: String,
}

impl Chrome {
    /// The chrome for `caller`; a cart count that cannot be read shows as zero rather than
    /// failing the page.
    pub async fn of(state: &AppState, caller: &Caller) -> Self {
        let cart_units = crate::cart::units(state, caller.buyer)
            .await
            .unwrap_or_default();
        Self {
            cart_units,
            search: String::new(),
        }
    }
}

/// A whole page: `title` in the tab and `main` inside the chrome.
pub(crate) fn page(title: &str, chrome: &Chrome, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{title} · microcommerce"), &[], Some(super::assets::JS)))
            body {
                a.skip href="#main" { "Skip to content" }
                (header(chrome))
                main #main { (main) }
                footer.site-footer {
                    p { "microcommerce demo shop · payments are simulated · "
                        a href="/api/openapi.json" { "API" } }
                }
            }
        }
    }
}

/// The `<head>` every page has: `title` in the tab, the stylesheet and then `more_styles`, the
/// icon, and `script` when the page has one.
pub(crate) fn head(title: &str, more_styles: &[&str], script: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) }
            link rel="stylesheet" href=(super::assets::CSS);
            @for style in more_styles { link rel="stylesheet" href=(style); }
            link rel="icon" href=(super::assets::ICON) type="image/svg+xml";
            @if let Some(script) = script { script src=(script) defer {} }
        }
    }
}

fn header(chrome: &Chrome) -> Markup {
    let cart_label = match chrome.cart_units {
        1 => "1 item".to_owned(),
        units => format!("{units} items"),
    };
    html! {
        header.site-header {
            a.brand href="/" {
                img src=(super::assets::ICON) alt="" width="28" height="28";
                span { "microcommerce" }
            }
            form.search role="search" action="/" method="get" {
                label.visually-hidden for="search" { "Search products" }
                input #search type="search" name="q" value=(chrome.search)
                    placeholder="Search products";
                button type="submit" { "Search" }
            }
            nav aria-label="Account" {
                a href="/orders" { "My orders" }
                a.cart-link href="/cart" {
                    "Cart "
                    span #cart-count .count aria-label=(format!("Cart: {cart_label}")) {
                        (chrome.cart_units)
                    }
                }
            }
        }
    }
}

/// `$12.34`.
pub(crate) fn price(amount: Money) -> String {
    format!("${amount}")
}

/// What `cart` would cost as an order now: the checkout's own arithmetic.
pub(crate) fn cart_totals(cart: &CartView) -> Totals {
    Totals::of(
        cart.items
            .iter()
            .map(|item| (item.unit_price, u32::try_from(item.quantity).unwrap_or(0))),
    )
}

/// Subtotal, shipping, tax (with its rate) and total, as the cart and the checkout show them.
pub(crate) fn totals(totals: &Totals) -> Markup {
    html! {
        dl {
            dt { "Subtotal" } dd #subtotal { (price(totals.subtotal)) }
            dt { "Shipping" } dd { (price(totals.shipping)) }
            dt { "Tax (" (TAX_PERCENT) " %)" } dd { (price(totals.tax)) }
            dt { "Total" } dd.total { (price(totals.total)) }
        }
    }
}

/// In stock, low stock or out of stock, from the inventory's available units.
pub(crate) fn availability(stock: Option<&StockView>) -> Markup {
    let available = stock.map_or(0, |s| s.available_quantity);
    html! {
        @if available <= 0 {
            span.stock.out { "Out of stock" }
        } @else if available <= LOW_STOCK {
            span.stock.low { "Low stock: only " (available) " left" }
        } @else {
            span.stock.in { "In stock" }
        }
    }
}

/// The picture of a product of `category`: a drawing shipped in the binary.
pub(crate) fn picture(category: &str, size: u32) -> Markup {
    html! {
        img.picture src=(super::assets::picture_for(category)) alt="" width=(size) height=(size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_name_the_domains_tax_rate_and_show_its_numbers() {
        let totals = Totals::of([(Money(1000), 2)]);
        let text = super::totals(&totals).into_string();
        assert!(text.contains(&format!("Tax ({TAX_PERCENT} %)")), "{text}");
        for amount in [totals.subtotal, totals.shipping, totals.tax, totals.total] {
            assert!(text.contains(&price(amount)), "{amount} in {text}");
        }
    }
}
