//! A product's stock on its console page: the level (on hand, reserved, available), the form
//! that adjusts it (a signed number of units and the reason, which the console asks for always),
//! and the adjustments made so far, newest first, a page at a time.

use axum::extract::{Path, State};
use maud::{Markup, html};
use serde::Deserialize;

use super::chrome::{page_request, pager, time_of};
use super::product::{product_href, product_id, to_product};
use super::{ConsoleResult, Operator};
use crate::Error;
use crate::domain::BoundedText;
use crate::error::FieldErrors;
use crate::ids::ProductId;
use crate::inventory::{self, AdjustmentView, StockView};
use crate::state::AppState;
use crate::web::{Form, see_other};

/// Adjustments on one page of the history.
const PAGE_SIZE: u32 = 20;

/// The longest reason the inventory keeps, in characters.
const MAX_REASON: usize = 500;

/// Which page of the history to show.
#[derive(Debug, Default, Deserialize)]
pub(super) struct HistoryQuery {
    #[serde(default)]
    page: String,
}

/// The stock panel of `product`'s page, with page `query` of its history.
pub(super) async fn panel(
    state: &AppState,
    product: ProductId,
    query: &HistoryQuery,
) -> Result<Markup, Error> {
    let page = page_request(&query.page, PAGE_SIZE)?;
    let level = inventory::stock_level(state, product).await?;
    let history = inventory::adjustment_history(state, product, page).await?;
    let href = |page: u32| format!("{}?page={page}#history", product_href(product));
    Ok(html! {
        section.panel #stock aria-labelledby="stock-title" {
            h2 #stock-title { "Stock" }
            (level_facts(&level))
            (adjust_form(product))
            h3 #history { "Adjustments" }
            p.hint { "Units sold leave through the checkouts' reservations, not as adjustments." }
            @if history.items.is_empty() {
                p #no-adjustments { "No adjustment yet." }
            } @else {
                (history_table(&history.items))
            }
            (pager(&history, href, "Pages of adjustments"))
        }
    })
}

fn level_facts(level: &StockView) -> Markup {
    html! {
        dl.facts #stock-level {
            dt { "On hand" } dd #on-hand { (level.quantity_on_hand) }
            dt { "Reserved" } dd #reserved { (level.reserved_quantity) }
            dt { "Available" } dd #available {
                (level.available_quantity)
                @if !level.is_in_stock { " (out of stock)" }
                @else if level.is_low_stock { " (low)" }
            }
        }
    }
}

fn adjust_form(product: ProductId) -> Markup {
    html! {
        form.adjust-form method="post" action=(format!("{}/stock", product_href(product))) {
            h3 { "Adjust stock" }
            div.field {
                label for="units" { "Units" }
                input #units name="adjustment" required inputmode="numeric" pattern="[+\\-]?[0-9]+"
                    aria-describedby="units-hint";
                p.hint #units-hint { "A positive number adds to what is on hand, a negative one removes." }
            }
            div.field {
                label for="reason" { "Reason" }
                input #reason name="reason" required maxlength=(MAX_REASON)
                    placeholder="Delivery from the supplier";
            }
            button.button type="submit" { "Adjust stock" }
        }
    }
}

fn history_table(history: &[AdjustmentView]) -> Markup {
    html! {
        table #adjustments {
            thead { tr {
                th scope="col" { "When" } th.number scope="col" { "Change" }
                th.number scope="col" { "On hand after" } th scope="col" { "Reason" }
                th scope="col" { "By" }
            } }
            tbody {
                @for entry in history {
                    tr {
                        td { (time_of(&entry.at)) }
                        td.number { @if entry.adjustment > 0 { "+" } (entry.adjustment) }
                        td.number { (entry.quantity_after) }
                        td { (entry.reason.as_deref().unwrap_or("–")) }
                        td { (entry.adjusted_by) }
                    }
                }
            }
        }
    }
}

/// The adjust form's fields, as text.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AdjustForm {
    #[serde(default)]
    adjustment: String,
    #[serde(default)]
    reason: String,
}

impl AdjustForm {
    /// The units and the reason, both checked and both reported at once; the inventory checks
    /// the rest (never zero, within its bound, never below what is held).
    fn parse(&self) -> Result<(i64, String), Error> {
        let mut errors = FieldErrors::new();
        let text = self.adjustment.trim();
        let units = text
            .strip_prefix('+')
            .unwrap_or(text)
            .parse::<i64>()
            .map_err(|_| {
                let message =
                    format!("must be a whole number of units like 12 or -3, not {text:?}");
                errors.insert("adjustment".into(), vec![message]);
            })
            .ok();
        let reason = BoundedText::<MAX_REASON>::parse(&self.reason)
            .map_err(|refused| {
                errors.insert("reason".into(), vec![refused.to_string()]);
            })
            .ok();
        match (units, reason) {
            (Some(units), Some(reason)) => Ok((units, reason.into())),
            _ => Err(Error::Validation(errors)),
        }
    }
}

/// `POST /admin/catalog/products/{id}/stock`: the stock adjusted with its reason, back to the
/// product's stock.
pub(super) async fn adjust(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<AdjustForm>,
) -> ConsoleResult {
    let id = product_id(&id)?;
    let (units, reason) = form.parse().map_err(to_product(id))?;
    inventory::adjust_stock(&state, id, units, Some(reason))
        .await
        .map_err(to_product(id))?;
    Ok(see_other(&format!("{}#stock", product_href(id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(adjustment: &str, reason: &str) -> AdjustForm {
        AdjustForm {
            adjustment: adjustment.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn units_are_signed_whole_numbers_and_a_reason_is_required() {
        assert_eq!(
            form(" +12 ", " Delivery ").parse().unwrap(),
            (12, "Delivery".into())
        );
        assert_eq!(form("-3", "Broken").parse().unwrap().0, -3);
        let Err(Error::Validation(errors)) = form("1.5", " ").parse() else {
            panic!("refused");
        };
        assert_eq!(
            errors.keys().collect::<Vec<_>>(),
            ["adjustment", "reason"],
            "both reported at once"
        );
        assert!(form("5", &"r".repeat(501)).parse().is_err());
    }
}
