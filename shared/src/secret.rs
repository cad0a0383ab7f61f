//! A string that must never reach a log line, a response body or a table item in the
//! clear: tokens, authorization codes and the client secret.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plaintext, for the one place that must send it (Google, KMS).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_value() {
        let secret = Secret::new("1//refresh-token-value");
        assert!(!format!("{secret:?}").contains("refresh-token-value"));
        assert_eq!(secret.expose(), "1//refresh-token-value");
    }
}
