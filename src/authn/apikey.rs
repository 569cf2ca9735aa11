//! API keys: stored as SHA-256 digests, compared in constant time.
//!
//! A presented key is taken exactly as sent. Keys are printable ASCII without spaces: a
//! key holding whitespace, control or non-ASCII bytes is refused as malformed (never
//! trimmed, so `"k1 "` is not `"k1"`), and two key headers are refused as a duplicate
//! (see [`crate::authn::token`]).

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::authn::TokenError;
use crate::authn::claims::{self, Identity, Names};
/// The digests API keys are stored as (`ward` prints them with `sha256_hex`).
pub use crate::digest::{sha256, sha256_hex};
use crate::header::HeaderName;

/// Keys longer than this are refused before hashing.
pub const MAX_KEY_BYTES: usize = 4096;

#[derive(Debug, Clone)]
pub struct ApiKeySettings {
    pub header: HeaderName,
    pub keys: Vec<ApiKey>,
}

#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
    pub subject: String,
    pub roles: Vec<String>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("subject", &self.subject)
            .finish()
    }
}

impl ApiKey {
    pub fn new(sha256_hex: &str, subject: String, roles: Vec<String>) -> Result<Self, String> {
        let digest = decode_hex32(sha256_hex).ok_or(
            "expected the key's SHA-256 as 64 hex digits (`ward token hash-key` prints it)",
        )?;
        Ok(Self {
            digest,
            subject,
            roles,
        })
    }

    /// Whether both entries are the same key (config validation only; not constant time).
    pub(crate) fn same_key(&self, other: &ApiKey) -> bool {
        self.digest == other.digest
    }
}

/// What is wrong with a configured key's identity, each with the field it is about
/// (`subject`, `roles[1]`): a subject or role that could not reach the upstream exactly as
/// written (see [`claims::representable`]) is a config error, found at load, never a
/// surprise at check time.
pub fn identity_errors(subject: &str, roles: &[String]) -> Vec<(String, &'static str)> {
    let mut errors = Vec::new();
    if subject.is_empty() {
        errors.push(("subject".to_owned(), "must not be empty"));
    } else if !claims::representable(subject, |_| false) {
        errors.push((
            "subject".to_owned(),
            "must have no leading or trailing whitespace and no control character",
        ));
    }
    for (i, role) in roles.iter().enumerate() {
        if role.is_empty() {
            errors.push((format!("roles[{i}]"), "must not be empty"));
        } else if !claims::representable(role, |c| claims::List::Roles.is_separator(c)) {
            errors.push((
                format!("roles[{i}]"),
                "a role must have no leading or trailing whitespace, no control character and no `,`",
            ));
        }
    }
    errors
}

