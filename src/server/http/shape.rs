//! Where a proxy that asks over plain HTTP puts the original request (SPEC §9), and how
//! much of what it sent ward trusts.
//!
//! The auth endpoint's own method, path and `Host` describe the proxy's question, not the
//! client's request; the original request is read from where each shape says, and only
//! there:
//!
//! | shape | endpoint | original method, URI, host |
//! |---|---|---|
//! | Envoy `http_service` | `/auth/envoy` + the original path | the request's own method, the path after `/auth/envoy`, `Host` |
//! | nginx `auth_request` | `GET /auth/nginx` | `X-Original-Method`, `X-Original-URI`, `Host` |
//! | forward auth (Traefik, Caddy) | `GET /auth/forward` | `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host` (and `X-Forwarded-Proto`) |
//!
//! Each of those values must be sent exactly once and be well formed: a missing or
//! repeated one, an absolute URI, a URI that is not UTF-8 or holds a control character or
//! a space, a `CONNECT`, a host with a comma or a path in it is refused with 400
//! `invalid_request`, never guessed at. A request for any other path is no question at all
//! (404), so nothing is ever decided on the endpoint's own path.

use std::borrow::Cow;

use axum::http::{HeaderMap, Method, Uri, Version};

/// Where Envoy's `http_service` is pointed (its `path_prefix`): the original path follows.
pub const ENVOY_PREFIX: &str = "/auth/envoy";
/// nginx's `auth_request` endpoint.
pub const NGINX_PATH: &str = "/auth/nginx";
/// Traefik's ForwardAuth and Caddy's `forward_auth` endpoint.
pub const FORWARD_PATH: &str = "/auth/forward";

/// The longest original URI read: nginx's default limit on a request line is 8 KiB, and
/// a URI past this is more likely an attack than a page.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// The longest original host read (a DNS name is at most 253 bytes; room for a port and
/// an IPv6 literal).
const MAX_HOST_BYTES: usize = 300;
/// The longest original method read (the longest registered one, `UPDATEREDIRECTREF`, is 17).
const MAX_METHOD_BYTES: usize = 32;

/// Which kind of proxy asked: where the original request is read, and how the answer is
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Envoy's ext_authz `http_service` (also Istio's `envoyExtAuthzHttp`).
    Envoy,
    /// nginx's `auth_request` (also ingress-nginx's `auth-url`).
    Nginx,
    /// Traefik's ForwardAuth and Caddy's `forward_auth`.
    Forward,
}

impl Shape {
    /// The `shape` label of `ward_http_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Shape::Envoy => "envoy",
            Shape::Nginx => "nginx",
            Shape::Forward => "forward",
        }
    }

    /// The shape whose endpoint `path` is, if any.
    pub fn of(path: &str) -> Option<Shape> {
        match path {
            NGINX_PATH => Some(Shape::Nginx),
            FORWARD_PATH => Some(Shape::Forward),
            p if p
                .strip_prefix(ENVOY_PREFIX)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')) =>
            {
                Some(Shape::Envoy)
            }
            _ => None,
        }
    }
}

/// The original request as the proxy described it, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original<'a> {
    pub method: &'a str,
    /// The path with its query string, as the client sent it.
    pub uri: &'a str,
    pub host: &'a str,
}

/// Why a request to an endpoint is not a question ward can answer (400 `invalid_request`).
pub type Invalid = Cow<'static, str>;

/// Reads the original request of `shape` from the auth request's method, target and
/// headers.
pub fn read<'a>(
    shape: Shape,
    method: &'a Method,
    uri: &'a Uri,
    version: Version,
    headers: &'a HeaderMap,
) -> Result<Original<'a>, Invalid> {
    // An HTTP/1 request target in absolute form names a host other than ward's: no proxy
    // shape sends one. (HTTP/2 always carries scheme and authority, as pseudo-headers.)
    if version < Version::HTTP_2 && uri.scheme().is_some() {
        return Err("the request target is an absolute URI; proxies send a path".into());
    }
    match shape {
        Shape::Envoy => {
            let target = uri.path_and_query().map_or("", |p| p.as_str());
            let original = target.strip_prefix(ENVOY_PREFIX).unwrap_or("");
            if !original.starts_with('/') {
                return Err(format!("no original path after {ENVOY_PREFIX}").into());
            }
            let host = match uri.authority() {
                // HTTP/2: `:authority`, unless a `host` header says otherwise.
                Some(a) if !headers.contains_key("host") => a.as_str(),
                _ => single(headers, "host")?,
            };
            checked(
                method.as_str(),
                original,
                host,
                "the request's method",
                "the path",
            )
        }
        Shape::Nginx => {
            only_get(method)?;
            checked(
                single(headers, "x-original-method")?,
                single(headers, "x-original-uri")?,
                single(headers, "host")?,
                "x-original-method",
                "x-original-uri",
            )
        }
        Shape::Forward => {
            only_get(method)?;
            let original = checked(
                single(headers, "x-forwarded-method")?,
                single(headers, "x-forwarded-uri")?,
                single(headers, "x-forwarded-host")?,
                "x-forwarded-method",
                "x-forwarded-uri",
            )?;
            let proto = single(headers, "x-forwarded-proto")?;
            if !(proto.eq_ignore_ascii_case("http") || proto.eq_ignore_ascii_case("https")) {
                return Err("x-forwarded-proto is neither http nor https".into());
            }
            Ok(original)
        }
    }
}

/// nginx and forward-auth proxies ask with `GET` (a `HEAD` is answered the same, without
/// a body).
fn only_get(method: &Method) -> Result<(), Invalid> {
    if method == Method::GET || method == Method::HEAD {
        Ok(())
    } else {
        Err("this auth endpoint takes GET; the original method goes in its header".into())
    }
}

/// The one value of `name`, as text: missing, repeated, empty or not UTF-8 is refused.
fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Invalid> {
    let mut values = headers.get_all(name).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(format!("{name} is missing").into()),
        (Some(_), Some(_)) => return Err(format!("{name} is sent more than once").into()),
        (Some(v), None) => v,
    };
    let text = std::str::from_utf8(value.as_bytes())
        .map_err(|_| Invalid::from(format!("{name} is not UTF-8")))?;
    if text.is_empty() {
        return Err(format!("{name} is empty").into());
    }
    Ok(text)
}

/// The original method, URI and host, each well formed; `method_from` and `uri_from`
/// name where they were read, for the error.
fn checked<'a>(
    method: &'a str,
    uri: &'a str,
    host: &'a str,
    method_from: &'static str,
    uri_from: &'static str,
) -> Result<Original<'a>, Invalid> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if method.is_empty() || method.len() > MAX_METHOD_BYTES || !method.bytes().all(tchar) {
        return Err(format!("{method_from} is not an HTTP method").into());
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        return Err("CONNECT is a tunnel, not a request ward can authorize".into());
    }
    if uri.len() > MAX_URI_BYTES {
        return Err(format!("{uri_from} is longer than {MAX_URI_BYTES} bytes").into());
    }
    if !uri.starts_with('/') {
        return Err(if uri.contains("://") {
            format!("{uri_from} is an absolute URI; the proxy must send the path").into()
        } else {
            format!("{uri_from} does not start with /").into()
        });
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{uri_from} holds a space or a control character").into());
    }
    let host_byte =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']');
    if host.len() > MAX_HOST_BYTES || !host.bytes().all(host_byte) {
        return Err("the original host is not a host name, address or host:port".into());
    }
    Ok(Original { method, uri, host })
}

#[cfg(test)]
mod tests;
