//! `CheckInput`: ward's own small, borrowed view of one request to authorize.
//!
//! It is built once at the edge (from Envoy's `CheckRequest`, from `ward check` flags, or
//! from an `http::Request` in the tower layer) and read by everything else; no protobuf
//! type reaches the decision engine.

use std::borrow::Cow;

/// What a header lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Not sent.
    Absent,
    /// Sent once, with this value.
    One(&'a [u8]),
    /// The header was sent more than once (as separate lines).
    Many,
}

/// Request headers as Envoy sent them: lower-case names; values as bytes, because
/// `header_map` carries raw, unsanitized bytes.
#[derive(Debug, Default, Clone)]
pub struct Headers<'a> {
    entries: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Headers<'a> {
    /// Room for `n` headers.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
        }
    }

    /// Headers from (name, value) pairs, in the order sent.
    pub fn from_entries(entries: Vec<(&'a str, &'a [u8])>) -> Self {
        Self { entries }
    }

    /// Adds a header (name in lower case, as Envoy sends it).
    pub fn push(&mut self, name: &'a str, value: &'a [u8]) {
        self.entries.push((name, value));
    }

    /// Every value of `name` (compared case-insensitively), in order.
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// `name` (compared case-insensitively): absent, sent once, or sent more than once.
    pub fn get(&self, name: &str) -> Lookup<'a> {
        let mut it = self.get_all(name);
        match (it.next(), it.next()) {
            (None, _) => Lookup::Absent,
            (Some(v), None) => Lookup::One(v),
            (Some(_), Some(_)) => Lookup::Many,
        }
    }

    /// The single value of `name` as text, if it was sent exactly once and is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        match self.get(name) {
            Lookup::One(v) => std::str::from_utf8(v).ok(),
            _ => None,
        }
    }

    /// Every header, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.entries.iter().copied()
    }
}

/// One request to authorize.
#[derive(Debug, Default, Clone)]
pub struct CheckInput<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// `:authority` / Host, possibly with a port.
    pub host: &'a str,
    /// The raw `:path`, query string included, as Envoy forwards it.
    pub path: &'a str,
    /// The request headers.
    pub headers: Headers<'a>,
    /// Envoy per-route `context_extensions`.
    pub context: Vec<(&'a str, &'a str)>,
    /// The peer's identity from its certificate (a SPIFFE ID in a mesh).
    pub source_principal: &'a str,
    /// URL-encoded PEM of the peer certificate, when Envoy sends it.
    pub source_certificate: &'a str,
    /// The peer's address (`ip:port`), as Envoy saw it.
    pub source_address: &'a str,
    /// Envoy's stream id, the fallback request id.
    pub stream_id: &'a str,
    /// The request's scheme (`http`, `https`), when the edge reports it: the URL a DPoP
    /// proof names starts with it.
    pub scheme: &'a str,
}

impl<'a> CheckInput<'a> {
    /// A request from owned parts (`ward check`, `ward test`): headers and context
    /// extensions as name/value pairs, header names already lower-case.
    pub fn from_pairs(
        method: &'a str,
        host: &'a str,
        path: &'a str,
        headers: &'a [(String, String)],
        context: &'a [(String, String)],
    ) -> Self {
        let mut h = Headers::with_capacity(headers.len());
        for (n, v) in headers {
            h.push(n, v.as_bytes());
        }
        CheckInput {
            method,
            host,
            path,
            headers: h,
            context: context
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            ..Default::default()
        }
    }

    /// The id reported in logs and denial bodies: `x-request-id`, else Envoy's stream id.
    /// Only printable ASCII up to 128 bytes is kept, so it is safe in a header or a log.
    pub fn request_id(&self) -> Cow<'a, str> {
        let from_header = self
            .headers
            .get_str("x-request-id")
            .filter(|id| !id.is_empty());
        let id = from_header.unwrap_or(self.stream_id);
        let clean = id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic());
        if clean {
            Cow::Borrowed(id)
        } else {
            Cow::Owned(
                id.chars()
                    .filter(char::is_ascii_graphic)
                    .take(128)
                    .collect(),
            )
        }
    }

    /// The path without its query string (for logs: tokens travel in queries too).
    pub fn path_only(&self) -> &'a str {
        self.path.split(['?', '#']).next().unwrap_or("")
    }

    /// The raw query string of `path` (without the `?` and any fragment), or "".
    pub fn query(&self) -> &'a str {
        match self.path.split_once('?') {
            Some((_, q)) => q.split('#').next().unwrap_or(""),
            None => "",
        }
    }

    /// The context extension `key`, if Envoy sent one.
    pub fn context_value(&self, key: &str) -> Option<&'a str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_sees_duplicates() {
        let mut h = Headers::default();
        h.push("authorization", b"Bearer a");
        h.push("x-one", b"1");
        h.push("Authorization", b"Bearer b");
        assert_eq!(h.get("authorization"), Lookup::Many);
        assert_eq!(h.get("x-one"), Lookup::One(b"1"));
        assert_eq!(h.get("x-none"), Lookup::Absent);
    }

    #[test]
    fn request_id_prefers_header_and_is_sanitized() {
        let mut input = CheckInput {
            stream_id: "12345",
            ..Default::default()
        };
        assert_eq!(input.request_id(), "12345");
        input.headers.push("x-request-id", b"abc\r\n\"x");
        assert_eq!(input.request_id(), "abc\"x");
    }

    #[test]
    fn query_and_path_split() {
        let input = CheckInput {
            path: "/a/b?access_token=x&y=1",
            ..Default::default()
        };
        assert_eq!(input.path_only(), "/a/b");
        assert_eq!(input.query(), "access_token=x&y=1");
    }
}
