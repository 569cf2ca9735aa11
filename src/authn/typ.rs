//! Explicit typing (RFC 8725 §3.11, RFC 9068 §2.1): which JWS `typ` header values a JWT
//! provider accepts as an access token.
//!
//! Media types compare case-insensitively, with or without the `application/` prefix
//! (RFC 7515 §4.1.9: the prefix is omitted when no other `/` appears), so `at+jwt`,
//! `AT+JWT` and `application/at+jwt` are one type. Comparing needs no allocation.

/// The `typ` values a provider accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenTypes {
    /// No `token_types` configured: any `typ`, or none, except those of [`OTHER_USES`].
    Default,
    /// `token_types` as configured, each in its short form (`at+jwt`, `jwt`). A listed
    /// `JWT` also accepts a token without `typ` (RFC 7519 §5.1: a JWT needs no `typ`);
    /// otherwise a token without one is refused.
    Listed(Vec<String>),
}

/// The `typ` values of JWTs made for another use than an access token, refused by a
/// provider that lists no `token_types`: each is a token a client or an identity
/// provider signs with the same keys for another purpose, which must never pass as an
/// access token (RFC 8725 §3.11).
pub const OTHER_USES: [&str; 10] = [
    // RFC 8417 Security Event Tokens, and OpenID back-channel logout tokens.
    "secevent+jwt",
    "logout+jwt",
    // RFC 9449 DPoP proofs: signed by the client for one request.
    "dpop+jwt",
    // ID tokens of providers that type them (OpenID Connect does not require it).
    "id_token+jwt",
    // RFC 9701 introspection responses.
    "token-introspection+jwt",
    // RFC 9101 request objects.
    "oauth-authz-req+jwt",
    // RFC 7523 client assertions, typed (draft-ietf-oauth-rfc7523bis).
    "client-authentication+jwt",
    // SD-JWT key binding (RFC 9901).
    "kb+jwt",
    // OpenID Federation entity statements.
    "entity-statement+jwt",
    // OAuth client attestation (draft-ietf-oauth-attestation-based-client-auth).
    "oauth-client-attestation+jwt",
];

/// `typ` without an `application/` prefix (any case) when nothing after it has a `/`.
pub fn short_form(typ: &str) -> &str {
    match (typ.get(..12), typ.get(12..)) {
        (Some(p), Some(rest)) if p.eq_ignore_ascii_case("application/") && !rest.contains('/') => {
            rest
        }
        _ => typ,
    }
}

impl TokenTypes {
    /// Whether a token whose header has this `typ` (or none) is accepted.
    pub fn accepts(&self, typ: Option<&str>) -> bool {
        match (self, typ) {
            (TokenTypes::Default, None) => true,
            (TokenTypes::Default, Some(t)) => {
                let t = short_form(t);
                !OTHER_USES.iter().any(|o| o.eq_ignore_ascii_case(t))
            }
            (TokenTypes::Listed(list), None) => list.iter().any(|l| l == "jwt"),
            (TokenTypes::Listed(list), Some(t)) => {
                let t = short_form(t);
                list.iter().any(|l| l.eq_ignore_ascii_case(t))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(l: &[&str]) -> TokenTypes {
        TokenTypes::Listed(l.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn the_application_prefix_is_optional_and_case_is_ignored() {
        let at = listed(&["at+jwt"]);
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert!(at.accepts(Some(typ)), "{typ}");
        }
        for typ in [
            "jwt",
            "at+jwt ",
            " at+jwt",
            "application/application/at+jwt",
            "text/at+jwt",
            "application/",
            "applicationat+jwt",
            "",
            "at+jwt\0",
        ] {
            assert!(!at.accepts(Some(typ)), "{typ:?}");
        }
        assert_eq!(short_form("application/x/y"), "application/x/y");
        assert_eq!(short_form("applicatioé/at+jwt"), "applicatioé/at+jwt");
        assert_eq!(short_form("é"), "é");
    }

    #[test]
    fn a_missing_typ_passes_only_where_jwt_is_listed_or_nothing_is() {
        assert!(TokenTypes::Default.accepts(None));
        assert!(listed(&["at+jwt", "jwt"]).accepts(None));
        assert!(!listed(&["at+jwt"]).accepts(None));
    }

    #[test]
    fn by_default_only_the_types_of_other_uses_are_refused() {
        for typ in ["JWT", "at+jwt", "application/at+jwt", "jwt", "whatever"] {
            assert!(TokenTypes::Default.accepts(Some(typ)), "{typ}");
        }
        for other in OTHER_USES {
            assert!(!TokenTypes::Default.accepts(Some(other)), "{other}");
            let loud = format!("application/{}", other.to_ascii_uppercase());
            assert!(!TokenTypes::Default.accepts(Some(&loud)), "{loud}");
        }
        // A listed type of another use is the operator's explicit choice.
        assert!(listed(&["dpop+jwt"]).accepts(Some("dpop+jwt")));
    }
}
