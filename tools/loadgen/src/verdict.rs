//! The cheap answer classifier: the members of a `CheckResponse` that say whether a
//! check was allowed, decoded by their field numbers; prost skips the others (headers,
//! metadata: most of ward's answer) without decoding them.

use prost::bytes::Bytes;

/// The members of a `CheckResponse` the load generator reads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Verdict {
    /// `status` (google.rpc.Status)
    #[prost(message, optional, tag = "1")]
    pub status: Option<Code>,
    /// `denied_response`
    #[prost(message, optional, tag = "2")]
    pub denied: Option<Denied>,
    /// `ok_response`, present or not (its content is not read)
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub ok: Option<Bytes>,
}

/// `google.rpc.Status.code`, and `HttpStatus.code` in a denial.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Code {
    #[prost(int32, tag = "1")]
    pub code: i32,
}

/// `DeniedHttpResponse`: its HTTP status and body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Denied {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Code>,
    #[prost(string, tag = "3")]
    pub body: String,
}

/// What a check should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// gRPC OK with an `ok_response`.
    Allow,
    /// UNAUTHENTICATED with a `denied_response` of HTTP status 401.
    Deny401,
}

/// Whether an answer is the one expected; what was wrong when it is not.
pub fn judge(resp: Result<Verdict, tonic::Status>, expect: Expect) -> Result<(), String> {
    let r = resp.map_err(|s| format!("rpc error: {s}"))?;
    let code = r.status.as_ref().map_or(0, |s| s.code);
    match (&r.denied, &r.ok, expect) {
        (None, Some(_), Expect::Allow) if code == 0 => Ok(()),
        (Some(d), None, Expect::Deny401)
            if d.status.as_ref().is_some_and(|s| s.code == 401) && code == 16 =>
        {
            Ok(())
        }
        (denied, ok, _) => Err(format!(
            "expected {expect:?}, got code {code} {}",
            match (denied, ok) {
                (Some(d), _) => format!("denied: {}", d.body),
                (None, Some(_)) => "ok".into(),
                (None, None) => "no http_response".into(),
            }
        )),
    }
}

/// An answer, classified: allowed, or refused with an HTTP status and the `error` of
/// the denial's JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub allowed: bool,
    /// 200 when allowed; the denial's HTTP status (0 when it has none) otherwise.
    pub http: i32,
    /// The denial body's `error` member, `?` when it has none; empty when allowed.
    pub reason: String,
}

impl Answer {
    /// An OK status with an `ok_response` is an allow, a non-OK status with a
    /// `denied_response` a refusal; anything else (no status, or a status that
    /// disagrees with the response) is an error.
    pub fn of(v: &Verdict) -> Result<Answer, String> {
        let code = v.status.as_ref().map_or(-1, |s| s.code);
        match (&v.ok, &v.denied) {
            (Some(_), None) if code == 0 => Ok(Answer {
                allowed: true,
                http: 200,
                reason: String::new(),
            }),
            (None, Some(d)) if code != 0 => Ok(Answer {
                allowed: false,
                http: d.status.as_ref().map_or(0, |s| s.code),
                reason: error_of(&d.body).unwrap_or_else(|| "?".into()),
            }),
            _ => Err(format!("inconsistent answer: status {code}")),
        }
    }

    /// `refused 401 invalid_token`.
    pub fn refusal(&self) -> String {
        format!("refused {} {}", self.http, self.reason)
    }
}

