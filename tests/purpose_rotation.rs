//! Rotating the gateway's signing key while a service verifies its tokens through
//! discovery (SPEC §8): add the new key (published, not signing), let the services
//! fetch it, promote it (first in the list), and retire the old one once the longest
//! ttl (and the services' leeway) has passed. The gateway reloads its config file at
//! each step; no token is refused while the procedure is followed. Skipping a step is
//! shown to refuse tokens: that is why each step is there.
//!
//! Time is the manual clock's: the service's key refreshes happen when the test moves
//! it, and the test polls (with a deadline) only for the fetch over the network.

mod common;
mod purpose_setup;

use std::time::Duration;

use serde_json::json;
use ward::authn::jwt::Alg;
use ward::clock::ManualClock;

use common::{CLOCK_START, manual_clock};
use purpose_setup::{
    AUDIENCE, Gateway, LEEWAY, MIN_REFETCH, REFRESH, Service, SigningKey, TTL, header_of,
    payload_of, user_token,
};

/// Every token the gateway minted in a test, and the rule they are held to: a token is
/// accepted by the service until its `exp` plus the service's leeway, and refused after.
struct Minted {
    tokens: Vec<(String, u64)>,
}

impl Minted {
    /// Mints a token on `/checkout` and checks that `kid` signed it. Each token is for
    /// another user, so the gateway's mint cache never hands an earlier one back.
    async fn mint(&mut self, gateway: &Gateway, kid: &str) -> String {
        let user = format!("user-{}", self.tokens.len());
        let t = gateway
            .mint("/checkout/cart", &user_token(&user, &["buyer"]))
            .await;
        assert_eq!(header_of(&t)["kid"], kid, "the key that signs");
        let exp = payload_of(&t)["exp"].as_u64().expect("a numeric exp");
        self.tokens.push((t.clone(), exp));
        t
    }

    /// Sends every token minted so far to the service: each one still within its
    /// lifetime is accepted, each one past it refused.
    async fn all_judged_by_exp(&self, service: &Service, hand: &ManualClock, step: &str) {
        let now = hand.clock().unix_secs();
        for (i, (t, exp)) in self.tokens.iter().enumerate() {
            let a = service.pay(t).await;
            if now <= exp + LEEWAY {
                assert_eq!(
                    a.short(),
                    (200, "", ""),
                    "{step}: token {i} (kid {}, exp {exp}, now {now}) refused: {a:?}",
                    header_of(t)["kid"]
                );
            } else {
                assert_eq!(a.status, 401, "{step}: token {i} past its exp: {a:?}");
            }
        }
    }
}

/// The manual clock and the service's refresh schedule. Every move that reaches the
/// service's next refresh waits for the fetch it makes, so what the service holds is
/// known at each step (its first fetch, at start, set the schedule).
struct Time {
    hand: ManualClock,
    next_refresh: Duration,
    /// The refreshes the service made on its schedule so far.
    refreshes: u32,
}

impl Time {
    fn new(hand: &ManualClock) -> Self {
        Time {
            hand: hand.clone(),
            next_refresh: hand.clock().elapsed() + REFRESH,
            refreshes: 0,
        }
    }

    /// Moves the clock by `d` (at most one refresh interval).
    async fn advance(&mut self, service: &Service, d: Duration) {
        assert!(d <= REFRESH, "one refresh at most per move");
        let fetches = service.key_fetches();
        self.hand.advance(d);
        let now = self.hand.clock().elapsed();
        if now >= self.next_refresh {
            service.wait_key_fetches(fetches + 1.0).await;
            self.next_refresh = now + REFRESH;
            self.refreshes += 1;
        }
    }

    fn unix_secs(&self) -> u64 {
        self.hand.clock().unix_secs()
    }
}

