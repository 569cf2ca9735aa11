//! Readers for `CheckResponse`: [`allowed`], [`denial`], [`summary`], [`metadata_str`]
//! and friends, each failing with a message that shows what came back instead, and
//! [`assert_overwrites`] for the header options Envoy applies.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckResponse, OkHttpResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use serde_json::Value;

use super::code;

/// `CheckResponse.status.code` (a missing status reads as OK, as Envoy reads it).
pub fn grpc_code(r: &CheckResponse) -> i32 {
    r.status.as_ref().map_or(code::OK, |s| s.code)
}

/// The OK answer; fails the test with the denial if the request was denied.
pub fn allowed(r: &CheckResponse) -> &OkHttpResponse {
    allowed_for(r, "request")
}

/// Like [`allowed`], naming `case` in the failure message.
pub fn allowed_for<'r>(r: &'r CheckResponse, case: &str) -> &'r OkHttpResponse {
    assert_eq!(
        grpc_code(r),
        code::OK,
        "{case}: expected an allow, got {}",
        describe(r)
    );
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        _ => panic!("{case}: expected an OkHttpResponse, got {}", describe(r)),
    }
}

/// A denial read apart.
#[derive(Debug, Clone)]
pub struct Denial {
    pub grpc_code: i32,
    pub grpc_message: String,
    pub http_status: u16,
    /// `(name, value)` of every header in the denied response.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// `body.error`, `body.detail`, `body.request_id`.
    pub error: String,
    pub detail: String,
    pub request_id: String,
}

impl Denial {
    /// (gRPC code, HTTP status, `body.error`).
    pub fn short(&self) -> (i32, u16, &str) {
        (self.grpc_code, self.http_status, self.error.as_str())
    }

    /// The single value of a response header; fails if it is repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut it = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name));
        let first = it.next().map(|(_, v)| v.as_str());
        assert!(it.next().is_none(), "header {name} repeated in {self:?}");
        first
    }

    /// The body is exactly `{"error","detail","request_id"}`, all strings, sent as
    /// `content-type: application/json`.
    pub fn assert_json_body(&self) {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "denial content-type: {self:?}"
        );
        let keys: BTreeSet<&str> = self
            .body
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            BTreeSet::from(["error", "detail", "request_id"]),
            "denial body: {}",
            self.body
        );
        for k in ["error", "detail", "request_id"] {
            assert!(
                self.body[k].is_string(),
                "{k} is not a string: {}",
                self.body
            );
        }
        assert!(!self.detail.is_empty(), "empty detail: {}", self.body);
    }

    pub fn www_authenticate(&self) -> Option<&str> {
        self.header("www-authenticate")
    }

    /// The `error_description` of the challenge, if any.
    pub fn error_description(&self) -> Option<String> {
        let c = self.www_authenticate()?;
        let start = c.find("error_description=\"")? + "error_description=\"".len();
        let len = c[start..].find('"')?;
        Some(c[start..start + len].to_string())
    }
}

/// The denial; fails the test if the request was allowed or the body is not JSON.
pub fn denial(r: &CheckResponse) -> Denial {
    let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
        panic!("expected a denial, got {}", describe(r));
    };
    let body: Value = serde_json::from_str(&d.body)
        .unwrap_or_else(|e| panic!("denial body is not JSON ({e}): {:?}", d.body));
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    Denial {
        grpc_code: grpc_code(r),
        grpc_message: r
            .status
            .as_ref()
            .map(|s| s.message.clone())
            .unwrap_or_default(),
        http_status: d.status.as_ref().map_or(0, |s| s.code as u16),
        headers: d
            .headers
            .iter()
            .filter_map(|o| o.header.as_ref())
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect(),
        error: text("error"),
        detail: text("detail"),
        request_id: text("request_id"),
        body,
    }
}

/// `(name, value)` of every header an OK answer sets, in order.
pub fn set_headers(ok: &OkHttpResponse) -> Vec<(String, String)> {
    ok.headers
        .iter()
        .filter_map(|o| o.header.as_ref())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect()
}

/// The headers an OK answer sets, by name; fails if a name is set twice.
pub fn set_header_map(ok: &OkHttpResponse) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in set_headers(ok) {
        assert!(
            out.insert(k.clone(), v).is_none(),
            "header {k} set twice: {ok:?}"
        );
    }
    out
}

/// `headers_to_remove` as a set; fails if a name is listed twice.
pub fn removed(ok: &OkHttpResponse) -> BTreeSet<String> {
    let set: BTreeSet<String> = ok.headers_to_remove.iter().cloned().collect();
    assert_eq!(
        set.len(),
        ok.headers_to_remove.len(),
        "a header listed twice in headers_to_remove: {:?}",
        ok.headers_to_remove
    );
    set
}

