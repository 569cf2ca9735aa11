//! API keys: stored as SHA-256 digests, compared in constant time.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::authn::claims::Identity;
use crate::header::HeaderName;

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
        f.debug_struct("ApiKey").field("subject", &self.subject).finish()
    }
}

impl ApiKey {
    pub fn new(sha256_hex: &str, subject: String, roles: Vec<String>) -> Result<Self, String> {
        let digest = decode_hex32(sha256_hex)
            .ok_or("expected the key's SHA-256 as 64 hex digits (`ward token hash-key` prints it)")?;
        Ok(Self { digest, subject, roles })
    }
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

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Hex of SHA-256, as the config stores it.
pub fn sha256_hex(data: &[u8]) -> String {
    sha256(data).iter().map(|b| format!("{b:02x}")).collect()
}

impl ApiKeySettings {
    /// Looks the presented key up. Every configured key is compared (in constant time)
    /// so the time taken does not tell which key, or how much of one, matched.
    pub fn verify(&self, presented: &str, provider: &Arc<str>) -> Option<Identity> {
        let digest = sha256(presented.as_bytes());
        let mut found: Option<&ApiKey> = None;
        for k in &self.keys {
            if bool::from(k.digest.ct_eq(&digest)) && found.is_none() {
                found = Some(k);
            }
        }
        found.map(|k| Identity {
            provider: provider.clone(),
            subject: Some(k.subject.clone()),
            issuer: None,
            roles: k.roles.clone(),
            scopes: Vec::new(),
            claims: serde_json::json!({ "sub": k.subject, "roles": k.roles }),
            claim_headers: Vec::new(),
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
            keys: vec![ApiKey::new(&sha256_hex(b"k1"), "batch".into(), vec!["billing".into()]).unwrap()],
        };
        let p: Arc<str> = "machines".into();
        let id = s.verify("k1", &p).unwrap();
        assert_eq!(id.subject.as_deref(), Some("batch"));
        assert_eq!(id.roles, vec!["billing"]);
        assert!(s.verify("k2", &p).is_none());
        assert!(s.verify("k1 ", &p).is_none());
    }

    #[test]
    fn digests_must_be_64_hex() {
        assert!(ApiKey::new("abc", "x".into(), vec![]).is_err());
        assert!(ApiKey::new(&"g".repeat(64), "x".into(), vec![]).is_err());
        assert!(ApiKey::new(&"A".repeat(64), "x".into(), vec![]).is_ok());
    }
}
