use base64::Engine as _;
use jsonwebtoken::Algorithm;
use prometheus::IntCounter;
use serde_json::{Value, json};

use super::*;
use crate::authn::claims::Claims;
use crate::issuer::keys::{SigningAlg, SigningKey};

fn issuer() -> Issuer {
    let k = testkeys::Key::generate(Algorithm::ES256);
    let key = SigningKey::from_pem("k1", SigningAlg::ES256, k.key_file()).expect("loads");
    let keys = SigningKeys::new(vec![key]).expect("one key");
    Issuer::new("https://ward.internal".into(), Arc::new(keys), 100)
}

fn grant(ttl_secs: u64, claims: &[&str]) -> Grant {
    Grant {
        purpose: "checkout".into(),
        audience: "payments-api".into(),
        ttl_secs,
        claims: claims.iter().map(|&c| c.into()).collect(),
    }
}

fn alice(expires_at: Option<u64>) -> Identity {
    Identity {
        provider: "corp".into(),
        subject: Some("alice".into()),
        issuer: Some("https://idp.example".into()),
        roles: ["buyer", "admin"].into_iter().collect(),
        scopes: ["orders:read", "orders:write"].into_iter().collect(),
        claims: Claims::from(json!({"tenant": "acme", "level": 3})),
        expires_at,
        ..Identity::default()
    }
}

fn payload(token: &str) -> Value {
    let p = token.split('.').nth(1).expect("a payload");
    serde_json::from_slice(&B64.decode(p).expect("base64url")).expect("JSON")
}

fn counter() -> IntCounter {
    IntCounter::new("minted", "test").expect("counter")
}

#[test]
fn a_token_says_who_what_for_and_the_listed_claims() {
    let n = counter();
    let m = issuer()
        .mint(
            &grant(60, &["sub", "roles", "scope", "tenant", "missing"]),
            &alice(None),
            1_000,
            true,
            &n,
        )
        .expect("mints");
    let mut claims = payload(&m.token);
    let jti = claims["jti"].as_str().expect("a jti").to_owned();
    assert_eq!(
        B64.decode(&jti).expect("base64url").len(),
        16,
        "128 random bits"
    );
    claims.as_object_mut().expect("an object").remove("jti");
    assert_eq!(
        claims,
        json!({
            "iss": "https://ward.internal",
            "aud": "payments-api",
            "sub": "alice",
            "iat": 1_000,
            "exp": 1_060,
            "purpose": "checkout",
            "act": {"iss": "https://idp.example", "sub": "alice"},
            "roles": ["buyer", "admin"],
            "scope": "orders:read orders:write",
            "tenant": "acme",
        })
    );
    assert_eq!(m.expires_at, 1_060);
    assert_eq!(n.get(), 1);
}

#[test]
fn a_token_never_outlives_its_credential() {
    let n = counter();
    let i = issuer();
    let m = i
        .mint(&grant(300, &[]), &alice(Some(1_030)), 1_000, true, &n)
        .expect("mints");
    assert_eq!(payload(&m.token)["exp"], 1_030);
    assert_eq!(
        i.mint(&grant(300, &[]), &alice(Some(1_000)), 1_000, true, &n),
        Err(MintError::Expired)
    );
    let nobody = Identity {
        subject: None,
        ..alice(None)
    };
    assert_eq!(
        i.mint(&grant(60, &[]), &nobody, 1_000, true, &n),
        Err(MintError::NoSubject)
    );
    assert_eq!(n.get(), 1, "only the one token was signed");
}

