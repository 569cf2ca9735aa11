//! Outbound HTTP to identity providers (key sets, discovery, introspection): one client
//! recipe and one bounded read, so every call has the same timeout, redirect, CA and
//! body-size rules.

use std::path::Path;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

use crate::authn::strict_json;

/// Response bodies above this are refused, whatever `Content-Length` says.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why an identity provider gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request failed: {0}")]
    Unreachable(String),
    #[error("timed out")]
    Timeout,
    #[error("status {0}")]
    Status(u16),
    #[error("body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("response is not a JSON object")]
    NotJson,
}

impl HttpError {
    /// Bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            HttpError::Unreachable(_) => "unreachable",
            HttpError::Timeout => "timeout",
            HttpError::Status(_) => "http_status",
            HttpError::TooLarge => "too_large",
            HttpError::NotJson => "not_json",
        }
    }
}

/// A client with `timeout` on connect and on the whole request, no redirects (a
/// redirect would move trust to another URL), and the extra CA bundle if any.
pub fn client(timeout: Duration, ca_file: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ward/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{} is not a PEM bundle: {e}", ca.display()))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// Sends `req` and reads a `200` JSON object (duplicate members refused), with the
/// response headers. The whole exchange, body included, is bounded by `timeout`.
pub async fn json_object(
    req: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(Map<String, Value>, HeaderMap), HttpError> {
    let exchange = async {
        let mut resp = req.send().await.map_err(request_error)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(HttpError::Status(resp.status().as_u16()));
        }
        let headers = resp.headers().clone();
        let body = read_capped(&mut resp).await?;
        let doc = strict_json::parse_object(&body).map_err(|_| HttpError::NotJson)?;
        Ok((doc, headers))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(HttpError::Timeout),
        Ok(r) => r,
    }
}

/// An answer of any status, its body read whole (up to [`MAX_BODY_BYTES`]).
#[derive(Debug)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Sends `req` and reads the answer whatever its status (an OAuth error's body says
/// whose fault it was). The whole exchange, body included, is bounded by `timeout`.
pub async fn answer(req: reqwest::RequestBuilder, timeout: Duration) -> Result<Answer, HttpError> {
    let exchange = async {
        let mut resp = req.send().await.map_err(request_error)?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = read_capped(&mut resp).await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(HttpError::Timeout),
        Ok(r) => r,
    }
}

/// The body, refused past [`MAX_BODY_BYTES`] whatever `Content-Length` says.
async fn read_capped(resp: &mut reqwest::Response) -> Result<Vec<u8>, HttpError> {
    if resp
        .content_length()
        .is_some_and(|l| l > MAX_BODY_BYTES as u64)
    {
        return Err(HttpError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(request_error)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest's message can carry the URL (with any query secrets): keep only the cause.
fn request_error(e: reqwest::Error) -> HttpError {
    if e.is_timeout() {
        return HttpError::Timeout;
    }
    let mut msg = if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_body() || e.is_decode() {
        "broken body".to_string()
    } else {
        "request error".to_string()
    };
    if let Some(src) = std::error::Error::source(&e) {
        msg.push_str(": ");
        msg.push_str(&src.to_string());
    }
    HttpError::Unreachable(msg)
}
