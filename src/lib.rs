//! ward: an Envoy external-authorization server, and the decision engine behind it as a
//! library.
//!
//! The engine ([`engine::Engine`]) takes a [`request::CheckInput`] and returns a
//! [`decision::Decision`]; it knows nothing of gRPC. The [`server`] module serves it as
//! `envoy.service.auth.v3.Authorization`; [`response`] is the only builder of Envoy's
//! `CheckResponse`.

#![forbid(unsafe_code)]

pub mod authn;
pub mod authz;
pub mod clock;
pub mod config;
pub mod decision;
pub mod devtoken;
pub mod digest;
pub mod engine;
pub mod header;
pub mod layer;
pub mod metrics;
pub mod observe;
pub mod policytest;
pub mod request;
pub mod response;
pub mod server;

pub use config::{Config, ConfigErrors};
pub use decision::{Decision, DenyReason, Verdict};
pub use engine::Engine;
pub use request::CheckInput;

// The README's Rust examples are compiled by `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
