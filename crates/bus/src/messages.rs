//! What a consumer handles, declared once: one [`Message`] type, or a closed enum of them
//! declared with [`messages!`](crate::messages). Its subscriptions and its decoding of a
//! delivered envelope both follow from that one declaration.

use crate::{Envelope, Message};

/// The messages a consumer (a [`crate::Handler`], or a saga) handles: the message types it
/// subscribes to and how a delivered envelope becomes one of them.
///
/// Every [`Message`] type is one by itself; an enum of several is written by
/// [`messages!`](crate::messages), which derives both from a single list of variants.
pub trait Messages: Sized + Send + Sync + 'static {
    /// Message types subscribed to, in declaration order.
    const TYPES: &'static [&'static str];

    /// Turns a delivered message into a value; an error (a type not declared, a payload that
    /// does not parse) dead-letters the message.
    fn decode(message: &Envelope) -> Result<Self, serde_json::Error>;
}

/// One message type: its own type name is its one subscription.
impl<M: Message> Messages for M {
    const TYPES: &'static [&'static str] = &[M::TYPE];

    fn decode(message: &Envelope) -> Result<Self, serde_json::Error> {
        if message.message_type != M::TYPE {
            return Err(__private::unknown(M::TYPE, &message.message_type));
        }
        message.decode()
    }
}

/// Declares an enum of messages, one `Variant(Payload)` per [`Message`](crate::Message)
/// type, and its [`Messages`] impl: subscriptions and decoding follow from the payloads'
/// `TYPE`s. Attributes (docs, derives) pass through to the enum and its variants.
///
/// ```
/// # use bus::{Message, Messages};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Opened { door: uuid::Uuid }
/// # impl Message for Opened {
/// #     const TYPE: &'static str = "DoorOpened";
/// #     fn correlation_id(&self) -> uuid::Uuid { self.door }
/// # }
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Closed { door: uuid::Uuid }
/// # impl Message for Closed {
/// #     const TYPE: &'static str = "DoorClosed";
/// #     fn correlation_id(&self) -> uuid::Uuid { self.door }
/// # }
/// bus::messages! {
///     /// What happens to a door.
///     enum DoorEvent {
///         Opened(Opened),
///         Closed(Closed),
///     }
/// }
/// assert_eq!(DoorEvent::TYPES, ["DoorOpened", "DoorClosed"]);
/// ```
#[macro_export]
macro_rules! messages {
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

        impl $crate::Messages for $name {
            const TYPES: &'static [&'static str] =
                &[$(<$payload as $crate::Message>::TYPE),+];

            fn decode(
                message: &$crate::Envelope,
            ) -> ::core::result::Result<Self, $crate::__private::serde_json::Error> {
                match message.message_type.as_str() {
                    $(
                        <$payload as $crate::Message>::TYPE => {
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

/// What [`messages!`](crate::messages) expands to needs, reachable from any crate that uses it.
#[doc(hidden)]
pub mod __private {
    pub use serde_json;

    /// The error for a message type that `expected` does not declare.
    pub fn unknown(expected: &str, message_type: &str) -> serde_json::Error {
        serde::de::Error::custom(format!("not a {expected}: {message_type}"))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use storage::Timestamp;
    use uuid::Uuid;

    use super::Messages;
    use crate::{Message, MessageId, Outgoing};

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

    crate::messages! {
        /// A door's events.
        #[derive(Debug, Clone, PartialEq)]
        enum DoorEvent {
            /// It opened.
            Opened(Opened),
            /// It closed.
            Closed(Closed),
        }
    }

    fn delivered(outgoing: Outgoing) -> crate::Envelope {
        crate::Envelope {
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
        assert_eq!(<Opened as Messages>::TYPES, ["DoorOpened"]);
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
            DoorEvent::Opened(opened.clone())
        );
        assert_eq!(
            DoorEvent::decode(&delivered(Outgoing::publish(&closed))).unwrap(),
            DoorEvent::Closed(closed)
        );
        assert_eq!(
            <Opened as Messages>::decode(&delivered(Outgoing::publish(&opened))).unwrap(),
            opened
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
        let error = <Opened as Messages>::decode(&unknown)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a DoorOpened: DoorPainted"), "{error}");

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
