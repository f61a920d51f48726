//! What a saga reacts to: one closed enum of events, declared once with [`events!`](crate::events).

use std::fmt::Debug;

use bus::Envelope;

/// A saga's events: the message types it subscribes to and how a delivered message becomes one.
///
/// Written by [`events!`](crate::events), which derives both from a single list of variants.
pub trait Events: Sized + Debug + Send + Sync {
    /// Message types the saga consumes, one per variant.
    const TYPES: &'static [&'static str];

    /// Turns a delivered message into an event; an error (an unknown type or a payload that does
    /// not parse) dead-letters the message.
    fn decode(message: &Envelope) -> Result<Self, serde_json::Error>;
}

/// Declares a saga's event enum, one `Variant(Payload)` per [`bus::Message`] type, and its
/// [`Events`] impl: subscriptions and decoding follow from the payloads' `TYPE`s. Attributes
/// (docs, derives) pass through to the enum and its variants.
#[macro_export]
macro_rules! events {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident($payload:ty)
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $(
                $(#[$variant_meta])*
                $variant($payload),
            )+
        }

        impl $crate::Events for $name {
            const TYPES: &'static [&'static str] =
                &[$(<$payload as $crate::__private::Message>::TYPE),+];

            fn decode(
                message: &$crate::__private::Envelope,
            ) -> ::core::result::Result<Self, $crate::__private::serde_json::Error> {
                match message.message_type.as_str() {
                    $(
                        <$payload as $crate::__private::Message>::TYPE => {
                            message.decode::<$payload>().map(Self::$variant)
                        }
                    )+
                    other => ::core::result::Result::Err($crate::__private::unknown(
                        ::core::stringify!($name),
                        other,
                    )),
                }
            }
        }
    };
}

/// What [`events!`](crate::events) expands to needs, reachable from any crate that uses it.
#[doc(hidden)]
pub mod __private {
    pub use bus::{Envelope, Message};
    pub use serde_json;

    /// The error for a message type the enum does not declare.
    pub fn unknown(events: &str, message_type: &str) -> serde_json::Error {
        serde::de::Error::custom(format!("not a {events}: {message_type}"))
    }
}

#[cfg(test)]
mod tests {
    use bus::{Message, MessageId, Outgoing};
    use serde::{Deserialize, Serialize};
    use storage::Timestamp;
    use uuid::Uuid;

    use super::Events;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Opened {
        door: Uuid,
    }
    impl Message for Opened {
        const TYPE: &'static str = "DoorOpened";
        fn correlation_id(&self) -> Uuid {
            self.door
        }
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Closed {
        door: Uuid,
        by: String,
    }
    impl Message for Closed {
        const TYPE: &'static str = "DoorClosed";
        fn correlation_id(&self) -> Uuid {
            self.door
        }
    }

    crate::events! {
        /// A door's events.
        #[derive(Debug, Clone, PartialEq)]
        enum DoorEvent {
            /// It opened.
            Opened(Opened),
            /// It closed.
            Closed(Closed),
        }
    }

    fn delivered(outgoing: Outgoing) -> bus::Envelope {
        bus::Envelope {
            message_id: MessageId::new(),
            message_type: outgoing.message_type.into(),
            correlation_id: outgoing.correlation_id,
            causation_id: None,
            headers: Default::default(),
            payload: outgoing.payload,
            created_at: Timestamp(0),
            available_at: Timestamp(0),
            attempts: 0,
        }
    }

    #[test]
    fn the_subscriptions_are_the_payload_types_in_declaration_order() {
        assert_eq!(DoorEvent::TYPES, ["DoorOpened", "DoorClosed"]);
    }

    #[test]
    fn each_declared_type_decodes_into_its_variant() {
        let door = Uuid::from_u128(1);
        let opened = Opened { door };
        let closed = Closed {
            door,
            by: "wind".into(),
        };
        assert_eq!(
            DoorEvent::decode(&delivered(Outgoing::publish(&opened))).unwrap(),
            DoorEvent::Opened(opened)
        );
        assert_eq!(
            DoorEvent::decode(&delivered(Outgoing::publish(&closed))).unwrap(),
            DoorEvent::Closed(closed)
        );
    }

    #[test]
    fn an_undeclared_type_or_a_malformed_payload_is_an_error() {
        let mut unknown = delivered(Outgoing::publish(&Opened {
            door: Uuid::from_u128(1),
        }));
        unknown.message_type = "DoorPainted".into();
        let error = DoorEvent::decode(&unknown).unwrap_err().to_string();
        assert!(error.contains("not a DoorEvent: DoorPainted"), "{error}");

        let mut malformed = delivered(Outgoing::publish(&Opened {
            door: Uuid::from_u128(1),
        }));
        malformed.message_type = Closed::TYPE.into();
        assert!(
            DoorEvent::decode(&malformed).is_err(),
            "the payload lacks `by`"
        );
    }
}
