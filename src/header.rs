//! Header names ward owns and header values it emits, validated once at config load.

use std::fmt;
use std::sync::Arc;

/// A lower-case HTTP header name (RFC 9110 token), validated at config load.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderName(Arc<str>);

impl HeaderName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!("`{name}` is not a valid HTTP header name"));
        }
        Ok(Self(name.to_ascii_lowercase().into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names an ext_authz answer must not try to own: Envoy refuses or ignores them
/// (`host`, `x-envoy-*`), or they carry the client's own credential or cookies.
pub fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "authorization"
            | "cookie"
            | "set-cookie"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "te"
            | "upgrade"
            | "x-request-id"
    ) || name.starts_with("x-envoy-")
        || name.starts_with(':')
}

/// A header value ward may send: visible ASCII, spaces, and UTF-8 text, but no control
/// character (no CR, LF, NUL, TAB or DEL), so no claim can split or smuggle a header.
pub fn is_safe_value(v: &str) -> bool {
    !v.chars().any(char::is_control)
}

/// A value every HTTP parser reads exactly as ward wrote it: [safe](is_safe_value), not
/// empty, and without leading or trailing whitespace (parsers trim it, so `" admin"`
/// would arrive as `admin`). Identity values must be this to be emitted at all; see
/// [`crate::authn::claims::representable`] for list members.
pub fn is_exact_value(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with(char::is_whitespace)
        && !v.ends_with(char::is_whitespace)
        && is_safe_value(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_and_lowercased() {
        assert_eq!(
            HeaderName::parse("X-Auth-Subject").unwrap().as_str(),
            "x-auth-subject"
        );
        assert!(HeaderName::parse("").is_err());
        assert!(HeaderName::parse("x auth").is_err());
        assert!(HeaderName::parse("x-a\r\nb").is_err());
        assert!(HeaderName::parse(":path").is_err());
    }

    #[test]
    fn control_characters_are_unsafe() {
        assert!(is_safe_value("alice@example.com"));
        assert!(is_safe_value("Zoë"));
        for bad in ["a\r\nx-admin: 1", "a\0", "a\tb", "a\u{7f}", "\u{85}"] {
            assert!(!is_safe_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn exact_values_are_safe_untrimmed_and_not_empty() {
        assert!(is_exact_value("alice"));
        assert!(is_exact_value("Zoë o'Neil"));
        assert!(is_exact_value("viewer,admin"));
        for bad in [
            "",
            " admin",
            "admin ",
            "\u{a0}admin",
            "admin\u{3000}",
            "a\r\nb",
            "a\tb",
        ] {
            assert!(!is_exact_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn envoy_owned_names_are_reserved() {
        for n in [
            "host",
            ":authority",
            "x-envoy-original-path",
            "authorization",
            "x-request-id",
        ] {
            assert!(is_reserved(n), "{n}");
        }
        assert!(!is_reserved("x-auth-subject"));
    }
}
