//! The token exchange request reader (`POST /token`): the first line is the
//! Content-Type, the rest the body. It must answer every input with a request or an
//! RFC 6749 error, never panic; an error never carries more than a short parameter name
//! of the input, and a request read back holds exactly one subject token and target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward::issuer::exchange;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    match exchange::parse(content_type, body) {
        Ok(r) => {
            assert!(!r.subject_token.is_empty() && !r.target.is_empty());
        }
        Err(e) => {
            assert!(e.description.len() < 200, "{:?}", e.description);
            assert!(!e.description.chars().any(char::is_control), "{:?}", e.description);
            let _: serde_json::Value = serde_json::from_str(&e.body()).expect("JSON body");
        }
    }
});
