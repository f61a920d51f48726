//! Dead letters for operators: grouped by what failed alike (one consumer, one error) with
//! their count and when they were first and last given up; a group's messages; one message
//! whole (envelope, attempts, error). Retry one, retry a group, purge a group — each after a
//! page that says what it will do.

use axum::extract::{Path, State};
use maud::{Markup, html};

use super::chrome::{self, Failure, Section, time};
use super::{ConsoleResult, Operator};
use crate::Error;
use crate::state::AppState;
use crate::web::see_other;

/// Messages shown on a group's page.
const GROUP_PAGE: u32 = 100;

/// `GET /admin/dead-letters`: the groups, most numerous first.
pub(super) async fn groups(_: Operator, State(state): State<AppState>) -> ConsoleResult {
    let groups = state.bus.dead_letter_groups().await?;
    let body = html! {
        h1 { "Dead letters" }
        @if groups.is_empty() {
            p #no-dead-letters { "None: every message was handled." }
        } @else {
            table #dead-letter-groups {
                thead { tr {
                    th scope="col" { "Consumer" } th scope="col" { "Error" } th.number scope="col" { "Messages" }
                    th scope="col" { "First" } th scope="col" { "Last" } th scope="col" { "Actions" }
                } }
                tbody {
                    @for group in &groups {
                        @let base = format!("/admin/dead-letters/groups/{}", group.sample_id);
                        tr {
                            td { (group.consumer) }
                            td { code.error-text { (group.error) } }
                            td.number { a href=(base) { (group.count) } }
                            td { (time(group.first_failed_at)) }
                            td { (time(group.last_failed_at)) }
                            td.actions {
                                a href=(format!("{base}/retry")) { "Retry all…" } " "
                                a href=(format!("{base}/purge")) { "Purge…" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(crate::web::page(
        axum::http::StatusCode::OK,
        chrome::page("Dead letters", Some(Section::DeadLetters), body),
    ))
}

/// `GET /admin/dead-letters/groups/{id}`: the messages that failed like dead letter `id`.
pub(super) async fn group(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id = letter_id(&id)?;
    let letters = state.bus.dead_letters_like(id, GROUP_PAGE).await?;
    let Some(first) = letters.first() else {
        return Err(Error::NotFound("dead letter").into());
    };
    let body = html! {
        h1 { "Dead letters of " (first.consumer) }
        p { code.error-text { (first.error) } }
        p { a.button href=(format!("/admin/dead-letters/groups/{id}/retry")) { "Retry all…" } " "
            a.button href=(format!("/admin/dead-letters/groups/{id}/purge")) { "Purge…" } }
        table #dead-letters {
            thead { tr {
                th scope="col" { "Dead letter" } th scope="col" { "Message" } th scope="col" { "Order" }
                th.number scope="col" { "Attempts" } th scope="col" { "Given up" }
            } }
            tbody {
                @for letter in &letters {
                    tr {
                        td { a href=(format!("/admin/dead-letters/{}", letter.id)) { "#" (letter.id) } }
                        td { (letter.message_type) }
                        td { a href=(format!("/admin/orders/{}", letter.correlation_id)) { (letter.correlation_id) } }
                        td.number { (letter.attempts) }
                        td { (time(letter.failed_at)) }
                    }
                }
            }
        }
    };
    Ok(crate::web::page(
        axum::http::StatusCode::OK,
        chrome::page("Dead letter group", Some(Section::DeadLetters), body),
    ))
}

/// `GET /admin/dead-letters/{id}`: one message whole.
pub(super) async fn letter(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id = letter_id(&id)?;
    let letter = state
        .bus
        .dead_letter(id)
        .await?
        .ok_or(Error::NotFound("dead letter"))?;
    let payload = serde_json::from_str::<serde_json::Value>(&letter.payload)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| letter.payload.clone());
    let body = html! {
        h1 { "Dead letter #" (letter.id) }
        p { a.button href=(format!("/admin/dead-letters/{id}/retry")) { "Retry…" } }
        dl.facts {
            dt { "Message" } dd { (letter.message_type) " " code { (letter.message_id) } }
            dt { "Consumer" } dd { (letter.consumer) }
            dt { "Order" } dd { a href=(format!("/admin/orders/{}", letter.correlation_id)) { (letter.correlation_id) } }
            @if let Some(cause) = letter.causation_id { dt { "Caused by" } dd { code { (cause) } } }
            dt { "Written" } dd { (time(letter.created_at)) }
            dt { "Given up" } dd { (time(letter.failed_at)) " after " (letter.attempts) " attempts" }
            @for (name, value) in &letter.headers { dt { "Header " (name) } dd { code { (value) } } }
        }
        h2 { "Error" }
        pre #error { (letter.error) }
        h2 { "Payload" }
        pre #payload { (payload) }
    };
    let title = format!("Dead letter #{id}");
    Ok(crate::web::page(
        axum::http::StatusCode::OK,
        chrome::page(&title, Some(Section::DeadLetters), body),
    ))
}

/// The dead letter id in a page's path; a malformed one is a dead letter that does not exist.
fn letter_id(text: &str) -> Result<i64, Failure> {
    text.parse()
        .map_err(|_| Error::NotFound("dead letter").into())
}

/// What an operator may do to dead letters, each asked for first.
#[derive(Debug, Clone, Copy)]
enum Action {
    RetryOne,
    RetryGroup,
    PurgeGroup,
}

impl Action {
    fn path(self, id: i64) -> String {
        match self {
            Self::RetryOne => format!("/admin/dead-letters/{id}/retry"),
            Self::RetryGroup => format!("/admin/dead-letters/groups/{id}/retry"),
            Self::PurgeGroup => format!("/admin/dead-letters/groups/{id}/purge"),
        }
    }

    fn question(self, count: u64) -> (String, &'static str, Markup) {
        match self {
            Self::RetryOne => (
                "Retry this dead letter?".into(),
                "Retry it",
                html! { p { "The message goes back to its consumer's queue under its own id, with a
                fresh count of attempts. If its cause is not fixed it fails again." } },
            ),
            Self::RetryGroup => (
                format!("Retry {}?", letters(count)),
                "Retry them all",
                html! { p { "Every message of the group goes back to its consumer's queue, in one
                transaction. Fix the cause first, or they fail again." } },
            ),
            Self::PurgeGroup => (
                format!("Purge {}?", letters(count)),
                "Purge them",
                html! { p { "Every message of the group is deleted for good; the checkouts they
                belonged to will not move on through them." } },
            ),
        }
    }

    async fn run(self, state: &AppState, id: i64) -> Result<u64, bus::BusError> {
        match self {
            Self::RetryOne => state.bus.retry_dead_letter(id).await.map(u64::from),
            Self::RetryGroup => state.bus.retry_dead_letters_like(id).await,
            Self::PurgeGroup => state.bus.purge_dead_letters_like(id).await,
        }
    }
}

/// `1 dead letter`, `2 dead letters`.
fn letters(count: u64) -> String {
    match count {
        1 => "1 dead letter".into(),
        n => format!("{n} dead letters"),
    }
}

/// The confirmation page of `action` on dead letter (or group of) `id`.
async fn ask(state: &AppState, action: Action, id: i64) -> ConsoleResult {
    let count = match action {
        Action::RetryOne => u64::from(state.bus.dead_letter(id).await?.is_some()),
        Action::RetryGroup | Action::PurgeGroup => state.bus.count_dead_letters_like(id).await?,
    };
    if count == 0 {
        return Err(Error::NotFound("dead letter").into());
    }
    let (title, button, explanation) = action.question(count);
    Ok(chrome::confirmation(
        &title,
        Section::DeadLetters,
        explanation,
        &action.path(id),
        button,
        "/admin/dead-letters",
    ))
}

/// Runs `action` on `id`, then back to the groups.
async fn act(state: &AppState, action: Action, id: i64) -> ConsoleResult {
    match action.run(state, id).await? {
        0 => Err(Error::NotFound("dead letter").into()),
        _ => Ok(see_other("/admin/dead-letters")),
    }
}

/// `GET /admin/dead-letters/{id}/retry`.
pub(super) async fn ask_retry(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id = letter_id(&id)?;
    ask(&state, Action::RetryOne, id).await
}

/// `POST /admin/dead-letters/{id}/retry`.
pub(super) async fn retry(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id = letter_id(&id)?;
    act(&state, Action::RetryOne, id).await
}

/// `GET /admin/dead-letters/groups/{id}/retry`.
pub(super) async fn ask_retry_group(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id = letter_id(&id)?;
    ask(&state, Action::RetryGroup, id).await
}

/// `POST /admin/dead-letters/groups/{id}/retry`.
pub(super) async fn retry_group(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id = letter_id(&id)?;
    act(&state, Action::RetryGroup, id).await
}

/// `GET /admin/dead-letters/groups/{id}/purge`.
pub(super) async fn ask_purge_group(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id = letter_id(&id)?;
    ask(&state, Action::PurgeGroup, id).await
}

/// `POST /admin/dead-letters/groups/{id}/purge`.
pub(super) async fn purge_group(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id = letter_id(&id)?;
    act(&state, Action::PurgeGroup, id).await
}