/// Printable ASCII, no space: the bytes an API key may hold.
pub fn is_key_syntax(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic())
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl ApiKeySettings {
    /// Looks the presented key up. Every configured key is compared (in constant time)
    /// so the time taken does not tell which key, or how much of one, matched.
    pub fn verify(&self, presented: &str, provider: &Arc<str>) -> Result<Identity, TokenError> {
        if presented.len() > MAX_KEY_BYTES {
            return Err(TokenError::TooLarge);
        }
        if !is_key_syntax(presented) {
            return Err(TokenError::Malformed);
        }
        let digest = sha256(presented.as_bytes());
        let mut found: Option<&ApiKey> = None;
        for k in &self.keys {
            if bool::from(k.digest.ct_eq(&digest)) && found.is_none() {
                found = Some(k);
            }
        }
        let k = found.ok_or(TokenError::UnknownKey)?;
        Ok(Identity {
            provider: provider.clone(),
            subject: Some(k.subject.as_str().into()),
            issuer: None,
            roles: k.roles.iter().map(String::as_str).collect(),
            scopes: Names::default(),
            claims: serde_json::json!({ "sub": k.subject, "roles": k.roles }).into(),
            claim_headers: Box::default(),
            expires_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_by_digest_only() {
        let s = ApiKeySettings {
            header: HeaderName::parse("x-api-key").unwrap(),
            keys: vec![
                ApiKey::new(&sha256_hex(b"k1"), "batch".into(), vec!["billing".into()]).unwrap(),
            ],
        };
        let p: Arc<str> = "machines".into();
        let id = s.verify("k1", &p).unwrap();
        assert_eq!(id.subject.as_deref(), Some("batch"));
        assert_eq!(id.roles, Names::from(["billing"]));
        assert_eq!(s.verify("k2", &p).unwrap_err(), TokenError::UnknownKey);
    }

    #[test]
    fn keys_are_never_trimmed_or_repaired() {
        let s = ApiKeySettings {
            header: HeaderName::parse("x-api-key").unwrap(),
            keys: vec![ApiKey::new(&sha256_hex(b"k1"), "batch".into(), vec![]).unwrap()],
        };
        let p: Arc<str> = "machines".into();
        for bad in ["k1 ", " k1", "k\t1", "k1\n", "k1\u{a0}", "k1é", ""] {
            assert_eq!(
                s.verify(bad, &p).unwrap_err(),
                TokenError::Malformed,
                "{bad:?}"
            );
        }
        let huge = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(s.verify(&huge, &p).unwrap_err(), TokenError::TooLarge);
    }

    #[test]
    fn identities_that_could_not_reach_the_upstream_are_named() {
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(identity_errors("billing-batch", &roles(&["billing", "read only"])).is_empty());
        let fields = |subject: &str, r: &[&str]| {
            identity_errors(subject, &roles(r))
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>()
        };
        assert_eq!(fields("", &[]), ["subject"]);
        for bad in [" batch", "batch ", "bat\nch", "batch\u{0}", "\u{a0}batch"] {
            assert_eq!(fields(bad, &[]), ["subject"], "{bad:?}");
        }
        assert_eq!(
            fields("ok", &["a", "b,c", " d", "e\t", "", "f"]),
            ["roles[1]", "roles[2]", "roles[3]", "roles[4]"]
        );
    }

    #[test]
    fn digests_must_be_64_hex() {
        assert!(ApiKey::new("abc", "x".into(), vec![]).is_err());
        assert!(ApiKey::new(&"g".repeat(64), "x".into(), vec![]).is_err());
        assert!(ApiKey::new(&"A".repeat(64), "x".into(), vec![]).is_ok());
    }

    // === lookup ===

    fn two_keys() -> ApiKeySettings {
        ApiKeySettings {
            header: HeaderName::parse("x-api-key").unwrap(),
            keys: vec![
                ApiKey::new(&sha256_hex(b"k1"), "batch".into(), vec!["billing".into()]).unwrap(),
                ApiKey::new(&sha256_hex(b"k2"), "reports".into(), vec!["read".into()]).unwrap(),
            ],
        }
    }

    #[test]
    fn each_key_gives_its_own_identity() {
        let s = two_keys();
        let p: Arc<str> = "machines".into();
        let one = s.verify("k1", &p).unwrap();
        assert_eq!(one.subject.as_deref(), Some("batch"));
        assert_eq!(one.roles, Names::from(["billing"]));
        assert_eq!(&*one.provider, "machines");
        assert_eq!(one.claims.get("sub"), Some(&serde_json::json!("batch")));
        assert_eq!(
            one.claims.get("roles"),
            Some(&serde_json::json!(["billing"]))
        );
        let two = s.verify("k2", &p).unwrap();
        assert_eq!(two.subject.as_deref(), Some("reports"));
        assert_eq!(two.roles, Names::from(["read"]));
    }

    #[test]
    fn a_key_of_exactly_the_maximum_length_is_looked_up() {
        let s = two_keys();
        let p: Arc<str> = "machines".into();
        let longest = "k".repeat(MAX_KEY_BYTES);
        assert_eq!(s.verify(&longest, &p).unwrap_err(), TokenError::UnknownKey);
        let s = ApiKeySettings {
            keys: vec![
                ApiKey::new(&sha256_hex(longest.as_bytes()), "long".into(), vec![]).unwrap(),
            ],
            ..two_keys()
        };
        assert_eq!(
            s.verify(&longest, &p).unwrap().subject.as_deref(),
            Some("long")
        );
    }

    #[test]
    fn digests_decode_byte_by_byte_and_hex_is_lowercase() {
        let hex = sha256_hex(b"k1");
        assert_eq!(hex.len(), 64);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(decode_hex32(&hex), Some(sha256(b"k1")));
        let mut counting = String::new();
        for i in 0..32u8 {
            counting.push_str(&format!("{i:02x}"));
        }
        let want: Vec<u8> = (0..32).collect();
        assert_eq!(decode_hex32(&counting).unwrap().to_vec(), want);
        assert_eq!(decode_hex32(&counting[..62]), None);
        assert_eq!(decode_hex32(&format!("{counting}00")), None);
        // The SHA-256 of the empty string, a well-known value.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn same_key_compares_digests_only() {
        let a = ApiKey::new(&sha256_hex(b"k1"), "a".into(), vec![]).unwrap();
        let b = ApiKey::new(
            &sha256_hex(b"k1").to_uppercase(),
            "b".into(),
            vec!["r".into()],
        )
        .unwrap();
        let c = ApiKey::new(&sha256_hex(b"k2"), "a".into(), vec![]).unwrap();
        assert!(a.same_key(&b));
        assert!(!a.same_key(&c));
    }

    #[test]
    fn a_key_prints_its_subject_never_its_digest() {
        let k = ApiKey::new(&sha256_hex(b"k1"), "batch".into(), vec![]).unwrap();
        let shown = format!("{k:?}");
        assert_eq!(shown, r#"ApiKey { subject: "batch" }"#);
        assert!(!shown.contains(&sha256_hex(b"k1")[..8]));
    }

    #[test]
    fn key_syntax_is_printable_ascii_without_space() {
        assert!(is_key_syntax("k1") && is_key_syntax("a-b_c.d~e!#$%"));
        for bad in ["", " ", "k 1", "k\u{7f}", "ké"] {
            assert!(!is_key_syntax(bad), "{bad:?}");
        }
    }
}
