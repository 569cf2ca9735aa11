//! Shared harness for ward's integration tests: the real server on 127.0.0.1, requests
//! shaped the way Envoy builds them, keys and tokens minted at test time, and readers
//! that pull the parts of an answer apart. One module per concern, all re-exported here
//! so a test writes `use common::{Ward, Req, allowed}`:
//!
//! - [`server`]: [`Ward`] in-process (`ward::server::run` on ephemeral ports) and
//!   [`WardBuilder`] to compile a config, with or without serving it.
//! - [`bin`]: the real `ward` binary, for one-shot commands and `ward serve`.
//! - [`request`]: [`Req`], one request encoded in either of Envoy's header [`Shape`]s.
//! - [`http`]: [`AuthReq`], one request asked about over ward's plain-HTTP listener in
//!   each proxy's shape ([`Asker`]), byte for byte; [`Answer`], what came back.
//! - [`response`]: [`allowed`], [`denial`], [`summary`], [`metadata_str`]: readers for
//!   answers, each failing with a message that shows what came back instead.
//! - [`keys`]: [`TestKey`] / [`KeyRing`], real keys of every family, and helpers to
//!   build hostile tokens by hand ([`jws`], [`b64url`]).
//! - [`metrics`]: [`metric`], [`samples`], [`families`], readers for `/metrics`.
//! - [`poll`]: [`eventually`], [`wait_until`] (polling with a deadline, never a fixed
//!   sleep) and [`each_case`] (a table test that reports every failing row by name).
//!
//! The stand-in HTTP servers (`tests/idp`, `tests/introspect_server`, `tests/oidc`) are
//! modules of their own, declared only by the test files that start them.
//!
//! Each test binary uses a part of this module, hence the `dead_code` allowance.

#![allow(dead_code, unused_imports)]

pub mod bin;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod poll;
pub mod request;
pub mod response;
pub mod server;

pub use http::*;
pub use keys::*;
pub use metrics::*;
pub use poll::*;
pub use request::*;
pub use response::*;
pub use server::*;

/// gRPC status codes as they appear in `CheckResponse.status.code`.
pub mod code {
    pub const OK: i32 = 0;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const UNAUTHENTICATED: i32 = 16;
}
