//! A buyer's email address.

use std::fmt;

/// An email address that passed [`Email::parse`]: trimmed, one `@`, a non-empty local part, a
/// dotted domain, no spaces. Stored and returned as the text the buyer sent, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Text that is not an email address; its text is the validation message clients get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a valid email address")]
pub struct InvalidEmail;

impl Email {
    /// Longest address accepted, in bytes (the SMTP path limit).
    const MAX_LEN: usize = 254;

    /// `text` without surrounding whitespace, if that is an address. A pragmatic check, not
    /// RFC 5322: the confirmation mail is what proves an address.
    pub fn parse(text: &str) -> Result<Self, InvalidEmail> {
        let text = text.trim();
        if Self::looks_valid(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidEmail)
        }
    }

    fn looks_valid(text: &str) -> bool {
        let Some((local, domain)) = text.split_once('@') else {
            return false;
        };
        !local.is_empty()
            && text.len() <= Self::MAX_LEN
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !text.chars().any(|c| c.is_whitespace() || c.is_control())
    }

    /// The address as stored and sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Email> for String {
    fn from(email: Email) -> String {
        email.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_needs_a_local_part_and_a_dotted_domain() {
        assert_eq!(Email::parse("a@b.co").unwrap().as_str(), "a@b.co");
        for bad in [
            "", "a", "@b.co", "a@b", "a@.co", "a b@c.co", "a@b@c.co", "a@b.co.",
        ] {
            assert_eq!(Email::parse(bad), Err(InvalidEmail), "{bad}");
        }
    }

    #[test]
    fn surrounding_whitespace_is_trimmed_and_the_rest_kept_as_sent() {
        let email = Email::parse("  Ada.Lovelace@Example.com\n").unwrap();
        assert_eq!(email.as_str(), "Ada.Lovelace@Example.com");
        assert_eq!(String::from(email), "Ada.Lovelace@Example.com");
    }

    #[test]
    fn an_address_longer_than_the_limit_is_refused() {
        let local = "a".repeat(Email::MAX_LEN - "@b.co".len());
        assert!(Email::parse(&format!("{local}@b.co")).is_ok());
        assert!(Email::parse(&format!("{local}a@b.co")).is_err());
    }

    #[test]
    fn control_characters_such_as_nul_are_refused() {
        assert!(Email::parse("a\0b@c.co").is_err());
        assert!(Email::parse("a@c\u{7}.co").is_err());
    }

    #[test]
    fn the_refusal_reads_as_the_validation_message() {
        assert_eq!(InvalidEmail.to_string(), "must be a valid email address");
    }
}
