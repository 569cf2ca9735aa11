//! Reading an answer: the RFC 7662 field types, the token type, time, issuer, audience,
//! the subject and what an identity must be to reach the upstream.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::*;
use crate::authn::introspection::{AuthMethod, BreakerSettings, Endpoint, Secret};
use crate::authn::token::TokenSource;
use crate::header::HeaderName;

#[test]
fn access_token_types() {
    for t in [
        "access_token",
        "Bearer",
        "bearer",
        "N_A",
        "n_a",
        "ACCESS_TOKEN",
    ] {
        assert!(is_access_token_type(t), "{t}");
    }
    for t in ["refresh_token", "id_token", "", "Bearer ", "DPoP"] {
        assert!(!is_access_token_type(t), "{t}");
    }
}

const NOW: u64 = 1_800_000_000;

fn answer_settings() -> IntrospectionSettings {
    let h = |n: &str| HeaderName::parse(n).expect("test header name");
    let p = |n: &str| ClaimPath::parse(n).expect("test claim path");
    IntrospectionSettings {
        endpoint: Endpoint::Url("https://idp.example.com/introspect".into()),
        client_id: "ward".into(),
        client_secret: Secret::new("x".into()),
        auth_method: AuthMethod::ClientSecretBasic,
        issuer: Some("https://idp.example.com".into()),
        audiences: Audiences::OneOf(vec!["orders-api".into(), "billing-api".into()]),
        leeway: Duration::from_secs(30),
        subject: vec![p("sub"), p("client_id")],
        cache_ttl: Duration::from_secs(60),
        negative_cache_ttl: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        ca_file: None,
        max_token_bytes: 4096,
        roles_claim: p("realm_access.roles").into(),
        scopes_claim: p("scope").into(),
        token_from: vec![TokenSource::default_bearer()],
        claim_headers: vec![(p("email"), h("x-auth-email"))],
        breaker: BreakerSettings {
            failures: 5,
            cool_down: Duration::from_secs(1),
        },
    }
}

/// What judges an answer: a provider's name and settings, and the claims it keeps.
struct Reader {
    provider: Arc<str>,
    settings: IntrospectionSettings,
    kept: Vec<Arc<str>>,
}

fn reader(settings: IntrospectionSettings) -> Reader {
    Reader {
        provider: "partners".into(),
        settings,
        kept: vec![Arc::from("tenant")],
    }
}

/// An active answer that passes every check, with `extra` merged in (a null removes).
fn answer(extra: Value) -> Map<String, Value> {
    let mut doc = serde_json::json!({
        "active": true,
        "sub": "alice",
        "iss": "https://idp.example.com",
        "aud": "orders-api",
        "exp": NOW + 600,
    });
    let (Value::Object(d), Value::Object(e)) = (&mut doc, extra) else {
        unreachable!("objects")
    };
    for (k, v) in e {
        if v.is_null() {
            d.remove(&k);
        } else {
            d.insert(k, v);
        }
    }
    let Value::Object(d) = doc else {
        unreachable!()
    };
    d
}

fn read(r: &Reader, extra: Value) -> Result<Identity, TokenError> {
    verdict(&r.provider, &r.settings, &r.kept, answer(extra), NOW)
}

#[test]
fn an_active_answer_gives_its_identity() {
    use serde_json::json;
    let r = reader(answer_settings());
    let id = read(
        &r,
        json!({
            "realm_access": {"roles": ["orders-reader", "admin"]},
            "scope": "orders.read orders.write",
            "email": "alice@example.com",
            "tenant": "acme",
            "other": 1,
        }),
    )
    .unwrap();
    assert_eq!(&*id.provider, "partners");
    assert_eq!(id.subject.as_deref(), Some("alice"));
    assert_eq!(id.issuer.as_deref(), Some("https://idp.example.com"));
    assert_eq!(id.roles, claims::Names::from(["orders-reader", "admin"]));
    assert_eq!(
        id.scopes,
        claims::Names::from(["orders.read", "orders.write"])
    );
    assert_eq!(id.expires_at, Some(NOW + 600));
    let email = HeaderName::parse("x-auth-email").unwrap();
    assert_eq!(*id.claim_headers, [(email, "alice@example.com".into())]);
    assert_eq!(id.claims.names().collect::<Vec<_>>(), ["tenant"]);
    assert_eq!(id.claims.get("tenant"), Some(&json!("acme")));
    // No exp: the identity does not expire by itself.
    let id = read(&r, json!({"exp": null})).unwrap();
    assert_eq!(id.expires_at, None);
}

