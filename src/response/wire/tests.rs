use std::sync::Arc;

use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use prost::Message as _;

use super::Answer;
use crate::authn::claims::Names;
use crate::authn::{Identity, TokenError};
use crate::decision::{Decision, DenyReason, Mutations, Verdict};
use crate::header::HeaderName;
use crate::response::check_response;

fn h(name: &str) -> HeaderName {
    HeaderName::parse(name).unwrap()
}

fn allow(route: Option<&str>, identity: Option<Identity>, set: &[(&str, &str)]) -> Decision {
    let set: Vec<(HeaderName, String)> = set.iter().map(|(k, v)| (h(k), v.to_string())).collect();
    let remove = ["x-auth-subject", "x-auth-roles", "authorization"]
        .iter()
        .map(|n| h(n))
        .filter(|n| !set.iter().any(|(s, _)| s == n))
        .collect();
    Decision {
        route: route.map(Into::into),
        verdict: Verdict::Allow(Mutations { set, remove }),
        provider: identity.as_ref().map(|i| i.provider.clone()),
        identity: identity.map(Arc::new),
        shadow_deny: None,
        answer: None,
        waited_on_idp: false,
    }
}

fn alice() -> Identity {
    Identity {
        provider: "corp".into(),
        subject: Some("alice".into()),
        issuer: Some("https://idp.example.com/realms/main".into()),
        roles: Names::from(["admin", "orders-reader"]),
        scopes: Names::from(["openid"]),
        expires_at: Some(1),
        ..Default::default()
    }
}

/// The written bytes decode to the message `check_response` builds, and their length is
/// the one announced by `encoded_len`.
fn assert_same(d: &Decision, case: &str) {
    let bytes = Answer::new(d.clone(), "req-1").encode_to_vec();
    assert_eq!(
        Answer::new(d.clone(), "req-1").encoded_len(),
        bytes.len(),
        "{case}: encoded_len"
    );
    let decoded = CheckResponse::decode(bytes.as_slice())
        .unwrap_or_else(|e| panic!("{case}: not a CheckResponse: {e}"));
    assert_eq!(decoded, check_response(d, "req-1"), "{case}");
}

#[test]
fn allowed_answers_decode_to_the_built_response() {
    assert_same(&allow(Some("public"), None, &[]), "anonymous");
    assert_same(&allow(None, None, &[]), "no route name");
    assert_same(
        &allow(
            Some("api"),
            Some(alice()),
            &[
                ("x-auth-subject", "alice"),
                ("x-auth-roles", "admin,orders-reader"),
                ("x-auth-email", "alice@example.com"),
            ],
        ),
        "identity with headers",
    );
    let bare = Identity {
        provider: "keys".into(),
        subject: Some("".into()),
        issuer: None,
        roles: Names::default(),
        ..Default::default()
    };
    assert_same(
        &allow(Some("api"), Some(bare), &[]),
        "empty subject, no issuer, no roles",
    );
    let odd = Identity {
        roles: Names::from(["", "ünïcode-rôle", &"r".repeat(300)]),
        subject: Some("s".repeat(20_000).into()),
        ..alice()
    };
    let long_value = "v".repeat(200);
    assert_same(
        &allow(
            Some(&"route-".repeat(40)),
            Some(odd),
            &[
                ("x-auth-subject", &long_value),
                ("x-auth-tenant", "Zoë & Co"),
            ],
        ),
        "multi-byte lengths and UTF-8",
    );
}

#[test]
fn shadow_and_denied_answers_decode_to_the_built_response() {
    let mut shadow = allow(Some("beta"), Some(alice()), &[("x-auth-subject", "alice")]);
    shadow.shadow_deny = Some(DenyReason::InvalidToken(TokenError::Expired));
    assert_same(&shadow, "shadow deny");
    for reason in [
        DenyReason::MissingCredential,
        DenyReason::InvalidToken(TokenError::Signature),
        DenyReason::NoRoute,
        DenyReason::AuthnUnavailable("keys unreachable"),
    ] {
        let d = Decision {
            route: Some("api".into()),
            verdict: Verdict::Deny(reason.clone()),
            provider: None,
            identity: None,
            shadow_deny: None,
            answer: None,
            waited_on_idp: false,
        };
        assert_same(&d, &format!("deny {reason:?}"));
    }
}

#[test]
fn an_answer_ignores_what_is_decoded_into_it() {
    let bytes = check_response(&allow(Some("api"), None, &[]), "r").encode_to_vec();
    let mut a = Answer::new(allow(Some("x"), None, &[]), "r");
    a.merge(bytes.as_slice()).expect("fields are skipped");
    assert_same(&allow(Some("x"), None, &[]), "after merge");
}

// === clearing ===

#[test]
fn a_cleared_answer_is_the_empty_message() {
    let mut a = Answer::new(
        allow(Some("api"), Some(alice()), &[("x-auth-subject", "alice")]),
        "r",
    );
    assert!(a.encoded_len() > 0);
    a.clear();
    assert_eq!(a.encoded_len(), 0);
    assert!(a.encode_to_vec().is_empty());
    let decoded = CheckResponse::decode(a.encode_to_vec().as_slice()).expect("empty message");
    assert_eq!(decoded, CheckResponse::default());
}