/// Every header option overwrites on every Envoy version: `append: false` explicitly,
/// `append_action: OVERWRITE_IF_EXISTS_OR_ADD`, the value in `value` (not `raw_value`),
/// and no header both set and removed.
#[allow(deprecated)]
pub fn assert_overwrites(ok: &OkHttpResponse) {
    for o in &ok.headers {
        assert_overwrite_option(o);
    }
    let set: BTreeSet<String> = set_headers(ok).into_iter().map(|(k, _)| k).collect();
    let both: Vec<String> = removed(ok)
        .into_iter()
        .filter(|h| set.contains(h))
        .collect();
    assert!(both.is_empty(), "headers both set and removed: {both:?}");
}

#[allow(deprecated)]
pub fn assert_overwrite_option(o: &HeaderValueOption) {
    let h = o
        .header
        .as_ref()
        .expect("a HeaderValueOption without header");
    assert_eq!(
        o.append,
        Some(envoy_types::pb::google::protobuf::BoolValue { value: false }),
        "{}: `append` must be an explicit false",
        h.key
    );
    assert_eq!(
        o.append_action,
        HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        "{}: append_action must be OVERWRITE_IF_EXISTS_OR_ADD",
        h.key
    );
    assert!(
        h.raw_value.is_empty(),
        "{}: the value belongs in `value`, Envoy ignores `raw_value` here",
        h.key
    );
}

/// A field of `dynamic_metadata`.
fn metadata_kind<'r>(r: &'r CheckResponse, key: &str) -> Option<&'r Kind> {
    r.dynamic_metadata.as_ref()?.fields.get(key)?.kind.as_ref()
}

/// A string field of `dynamic_metadata`.
pub fn metadata_str(r: &CheckResponse, key: &str) -> Option<String> {
    match metadata_kind(r, key)? {
        Kind::StringValue(s) => Some(s.clone()),
        other => panic!("metadata {key} is not a string: {other:?}"),
    }
}

/// A list-of-strings field of `dynamic_metadata`.
pub fn metadata_list(r: &CheckResponse, key: &str) -> Option<Vec<String>> {
    match metadata_kind(r, key)? {
        Kind::ListValue(l) => Some(
            l.values
                .iter()
                .map(|v| match &v.kind {
                    Some(Kind::StringValue(s)) => s.clone(),
                    other => panic!("metadata {key} holds a non-string: {other:?}"),
                })
                .collect(),
        ),
        other => panic!("metadata {key} is not a list: {other:?}"),
    }
}

/// The route ward picked, from `dynamic_metadata.route`.
pub fn route_of(r: &CheckResponse) -> Option<String> {
    metadata_str(r, "route")
}

/// A one-line description of an answer, for failure messages.
pub fn describe(r: &CheckResponse) -> String {
    let status = r
        .status
        .as_ref()
        .map(|s| format!("{} {}", s.code, s.message))
        .unwrap_or_else(|| "no status".into());
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => format!(
            "allow [{status}] set={:?} remove={:?}",
            set_headers(ok),
            ok.headers_to_remove
        ),
        Some(HttpResponse::DeniedResponse(d)) => format!(
            "deny [{status}] http={:?} body={}",
            d.status.as_ref().map(|s| s.code),
            d.body
        ),
        Some(HttpResponse::ErrorResponse(e)) => format!("error [{status}] {e:?}"),
        None => format!("no http_response [{status}]"),
    }
}

/// A comparable summary of a decision: gRPC code, HTTP status (200 on allow), reason
/// (`ok` on allow), route, and the headers set and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub grpc_code: i32,
    pub http_status: u16,
    pub reason: String,
    pub route: Option<String>,
    /// The denial's body detail and challenge (empty and `None` on allow).
    pub detail: String,
    pub www_authenticate: Option<String>,
    pub set: Vec<(String, String)>,
    pub removed: BTreeSet<String>,
}

impl Summary {
    /// (gRPC code, HTTP status, reason).
    pub fn short(&self) -> (i32, u16, &str) {
        (self.grpc_code, self.http_status, self.reason.as_str())
    }

    /// The value of a header set upstream (the first, if set twice).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `x-auth-subject`, as set upstream.
    pub fn subject(&self) -> Option<&str> {
        self.header("x-auth-subject")
    }
}

pub fn summary(r: &CheckResponse) -> Summary {
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => Summary {
            grpc_code: grpc_code(r),
            http_status: 200,
            reason: "ok".into(),
            route: route_of(r),
            detail: String::new(),
            www_authenticate: None,
            set: set_headers(ok),
            removed: removed(ok),
        },
        Some(HttpResponse::DeniedResponse(_)) => {
            let d = denial(r);
            Summary {
                grpc_code: d.grpc_code,
                http_status: d.http_status,
                www_authenticate: d.www_authenticate().map(str::to_string),
                detail: d.detail,
                reason: d.error,
                route: route_of(r),
                set: Vec::new(),
                removed: BTreeSet::new(),
            }
        }
        _ => panic!("neither allow nor deny: {}", describe(r)),
    }
}
