//! The gRPC port's other services: grpc.health.v1.Health (what Kubernetes gRPC probes
//! and Envoy health checks ask) and server reflection (what grpcurl uses).

mod common;
mod idp;

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use common::{TestKey, Ward, jwks_of, manual_clock, wait_until};
use idp::Idp;
use ward::authn::jwt::Alg;

const AUTHZ: &str = "envoy.service.auth.v3.Authorization";

const OPEN: &str =
    "routes:\n  - name: open\n    match: { path_prefix: / }\n    allow_anonymous: true\n";

#[tokio::test]
async fn health_reports_serving_then_not_serving_on_shutdown() {
    let ward = Ward::start(OPEN).await;
    let mut health = HealthClient::new(ward.channel().await);
    for service in ["", "envoy.service.auth.v3.Authorization"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "service {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await;
    assert_eq!(
        unknown.expect_err("unknown service").code(),
        tonic::Code::NotFound
    );

    // A watcher sees NOT_SERVING when shutdown begins.
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch
        .message()
        .await
        .expect("stream")
        .expect("first status");
    assert_eq!(first.status(), ServingStatus::Serving);
    let _stopping = ward.stop();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("a status change before the deadline");
    if let Ok(Some(m)) = next {
        assert_eq!(m.status(), ServingStatus::NotServing);
    }
}

#[tokio::test]
async fn the_authorization_service_serves_once_every_provider_holds_keys() {
    // Envoy's health check asks for the Authorization service: a replica still without
    // keys must not get checks. "" (liveness) serves from the start.
    let k = TestKey::generate(Alg::ES256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    idp.set_status(503);
    let yaml = format!(
        "providers:\n  - name: idp\n    jwt: {{ issuer: https://idp.test, audiences: [api], jwks_uri: {} }}\nroutes:\n  - name: api\n    match: {{ path_prefix: / }}\n    providers: [idp]\n",
        idp.jwks_uri()
    );
    let (clock, hand) = manual_clock();
    let ward = Ward::builder(&yaml).clock(clock).start().await;
    let mut health = HealthClient::new(ward.channel().await);
    let mut status = async |service: &str| {
        let req = HealthCheckRequest {
            service: service.into(),
        };
        let r = health.check(req).await.expect("health check");
        r.into_inner().status()
    };
    assert_eq!(status("").await, ServingStatus::Serving);
    assert_eq!(status(AUTHZ).await, ServingStatus::NotServing);
    assert_eq!(ward.admin_get("/readyz").await.0, 503);

    idp.set_status(200);
    // A second of ward's time per look: the failed fetch's backoff runs out.
    wait_until(
        "the Authorization service serving",
        Duration::from_secs(10),
        async || {
            hand.advance(Duration::from_secs(1));
            status(AUTHZ).await == ServingStatus::Serving
        },
    )
    .await;
    assert_eq!(ward.admin_get("/readyz").await.0, 200);
}

#[tokio::test]
async fn reflection_lists_and_describes_the_authorization_service() {
    let ward = Ward::start(OPEN).await;
    let mut client = ServerReflectionClient::new(ward.channel().await);
    let ask = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    let requests = tokio_stream::iter(vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "envoy.service.auth.v3.Authorization".into(),
        )),
    ]);
    let mut answers = client
        .server_reflection_info(requests)
        .await
        .expect("reflection")
        .into_inner();

    let listed = answers
        .message()
        .await
        .expect("stream")
        .expect("list answer");
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("expected a service list, got {listed:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "envoy.service.auth.v3.Authorization",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }

    let described = answers
        .message()
        .await
        .expect("stream")
        .expect("file answer");
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("expected file descriptors, got {described:?}");
    };
    use prost::Message;
    let names: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|b| {
            prost_types::FileDescriptorProto::decode(b.as_slice())
                .expect("descriptor")
                .name()
                .to_string()
        })
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n == "envoy/service/auth/v3/external_auth.proto"),
        "{names:?}"
    );
}

#[tokio::test]
async fn an_unknown_method_of_the_authorization_service_is_unimplemented() {
    use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};

    let ward = Ward::start(OPEN).await;
    let mut grpc = tonic::client::Grpc::new(ward.channel().await);
    grpc.ready().await.expect("channel ready");
    let codec = tonic_prost::ProstCodec::<CheckRequest, CheckResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/envoy.service.auth.v3.Authorization/Nope",
    );
    let r = grpc
        .unary(tonic::Request::new(CheckRequest::default()), path, codec)
        .await;
    assert_eq!(
        r.expect_err("no such method").code(),
        tonic::Code::Unimplemented
    );
    // The service itself still answers (a Check without attributes is a 400 denial).
    let r = ward
        .client()
        .await
        .check(CheckRequest::default())
        .await
        .expect("Check answers")
        .into_inner();
    assert_eq!(
        r.status.expect("status").code,
        ward::response::code::INVALID_ARGUMENT
    );
}
