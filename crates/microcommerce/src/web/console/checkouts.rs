//! The checkout, drawn live from its declaration (never a hand-drawn copy): its states with the
//! checkouts in each now, its moves with the times they were taken in the last hour; a state's
//! count opens the list of its checkouts. And those lists: by state, or stuck (not moved for
//! `--stuck-after`), least recently moved first, each with why it waits.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

use super::chrome::{self, Section, length, span, time};
use super::{ConsoleResult, Operator, url_encoded};
use crate::Error;
use crate::ordering::{self, Census, CheckoutQuery, CheckoutSummary, Waiting};
use crate::state::AppState;

/// The window the diagram counts moves over.
const WINDOW: Duration = Duration::from_secs(60 * 60);

/// Checkouts on one page of a list.
const PAGE_SIZE: u32 = 50;

/// `GET /admin/checkout`: the diagram with its numbers, and the same numbers as tables.
pub(super) async fn diagram(_: Operator, State(state): State<AppState>) -> ConsoleResult {
    let census = ordering::census(&state, WINDOW).await?;
    let body = html! {
        h1 { "The checkout, live" }
        p.hint { "Drawn from the checkout's declaration. Counts are checkouts in each state now
                  (finished ones until they are pruned); numbers on the arrows are moves taken
                  in the last hour." }
        section.panel { (drawing(&census)) }
        div.columns {
            section.panel { h2 { "Checkouts by state" } (state_table(&census)) }
            section.panel { h2 { "Moves in the last hour" } (move_table(&census)) }
        }
    };
    Ok(crate::web::page(
        StatusCode::OK,
        chrome::page("Checkout", Some(Section::Checkout), body),
    ))
}

fn state_href(state: &str) -> String {
    format!("/admin/checkouts?state={}", url_encoded(state))
}

fn state_table(census: &Census) -> Markup {
    html! {
        table #state-counts {
            thead { tr { th scope="col" { "State" } th.number scope="col" { "Checkouts" } } }
            tbody {
                @for count in &census.states {
                    tr {
                        th scope="row" { (count.state) @if count.is_final { " (final)" } }
                        td.number { a href=(state_href(count.state)) data-state=(count.state) { (count.count) } }
                    }
                }
            }
        }
    }
}

fn move_table(census: &Census) -> Markup {
    html! {
        table #move-counts {
            thead { tr {
                th scope="col" { "From" } th scope="col" { "Event" } th scope="col" { "To" }
                th.number scope="col" { "Taken" }
            } }
            tbody {
                @for taken in &census.moves {
                    tr {
                        td { (taken.from.unwrap_or("(start)")) } td { (taken.event) } td { (taken.to) }
                        td.number { (taken.count) }
                    }
                }
            }
        }
    }
}

/// Drawing geometry, in the drawing's own units.
const COLUMN: i64 = 380;
const ROW: i64 = 150;
const BOX_WIDTH: i64 = 170;
const BOX_HEIGHT: i64 = 60;
const MARGIN: i64 = 30;
/// Room between the start's dot and the first column, for the starting event's label.
const START_GAP: i64 = 240;

/// Where each state stands: its column is the length of the longest way to it from the start
/// (so every move runs left to right), its row its place among the states of that column.
fn layout(census: &Census) -> BTreeMap<&'static str, (i64, i64)> {
    let mut column: BTreeMap<&'static str, i64> = BTreeMap::new();
    // Longest paths by relaxing every move, as many rounds as there are states (no cycles in a
    // checkout; a cycle would just stop growing after that many rounds).
    for _ in 0..=census.states.len() {
        for taken in &census.moves {
            let from = taken
                .from
                .map_or(0, |from| column.get(from).copied().unwrap_or(1));
            let to = column.entry(taken.to).or_insert(1);
            *to = (*to)
                .max(from + 1)
                .min(i64::try_from(census.states.len()).unwrap_or(1));
        }
    }
    let mut rows: BTreeMap<i64, i64> = BTreeMap::new();
    census
        .states
        .iter()
        .map(|count| {
            let col = column.get(count.state).copied().unwrap_or(1);
            let row = rows.entry(col).or_insert(0);
            *row += 1;
            (count.state, (col, *row - 1))
        })
        .collect()
}

fn box_left(place: (i64, i64)) -> (i64, i64) {
    (
        MARGIN + START_GAP + (place.0 - 1) * COLUMN,
        MARGIN + place.1 * ROW,
    )
}

