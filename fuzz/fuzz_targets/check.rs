//! A Check end to end: `CheckRequest` protobuf bytes, decoded as the gRPC server
//! decodes them, read into a request as the server reads it, and decided by an engine
//! on the example policy with static keys.
#![no_main]

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use ward::server::grpc::input_from;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = CheckRequest::decode(data) else {
        return;
    };
    let Some(input) = req.attributes.as_ref().and_then(input_from) else {
        return;
    };
    let (rt, engine) = ward_fuzz::engine();
    let decision = rt.block_on(engine.check(&input));
    let _ = (input.request_id(), format!("{decision:?}"));
});
