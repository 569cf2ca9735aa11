//! The outcome of one check, protocol-neutral and complete: a denial knows its HTTP
//! status, gRPC code, RFC 6750 challenge and JSON body. `response.rs` renders a decision
//! as Envoy's `CheckResponse`, the tower layer as an HTTP response, `ward check` as text.

use std::borrow::Cow;
use std::sync::Arc;

use crate::authn::{Identity, TokenError};
use crate::authz::condition::Failure;
use crate::authz::path::PathError;
use crate::header::HeaderName;

/// gRPC status codes (`google.rpc.Code`): an allowed check answers [`code::OK`], a
/// denial [`DenyReason::grpc_code`].
pub mod code {
    /// The request is allowed.
    pub const OK: i32 = 0;
    /// The request cannot be read safely ([`DenyReason::InvalidRequest`](super::DenyReason::InvalidRequest)).
    pub const INVALID_ARGUMENT: i32 = 3;
    /// The caller is known but not allowed, or no route matches.
    pub const PERMISSION_DENIED: i32 = 7;
    /// A key source or introspection endpoint could not be reached.
    pub const UNAVAILABLE: i32 = 14;
    /// No credential, or one that does not verify.
    pub const UNAUTHENTICATED: i32 = 16;
}

/// Why a request is denied. Each maps to one HTTP status, gRPC code and `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// The route needs a credential and the request carries none (401).
    MissingCredential,
    /// A credential was found and refused: malformed, badly signed, expired, revoked,
    /// for another audience... (401, `error="invalid_token"`).
    InvalidToken(TokenError),
    /// The identity is verified but the route's rules do not let it in (403); the
    /// failure names the condition that was not met.
    Forbidden(Failure),
    /// No route matches the request: denied by default (403).
    NoRoute,
    /// A key source or introspection endpoint could not be reached and nothing is cached.
    AuthnUnavailable(&'static str),
    /// The request cannot be read safely (a path that does not normalise, no HTTP attributes).
    InvalidRequest(Cow<'static, str>),
}

impl DenyReason {
    /// The stable `reason` string: the metric label and the body's `error`.
    pub fn code(&self) -> &'static str {
        match self {
            DenyReason::MissingCredential => "missing_credential",
            DenyReason::InvalidToken(_) => "invalid_token",
            DenyReason::Forbidden(_) => "forbidden",
            DenyReason::NoRoute => "no_route",
            DenyReason::AuthnUnavailable(_) => "authn_unavailable",
            DenyReason::InvalidRequest(_) => "invalid_request",
        }
    }

    /// A short, fixed description safe to send to the client.
    pub fn detail(&self) -> Cow<'static, str> {
        match self {
            DenyReason::MissingCredential => "no credential".into(),
            DenyReason::InvalidToken(e) => e.to_string().into(),
            DenyReason::Forbidden(f) if f.insufficient_scope => "insufficient scope".into(),
            DenyReason::Forbidden(_) => "access denied by policy".into(),
            DenyReason::NoRoute => "no route matches the request".into(),
            DenyReason::AuthnUnavailable(_) => "identity provider unavailable".into(),
            DenyReason::InvalidRequest(why) => why.clone(),
        }
    }

    /// What operators see in logs and `ward check`: the failed condition, the provider.
    pub fn explain(&self) -> Cow<'static, str> {
        match self {
            DenyReason::Forbidden(f) if f.wrong_type => {
                format!("claim of the wrong type for: {}", f.condition).into()
            }
            DenyReason::Forbidden(f) => format!("condition not met: {}", f.condition).into(),
            DenyReason::AuthnUnavailable(why) => (*why).into(),
            other => other.detail(),
        }
    }

    /// The HTTP status of the denial.
    pub fn status(&self) -> u16 {
        match self {
            DenyReason::MissingCredential | DenyReason::InvalidToken(_) => 401,
            DenyReason::Forbidden(_) | DenyReason::NoRoute => 403,
            DenyReason::AuthnUnavailable(_) => 503,
            DenyReason::InvalidRequest(_) => 400,
        }
    }

    /// The gRPC code of the denial (see [`code`]).
    pub fn grpc_code(&self) -> i32 {
        match self {
            DenyReason::MissingCredential | DenyReason::InvalidToken(_) => code::UNAUTHENTICATED,
            DenyReason::Forbidden(_) | DenyReason::NoRoute => code::PERMISSION_DENIED,
            DenyReason::AuthnUnavailable(_) => code::UNAVAILABLE,
            DenyReason::InvalidRequest(_) => code::INVALID_ARGUMENT,
        }
    }

    /// The RFC 6750 `WWW-Authenticate` challenge of the denial, if it has one.
    pub fn challenge(&self) -> Option<String> {
        match self {
            // No credential: a bare challenge, no error code (RFC 6750 §3.1).
            DenyReason::MissingCredential => Some(r#"Bearer realm="ward""#.to_string()),
            DenyReason::InvalidToken(e) => {
                Some(crate::authn::dpop::challenge(e).unwrap_or_else(|| {
                    format!(
                        r#"Bearer realm="ward", error="invalid_token", error_description="{}""#,
                        challenge_text(e)
                    )
                }))
            }
            DenyReason::Forbidden(f) if f.insufficient_scope => {
                Some(r#"Bearer realm="ward", error="insufficient_scope""#.to_string())
            }
            _ => None,
        }
    }

    /// The JSON body of the denial.
    pub fn body(&self, request_id: &str) -> String {
        serde_json::json!({
            "error": self.code(),
            "detail": self.detail(),
            "request_id": request_id,
        })
        .to_string()
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

impl From<PathError> for DenyReason {
    fn from(e: PathError) -> Self {
        DenyReason::InvalidRequest(e.to_string().into())
    }
}

/// Header changes for the upstream request on an allow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mutations {
    /// Overwrite (never append) these.
    pub set: Vec<(HeaderName, String)>,
    /// Remove these. Never overlaps `set`.
    pub remove: Vec<HeaderName>,
}

/// Allow or deny: what the edge does with the request.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Let the request through, with these changes to its headers.
    Allow(Mutations),
    /// Answer the request with this denial; it does not reach the upstream.
    Deny(DenyReason),
}

/// What ward decided about one request, and why: the verdict, plus what the decision
/// log and the metrics need (the route, the provider, the identity).
#[derive(Debug, Clone)]
pub struct Decision {
    /// The name of the route that matched, if one did.
    pub route: Option<Arc<str>>,
    /// Allow (with header changes) or deny (with the reason).
    pub verdict: Verdict,
    /// The provider that judged the request's credential: the one that verified it, or
    /// the one that refused it (`invalid_token`, `authn_unavailable`), for the decision
    /// log. None when no credential was found or none was needed.
    pub provider: Option<Arc<str>>,
    /// The identity the request was allowed (or denied) with, if any was verified.
    pub identity: Option<Arc<Identity>>,
    /// On a shadow-mode route, the denial that was not enforced.
    pub shadow_deny: Option<DenyReason>,
    /// How the route answers this denial, when not as ward usually does.
    pub answer: Option<Answer>,
    /// Whether deciding waited on an identity provider (a key fetch, an introspection
    /// call), for the latency metric.
    pub waited_on_idp: bool,
}

/// A route's own answer to a denial.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `deny:`: its status, headers and body.
    Shaped(Arc<crate::authz::route::DenyShape>),
    /// `on_unauthenticated`: a browser is sent to log in, here.
    Redirect(String),
}

