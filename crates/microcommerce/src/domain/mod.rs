//! Values that the cart and the checkout both accept from clients, parsed once at the
//! boundary so that the code behind it can rely on them. Below every business module, like
//! [`crate::money`] and [`crate::ids`], so that cart and ordering share them without depending
//! on each other.

mod email;
mod quantity;

pub use email::{Email, InvalidEmail};
pub use quantity::{Quantity, QuantityOutOfRange};

/// True when `text` holds nothing but white space (Unicode's, and the ASCII information
/// separators that some readers count too), so that a required text field is refused exactly
/// when the API document's `\S` pattern refuses it, whichever regular-expression engine reads it.
pub fn is_blank(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

#[cfg(test)]
mod tests {
    #[test]
    fn blank_text_is_white_space_only() {
        for blank in ["", " ", "\t\n", "\u{3000}", "\u{1f}"] {
            assert!(super::is_blank(blank), "{blank:?}");
        }
        for text in ["a", " a ", "\u{0}"] {
            assert!(!super::is_blank(text), "{text:?}");
        }
    }
}
