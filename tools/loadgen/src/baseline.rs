//! The do-nothing ext_authz server the benches compare ward with: every Check is OK
//! with an empty `OkHttpResponse`. It runs as the bench binary itself, re-executed with
//! [`BASELINE_ENV`] set, so it is built by the same `cargo bench`, with the same
//! profile and allocator as the load generator, and needs no binary of its own.

use std::process::ExitCode;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::rpc::Status;

/// Set (to the address to listen on) in the environment of the re-executed binary.
pub const BASELINE_ENV: &str = "WARD_BENCH_BASELINE_ADDR";

/// Serves the baseline when this process was started as one: call it first in `main`,
/// and return what it returns.
pub fn serve_if_asked() -> Option<ExitCode> {
    let addr = std::env::var(BASELINE_ENV).ok()?;
    Some(serve(&addr))
}

struct Baseline;

#[tonic::async_trait]
impl Authorization for Baseline {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(Status {
                code: 0,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            dynamic_metadata: None,
        }))
    }
}

/// Served like ward serves: a default multi-thread runtime (one worker per CPU it may
/// run on), TCP_NODELAY, tonic's default HTTP/2 settings.
pub fn serve(addr: &str) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("baseline: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r: Result<(), Box<dyn std::error::Error>> = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        serve_on(listener).await?;
        Ok(())
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baseline: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves the baseline on `listener` until the task is dropped.
pub async fn serve_on(listener: tokio::net::TcpListener) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(AuthorizationServer::new(Baseline))
        .serve_with_incoming(incoming)
        .await
}
