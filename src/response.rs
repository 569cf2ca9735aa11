//! Decision -> Envoy `CheckResponse`: the only place one is built ([`check_response`]) or
//! written ([`Answer`], which the gRPC server sends: the same message, encoded straight
//! from the decision for allowed checks). What a denial says (status, code, challenge,
//! body) is the decision's; this module only renders it.
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

use crate::decision::{Decision, Denial, Verdict};

mod wire;

pub use wire::Answer;

/// gRPC status codes used in `CheckResponse.status` (the decision's).
pub use crate::decision::code;

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
            let denial = d.denial(request_id).unwrap_or_else(|| Denial {
                status: reason.status(),
                headers: Vec::new(),
                body: reason.body(request_id),
            });
            let headers = denial
                .headers
                .iter()
                .map(|(n, v)| overwrite(n, v))
                .collect();
            CheckResponse {
                status: Some(Status {
                    code: reason.grpc_code(),
                    message: reason.code().to_string(),
                    ..Default::default()
                }),
                dynamic_metadata: Some(metadata(d)),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus {
                        code: i32::from(denial.status),
                    }),
                    headers,
                    body: denial.body,
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