/// A denial as every front end sends it: status, headers (names in lower case), body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The HTTP status.
    pub status: u16,
    /// The response headers, each once.
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: String,
}

impl Decision {
    /// A denial before any route was selected (the request cannot be read, or no route
    /// matches it).
    pub fn deny(reason: DenyReason) -> Self {
        Decision {
            route: None,
            verdict: Verdict::Deny(reason),
            provider: None,
            identity: None,
            shadow_deny: None,
            answer: None,
            waited_on_idp: false,
        }
    }

    /// The answer to a denial (None for an allow): ward's JSON body with its
    /// `www-authenticate` challenge, or the route's own (`deny:`, `on_unauthenticated`).
    pub fn denial(&self, request_id: &str) -> Option<Denial> {
        self.denial_answered(request_id, self.answer.as_ref())
    }

    /// [`Self::denial`] as ward answers it without the route's own answer (for nginx's
    /// `auth_request`, which turns any status but 401 and 403 into a 500).
    pub fn usual_denial(&self, request_id: &str) -> Option<Denial> {
        self.denial_answered(request_id, None)
    }

    fn denial_answered(&self, request_id: &str, answer: Option<&Answer>) -> Option<Denial> {
        let Verdict::Deny(reason) = &self.verdict else {
            return None;
        };
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(c) = reason.challenge() {
            headers.push(("www-authenticate".to_string(), c));
        }
        let mut denial = Denial {
            status: reason.status(),
            headers,
            body: reason.body(request_id),
        };
        match answer {
            None => {}
            Some(Answer::Redirect(location)) => {
                denial.status = 302;
                denial.headers = vec![("location".to_string(), location.clone())];
                denial.body = String::new();
            }
            Some(Answer::Shaped(shape)) => {
                if let Some(s) = shape.status {
                    denial.status = s;
                }
                if let Some(b) = &shape.body {
                    denial.body = b
                        .replace("{reason}", reason.code())
                        .replace("{request_id}", request_id);
                }
                for (name, value) in &shape.headers {
                    denial.headers.retain(|(n, _)| n != name.as_str());
                    denial
                        .headers
                        .push((name.as_str().to_string(), value.clone()));
                }
            }
        }
        Some(denial)
    }

