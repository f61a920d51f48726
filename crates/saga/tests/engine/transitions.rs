//! The toy saga's pure transitions, every (state, event) pair, without a database: the style
//! every saga's unit tests follow.

use std::time::Duration;

use bus::Delivery;
use saga::{Rejected, Saga};
use uuid::Uuid;

use crate::helpers::{OrderEvent as E, OrderSaga, OrderState as S};

fn saga() -> OrderSaga {
    OrderSaga {
        timeout: Duration::from_secs(60),
    }
}

fn ev(kind: E) -> (Uuid, E) {
    (Uuid::from_u128(7), kind)
}

fn all_events() -> Vec<E> {
    vec![
        E::Started,
        E::Reserved,
        E::Paid,
        E::Declined,
        E::TimedOut,
        E::Noted(1),
        E::Bogus,
    ]
}

#[test]
fn only_started_starts_and_opens_the_order() {
    let saga = saga();
    for event in all_events() {
        assert_eq!(saga.is_start(&ev(event.clone())), event == E::Started);
    }
    assert_eq!(
        saga.initially(&ev(E::Started)),
        Ok((S::Open { notes: vec![] }, vec![]))
    );
    assert!(matches!(
        saga.initially(&ev(E::Paid)),
        Err(Rejected::Invalid(_))
    ));
}

#[test]
fn every_event_in_the_open_state() {
    let saga = saga();
    let open = S::Open { notes: vec![] };
    let (reserved, sent) = saga.during(&open, &ev(E::Reserved)).unwrap();
    assert_eq!(reserved, S::Reserved { notes: vec![] });
    assert_eq!(sent[0].message_type, "TimedOut");
    assert_eq!(sent[0].delivery, Delivery::After(Duration::from_secs(60)));
    assert_eq!(saga.during(&open, &ev(E::Paid)), Err(Rejected::Early));
    assert_eq!(saga.during(&open, &ev(E::Declined)), Err(Rejected::Early));
    assert!(matches!(
        saga.during(&open, &ev(E::TimedOut)),
        Err(Rejected::Stale(_))
    ));
    assert!(matches!(
        saga.during(&open, &ev(E::Started)),
        Err(Rejected::Stale(_))
    ));
    assert!(matches!(
        saga.during(&open, &ev(E::Bogus)),
        Err(Rejected::Invalid(_))
    ));
    assert_eq!(
        saga.during(&open, &ev(E::Noted(4))).unwrap().0,
        S::Open { notes: vec![4] }
    );
}

#[test]
fn every_event_in_the_reserved_state() {
    let saga = saga();
    let reserved = S::Reserved { notes: vec![1] };
    let (confirmed, sent) = saga.during(&reserved, &ev(E::Paid)).unwrap();
    assert_eq!(confirmed, S::Confirmed { notes: vec![1] });
    assert_eq!(sent[0].message_type, "Confirm");
    for (event, reason) in [(E::Declined, "declined"), (E::TimedOut, "timed out")] {
        let (failed, sent) = saga.during(&reserved, &ev(event)).unwrap();
        assert_eq!(
            failed,
            S::Failed {
                reason: reason.into()
            }
        );
        assert_eq!(sent[0].message_type, "Release");
    }
    assert!(matches!(
        saga.during(&reserved, &ev(E::Reserved)),
        Err(Rejected::Stale(_))
    ));
    assert!(matches!(
        saga.during(&reserved, &ev(E::Bogus)),
        Err(Rejected::Invalid(_))
    ));
    assert_eq!(
        saga.during(&reserved, &ev(E::Noted(2))).unwrap().0,
        S::Reserved { notes: vec![1, 2] }
    );
}

#[test]
fn final_states_accept_nothing() {
    let saga = saga();
    for state in [
        S::Confirmed { notes: vec![] },
        S::Failed { reason: "x".into() },
    ] {
        assert!(OrderSaga::is_final(&state));
        for event in all_events() {
            assert!(saga.during(&state, &ev(event)).is_err());
        }
    }
}
