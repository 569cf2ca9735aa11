//! Path normalisation and route selection: the first line is the host (empty for
//! `api.example.com`), the rest the raw `:path`. The route index must pick exactly the
//! route, with the same parameters, that a scan of every route in order picks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward::authz::path;
use ward::authz::route::RouteIndex;
use ward::request::CheckInput;

fuzz_target!(|data: &[u8]| {
    let Some((&method, rest)) = data.split_first() else {
        return;
    };
    let Some((host, raw)) = ward_fuzz::two_lines(rest) else {
        return;
    };
    let host = if host.is_empty() {
        "api.example.com"
    } else {
        host
    };
    let method = ["GET", "POST", "PUT", "DELETE", "get"][usize::from(method) % 5];
    let context = [("ward_route", "internal")];
    let input = CheckInput {
        method,
        host,
        path: raw,
        context: if raw.len() % 2 == 0 {
            context.to_vec()
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let _ = (input.path_only(), input.query());
    let Ok(segments) = path::normalize(raw) else {
        return;
    };
    for s in &segments {
        assert!(
            !s.is_empty() && s != "." && s != "..",
            "{s:?} in {segments:?}"
        );
    }
    let config = ward_fuzz::routes();
    let index = RouteIndex::new(config.routes());
    let picked = index
        .select(config.routes(), &input, &segments)
        .map(|(i, _, params)| (i, params));
    let scanned = config
        .routes()
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.matcher.matches(&input, &segments).map(|p| (i, p)));
    assert_eq!(picked, scanned, "{raw:?} on {host:?}");
});
