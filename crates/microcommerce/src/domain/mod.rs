//! Values that the cart and the checkout both accept from clients, parsed once at the
//! boundary so that the code behind it can rely on them. Below every business module, like
//! [`crate::money`] and [`crate::ids`], so that cart and ordering share them without depending
//! on each other.

mod email;
mod quantity;

pub use email::{Email, InvalidEmail};
pub use quantity::{Quantity, QuantityOutOfRange};

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
    #[test]
    fn blank_text_is_spaces_and_control_characters_only() {
        for blank in ["", " ", "\t\n", "\u{1f}", "\u{0}"] {
            assert!(super::is_blank(blank), "{blank:?}");
            assert_eq!(super::trimmed(blank), "");
        }
        for text in ["a", " a ", "\u{3000}", "\u{85}"] {
            assert!(!super::is_blank(text), "{text:?}");
            assert!(!super::trimmed(text).is_empty(), "{text:?}");
        }
    }
}
