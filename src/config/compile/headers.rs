//! `identity_headers`, and the rule that every header ward owns is a distinct name it may
//! set.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::authn::{ProviderKind, ProviderSettings};
use crate::config::Errors;
use crate::header::{self, HeaderName};

/// The headers ward owns: set from a verified identity, removed otherwise.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// Carries the verified subject.
    pub subject: HeaderName,
    /// Carries the verified issuer.
    pub issuer: HeaderName,
    /// Carries the name of the provider that verified the credential.
    pub provider: HeaderName,
    /// Carries the roles, comma-separated.
    pub roles: HeaderName,
    /// Carries the scopes, space-separated.
    pub scopes: HeaderName,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIdentityHeaders {
    subject: Option<String>,
    issuer: Option<String>,
    provider: Option<String>,
    roles: Option<String>,
    scopes: Option<String>,
}

pub(super) fn compile_identity_headers(v: Value, errors: &mut Errors) -> Option<IdentityHeaders> {
    let raw: RawIdentityHeaders = if v.is_null() {
        RawIdentityHeaders::default()
    } else {
        errors.parse("identity_headers", v)?
    };
    let mut name = |field: &str, val: Option<String>, default: &str| {
        owned_header(
            errors,
            &format!("identity_headers.{field}"),
            val.as_deref().unwrap_or(default),
        )
    };
    let subject = name("subject", raw.subject, "x-auth-subject");
    let issuer = name("issuer", raw.issuer, "x-auth-issuer");
    let provider = name("provider", raw.provider, "x-auth-provider");
    let roles = name("roles", raw.roles, "x-auth-roles");
    let scopes = name("scopes", raw.scopes, "x-auth-scopes");
    Some(IdentityHeaders {
        subject: subject?,
        issuer: issuer?,
        provider: provider?,
        roles: roles?,
        scopes: scopes?,
    })
}

/// A header ward sets upstream: a valid name that Envoy will let an ext_authz server set.
pub(super) fn owned_header(errors: &mut Errors, path: &str, name: &str) -> Option<HeaderName> {
    match HeaderName::parse(name) {
        Ok(h) if header::is_reserved(h.as_str()) => {
            errors.add(
                path,
                format!(
                    "`{name}` cannot be an identity header: Envoy or the credential itself owns it"
                ),
            );
            None
        }
        Ok(h) => Some(h),
        Err(e) => {
            errors.add(path, e);
            None
        }
    }
}

/// Every header name ward owns must be distinct, or a removal could cancel a set.
pub(super) fn check_owned_headers(
    ih: &IdentityHeaders,
    providers: &[Arc<ProviderSettings>],
    errors: &mut Errors,
) {
    let mut seen: HashMap<&str, String> = HashMap::new();
    let fixed = [
        ("identity_headers.subject", &ih.subject),
        ("identity_headers.issuer", &ih.issuer),
        ("identity_headers.provider", &ih.provider),
        ("identity_headers.roles", &ih.roles),
        ("identity_headers.scopes", &ih.scopes),
    ];
    for (path, h) in fixed {
        if let Some(prev) = seen.insert(h.as_str(), path.to_string()) {
            errors.add(path, format!("`{h}` is already used by {prev}"));
        }
    }
    for (i, p) in providers.iter().enumerate() {
        let kind = match &p.kind {
            ProviderKind::Jwt(_) => "jwt",
            ProviderKind::Introspection(_) => "introspection",
            ProviderKind::ApiKey(_) | ProviderKind::Mesh(_) => continue,
        };
        for (_, h) in p.claim_headers() {
            if let Some(prev) = seen.get(h.as_str()) {
                if !prev.starts_with("providers") {
                    errors.add(
                        &format!("providers[{i}].{kind}.headers"),
                        format!("`{h}` is already used by {prev}"),
                    );
                }
            } else {
                seen.insert(h.as_str(), format!("providers[{i}].{kind}.headers"));
            }
        }
    }
}
