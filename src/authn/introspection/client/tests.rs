//! The exchange's pieces, and the cache, negative cache and breaker moving with an
//! injected clock against a stand-in endpoint.

use std::sync::atomic::AtomicUsize;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;
use crate::authn::claims::ClaimPath;
use crate::authn::introspection::{Audiences, BreakerSettings, Endpoint as Endpoint_, Secret};
use crate::authn::token::TokenSource;
use crate::clock::ManualClock;

#[test]
fn retry_after_reads_seconds_and_takes_a_date_as_later() {
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    let with = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        retry_after(&h, Duration::from_secs(5))
    };
    assert_eq!(with("2"), Some(Duration::from_secs(2)));
    assert_eq!(with(" 0 "), Some(Duration::ZERO));
    assert_eq!(
        with("99999999999999999999999"),
        Some(Duration::from_secs(u64::MAX))
    );
    assert_eq!(
        with("Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(Duration::from_secs(5))
    );
    assert_eq!(with("-1"), Some(Duration::from_secs(5)));
    assert_eq!(retry_after(&HeaderMap::new(), Duration::from_secs(5)), None);
}

#[test]
fn oauth_error_codes_are_read_only_when_safe_to_log() {
    let code = |body: &str| oauth_error(body.as_bytes());
    assert_eq!(
        code(r#"{"error":"invalid_client","error_description":"no"}"#).as_deref(),
        Some("invalid_client")
    );
    for bad in [
        r#"{"error":""}"#,
        r#"{"error":"a\nb"}"#,
        r#"{"error":"quote\"d"}"#,
        r#"{"error":7}"#,
        r#"{"nothing":1}"#,
        "<html>",
        r#"{"error":"é"}"#,
    ] {
        assert_eq!(code(bad), None, "{bad}");
    }
    assert_eq!(code(&format!(r#"{{"error":"{}"}}"#, "x".repeat(65))), None);
    assert!(is_about_the_token("unsupported_token_type"));
    assert!(!is_about_the_token("invalid_request") && !is_about_the_token("invalid_client"));
}

#[test]
fn b64tokens_only() {
    assert!(is_b64token("abc-._~+/DEF=="));
    for bad in [
        "", "==", " abc", "abc ", "a b", "a\tb", "é", "a,b", "a=b", "a\"b",
    ] {
        assert!(!is_b64token(bad), "{bad:?}");
    }
}

#[test]
fn client_credentials_are_form_encoded() {
    assert_eq!(form_encode("ward"), "ward");
    assert_eq!(form_encode("a b:c+d/é"), "a%20b%3Ac%2Bd%2F%C3%A9");
}

// === cache, negative cache and breaker, by the injected clock ===

const START: u64 = 1_800_000_000;

/// A stand-in introspection endpoint on 127.0.0.1: `good` is active (for an hour),
/// every other token inactive; or, while `failing`, 503 to everything. Counts calls.
struct Endpoint {
    url: String,
    calls: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endpoint {
    async fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/introspect", listener.local_addr().expect("addr"));
        let (calls, failing) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (count, fail) = (calls.clone(), failing.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (count, fail) = (count.clone(), fail.clone());
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut conn).await else {
                        return;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let good = req.windows(10).any(|w| w == b"token=good");
                    let (status, body) = if fail.load(Ordering::SeqCst) {
                        ("503 Service Unavailable", "{}".to_string())
                    } else if good {
                        let exp = START + 3600;
                        let body = format!(
                            r#"{{"active":true,"sub":"alice","iss":"https://idp.example.com","aud":"orders-api","exp":{exp}}}"#
                        );
                        ("200 OK", body)
                    } else {
                        ("200 OK", r#"{"active":false}"#.to_string())
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        Endpoint {
            url,
            calls,
            failing,
            task,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// A client of this endpoint on a manual clock: answers cached 60 s, refusals 10 s;
    /// the breaker opens after 2 failures and probes every second.
    fn client(&self) -> (Introspector, Clock, ManualClock) {
        let (clock, hand) = Clock::manual(Duration::from_secs(START));
        let p = |n: &str| ClaimPath::parse(n).expect("test claim path");
        let settings = IntrospectionSettings {
            endpoint: Endpoint_::Url(self.url.clone()),
            client_id: "ward".into(),
            client_secret: Secret::new("x".into()),
            auth_method: AuthMethod::ClientSecretBasic,
            issuer: Some("https://idp.example.com".into()),
            audiences: Audiences::OneOf(vec!["orders-api".into()]),
            leeway: Duration::from_secs(30),
            subject: vec![p("sub")],
            cache_ttl: Duration::from_secs(60),
            negative_cache_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            ca_file: None,
            max_token_bytes: 4096,
            roles_claim: p("roles").into(),
            scopes_claim: p("scope").into(),
            token_from: vec![TokenSource::default_bearer()],
            claim_headers: vec![],
            breaker: BreakerSettings {
                failures: 2,
                cool_down: Duration::from_secs(1),
            },
        };
        let metrics = Arc::new(Metrics::new());
        let client = Introspector::new(
            "partners".into(),
            settings,
            100,
            metrics,
            vec![],
            clock.clone(),
            None,
        )
        .expect("test client");
        (client, clock, hand)
    }
}

/// One HTTP/1.1 request, headers and body (as long as its `content-length`).
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if req.len() >= end + 4 + len {
                return Some(req);
            }
        }
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
}

/// The verdict on `token` now, by `clock`: allowed, or why not.
async fn verify(c: &Introspector, clock: &Clock, token: &str) -> Result<(), Refusal> {
    c.verify(token, clock.unix_secs()).await.map(|_| ())
}

#[tokio::test]
async fn answers_count_for_cache_ttl_by_the_clock() {
    let ep = Endpoint::start().await;
    let (c, clock, hand) = ep.client();
    verify(&c, &clock, "good").await.expect("active");
    verify(&c, &clock, "good").await.expect("cached");
    assert_eq!(ep.calls(), 1);
    hand.advance(Duration::from_millis(59_999));
    verify(&c, &clock, "good").await.expect("still cached");
    assert_eq!(ep.calls(), 1);
    hand.advance(Duration::from_millis(1));
    verify(&c, &clock, "good").await.expect("asked again");
    assert_eq!(ep.calls(), 2, "cache_ttl passed by the clock");
}

#[tokio::test]
async fn refusals_count_for_negative_cache_ttl_by_the_clock() {
    let ep = Endpoint::start().await;
    let (c, clock, hand) = ep.client();
    let inactive = Err(Refusal::Token(TokenError::Inactive));
    assert_eq!(verify(&c, &clock, "junk").await, inactive);
    hand.advance(Duration::from_millis(9_999));
    assert_eq!(verify(&c, &clock, "junk").await, inactive);
    assert_eq!(ep.calls(), 1, "the refusal is cached");
    hand.advance(Duration::from_millis(1));
    assert_eq!(verify(&c, &clock, "junk").await, inactive);
    assert_eq!(ep.calls(), 2, "negative_cache_ttl passed by the clock");
}

#[tokio::test]
async fn an_open_breaker_probes_after_its_cool_down_by_the_clock() {
    let ep = Endpoint::start().await;
    let (c, clock, hand) = ep.client();
    ep.failing.store(true, Ordering::SeqCst);
    for t in ["a", "b"] {
        assert!(matches!(
            verify(&c, &clock, t).await,
            Err(Refusal::Unavailable(_))
        ));
    }
    assert_eq!(ep.calls(), 2);
    let open = Err(Refusal::Unavailable(Unavailable(
        IntrospectError::CircuitOpen.explain(),
    )));
    assert_eq!(verify(&c, &clock, "c").await, open);
    hand.advance(Duration::from_millis(999));
    assert_eq!(verify(&c, &clock, "c").await, open);
    assert_eq!(ep.calls(), 2, "open: no calls within the cool-down");
    ep.failing.store(false, Ordering::SeqCst);
    hand.advance(Duration::from_millis(1));
    verify(&c, &clock, "good")
        .await
        .expect("the probe closes the breaker");
    assert_eq!(ep.calls(), 3);
}