#[test]
fn only_active_true_is_active() {
    use serde_json::json;
    let r = reader(answer_settings());
    assert_eq!(
        read(&r, json!({"active": false})).unwrap_err(),
        TokenError::Inactive
    );
    for wrong in [json!("true"), json!(1), json!([true])] {
        assert_eq!(
            read(&r, json!({ "active": wrong })).unwrap_err(),
            TokenError::ClaimType("active"),
            "{wrong}"
        );
    }
    assert_eq!(
        read(&r, json!({"active": null})).unwrap_err(),
        TokenError::ClaimType("active"),
        "absent"
    );
}

#[test]
fn answer_fields_must_have_their_rfc_7662_types() {
    use serde_json::json;
    let r = reader(answer_settings());
    for (name, v) in [
        ("exp", json!("1")),
        ("sub", json!(7)),
        ("client_id", json!(7)),
        ("username", json!(["alice"])),
        ("token_type", json!(true)),
    ] {
        let mut extra = Map::new();
        extra.insert(name.to_owned(), v);
        assert_eq!(
            read(&r, Value::Object(extra)).unwrap_err(),
            TokenError::ClaimType(name),
            "{name}"
        );
    }
    let fine = json!({"client_id": "app", "username": "alice", "token_type": "Bearer"});
    assert!(read(&r, fine).is_ok());
}

#[test]
fn only_an_access_token_type_authorizes() {
    use serde_json::json;
    let r = reader(answer_settings());
    for t in ["refresh_token", "id_token", ""] {
        assert_eq!(
            read(&r, json!({ "token_type": t })).unwrap_err(),
            TokenError::Inactive,
            "{t}"
        );
    }
    for t in ["access_token", "Bearer", "N_A"] {
        assert!(read(&r, json!({ "token_type": t })).is_ok(), "{t}");
    }
}

#[test]
fn exp_and_nbf_hold_within_the_leeway() {
    use serde_json::json;
    let r = reader(answer_settings());
    // exp + leeway is the first second the answer is expired.
    assert_eq!(
        read(&r, json!({"exp": NOW - 30})).unwrap_err(),
        TokenError::Expired
    );
    assert_eq!(
        read(&r, json!({"exp": NOW - 31})).unwrap_err(),
        TokenError::Expired
    );
    assert!(read(&r, json!({"exp": NOW - 29})).is_ok());
    // Valid from nbf - leeway.
    assert!(read(&r, json!({"nbf": NOW + 30})).is_ok());
    assert!(read(&r, json!({"nbf": NOW})).is_ok());
    assert_eq!(
        read(&r, json!({"nbf": NOW + 31})).unwrap_err(),
        TokenError::NotYetValid
    );
}

#[test]
fn iss_must_be_the_configured_issuer() {
    use serde_json::json;
    let r = reader(answer_settings());
    for wrong in [json!(null), json!("https://idp.example.com/"), json!("x")] {
        assert_eq!(
            read(&r, json!({ "iss": wrong })).unwrap_err(),
            TokenError::Issuer,
            "{wrong}"
        );
    }
    // Without a configured issuer, whatever the answer says is kept (or none).
    let mut s = answer_settings();
    s.issuer = None;
    let r = reader(s);
    let id = read(&r, json!({"iss": "https://other.example.com"})).unwrap();
    assert_eq!(id.issuer.as_deref(), Some("https://other.example.com"));
    let id = read(&r, json!({"iss": null})).unwrap();
    assert_eq!(id.issuer, None);
}

