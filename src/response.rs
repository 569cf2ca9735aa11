//! Decision -> Envoy `CheckResponse`: the only place one is built ([`check_response`]) or
//! written ([`Answer`], which the gRPC server sends: the same message, encoded straight
//! from the decision for allowed checks).
//!
//! Header options always carry `append: false` explicitly (Envoy up to 1.36 reads only
//! that deprecated field; an unset `append_action` in 1.37.0 appended) *and*
//! `append_action: OVERWRITE_IF_EXISTS_OR_ADD`, so identity headers overwrite on every
//! Envoy version. Values go in `value` (Envoy ignores `raw_value` here).

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{BoolValue, ListValue, Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status;

use crate::authn::TokenError;
use crate::decision::{Decision, DenyReason, Verdict};

mod wire;

pub use wire::Answer;

/// gRPC status codes used in `CheckResponse.status`.
pub mod code {
    pub const OK: i32 = 0;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// HTTP status and gRPC code for a denial.
pub fn status_of(reason: &DenyReason) -> (u16, i32) {
    match reason {
        DenyReason::MissingCredential | DenyReason::InvalidToken(_) => (401, code::UNAUTHENTICATED),
        DenyReason::Forbidden(_) | DenyReason::NoRoute => (403, code::PERMISSION_DENIED),
        DenyReason::AuthnUnavailable(_) => (503, code::UNAVAILABLE),
        DenyReason::InvalidRequest(_) => (400, code::INVALID_ARGUMENT),
    }
}

/// The RFC 6750 challenge for a denial, if it has one.
pub fn www_authenticate(reason: &DenyReason) -> Option<String> {
    match reason {
        // No credential: a bare challenge, no error code (RFC 6750 §3.1).
        DenyReason::MissingCredential => Some(r#"Bearer realm="ward""#.to_string()),
        DenyReason::InvalidToken(e) => Some(format!(
            r#"Bearer realm="ward", error="invalid_token", error_description="{}""#,
            challenge_text(e)
        )),
        DenyReason::Forbidden(f) if f.insufficient_scope => {
            Some(r#"Bearer realm="ward", error="insufficient_scope""#.to_string())
        }
        _ => None,
    }
}

/// RFC 6750 limits error_description to visible ASCII without `"` or `\`; our fixed
/// detail strings already are, this keeps it so.
fn challenge_text(e: &TokenError) -> String {
    e.to_string()
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| *c != '"' && *c != '\\')
        .collect()
}

/// The JSON body of a denial.
pub fn deny_body(reason: &DenyReason, request_id: &str) -> String {
    serde_json::json!({
        "error": reason.code(),
        "detail": reason.detail(),
        "request_id": request_id,
    })
    .to_string()
}

fn overwrite(key: &str, value: &str) -> HeaderValueOption {
    #[allow(deprecated)]
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_string(),
            value: value.to_string(),
            ..Default::default()
        }),
        append: Some(BoolValue { value: false }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        keep_empty_value: false,
    }
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

/// Builds Envoy's answer for a decision.
pub fn check_response(d: &Decision, request_id: &str) -> CheckResponse {
    match &d.verdict {
        Verdict::Allow(m) => {
            let headers = m
                .set
                .iter()
                .map(|(h, v)| overwrite(h.as_str(), v))
                .collect();
            let headers_to_remove = m.remove.iter().map(|h| h.as_str().to_string()).collect();
            CheckResponse {
                status: Some(Status {
                    code: code::OK,
                    ..Default::default()
                }),
                dynamic_metadata: Some(metadata(d)),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers,
                    headers_to_remove,
                    ..Default::default()
                })),
            }
        }
        Verdict::Deny(reason) => {
            let (http, grpc) = status_of(reason);
            let mut headers = vec![overwrite("content-type", "application/json")];
            if let Some(c) = www_authenticate(reason) {
                headers.push(overwrite("www-authenticate", &c));
            }
            CheckResponse {
                status: Some(Status {
                    code: grpc,
                    message: reason.code().to_string(),
                    ..Default::default()
                }),
                dynamic_metadata: Some(metadata(d)),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus {
                        code: i32::from(http),
                    }),
                    headers,
                    body: deny_body(reason, request_id),
                })),
            }
        }
    }
}

/// `dynamic_metadata` for access logs: who, through which provider and route, and the
/// decision. Envoy stores it under `envoy.filters.http.ext_authz`.
fn metadata(d: &Decision) -> Struct {
    let mut fields: std::collections::HashMap<String, Value> = metadata_texts(d)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.to_string(), string_value(v)))
        .collect();
    if let Some(id) = &d.identity {
        let roles = id.roles.iter().map(string_value).collect();
        let list = Kind::ListValue(ListValue { values: roles });
        fields.insert("roles".into(), Value { kind: Some(list) });
    }
    Struct { fields }
}

/// The string members of `dynamic_metadata` (besides `roles`, the identity's role list).
/// [`Answer`] writes the same members.
pub(crate) fn metadata_texts(d: &Decision) -> [Option<(&'static str, &str)>; 6] {
    let id = d.identity.as_deref();
    [
        d.route.as_deref().map(|r| ("route", r)),
        Some(("decision", d.label())),
        Some(("reason", d.reason_code())),
        id.and_then(|i| i.subject.as_deref())
            .map(|s| ("subject", s)),
        id.and_then(|i| i.issuer.as_deref()).map(|s| ("issuer", s)),
        id.map(|i| ("provider", &*i.provider)),
    ]
}