    /// Whether the request goes through (a shadow-mode denial is an allow).
    pub fn is_allow(&self) -> bool {
        matches!(self.verdict, Verdict::Allow(_))
    }

    /// The metric label: `allow`, `deny` or `shadow_deny`.
    pub fn label(&self) -> &'static str {
        match (&self.verdict, &self.shadow_deny) {
            (Verdict::Deny(_), _) => "deny",
            (Verdict::Allow(_), Some(_)) => "shadow_deny",
            (Verdict::Allow(_), None) => "allow",
        }
    }

    /// The metric label `reason`: `ok`, or the (possibly shadowed) denial's code.
    pub fn reason_code(&self) -> &'static str {
        match (&self.verdict, &self.shadow_deny) {
            (Verdict::Deny(r), _) | (Verdict::Allow(_), Some(r)) => r.code(),
            (Verdict::Allow(_), None) => "ok",
        }
    }
}

/// A decision explained for people and scripts (`ward check`, `ward test`): never the
/// credential, only what was decided and why.
pub struct Report<'d> {
    d: &'d Decision,
    /// The header of the token minted on this allow, and the token's claims.
    minted: Option<(&'d str, &'d serde_json::Map<String, serde_json::Value>)>,
}

/// What the report shows for the value of a minted token's header.
const MINTED_VALUE: &str = "(a token ward minted: see minted)";

impl<'d> Report<'d> {
    /// The report of `d`.
    pub fn new(d: &'d Decision) -> Self {
        Self { d, minted: None }
    }

    /// The report of an allow that carries the token minted into `header`, whose
    /// `claims` were read back (with
    /// [`policytest::read_minted`](crate::policytest::read_minted)): the report shows
    /// those claims under `minted`, and a placeholder instead of the token.
    pub fn with_minted(
        mut self,
        header: &'d str,
        claims: &'d serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        self.minted = Some((header, claims));
        self
    }

    /// The HTTP status Envoy would answer with (200 when allowed).
    pub fn status(&self) -> u16 {
        match &self.d.verdict {
            Verdict::Allow(_) => 200,
            Verdict::Deny(r) => r.status(),
        }
    }

