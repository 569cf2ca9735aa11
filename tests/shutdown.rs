//! Shutdown and drain: `run` returns within the grace period once signalled, closing both
//! listeners and idle connections, and a check already in flight (here, waiting on a key
//! fetch) is answered before the server stops.

mod check_setup;
mod common;
mod idp;
mod remote_keys_setup;

use std::time::Duration;

use check_setup::config;
use common::{KeyRing, Req, TestKey, Ward, allowed, jwks_of, wait_until};
use idp::Idp;
use remote_keys_setup::{ISS, get, outcome, start_on, token};
use ward::authn::jwt::Alg;

#[tokio::test]
async fn shutdown_stops_the_server_within_the_grace_period() {
    let keys = KeyRing::shared();
    let ward = Ward::builder(&config(keys, ""))
        .file("keys/corp.json", jwks_of(&keys.all()).to_string())
        .grace(Duration::from_secs(3))
        .start()
        .await;
    // An open, used connection must not hold the server up.
    let mut client = ward.client().await;
    allowed(
        &client
            .check(Req::get("/public").to_map())
            .await
            .expect("check")
            .into_inner(),
    );
    let (grpc, admin, grace) = (ward.grpc_addr, ward.admin_addr, ward.grace);

    let took = ward.shutdown().await;
    assert!(took < grace, "run took {took:?}, the grace is {grace:?}");
    let after = client.check(Req::get("/public").to_map()).await;
    assert!(
        after.is_err(),
        "the old connection still answers: {after:?}"
    );
    assert!(
        tokio::net::TcpStream::connect(grpc).await.is_err(),
        "the gRPC listener still accepts"
    );
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "the admin listener still accepts"
    );
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_check_finish() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    // The only fetch takes 600ms: a check arriving now waits on it.
    idp.set_delay(Duration::from_millis(600));
    let ward = start_on(&idp, "timeout: 3s").await;
    let mut client = ward.client().await;
    let t = token(&k, ISS, "inflight", 60);
    let in_flight = tokio::spawn(async move { client.check(get("/api/x", Some(&t))).await });
    // Shut down while that check waits for keys.
    wait_until("the fetch started", Duration::from_secs(5), async || {
        idp.jwks_hits() > 0
    })
    .await;
    let stopping = ward.stop();
    let answer = in_flight
        .await
        .expect("task")
        .expect("the in-flight check is answered, not cut");
    assert_eq!(
        outcome(&answer.into_inner()),
        (0, 200, "ok".into(), Some("inflight".into()))
    );
    // run returns within the grace period, and without an error.
    stopping.join().await;
}