/// The diagram as inline SVG: a dot for the start, a box per state (a link to its checkouts),
/// an arrow per pair of states labelled with each event and its count.
fn drawing(census: &Census) -> Markup {
    let places = layout(census);
    let columns = places.values().map(|p| p.0).max().unwrap_or(1);
    let rows = places.values().map(|p| p.1).max().unwrap_or(0) + 1;
    let width = box_left((columns, 0)).0 + BOX_WIDTH + MARGIN;
    let height = MARGIN * 2 + (rows - 1) * ROW + BOX_HEIGHT + 40;
    let mut arrows: BTreeMap<(Option<&str>, &str), Vec<String>> = BTreeMap::new();
    for taken in &census.moves {
        let label = format!("{} · {}", taken.event, taken.count);
        arrows
            .entry((taken.from, taken.to))
            .or_default()
            .push(label);
    }
    html! {
        svg.diagram viewBox=(format!("0 0 {width} {height}")) role="img" aria-labelledby="diagram-title" {
            title #diagram-title { "The checkout's states and moves, with their counts" }
            defs {
                marker #arrowhead viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" {}
                }
            }
            circle.start cx=(MARGIN) cy=(MARGIN + BOX_HEIGHT / 2) r="8" {}
            @for ((from, to), labels) in &arrows {
                (arrow(&places, *from, to, labels))
            }
            @for count in &census.states {
                @let (x, y) = box_left(places[count.state]);
                a href=(state_href(count.state)) {
                    rect.state.final[count.is_final] x=(x) y=(y) width=(BOX_WIDTH) height=(BOX_HEIGHT) rx="8" {}
                    text.state-name x=(x + BOX_WIDTH / 2) y=(y + 24) text-anchor="middle" { (count.state) }
                    text.state-count x=(x + BOX_WIDTH / 2) y=(y + 48) text-anchor="middle" { (count.count) }
                }
            }
        }
    }
}

/// One arrow from `from` (the start when `None`) to `to`, with its labels above its middle.
/// An arrow that skips a column bends below the states between.
fn arrow(
    places: &BTreeMap<&'static str, (i64, i64)>,
    from: Option<&str>,
    to: &str,
    labels: &[String],
) -> Markup {
    let start = match from.and_then(|from| places.get(from)) {
        Some(place) => {
            let (x, y) = box_left(*place);
            (x + BOX_WIDTH, y + BOX_HEIGHT / 2)
        }
        None => (MARGIN + 8, MARGIN + BOX_HEIGHT / 2),
    };
    let target = places.get(to).copied().unwrap_or((1, 0));
    let (tx, ty) = box_left(target);
    let end = (tx, ty + BOX_HEIGHT / 2);
    let skips = from
        .and_then(|from| places.get(from))
        .is_some_and(|place| target.0 - place.0 > 1);
    let (mx, my) = ((start.0 + end.0) / 2, (start.1 + end.1) / 2);
    let bend = if skips { ROW / 2 } else { 0 };
    let path = format!(
        "M {} {} Q {mx} {} {} {}",
        start.0,
        start.1,
        my + bend * 2,
        end.0,
        end.1
    );
    let label_y = my + bend - 8 - 14 * i64::try_from(labels.len().saturating_sub(1)).unwrap_or(0);
    html! {
        path.move d=(path) marker-end="url(#arrowhead)" {}
        @for (line, label) in labels.iter().enumerate() {
            text.move-label x=(mx) y=(label_y + 14 * i64::try_from(line).unwrap_or(0)) text-anchor="middle" { (label) }
        }
    }
}

/// The list's query as the links and the form send it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    stuck: bool,
    #[serde(default)]
    after: String,
}