#[test]
fn the_same_identity_gets_the_same_token_until_80_percent_of_its_ttl() {
    let n = counter();
    let i = issuer();
    let g = grant(100, &["roles"]);
    let first = i.mint(&g, &alice(None), 1_000, true, &n).expect("mints");
    for now in [1_000, 1_050, 1_079] {
        assert_eq!(
            i.mint(&g, &alice(None), now, true, &n).expect("mints"),
            first,
            "at {now}"
        );
    }
    assert_eq!(n.get(), 1);
    let renewed = i.mint(&g, &alice(None), 1_080, true, &n).expect("mints");
    assert_ne!(renewed.token, first.token);
    assert_eq!(renewed.expires_at, 1_180);
    assert_eq!(n.get(), 2);
    // Another subject, other roles, another purpose: another token.
    let bob = Identity {
        subject: Some("bob".into()),
        ..alice(None)
    };
    let fewer = Identity {
        roles: ["buyer"].into_iter().collect(),
        ..alice(None)
    };
    let other = Grant {
        purpose: "refunds".into(),
        ..g.clone()
    };
    for (g, id) in [(&g, &bob), (&g, &fewer), (&other, &alice(None))] {
        assert_ne!(
            i.mint(g, id, 1_080, true, &n).expect("mints").token,
            renewed.token
        );
    }
    // Uncached (an exchange): a fresh token every time.
    let a = i.mint(&g, &alice(None), 1_080, false, &n).expect("mints");
    let b = i.mint(&g, &alice(None), 1_080, false, &n).expect("mints");
    assert_ne!(a.token, b.token);
    assert_eq!(n.get(), 7);
}

#[test]
fn a_credential_that_expires_sooner_is_not_served_a_longer_token() {
    let n = counter();
    let i = issuer();
    let g = grant(300, &[]);
    let long = i
        .mint(&g, &alice(Some(5_000)), 1_000, true, &n)
        .expect("mints");
    let short = i
        .mint(&g, &alice(Some(1_010)), 1_000, true, &n)
        .expect("mints");
    assert_eq!(long.expires_at, 1_300);
    assert_eq!(short.expires_at, 1_010);
}

#[test]
fn identities_that_would_get_different_tokens_never_share_one() {
    let iss = issuer();
    let n = counter();
    let g = grant(60, &["roles", "scope", "tenant"]);
    let base = iss
        .mint(&g, &alice(Some(5_000)), 1_000, true, &n)
        .expect("mints");
    let variants: Vec<(&str, Identity)> = vec![
        (
            "subject",
            Identity {
                subject: Some("bob".into()),
                ..alice(Some(5_000))
            },
        ),
        (
            "issuer",
            Identity {
                issuer: Some("https://other.example".into()),
                ..alice(Some(5_000))
            },
        ),
        (
            "no issuer",
            Identity {
                issuer: None,
                ..alice(Some(5_000))
            },
        ),
        (
            "empty issuer",
            Identity {
                issuer: Some("".into()),
                ..alice(Some(5_000))
            },
        ),
        (
            "roles",
            Identity {
                roles: ["buyer"].into_iter().collect(),
                ..alice(Some(5_000))
            },
        ),
        // The same names, listed otherwise: `buyer,admin` against `buyer` + `admin`.
        (
            "role order",
            Identity {
                roles: ["admin", "buyer"].into_iter().collect(),
                ..alice(Some(5_000))
            },
        ),
        (
            "scopes",
            Identity {
                scopes: ["orders:read"].into_iter().collect(),
                ..alice(Some(5_000))
            },
        ),
        (
            "claim",
            Identity {
                claims: Claims::from(json!({"tenant": "globex", "level": 3})),
                ..alice(Some(5_000))
            },
        ),
        (
            "claim type",
            Identity {
                claims: Claims::from(json!({"tenant": ["acme"], "level": 3})),
                ..alice(Some(5_000))
            },
        ),
        ("credential expiry", alice(Some(6_000))),
    ];
    for (what, id) in &variants {
        let m = iss.mint(&g, id, 1_000, true, &n).expect("mints");
        assert_ne!(m.token, base.token, "{what} differs: a token of its own");
    }
    // Claims the grant does not copy do not split the cache.
    let other_level = Identity {
        claims: Claims::from(json!({"tenant": "acme", "level": 4})),
        ..alice(Some(5_000))
    };
    assert_eq!(
        iss.mint(&g, &other_level, 1_000, true, &n)
            .expect("mints")
            .token,
        base.token
    );
    // Another grant on the same identity: another token.
    let other_grant = Grant {
        purpose: "refund".into(),
        ..g.clone()
    };
    assert_ne!(
        iss.mint(&other_grant, &alice(Some(5_000)), 1_000, true, &n)
            .expect("mints")
            .token,
        base.token
    );
    let other_aud = Grant {
        audience: "ledger".into(),
        ..g
    };
    assert_ne!(
        iss.mint(&other_aud, &alice(Some(5_000)), 1_000, true, &n)
            .expect("mints")
            .token,
        base.token
    );
}