#[tokio::test]
async fn rotating_the_signing_key_refuses_no_token() {
    let (clock, hand) = manual_clock();
    let mut time = Time::new(&hand);
    let old = SigningKey::generate("2026-11", Alg::ES256);
    let new = SigningKey::generate("2026-12", Alg::ES256);
    let gateway = Gateway::start(&[&old], clock.clone()).await;
    let service = Service::start(&gateway.issuer, clock).await;
    let started = service.key_fetches();
    let mut minted = Minted { tokens: Vec::new() };
    minted.mint(&gateway, "2026-11").await;
    minted.all_judged_by_exp(&service, &hand, "before").await;

    // 1. Add: the new key is published, the old one still signs.
    gateway.set_keys(&[&old, &new]);
    assert_eq!(gateway.published_kids().await, ["2026-11", "2026-12"]);
    minted.mint(&gateway, "2026-11").await;
    minted.all_judged_by_exp(&service, &hand, "added").await;
    assert_eq!(
        service.keys_held(),
        1.0,
        "nothing made the service fetch yet"
    );

    // The services fetch it on their refresh interval: the overlap lasts that long.
    time.advance(&service, REFRESH).await;
    assert_eq!(service.keys_held(), 2.0, "the service holds both keys");
    minted.mint(&gateway, "2026-11").await;
    minted.all_judged_by_exp(&service, &hand, "fetched").await;
    let last_old = minted.tokens[2].1;

    // 2. Promote: the new key signs, the old one is still published. Every token
    // verifies with keys the service already holds.
    gateway.set_keys(&[&new, &old]);
    assert_eq!(gateway.published_kids().await, ["2026-12", "2026-11"]);
    minted.mint(&gateway, "2026-12").await;
    minted.all_judged_by_exp(&service, &hand, "promoted").await;
    time.advance(&service, Duration::from_secs(TTL / 2)).await;
    minted.mint(&gateway, "2026-12").await;
    minted
        .all_judged_by_exp(&service, &hand, "promoted, later")
        .await;

    // 3. Retire, once the longest ttl and the services' leeway have passed since the
    // old key last signed: every token it signed has expired.
    let wait = (last_old + LEEWAY + 1).saturating_sub(time.unix_secs());
    time.advance(&service, Duration::from_secs(wait)).await;
    minted
        .all_judged_by_exp(&service, &hand, "old tokens expired")
        .await;
    gateway.set_keys(&[&new]);
    assert_eq!(gateway.published_kids().await, ["2026-12"]);
    minted.mint(&gateway, "2026-12").await;
    minted.all_judged_by_exp(&service, &hand, "retired").await;
    time.advance(&service, REFRESH).await;
    assert_eq!(service.keys_held(), 1.0, "the service dropped the old key");
    minted.mint(&gateway, "2026-12").await;
    // No token needed a fetch out of schedule: one at start, then each refresh.
    assert_eq!(time.refreshes, 3);
    assert_eq!(service.key_fetches(), started + f64::from(time.refreshes));
    // (The old key's expired tokens, whose kid the service no longer holds, may cost it
    // a rate-limited refetch now: the kid is looked up before `exp` is read.)
    minted
        .all_judged_by_exp(&service, &hand, "retired, fetched")
        .await;
    assert_eq!(minted.tokens.len(), 7);
}

#[tokio::test]
async fn retiring_a_key_before_its_tokens_expire_refuses_them() {
    let (clock, hand) = manual_clock();
    let old = SigningKey::generate("old", Alg::ES256);
    let new = SigningKey::generate("new", Alg::ES256);
    let gateway = Gateway::start(&[&old, &new], clock.clone()).await;
    let service = Service::start(&gateway.issuer, clock).await;
    let token = gateway
        .mint("/checkout/cart", &user_token("alice", &["buyer"]))
        .await;
    assert_eq!(header_of(&token)["kid"], "old");

    // Promoted and retired in one step, the old key's token still within its ttl.
    gateway.set_keys(&[&new]);
    Time::new(&hand).advance(&service, REFRESH).await;
    assert_eq!(service.keys_held(), 1.0);
    assert!(hand.clock().unix_secs() < CLOCK_START + TTL);
    let a = service.pay(&token).await;
    assert_eq!(a.short(), (401, "invalid_token", "unknown key id"), "{a:?}");
}

#[tokio::test]
async fn promoting_a_key_services_have_not_fetched_refuses_its_tokens_for_a_while() {
    let (clock, hand) = manual_clock();
    let old = SigningKey::generate("old", Alg::ES256);
    let new = SigningKey::generate("new", Alg::ES256);
    let gateway = Gateway::start(&[&old], clock.clone()).await;
    let service = Service::start(&gateway.issuer, clock).await;

    // Someone sends a token with a kid nobody published: the service refetches once,
    // and may not again for `min_refetch_interval`.
    let stranger = SigningKey::generate("probe", Alg::ES256);
    let probe = stranger.key.sign_parts(
        &json!({"alg": "ES256", "kid": "probe", "typ": "JWT"}).to_string(),
        &json!({"iss": gateway.issuer, "aud": AUDIENCE, "sub": "x", "exp": CLOCK_START + 60})
            .to_string(),
    );
    let fetches = service.key_fetches();
    let a = service.pay(&probe).await;
    assert_eq!(a.short(), (401, "invalid_token", "unknown key id"), "{a:?}");
    assert_eq!(
        service.key_fetches(),
        fetches + 1.0,
        "one refetch for the unknown kid"
    );

    // The new key added and promoted at once: its tokens carry a kid the service does
    // not hold and may not fetch yet.
    gateway.set_keys(&[&new, &old]);
    let token = gateway
        .mint("/checkout/cart", &user_token("alice", &["buyer"]))
        .await;
    assert_eq!(header_of(&token)["kid"], "new");
    let a = service.pay(&token).await;
    assert_eq!(a.short(), (401, "invalid_token", "unknown key id"), "{a:?}");

    // Until the refetch limit has passed.
    hand.advance(MIN_REFETCH);
    assert_eq!(service.pay(&token).await.short(), (200, "", ""));
}
