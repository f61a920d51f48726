//! The dashboard: the shop and its machinery at a glance. Orders by status and revenue,
//! checkouts per minute over the last hour (an inline SVG chart), why checkouts failed, the
//! message queue's depth and lag, and the dead letters waiting for someone.

use axum::extract::State;
use axum::http::StatusCode;
use maud::{Markup, html};

use super::chrome::{self, Section};
use super::{ConsoleResult, Operator};
use crate::ordering::{self, Dashboard, OrderStatus};
use crate::state::AppState;
use crate::web::layout::price;

/// Minutes the checkout chart covers.
const CHART_MINUTES: u32 = 60;

/// `GET /admin`.
pub(super) async fn page(_: Operator, State(state): State<AppState>) -> ConsoleResult {
    let now = state.db.now();
    let shop = ordering::dashboard(&state).await?;
    let per_minute = ordering::orders_per_minute(&state, now, CHART_MINUTES).await?;
    let reasons = ordering::failure_reasons(&state).await?;
    let queue = state.bus.queue_depth().await?;
    let dead_letters = state.bus.dead_letter_count().await?;
    let body = html! {
        h1 { "Dashboard" }
        div.tiles {
            (tile("Orders", &shop.total_orders.to_string()))
            (tile("Revenue", &price(shop.revenue)))
            (tile("Orders today", &shop.todays_orders.to_string()))
            (tile("Queue due", &queue.due.to_string()))
            (tile("Oldest due message", &queue.oldest_due_at.map_or("none".into(), |at| chrome::span(at, now))))
            (tile("Scheduled messages", &queue.scheduled.to_string()))
            (tile("Dead letters", &dead_letters.to_string()))
        }
        section.panel {
            h2 #chart-title { "Checkouts per minute, last hour" }
            (chart(&per_minute))
        }
        div.columns {
            section.panel { h2 { "Orders by status" } (by_status(&shop)) }
            section.panel { h2 { "Why checkouts failed" } (failures(&reasons)) }
        }
    };
    Ok(crate::web::page(
        StatusCode::OK,
        chrome::page("Dashboard", Some(Section::Dashboard), body),
    ))
}

fn tile(label: &str, value: &str) -> Markup {
    html! {
        div.tile { span.tile-label { (label) } strong.tile-value { (value) } }
    }
}

fn by_status(shop: &Dashboard) -> Markup {
    html! {
        table #by-status {
            thead { tr { th scope="col" { "Status" } th.number scope="col" { "Orders" } } }
            tbody {
                @for status in OrderStatus::ALL.iter().map(|status| status.as_str()) {
                    @let count = shop.counts_by_status.get(status).copied().unwrap_or(0);
                    tr {
                        th scope="row" { a href=(format!("/admin/orders?status={status}")) { (status) } }
                        td.number { (count) }
                    }
                }
            }
        }
    }
}

fn failures(reasons: &[(String, i64)]) -> Markup {
    html! {
        @if reasons.is_empty() {
            p { "No checkout has failed." }
        } @else {
            table #failure-reasons {
                thead { tr { th scope="col" { "Reason" } th.number scope="col" { "Orders" } } }
                tbody {
                    @for (reason, count) in reasons {
                        tr { td { (reason) } td.number { (count) } }
                    }
                }
            }
        }
    }
}

/// Chart geometry: the drawing's size in its own units, stretched to the panel's width.
const WIDTH: i64 = 600;
const HEIGHT: i64 = 120;

/// A bar per minute, oldest on the left, scaled to the busiest minute; the peak is written
/// under it and each bar says its count in a tooltip, for those who cannot see it.
fn chart(per_minute: &[i64]) -> Markup {
    let most = per_minute.iter().copied().max().unwrap_or(0).max(1);
    let slot = WIDTH / i64::try_from(per_minute.len().max(1)).unwrap_or(1);
    let total: i64 = per_minute.iter().sum();
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) preserveAspectRatio="none"
            role="img" aria-labelledby="chart-title chart-summary" {
            desc #chart-summary { (total) " checkouts in the last hour; the busiest minute had " (most) "." }
            line.axis x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) {}
            @for (minute, count) in per_minute.iter().enumerate() {
                @let height = count * HEIGHT / most;
                @let ago = per_minute.len() - minute;
                rect.bar x=(i64::try_from(minute).unwrap_or(0) * slot + 1) y=(HEIGHT - height)
                    width=((slot - 2).max(1)) height=(height) {
                    title { (count) " checkouts " (ago) " min ago" }
                }
            }
        }
        p.chart-axis { span { (per_minute.len()) " min ago" } span { "now · peak " (most) "/min" } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_draws_a_bar_per_minute_scaled_to_the_busiest() {
        let svg = chart(&[0, 5, 10]).into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(
            svg.contains(&format!("height=\"{HEIGHT}\"")),
            "the busiest fills it: {svg}"
        );
        assert!(svg.contains("15 checkouts in the last hour"), "{svg}");
    }

    #[test]
    fn an_empty_hour_draws_flat_bars_without_dividing_by_zero() {
        let svg = chart(&[0; 60]).into_string();
        assert_eq!(svg.matches("height=\"0\"").count(), 60);
    }
}
