//! A Check end to end: `CheckRequest` protobuf bytes, read as the gRPC server reads them
//! (`server::grpc::read`), and decided by an engine on the example policy with static
//! keys. Whenever prost also decodes the bytes, the reader must give what that decode
//! and `input_from` give (headers and context compared as sets, since a decoded map has
//! no order; a header name repeated in the map is the one documented difference).
#![no_main]

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use ward::CheckInput;
use ward::server::grpc::{input_from, read::check_input};

type View = (Vec<String>, Vec<(String, Vec<u8>)>, Vec<(String, String)>);

fn view(i: &CheckInput<'_>) -> View {
    let scalars = [
        i.method,
        i.host,
        i.path,
        i.scheme,
        i.stream_id,
        i.source_principal,
        i.source_certificate,
        i.source_address,
    ];
    let mut headers: Vec<_> = i
        .headers
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_vec()))
        .collect();
    headers.sort();
    let mut context: Vec<_> = i
        .context
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    context.sort();
    (scalars.map(str::to_owned).to_vec(), headers, context)
}

fuzz_target!(|data: &[u8]| {
    let read = check_input(data);
    if let Ok(req) = CheckRequest::decode(data) {
        let decoded = req.attributes.as_ref().and_then(input_from);
        let ours = match &read {
            Ok(ours) => ours,
            Err(e) => panic!("prost decodes what ward refuses: {e}"),
        };
        match (ours, &decoded) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                let (a, b) = (view(a), view(b));
                assert_eq!(a.2, b.2, "context");
                if a.1.len() == b.1.len() {
                    assert_eq!(a, b);
                } else {
                    // The map held a name twice: ward keeps both (and a pseudo-header
                    // sent twice is no fallback), a decode kept one.
                    let mut names: Vec<_> = a.1.iter().map(|(k, _)| k).collect();
                    names.dedup();
                    assert!(
                        names.len() < a.1.len(),
                        "headers lost without a repeated name"
                    );
                }
            }
            _ => panic!("one reads a request, the other none"),
        }
    }
    let Ok(Some(input)) = read else {
        return;
    };
    let (rt, engine) = ward_fuzz::engine();
    let decision = rt.block_on(engine.check(&input));
    let _ = (input.request_id(), format!("{decision:?}"));
});