#[test]
fn aud_must_name_an_accepted_audience_unless_any() {
    use serde_json::json;
    let r = reader(answer_settings());
    assert!(read(&r, json!({"aud": ["x", "billing-api"]})).is_ok());
    for wrong in [json!(null), json!("x"), json!(["x"]), json!([])] {
        assert_eq!(
            read(&r, json!({ "aud": wrong })).unwrap_err(),
            TokenError::Audience,
            "{wrong}"
        );
    }
    let mut s = answer_settings();
    s.audiences = Audiences::Any;
    let r = reader(s);
    assert!(read(&r, json!({"aud": null})).is_ok());
    assert!(read(&r, json!({"aud": "x"})).is_ok());
}

#[test]
fn the_subject_is_the_first_listed_claim_present() {
    use serde_json::json;
    let r = reader(answer_settings());
    let id = read(&r, json!({"sub": null, "client_id": "app"})).unwrap();
    assert_eq!(id.subject.as_deref(), Some("app"));
    let id = read(&r, json!({"client_id": "app"})).unwrap();
    assert_eq!(id.subject.as_deref(), Some("alice"), "sub comes first");
    let id = read(&r, json!({"sub": null})).unwrap();
    assert_eq!(id.subject, None);
    // The first present decides, even when it cannot be used.
    let unusable = read(&r, json!({"sub": " alice", "client_id": "app"})).unwrap_err();
    assert_eq!(unusable, TokenError::Unrepresentable(Part::Claim("sub")));
    // A subject claim of another name is named `subject` in the refusal.
    let mut s = answer_settings();
    s.subject = vec![ClaimPath::parse("ext.user").unwrap()];
    let r = reader(s);
    assert_eq!(
        read(&r, json!({"ext": {"user": 7}})).unwrap_err(),
        TokenError::ClaimType("subject")
    );
    assert_eq!(
        read(&r, json!({"ext": {"user": "bob\n"}})).unwrap_err(),
        TokenError::Unrepresentable(Part::Claim("subject"))
    );
    assert_eq!(
        read(&r, json!({"ext": {"user": "bob"}}))
            .unwrap()
            .subject
            .as_deref(),
        Some("bob")
    );
}

#[test]
fn subject_claims_known_by_name_are_named_in_refusals() {
    for name in [
        "sub",
        "client_id",
        "username",
        "email",
        "preferred_username",
        "azp",
    ] {
        assert_eq!(claim_name(&ClaimPath::parse(name).unwrap()), name);
    }
    assert_eq!(claim_name(&ClaimPath::parse("uid").unwrap()), "subject");
}

#[test]
fn unrepresentable_roles_and_scopes_refuse_the_answer() {
    use serde_json::json;
    let r = reader(answer_settings());
    assert_eq!(
        read(&r, json!({"realm_access": {"roles": ["a,b"]}})).unwrap_err(),
        TokenError::Unrepresentable(Part::Role)
    );
    assert_eq!(
        read(&r, json!({"scope": ["a b"]})).unwrap_err(),
        TokenError::Unrepresentable(Part::Scope)
    );
}

#[test]
fn a_bound_token_is_refused_not_taken_as_bearer() {
    use serde_json::json;
    let r = reader(answer_settings());
    for cnf in [
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
        json!("junk"),
    ] {
        assert_eq!(
            read(&r, json!({ "cnf": cnf })).unwrap_err(),
            TokenError::UnverifiableBinding,
            "{cnf}"
        );
    }
    // RFC 9449 §6.2: a DPoP-bound token introspects as token_type DPoP: not a bearer.
    assert_eq!(
        read(&r, json!({"token_type": "DPoP"})).unwrap_err(),
        TokenError::Inactive
    );
}