/// The `error` member of a JSON object body.
fn error_of(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("error")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
    use envoy_types::pb::envoy::service::auth::v3::{
        CheckResponse, DeniedHttpResponse, OkHttpResponse,
    };
    use envoy_types::pb::envoy::r#type::v3::HttpStatus;
    use envoy_types::pb::google::rpc::Status;
    use prost::Message as _;

    use super::*;

    fn header(k: &str, v: &str) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(HeaderValue {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// An allow as ward sends it: identity headers, dynamic metadata left out.
    fn allow() -> CheckResponse {
        CheckResponse {
            status: Some(Status {
                code: 0,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![
                    header("x-auth-subject", "user-00000042"),
                    header("x-auth-email", "user42@example.com"),
                ],
                headers_to_remove: vec!["authorization".into()],
                ..Default::default()
            })),
            dynamic_metadata: None,
        }
    }

    fn deny(grpc: i32, http: i32, body: &str) -> CheckResponse {
        CheckResponse {
            status: Some(Status {
                code: grpc,
                message: "denied".into(),
                ..Default::default()
            }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus { code: http }),
                headers: vec![header("www-authenticate", "Bearer error=\"invalid_token\"")],
                body: body.into(),
            })),
            dynamic_metadata: None,
        }
    }

    /// The response as it travels, decoded as the load generator decodes it.
    fn wire(r: &CheckResponse) -> Verdict {
        Verdict::decode(r.encode_to_vec().as_slice()).expect("a CheckResponse decodes")
    }

    #[test]
    fn an_allow_is_allowed() {
        let v = wire(&allow());
        assert!(v.ok.is_some() && v.denied.is_none());
        assert_eq!(judge(Ok(v.clone()), Expect::Allow), Ok(()));
        assert_eq!(
            Answer::of(&v),
            Ok(Answer {
                allowed: true,
                http: 200,
                reason: String::new()
            })
        );
        assert!(judge(Ok(v), Expect::Deny401).is_err());
    }

    #[test]
    fn an_empty_ok_response_is_an_allow() {
        // The baseline's answer: an empty OkHttpResponse still has its field on the wire.
        let r = CheckResponse {
            status: Some(Status::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            dynamic_metadata: None,
        };
        assert_eq!(judge(Ok(wire(&r)), Expect::Allow), Ok(()));
    }

    #[test]
    fn a_401_is_a_deny() {
        let v = wire(&deny(16, 401, r#"{"error":"invalid_token"}"#));
        assert_eq!(judge(Ok(v.clone()), Expect::Deny401), Ok(()));
        let a = Answer::of(&v).expect("a refusal");
        assert_eq!(a.refusal(), "refused 401 invalid_token");
        assert_eq!(
            judge(Ok(v), Expect::Allow),
            Err("expected Allow, got code 16 denied: {\"error\":\"invalid_token\"}".into())
        );
    }

    #[test]
    fn a_403_is_not_a_401() {
        let v = wire(&deny(7, 403, r#"{"error":"forbidden"}"#));
        assert!(judge(Ok(v.clone()), Expect::Deny401).is_err());
        assert_eq!(
            Answer::of(&v).map(|a| a.refusal()),
            Ok("refused 403 forbidden".into())
        );
    }

    #[test]
    fn a_denial_without_a_json_error_has_reason_question_mark() {
        let v = wire(&deny(14, 503, "upstream unavailable"));
        assert_eq!(Answer::of(&v).map(|a| a.reason), Ok("?".into()));
    }

    #[test]
    fn inconsistent_answers_are_errors() {
        let mut ok_with_error = allow();
        ok_with_error.status = Some(Status {
            code: 16,
            ..Default::default()
        });
        let v = wire(&ok_with_error);
        assert_eq!(Answer::of(&v), Err("inconsistent answer: status 16".into()));
        assert!(judge(Ok(v), Expect::Allow).is_err());

        let empty = wire(&CheckResponse::default());
        assert_eq!(
            Answer::of(&empty),
            Err("inconsistent answer: status -1".into())
        );
        assert_eq!(
            judge(Ok(empty), Expect::Allow),
            Err("expected Allow, got code 0 no http_response".into())
        );
        // A denial with an OK status is inconsistent too.
        assert_eq!(
            Answer::of(&wire(&deny(0, 401, "{}"))),
            Err("inconsistent answer: status 0".into())
        );
    }

    #[test]
    fn rpc_errors_are_reported() {
        let e =
            judge(Err(tonic::Status::unavailable("gone")), Expect::Allow).expect_err("an error");
        assert!(e.starts_with("rpc error:") && e.contains("gone"), "{e}");
    }
}
