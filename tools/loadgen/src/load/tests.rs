//! The load shapes against the baseline, served in this process.

use std::net::SocketAddr;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;

use super::*;
use crate::client::encode;

async fn baseline() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(crate::baseline::serve_on(l));
    addr
}

async fn clients(addr: SocketAddr, n: usize) -> Vec<Client> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while out.len() < n {
        match Client::connect(addr).await {
            Ok(c) => out.push(c),
            Err(e) if Instant::now() > deadline => panic!("baseline never answered: {e}"),
            Err(_) => tokio::task::yield_now().await,
        }
    }
    out
}

fn requests(expect: Expect, n: usize) -> Requests {
    Arc::new(
        (0..n)
            .map(|_| (encode(&CheckRequest::default()), expect))
            .collect(),
    )
}

#[test]
fn nth_wraps_and_the_baseline_allows_everything() {
    let reqs: Requests = Arc::new(vec![
        (Bytes::from_static(b"a"), Expect::Allow),
        (Bytes::from_static(b"b"), Expect::Deny401),
    ]);
    assert_eq!(
        nth(&reqs, 3, false),
        (Bytes::from_static(b"b"), Expect::Deny401)
    );
    assert_eq!(
        nth(&reqs, 3, true),
        (Bytes::from_static(b"b"), Expect::Allow)
    );
    assert_eq!(nth(&reqs, 4, false).0, Bytes::from_static(b"a"));
}

#[tokio::test]
async fn a_closed_loop_stops_at_its_limit() {
    let addr = baseline().await;
    let clients = clients(addr, 2).await;
    let cursor = Arc::new(AtomicUsize::new(0));
    let reqs = requests(Expect::Allow, 10);
    let (st, elapsed) = closed_loop(
        &clients,
        &reqs,
        &cursor,
        50,
        4,
        Duration::from_secs(30),
        false,
    )
    .await;
    assert_eq!((st.ok, st.errors), (50, 0), "{:?}", st.first_error);
    assert_eq!(st.hist.len(), 50);
    assert!(elapsed < Duration::from_secs(30));
    // Each of the 4 workers advanced the cursor once more to find the list used up.
    assert_eq!(cursor.load(Ordering::Relaxed), 54);
}

#[tokio::test]
async fn a_wrong_answer_is_an_error_unless_all_are_allowed() {
    let addr = baseline().await;
    let clients = clients(addr, 1).await;
    let reqs = requests(Expect::Deny401, 3);
    let cursor = Arc::new(AtomicUsize::new(0));
    let (st, _) = closed_loop(
        &clients,
        &reqs,
        &cursor,
        6,
        1,
        Duration::from_secs(30),
        false,
    )
    .await;
    assert_eq!((st.ok, st.errors), (0, 6));
    assert!(
        st.first_error
            .as_deref()
            .is_some_and(|e| e.starts_with("expected Deny401, got code 0 ok")),
        "{:?}",
        st.first_error
    );
    let cursor = Arc::new(AtomicUsize::new(0));
    let (st, _) = closed_loop(
        &clients,
        &reqs,
        &cursor,
        6,
        1,
        Duration::from_secs(30),
        true,
    )
    .await;
    assert_eq!((st.ok, st.errors), (6, 0));
}

#[tokio::test]
async fn an_open_loop_sends_its_rate_for_its_duration() {
    let addr = baseline().await;
    let clients = clients(addr, 2).await;
    let reqs = requests(Expect::Allow, 1);
    let cursor = Arc::new(AtomicUsize::new(0));
    let (st, elapsed) = open_loop(
        &clients,
        &reqs,
        &cursor,
        1000,
        Duration::from_millis(100),
        false,
    )
    .await;
    assert_eq!(st.ok + st.dropped, 100);
    assert_eq!(st.errors, 0, "{:?}", st.first_error);
    assert_eq!(cursor.load(Ordering::Relaxed) as u64, st.ok);
    assert!(elapsed >= Duration::from_millis(99), "{elapsed:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_per_request() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    let clients = vec![Client::new(ch)];
    let reqs = requests(Expect::Allow, 1);
    let cursor = Arc::new(AtomicUsize::new(0));
    let (st, _) = closed_loop(
        &clients,
        &reqs,
        &cursor,
        3,
        1,
        Duration::from_secs(30),
        false,
    )
    .await;
    assert_eq!((st.ok, st.errors), (0, 3));
    assert!(
        st.first_error
            .as_deref()
            .is_some_and(|e| e.starts_with("rpc error:")),
        "{:?}",
        st.first_error
    );
}
