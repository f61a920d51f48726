//! The toy saga's pure transitions without a database: the style every saga's unit tests
//! follow. One table names the outcome of every (state, event) pair; the tests after it check
//! the data and the messages of the accepted ones.

use std::time::Duration;

use bus::{Message, Outgoing};
use saga::{Engine, Rejected, Saga};
use uuid::Uuid;

use crate::helpers::{
    Bogus, Confirm, Declined, Noted, OrderEvent as E, OrderSaga, OrderState as S, Paid, Release,
    Reserved, Started, TimedOut,
};

const ID: Uuid = Uuid::from_u128(7);

fn saga() -> OrderSaga {
    OrderSaga {
        timeout: Duration::from_secs(60),
    }
}

fn started() -> E {
    E::Started(Started { id: ID })
}

fn reserved() -> E {
    E::Reserved(Reserved { id: ID })
}

fn paid() -> E {
    E::Paid(Paid { id: ID })
}

fn declined() -> E {
    E::Declined(Declined { id: ID })
}

fn timed_out() -> E {
    E::TimedOut(TimedOut { id: ID })
}

fn noted(note: u32) -> E {
    E::Noted(Noted { id: ID, note })
}

fn bogus() -> E {
    E::Bogus(Bogus { id: ID })
}

fn all_events() -> [E; 7] {
    [
        started(),
        reserved(),
        paid(),
        declined(),
        timed_out(),
        noted(1),
        bogus(),
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
    match saga().during(state, event) {
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
        ("Open", started(), Stale),
        ("Open", reserved(), to("Reserved", &["TimedOut"])),
        ("Open", paid(), Early),
        ("Open", declined(), Early),
        ("Open", timed_out(), Stale),
        ("Open", noted(1), to("Open", &[])),
        ("Open", bogus(), Invalid),
        ("Reserved", started(), Stale),
        ("Reserved", reserved(), Stale),
        ("Reserved", paid(), to("Confirmed", &["Confirm"])),
        ("Reserved", declined(), to("Failed", &["Release"])),
        ("Reserved", timed_out(), to("Failed", &["Release"])),
        ("Reserved", noted(1), to("Reserved", &[])),
        ("Reserved", bogus(), Invalid),
        ("Confirmed", started(), Stale),
        ("Confirmed", reserved(), Stale),
        ("Confirmed", paid(), Stale),
        ("Confirmed", declined(), Stale),
        ("Confirmed", timed_out(), Stale),
        ("Confirmed", noted(1), Stale),
        ("Confirmed", bogus(), Invalid),
        ("Failed", started(), Stale),
        ("Failed", reserved(), Stale),
        ("Failed", paid(), Stale),
        ("Failed", declined(), Stale),
        ("Failed", timed_out(), Stale),
        ("Failed", noted(1), Stale),
        ("Failed", bogus(), Invalid),
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
        assert_eq!(saga.is_start(&event), event == started());
    }
    assert_eq!(
        saga.initially(&started()),
        Ok((S::Open { notes: vec![] }, vec![]))
    );
    for event in all_events().into_iter().filter(|e| *e != started()) {
        assert!(matches!(saga.initially(&event), Err(Rejected::Invalid(_))));
    }
}

#[test]
fn reserving_schedules_the_timeout_after_the_configured_delay() {
    let (_, sent) = saga()
        .during(&S::Open { notes: vec![] }, &reserved())
        .unwrap();
    assert_eq!(
        sent,
        [Outgoing::publish(&TimedOut { id: ID }).after(Duration::from_secs(60))]
    );
}

#[test]
fn notes_accumulate_and_survive_until_confirmation() {
    let saga = saga();
    let (open, _) = saga.during(&S::Open { notes: vec![] }, &noted(1)).unwrap();
    let (reserved, _) = saga.during(&open, &reserved()).unwrap();
    let (reserved, _) = saga.during(&reserved, &noted(2)).unwrap();
    let (confirmed, sent) = saga.during(&reserved, &paid()).unwrap();
    assert_eq!(confirmed, S::Confirmed { notes: vec![1, 2] });
    assert_eq!(sent, [Outgoing::publish(&Confirm { id: ID })]);
}

#[test]
fn a_decline_or_a_timeout_fails_the_order_with_its_reason_and_releases_it() {
    for (event, reason) in [(declined(), "declined"), (timed_out(), "timed out")] {
        let (failed, sent) = saga()
            .during(&S::Reserved { notes: vec![3] }, &event)
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
    let subscriptions = Engine::consumer(saga()).subscriptions();
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