    /// The decision as a JSON object (`ward check --json`): `decision`, `route`,
    /// `status`, `reason`, and when they apply `detail`, `explain`, `www_authenticate`,
    /// `identity`, `headers_set`, `headers_removed` and `minted` (`{header, claims}`).
    pub fn to_json(&self) -> serde_json::Value {
        let d = self.d;
        let mut v = serde_json::json!({
            "decision": d.label(),
            "route": d.route.as_deref(),
            "status": self.status(),
            "reason": d.reason_code(),
        });
        let reason = match (&d.verdict, &d.shadow_deny) {
            (Verdict::Deny(r), _) | (Verdict::Allow(_), Some(r)) => Some(r),
            _ => None,
        };
        if let Some(r) = reason {
            v["detail"] = r.detail().into();
            v["explain"] = r.explain().into();
        }
        if let Verdict::Deny(r) = &d.verdict
            && let Some(c) = r.challenge()
        {
            v["www_authenticate"] = c.into();
        }
        if let Some(id) = &d.identity {
            v["identity"] = serde_json::json!({
                "provider": &*id.provider,
                "subject": id.subject,
                "issuer": id.issuer.as_deref(),
                "roles": id.roles,
                "scopes": id.scopes,
            });
        }
        if let Verdict::Allow(m) = &d.verdict {
            let minted_header = self.minted.map(|(h, _)| h);
            let set: serde_json::Map<String, serde_json::Value> = m
                .set
                .iter()
                .map(|(h, val)| {
                    let val = if minted_header == Some(h.as_str()) {
                        MINTED_VALUE
                    } else {
                        val
                    };
                    (h.to_string(), val.into())
                })
                .collect();
            v["headers_set"] = set.into();
            v["headers_removed"] = m
                .remove
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .into();
        }
        if let Some((header, claims)) = self.minted {
            v["minted"] = serde_json::json!({"header": header, "claims": claims});
        }
        v
    }

    /// The decision as `key: value` lines (`ward check`); for a verified identity, its
    /// `provider`, `subject`, `roles` and `scopes` as ward read them (also on a denial,
    /// where no header shows them); then one `set:` line per header set, one `remove:`
    /// line per header removed and one `minted: claim: JSON` line per claim of a
    /// minted token.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let j = self.to_json();
        let mut out = String::new();
        for key in [
            "decision",
            "route",
            "status",
            "reason",
            "detail",
            "explain",
            "www_authenticate",
        ] {
            match &j[key] {
                serde_json::Value::Null => {}
                serde_json::Value::String(s) => {
                    let _ = writeln!(out, "{key}: {s}");
                }
                other => {
                    let _ = writeln!(out, "{key}: {other}");
                }
            }
        }
        if let Some(id) = &self.d.identity {
            let list = |names: &crate::authn::claims::Names, sep: &str| {
                let all: Vec<&str> = names.iter().collect();
                if all.is_empty() {
                    "(none)".to_string()
                } else {
                    all.join(sep)
                }
            };
            let _ = writeln!(out, "provider: {}", id.provider);
            let _ = writeln!(
                out,
                "subject: {}",
                id.subject.as_deref().unwrap_or("(none)")
            );
            let _ = writeln!(out, "roles: {}", list(&id.roles, ", "));
            let _ = writeln!(out, "scopes: {}", list(&id.scopes, " "));
        }
        if let Some(set) = j["headers_set"].as_object() {
            for (h, val) in set {
                let _ = writeln!(out, "set: {h}: {}", val.as_str().unwrap_or_default());
            }
        }
        if let Some(rm) = j["headers_removed"].as_array() {
            for h in rm {
                let _ = writeln!(out, "remove: {}", h.as_str().unwrap_or_default());
            }
        }
        if let Some((_, claims)) = self.minted {
            for (name, val) in claims {
                let _ = writeln!(out, "minted: {name}: {val}");
            }
        }
        out
    }
}
