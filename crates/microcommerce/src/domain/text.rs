//! Short required text (a name, a street, a city): present, not all blank, and bounded, parsed
//! once so that the bound is written down once, for the checks and for the API document alike.

use std::borrow::Cow;
use std::fmt;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// Text of 1..=`MAX` characters as sent, not all blank (see [`is_blank`]), kept without the
/// blanks around it. The API document declares it once, as the schema `BoundedText{MAX}`: a
/// field shows `#[schema(value_type = BoundedText)]` and its handler parses it with
/// [`BoundedText::parse`], so that a broken field is reported with the other field errors
/// rather than as an unreadable body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoundedText<const MAX: usize = 200>(String);

/// Why text is not a [`BoundedText`]; its text is the validation message clients get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextRefused {
    /// Empty, or spaces and control characters only.
    #[error("is required")]
    Blank,
    /// Longer than the bound, counted in characters as sent.
    #[error("must be at most {max} characters")]
    TooLong {
        /// The bound.
        max: usize,
    },
    /// Holds a NUL character, which no text column stores (PostgreSQL refuses it).
    #[error("must not contain a NUL character")]
    Nul,
}

impl<const MAX: usize> BoundedText<MAX> {
    /// The most characters accepted, counted before trimming.
    pub const MAX_CHARS: usize = MAX;

    /// `raw` without the blanks around it, if it is not blank and at most `MAX` characters
    /// long as sent. Blank is reported first: a long run of spaces is missing, not too long.
    pub fn parse(raw: &str) -> Result<Self, TextRefused> {
        if is_blank(raw) {
            Err(TextRefused::Blank)
        } else if raw.chars().count() > MAX {
            Err(TextRefused::TooLong { max: MAX })
        } else if raw.contains('\0') {
            Err(TextRefused::Nul)
        } else {
            Ok(Self(trimmed(raw).to_owned()))
        }
    }

    /// The text as stored and returned.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> From<BoundedText<MAX>> for String {
    fn from(text: BoundedText<MAX>) -> String {
        text.0
    }
}

impl<const MAX: usize> AsRef<str> for BoundedText<MAX> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Display for BoundedText<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MAX: usize> serde::Serialize for BoundedText<MAX> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<const MAX: usize> utoipa::PartialSchema for BoundedText<MAX> {
    /// The bounds as JSON Schema: the pattern asks for one character that is not blank and none
    /// that is NUL, spelled
    /// as [`is_blank`] counts blanks.
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!(
                "1 to {MAX} characters, not all blank, no NUL; the blanks around it are dropped."
            )))
            .min_length(Some(1))
            .max_length(Some(MAX))
            .pattern(Some(r"^[^\x00]*[^\x00-\x20][^\x00]*$"))
            .into()
    }
}

impl<const MAX: usize> utoipa::ToSchema for BoundedText<MAX> {
    /// One schema per bound, so that two bounds never share a name.
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("BoundedText{MAX}"))
    }
}

/// Why free text (a description, a URL, a reason) is refused when it holds a NUL character,
/// which no text column stores (PostgreSQL refuses it).
pub const NUL_REFUSED: &str = "must not contain a NUL character";

/// True when `text` holds a NUL character: refused in every stored text, as [`NUL_REFUSED`]
/// says.
pub fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// True when `text` holds nothing but spaces and control characters (`\0` to ` `): such a
/// required text field is refused. Spelled as the API document's pattern `[^\x00-\x20]` is, with
/// an explicit range, because engines disagree on what `\s` covers.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c <= ' ')
}

/// `text` without the spaces and control characters around it, as [`is_blank`] counts them, so
/// a field that is not blank never becomes empty.
pub fn trimmed(text: &str) -> &str {
    text.trim_matches(|c: char| c <= ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_text_is_spaces_and_control_characters_only() {
        for blank in ["", " ", "\t\n", "\u{1f}", "\u{0}"] {
            assert!(is_blank(blank), "{blank:?}");
            assert_eq!(trimmed(blank), "");
        }
        for text in ["a", " a ", "\u{3000}", "\u{85}"] {
            assert!(!is_blank(text), "{text:?}");
            assert!(!trimmed(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn text_within_the_bound_is_kept_without_the_blanks_around_it() {
        let text = BoundedText::<200>::parse("  Ada Lovelace \n").unwrap();
        assert_eq!(text.as_str(), "Ada Lovelace");
        assert_eq!(String::from(text), "Ada Lovelace");
        let longest = "é".repeat(200);
        assert_eq!(
            BoundedText::<200>::parse(&longest).unwrap().as_str(),
            longest
        );
    }

    #[test]
    fn blank_text_is_missing_even_when_long() {
        for blank in ["", "   ", "\t", &" ".repeat(300)] {
            assert_eq!(BoundedText::<200>::parse(blank), Err(TextRefused::Blank));
        }
        assert_eq!(TextRefused::Blank.to_string(), "is required");
    }

    #[test]
    fn the_bound_counts_characters_as_sent() {
        let refused = BoundedText::<10>::parse(" 12345678901");
        assert_eq!(refused, Err(TextRefused::TooLong { max: 10 }));
        assert_eq!(
            BoundedText::<10>::parse("  12345  ").map(String::from),
            Ok("12345".to_owned())
        );
        assert_eq!(
            BoundedText::<10>::parse("a\0b").map(String::from),
            Err(TextRefused::Nul)
        );
        assert_eq!(
            TextRefused::TooLong { max: 200 }.to_string(),
            "must be at most 200 characters"
        );
    }

    #[test]
    fn each_bound_is_its_own_schema() {
        use utoipa::ToSchema;
        assert_eq!(BoundedText::<200>::name(), "BoundedText200");
        assert_eq!(BoundedText::<10>::name(), "BoundedText10");
    }
}
