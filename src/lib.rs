//! ward: an Envoy external-authorization server, and its decision engine as a library.
//!
//! ward verifies the credential of each request (JWT against JWKS or OIDC discovery,
//! RFC 7662 introspection, API keys, mTLS peer identity), applies the matching route's
//! rules, and answers with the verified identity as headers for the upstream. The server
//! answers Envoy's `envoy.service.auth.v3.Authorization/Check`; a Rust service can embed
//! the same decision as a `tower` layer.
//!
//! The API is small:
//! - [`Ward`]: a compiled policy (load a config, reload it, [`check`](Ward::check) a
//!   [`CheckInput`], read its [`Metrics`], make a [`layer`](Ward::layer) that follows
//!   reloads);
//! - [`CheckInput`]: the request to decide, borrowed from whatever the caller holds
//!   ([`request`]);
//! - [`Decision`]: what ward decided and why, protocol-neutral: the status, gRPC code,
//!   challenge and body of a denial ([`DenyReason`]), the header changes of an allow, the
//!   verified [`Identity`];
//! - [`WardLayer`]: the decision as a `tower` layer in a Rust service ([`layer`]);
//! - [`Server`]: the gRPC and admin listeners (and the plain-HTTP one for nginx, Caddy,
//!   Traefik and Envoy's `http_service`), as `ward serve` runs them;
//! - [`config`]: loading and validating a config file (`ward validate`);
//! - [`clock`]: the time ward decides by, which a test can hold still and move by hand;
//! - [`metrics`]: ward's Prometheus metrics, in a registry of their own;
//! - [`policytest`] and [`devtoken`]: testing a policy against a table of requests
//!   (`ward test`) with development tokens;
//! - [`status`]: what a running ward holds (`GET /status`, `ward status`).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let ward = ward::Ward::from_file("ward.yaml")?;
//! let decision = ward
//!     .check(&ward::CheckInput {
//!         method: "GET",
//!         path: "/healthz",
//!         ..Default::default()
//!     })
//!     .await;
//! assert!(decision.is_allow());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Makes ward's internal modules public (and hidden from the docs) with the `internals`
/// feature, which only ward's own tests, benches and fuzzers turn on.
macro_rules! public_internals {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        #[allow(missing_docs)]
        pub mod $name;
    )*};
}

public_internals!(
    authn, authz, digest, engine, header, issuer, observe, reload, response, server, state
);

// The same modules, private, as users build ward. Written out, not generated, so that
// tools that walk the module tree without expanding macros (rustfmt, cargo-mutants) find
// each file once; a module missing from either list fails one of the two builds.
#[cfg(not(feature = "internals"))]
mod authn;
#[cfg(not(feature = "internals"))]
mod authz;
#[cfg(not(feature = "internals"))]
mod digest;
#[cfg(not(feature = "internals"))]
mod engine;
#[cfg(not(feature = "internals"))]
mod header;
#[cfg(not(feature = "internals"))]
mod issuer;
#[cfg(not(feature = "internals"))]
mod observe;
#[cfg(not(feature = "internals"))]
mod reload;
#[cfg(not(feature = "internals"))]
mod response;
#[cfg(not(feature = "internals"))]
mod server;
#[cfg(not(feature = "internals"))]
mod state;

pub mod clock;
pub mod config;
pub mod decision;
pub mod devtoken;
pub mod layer;
pub mod metrics;
pub mod policytest;
pub mod render;
pub mod request;
pub mod status;
pub mod telemetry;
mod ward;

pub use authn::Identity;
pub use authn::claims::Names;
pub use config::{Config, ConfigErrors};
pub use decision::{Decision, DenyReason, Verdict};
pub use layer::WardLayer;
pub use metrics::Metrics;
pub use reload::ReloadError;
pub use request::CheckInput;
pub use server::Server;
pub use ward::{LoadError, Ward};

// The README's Rust examples are compiled by `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