/// `GET /admin/checkouts` (`?state=…`, `?stuck=true`): the checkouts, least recently moved
/// first, each with why it waits.
pub(super) async fn list(
    _: Operator,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ConsoleResult {
    let after = match query.after.trim() {
        "" => None,
        text => Some(text.parse::<saga::Position>().map_err(Error::BadRequest)?),
    };
    let wanted = CheckoutQuery {
        state: Some(query.state.trim().to_owned()).filter(|s| !s.is_empty()),
        stuck: query.stuck,
        after,
        limit: PAGE_SIZE,
    };
    let page = ordering::list_checkouts(&state, &wanted).await?;
    let now = state.db.now();
    let title = match (&wanted.state, query.stuck) {
        (_, true) => format!(
            "Stuck checkouts (not moved for {})",
            length(state.config.stuck_after)
        ),
        (Some(name), false) => format!("Checkouts in {name}"),
        (None, false) => "Checkouts".to_owned(),
    };
    let section = if query.stuck {
        Section::Stuck
    } else {
        Section::Checkout
    };
    let next = page.next.as_ref().map(|next| {
        let mut href = format!("/admin/checkouts?after={next}");
        if let Some(name) = &wanted.state {
            href.push_str(&format!("&state={}", url_encoded(name)));
        }
        if query.stuck {
            href.push_str("&stuck=true");
        }
        href
    });
    let body = html! {
        h1 { (title) }
        @if page.items.is_empty() {
            p #no-checkouts { "None." }
        } @else {
            table #checkouts {
                thead { tr {
                    th scope="col" { "Order" } th scope="col" { "State" } th scope="col" { "Last moved" }
                    th scope="col" { "Why it waits" } th scope="col" { "" }
                } }
                tbody {
                    @for checkout in &page.items { (row(checkout, now)) }
                }
            }
        }
        @if let Some(next) = next {
            nav.pager aria-label="Pages" { a rel="next" href=(next) { "More" } }
        }
    };
    Ok(crate::web::page(
        StatusCode::OK,
        chrome::page(&title, Some(section), body),
    ))
}

fn row(checkout: &CheckoutSummary, now: storage::Timestamp) -> Markup {
    let order = format!("/admin/orders/{}", checkout.order_id);
    html! {
        tr {
            td { a href=(order) { "Order" } }
            td { (checkout.state) }
            td { (time(checkout.last_moved)) " (" (span(checkout.last_moved, now)) " ago)" }
            td { (why(&checkout.waiting)) }
            td {
                @if matches!(checkout.waiting, Waiting::Payment { .. }) {
                    a href=(format!("{order}/cancel")) { "Cancel…" }
                }
            }
        }
    }
}

fn why(waiting: &Waiting) -> Markup {
    html! {
        @match waiting {
            Waiting::DeadLetter { message_type, consumer, error, .. } =>
                { "A dead letter: " (message_type) " failed for good in " (consumer) ": " (error) },
            Waiting::Retrying { message_type, attempts, error } =>
                { (message_type) " in retry after " (attempts) " attempts" @if let Some(error) = error { ": " (error) } },
            Waiting::Payment { deadline } => { "Awaiting payment until " (deadline) },
            Waiting::Queued { message_type } => { (message_type) " is queued" },
            Waiting::Finished => { "Finished" },
            Waiting::Unknown => { "Nothing is on its way; see its timeline" },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ordering::{MoveCount, StateCount};

    fn census() -> Census {
        let state = |state, is_final| StateCount {
            state,
            is_final,
            count: 0,
        };
        let taken = |from, event, to| MoveCount {
            from,
            event,
            to,
            count: 2,
        };
        Census {
            states: vec![
                state("A", false),
                state("B", false),
                state("Done", true),
                state("Off", true),
            ],
            moves: vec![
                taken(None, "Go", "A"),
                taken(Some("A"), "Next", "B"),
                taken(Some("A"), "Short", "Off"),
                taken(Some("B"), "Paid", "Done"),
                taken(Some("B"), "Late", "Off"),
            ],
            window_seconds: 3600,
        }
    }

    #[test]
    fn states_stand_in_columns_by_their_longest_way_from_the_start() {
        let places = layout(&census());
        assert_eq!(places["A"], (1, 0));
        assert_eq!(places["B"], (2, 0));
        assert_eq!(places["Done"], (3, 0));
        assert_eq!(
            places["Off"],
            (3, 1),
            "below Done, though A reaches it directly"
        );
    }

    #[test]
    fn the_drawing_has_a_box_per_state_and_an_arrow_per_pair() {
        let svg = drawing(&census()).into_string();
        assert_eq!(svg.matches("<rect").count(), 4);
        assert_eq!(svg.matches("<path class=\"move\"").count(), 5);
        assert!(svg.contains("Late · 2"), "{svg}");
        assert!(svg.contains("href=\"/admin/checkouts?state=Off\""));
    }
}
