//! Values read back from the text columns the saga's tables keep them in.

use uuid::Uuid;

/// A UUID column read back as text.
pub(crate) fn parse_uuid(text: String) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(&text).map_err(|e| sqlx::Error::Decode(e.into()))
}

/// A JSON column (an instance's state, a list of message types) that does not parse.
pub(crate) fn decode_error(error: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(error.into())
}
