//! The wire side of RFC 8693 token exchange: reading a form-encoded request and writing
//! the JSON answers (RFC 8693 §2.2, RFC 6749 §5.2 errors). Which exchange answers and
//! whether its rules pass is the engine's to decide (`engine/exchange.rs`).
//!
//! The reading is strict: every parameter at most once, no parameter ward does not know,
//! the body at most [`MAX_BODY`] bytes. RFC 6749 §3.2 asks servers to ignore unknown
//! parameters; an authorization server that mints credentials refuses them instead, so a
//! client that sends `actor_token` (delegation, which ward does not do) or a misspelt
//! `audience` hears so rather than getting a token it did not ask for.

use std::borrow::Cow;

use percent_encoding::percent_decode;
use serde_json::json;

/// `grant_type` of a token exchange.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The `issued_token_type` of every answer: ward issues JWTs.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const TOKEN_TYPE_ID: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The largest request body read (RFC 8693 requests are a few kilobytes).
pub const MAX_BODY: usize = 64 * 1024;

const KNOWN: &[&str] = &[
    "grant_type",
    "subject_token",
    "subject_token_type",
    "audience",
    "resource",
    "requested_token_type",
    "scope",
    "actor_token",
    "actor_token_type",
];

/// A request that reads as a token exchange: the credential and the audience asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct ExchangeRequest {
    pub subject_token: String,
    /// `audience`, or `resource` when no audience is given.
    pub target: String,
}

/// An RFC 6749 §5.2 error: answered with status 400 and a JSON body. The description is
/// fixed text or a parameter's name, never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: Cow<'static, str>,
}

impl OAuthError {
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self {
            error: "invalid_request",
            description: d.into(),
        }
    }

    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self {
            error: "invalid_grant",
            description: d.into(),
        }
    }

    pub fn invalid_target(d: impl Into<Cow<'static, str>>) -> Self {
        Self {
            error: "invalid_target",
            description: d.into(),
        }
    }

    /// The JSON body: `{"error", "error_description"}`.
    pub fn body(&self) -> String {
        json!({"error": self.error, "error_description": &*self.description}).to_string()
    }

    /// The `result` label of `ward_token_exchange_requests_total`.
    pub fn result(&self) -> &'static str {
        self.error
    }
}

/// The JSON body of an issued token (RFC 8693 §2.2.1).
pub fn issued_body(token: &str, expires_in: u64) -> String {
    json!({
        "access_token": token,
        "issued_token_type": TOKEN_TYPE_JWT,
        "token_type": "Bearer",
        "expires_in": expires_in,
    })
    .to_string()
}

/// Reads a token exchange request: `content_type` must be form encoding, `body` at most
/// [`MAX_BODY`] bytes.
pub fn parse(content_type: Option<&[u8]>, body: &[u8]) -> Result<ExchangeRequest, OAuthError> {
    let form = content_type
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| {
            c.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    if body.len() > MAX_BODY {
        return Err(OAuthError::invalid_request(
            "the request body is over 64 KiB",
        ));
    }
    let mut values: [Option<String>; KNOWN.len()] = Default::default();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = decode(name)?;
        let Some(at) = KNOWN.iter().position(|k| *k == name) else {
            return Err(OAuthError::invalid_request(if printable(&name) {
                format!("unknown parameter `{name}`")
            } else {
                "unknown parameter".to_string()
            }));
        };
        if values[at].is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{}` is repeated",
                KNOWN[at]
            )));
        }
        values[at] = Some(decode(value)?);
    }
    let [
        grant_type,
        subject_token,
        subject_token_type,
        audience,
        resource,
        requested_token_type,
        scope,
        actor_token,
        actor_token_type,
    ] = values;
    let grant_type =
        grant_type.ok_or_else(|| OAuthError::invalid_request("missing `grant_type`"))?;
    if grant_type != GRANT_TYPE {
        return Err(OAuthError {
            error: "unsupported_grant_type",
            description: format!("only `{GRANT_TYPE}` is served here").into(),
        });
    }
    if actor_token.is_some() || actor_token_type.is_some() {
        return Err(OAuthError::invalid_request(
            "`actor_token` is not supported: ward exchanges a subject token, it does not delegate",
        ));
    }
    if scope.is_some() {
        return Err(OAuthError {
            error: "invalid_scope",
            description:
                "`scope` is not supported: an exchange's audience says what the token is for".into(),
        });
    }
    let subject_token = subject_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("missing `subject_token`"))?;
    match subject_token_type.as_deref() {
        None | Some("") => {
            return Err(OAuthError::invalid_request("missing `subject_token_type`"));
        }
        Some(TOKEN_TYPE_JWT | TOKEN_TYPE_ACCESS | TOKEN_TYPE_ID) => {}
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "`subject_token_type` must be the jwt, access_token or id_token type",
            ));
        }
    }
    if let Some(t) = requested_token_type.as_deref()
        && t != TOKEN_TYPE_JWT
        && t != TOKEN_TYPE_ACCESS
    {
        return Err(OAuthError::invalid_request(
            "`requested_token_type` must be the jwt or access_token type: ward issues JWTs",
        ));
    }
    let target = match (
        audience.filter(|a| !a.is_empty()),
        resource.filter(|r| !r.is_empty()),
    ) {
        (Some(a), Some(r)) if a != r => {
            return Err(OAuthError::invalid_target(
                "`audience` and `resource` name different targets",
            ));
        }
        (Some(a), _) => a,
        (None, Some(r)) => r,
        (None, None) => {
            return Err(OAuthError::invalid_request(
                "missing `audience` (or `resource`)",
            ));
        }
    };
    Ok(ExchangeRequest {
        subject_token,
        target,
    })
}

/// Form decoding: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn decode(raw: &[u8]) -> Result<String, OAuthError> {
    let plus: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&plus)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| OAuthError::invalid_request("a parameter is not UTF-8"))
}

/// Short visible ASCII: safe to name back in an error.
fn printable(s: &str) -> bool {
    s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests;
