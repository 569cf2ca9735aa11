//! The config loader: YAML text to a config or its errors. It must never panic nor
//! overflow the stack, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Files a config names are read at load: device and kernel files would only test
    // the machine (an endless /dev/zero), not ward.
    if ["/dev", "/proc", "/sys"].iter().any(|d| text.contains(d)) {
        return;
    }
    match ward_fuzz::load(text, "examples") {
        Ok(config) => {
            let _ = ward::authz::route::RouteIndex::new(config.routes());
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a failed load names its errors");
            let _ = errors.to_string();
        }
    }
});
