//! Cache-Control, skipped-key reports, and refresh, staleness and refetch limits moving
//! with an injected clock.

use std::sync::atomic::AtomicUsize;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;
use crate::authn::alg::Alg;
use crate::clock::ManualClock;
use crate::devtoken::SigningKey;

#[test]
fn reads_max_age() {
    assert_eq!(
        max_age("public, max-age=300"),
        Some(Duration::from_secs(300))
    );
    assert_eq!(max_age("no-store"), None);
    assert_eq!(max_age("max-age=x"), None);
}

#[test]
fn the_same_skipped_keys_are_reported_once() {
    let log = SkipLog::default();
    let a = vec!["keys[0] (kid \"a\"): `use` is not `sig`".to_string()];
    let b = vec!["keys[1] (kid \"b\"): RSA key is invalid".to_string()];
    assert!(!log.first_report(&[]), "nothing skipped: nothing to report");
    assert!(log.first_report(&a));
    assert!(!log.first_report(&a), "the same document again");
    assert!(log.first_report(&b), "what is skipped changed");
    assert!(!log.first_report(&[]));
    assert!(log.first_report(&b), "skipped again after a clean set");
}

#[test]
fn clip_keeps_at_most_200_characters() {
    assert_eq!(clip("short"), "short");
    assert_eq!(clip(&"é".repeat(300)).chars().count(), 200);
}

// === time, by the injected clock ===

/// A stand-in identity provider on 127.0.0.1 that serves one HS256 JWKS and counts the
/// fetches.
struct Idp {
    url: String,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Idp {
    async fn start() -> Idp {
        let key = SigningKey::from_bytes(&[7u8; 32], Alg::HS256).expect("test key");
        let body = key.jwks().to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
        let fetches = Arc::new(AtomicUsize::new(0));
        let count = fetches.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (body, count) = (body.clone(), count.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        Idp { url, fetches, task }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Keys on a manual clock, refreshed every 60 s, refetched at most every 10 s.
    fn keys(&self) -> (Arc<RemoteKeys>, ManualClock) {
        let (clock, hand) = Clock::manual(Duration::from_secs(1_800_000_000));
        let settings = RemoteSettings {
            provider: "corp".into(),
            locator: Locator::Jwks(self.url.clone()),
            refresh_interval: Duration::from_secs(60),
            min_refetch_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            ca_file: None,
        };
        let keys = RemoteKeys::new(settings, Arc::new(Metrics::new()), clock).expect("store");
        (keys, hand)
    }

    /// Polls (on real time, with a deadline) until the IdP has served `n` fetches and
    /// the store has finished as many.
    async fn wait_for_fetches(&self, keys: &RemoteKeys, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.fetches() < n || keys.generation.load(Ordering::Acquire) < n as u64 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} fetches of {n}",
                self.fetches()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_min_refetch_interval() {
    let idp = Idp::start().await;
    let (keys, hand) = idp.keys();
    keys.keys_for(None).await.expect("first fetch");
    assert_eq!(idp.fetches(), 1);
    hand.advance(Duration::from_secs(10));
    keys.keys_for(Some("rotated")).await.expect("keys held");
    assert_eq!(idp.fetches(), 2, "an unknown kid refetches");
    hand.advance(Duration::from_millis(9_999));
    keys.keys_for(Some("rotated")).await.expect("keys held");
    assert_eq!(idp.fetches(), 2, "not again within min_refetch_interval");
    hand.advance(Duration::from_millis(1));
    keys.keys_for(Some("rotated")).await.expect("keys held");
    assert_eq!(idp.fetches(), 3, "once it has passed, by the clock");
}

#[tokio::test]
async fn keys_no_task_refreshes_are_refetched_once_older_than_refresh_interval() {
    let idp = Idp::start().await;
    let (keys, hand) = idp.keys();
    keys.keys_for(None).await.expect("first fetch");
    hand.advance(Duration::from_millis(59_999));
    keys.keys_for(None).await.expect("fresh keys");
    assert!(!keys.is_stale());
    assert_eq!(idp.fetches(), 1);
    hand.advance(Duration::from_millis(1));
    assert!(keys.is_stale(), "60 s old by the clock");
    keys.keys_for(None).await.expect("stale keys still serve");
    idp.wait_for_fetches(&keys, 2).await;
    assert!(!keys.is_stale(), "refetched behind the check");
}

#[tokio::test]
async fn the_refresh_loop_waits_on_the_clock() {
    let idp = Idp::start().await;
    let (keys, hand) = idp.keys();
    keys.start_refresh();
    idp.wait_for_fetches(&keys, 1).await;
    hand.advance(Duration::from_millis(59_999));
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    let next = keys.generation.load(Ordering::Acquire);
    hand.advance(Duration::from_millis(1));
    idp.wait_for_fetches(&keys, 2).await;
    assert_eq!(
        next, 1,
        "no refresh before the interval had passed by the clock"
    );
}
