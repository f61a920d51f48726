//! The toy saga's pure transitions without a database: the style every saga's unit tests
//! follow. One table names the outcome of every (state, event) pair; the tests after it check
//! the data and the messages of the accepted ones.

use std::time::Duration;

use bus::{Message, Outgoing};
use saga::{Rejected, Saga};
use uuid::Uuid;

use crate::helpers::{Confirm, OrderEvent as E, OrderSaga, OrderState as S, Release, TimedOut};

const ID: Uuid = Uuid::from_u128(7);

fn saga() -> OrderSaga {
    OrderSaga {
        timeout: Duration::from_secs(60),
    }
}

fn ev(kind: E) -> (Uuid, E) {
    (ID, kind)
}

fn all_events() -> [E; 7] {
    [
        E::Started,
        E::Reserved,
        E::Paid,
        E::Declined,
        E::TimedOut,
        E::Noted(1),
        E::Bogus,
    ]
}

fn all_states() -> [S; 4] {
    [
        S::Open { notes: vec![] },
        S::Reserved { notes: vec![] },
        S::Confirmed { notes: vec![] },
        S::Failed { reason: "x".into() },
    ]
}

/// What a transition did, reduced to what the table compares.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Accepted: the new state's name and the types of the messages sent.
    To(&'static str, Vec<&'static str>),
    Early,
    Stale,
    Invalid,
}

fn outcome(state: &S, event: &E) -> Outcome {
    match saga().during(state, &ev(event.clone())) {
        Ok((next, sent)) => Outcome::To(
            OrderSaga::state_name(&next),
            sent.iter().map(|m| m.message_type).collect(),
        ),
        Err(Rejected::Early) => Outcome::Early,
        Err(Rejected::Stale(_)) => Outcome::Stale,
        Err(Rejected::Invalid(_)) => Outcome::Invalid,
    }
}

#[test]
fn every_state_and_event_pair_has_the_outcome_the_table_names() {
    use Outcome::{Early, Invalid, Stale, To};
    let to = |state, sent: &[&'static str]| To(state, sent.to_vec());
    let table = [
        ("Open", E::Started, Stale),
        ("Open", E::Reserved, to("Reserved", &["TimedOut"])),
        ("Open", E::Paid, Early),
        ("Open", E::Declined, Early),
        ("Open", E::TimedOut, Stale),
        ("Open", E::Noted(1), to("Open", &[])),
        ("Open", E::Bogus, Invalid),
        ("Reserved", E::Started, Stale),
        ("Reserved", E::Reserved, Stale),
        ("Reserved", E::Paid, to("Confirmed", &["Confirm"])),
        ("Reserved", E::Declined, to("Failed", &["Release"])),
        ("Reserved", E::TimedOut, to("Failed", &["Release"])),
        ("Reserved", E::Noted(1), to("Reserved", &[])),
        ("Reserved", E::Bogus, Invalid),
        ("Confirmed", E::Started, Stale),
        ("Confirmed", E::Reserved, Stale),
        ("Confirmed", E::Paid, Stale),
        ("Confirmed", E::Declined, Stale),
        ("Confirmed", E::TimedOut, Stale),
        ("Confirmed", E::Noted(1), Stale),
        ("Confirmed", E::Bogus, Invalid),
        ("Failed", E::Started, Stale),
        ("Failed", E::Reserved, Stale),
        ("Failed", E::Paid, Stale),
        ("Failed", E::Declined, Stale),
        ("Failed", E::TimedOut, Stale),
        ("Failed", E::Noted(1), Stale),
        ("Failed", E::Bogus, Invalid),
    ];
    assert_eq!(table.len(), all_states().len() * all_events().len());
    for state in all_states() {
        for event in all_events() {
            let name = OrderSaga::state_name(&state);
            let (_, _, expected) = table
                .iter()
                .find(|(s, e, _)| *s == name && *e == event)
                .unwrap_or_else(|| panic!("the table misses {event:?} in {name}"));
            assert_eq!(&outcome(&state, &event), expected, "{event:?} in {name}");
        }
    }
}

#[test]
fn only_started_starts_an_order_and_it_opens_empty() {
    let saga = saga();
    for event in all_events() {
        assert_eq!(saga.is_start(&ev(event.clone())), event == E::Started);
    }
    assert_eq!(
        saga.initially(&ev(E::Started)),
        Ok((S::Open { notes: vec![] }, vec![]))
    );
    for event in all_events().into_iter().filter(|e| *e != E::Started) {
        assert!(matches!(
            saga.initially(&ev(event)),
            Err(Rejected::Invalid(_))
        ));
    }
}

#[test]
fn reserving_schedules_the_timeout_after_the_configured_delay() {
    let (_, sent) = saga()
        .during(&S::Open { notes: vec![] }, &ev(E::Reserved))
        .unwrap();
    assert_eq!(
        sent,
        [Outgoing::publish(&TimedOut { id: ID }).after(Duration::from_secs(60))]
    );
}

#[test]
fn notes_accumulate_and_survive_until_confirmation() {
    let saga = saga();
    let (open, _) = saga
        .during(&S::Open { notes: vec![] }, &ev(E::Noted(1)))
        .unwrap();
    let (reserved, _) = saga.during(&open, &ev(E::Reserved)).unwrap();
    let (reserved, _) = saga.during(&reserved, &ev(E::Noted(2))).unwrap();
    let (confirmed, sent) = saga.during(&reserved, &ev(E::Paid)).unwrap();
    assert_eq!(confirmed, S::Confirmed { notes: vec![1, 2] });
    assert_eq!(sent, [Outgoing::publish(&Confirm { id: ID })]);
}

#[test]
fn a_decline_or_a_timeout_fails_the_order_with_its_reason_and_releases_it() {
    for (event, reason) in [(E::Declined, "declined"), (E::TimedOut, "timed out")] {
        let (failed, sent) = saga()
            .during(&S::Reserved { notes: vec![3] }, &ev(event))
            .unwrap();
        assert_eq!(
            failed,
            S::Failed {
                reason: reason.into()
            }
        );
        assert_eq!(sent, [Outgoing::publish(&Release { id: ID })]);
    }
}

#[test]
fn exactly_the_confirmed_and_failed_states_are_final() {
    let finals: Vec<_> = all_states()
        .iter()
        .filter(|s| OrderSaga::is_final(s))
        .map(OrderSaga::state_name)
        .collect();
    assert_eq!(finals, ["Confirmed", "Failed"]);
}

#[test]
fn the_saga_subscribes_to_every_event_it_decodes() {
    let subscriptions = saga().subscriptions();
    for message_type in [
        "Started", "Reserved", "Paid", "Declined", "TimedOut", "Noted", "Bogus",
    ] {
        assert!(subscriptions.contains(&message_type), "{message_type}");
    }
    assert!(
        !subscriptions.contains(&Confirm::TYPE),
        "it does not hear itself"
    );
}
