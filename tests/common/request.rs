//! Requests shaped the way Envoy builds them: [`Req`] is one HTTP request, encoded as
//! Envoy's default `headers` map (repeated headers joined with `,`, invalid UTF-8 turned
//! into `!`) or as `header_map` with raw bytes (`encode_raw_headers: true`), see
//! [`Shape`].

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

/// How Envoy encodes request headers in `attributes.request.http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The default: the `headers` map, repeated headers joined with `,`, values
    /// UTF-8-sanitized (invalid bytes become `!`).
    Map,
    /// `encode_raw_headers: true`: `header_map`, one `raw_value` per header line,
    /// unjoined and unsanitized; `headers` is empty.
    Raw,
}

impl Shape {
    pub const BOTH: [Shape; 2] = [Shape::Map, Shape::Raw];
}

/// One HTTP request as Envoy describes it to an ext_authz server.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub host: String,
    /// `:path`, query string included.
    pub path: String,
    pub scheme: String,
    /// Envoy's stream id (`attributes.request.http.id`).
    pub stream_id: String,
    /// Header lines in order, lower-case names, raw values.
    pub headers: Vec<(String, Vec<u8>)>,
    pub context: BTreeMap<String, String>,
    /// `attributes.source.principal` (the peer's SPIFFE id in a mesh).
    pub principal: Option<String>,
    /// `attributes.source.certificate`: the peer's URL-encoded PEM certificate.
    pub certificate: Option<String>,
}

impl Req {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_string(),
            host: "api.example.com".to_string(),
            path: path.to_string(),
            scheme: "https".to_string(),
            stream_id: "4242".to_string(),
            headers: Vec::new(),
            context: BTreeMap::new(),
            principal: None,
            certificate: None,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn stream_id(mut self, id: &str) -> Self {
        self.stream_id = id.to_string();
        self
    }

    /// Adds a header line (the name is lower-cased, as Envoy sends it).
    pub fn header(self, name: &str, value: &str) -> Self {
        self.raw_header(name, value.as_bytes())
    }

    /// Adds a header line with arbitrary bytes as its value.
    pub fn raw_header(mut self, name: &str, value: &[u8]) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_vec()));
        self
    }

    /// `authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn request_id(self, id: &str) -> Self {
        self.header("x-request-id", id)
    }

    /// A per-route `context_extensions` entry.
    pub fn context(mut self, key: &str, value: &str) -> Self {
        self.context.insert(key.to_string(), value.to_string());
        self
    }

    pub fn principal(mut self, principal: &str) -> Self {
        self.principal = Some(principal.to_string());
        self
    }

    /// The peer certificate, as Envoy fills `source.certificate` (URL-encoded PEM).
    pub fn certificate(mut self, certificate: &str) -> Self {
        self.certificate = Some(certificate.to_string());
        self
    }

    /// Every header line Envoy would send, pseudo-headers first.
    fn lines(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![
            (":authority".to_string(), self.host.clone().into_bytes()),
            (":path".to_string(), self.path.clone().into_bytes()),
            (":method".to_string(), self.method.clone().into_bytes()),
            (":scheme".to_string(), self.scheme.clone().into_bytes()),
        ];
        out.extend(self.headers.iter().cloned());
        out
    }

    /// The `CheckRequest` Envoy would send with its default `headers` map.
    pub fn to_map(&self) -> CheckRequest {
        let mut headers: HashMap<String, String> = HashMap::new();
        for (name, value) in self.lines() {
            let value = sanitize_utf8(&value);
            headers
                .entry(name)
                .and_modify(|v| {
                    v.push(',');
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        self.request(headers, None)
    }

    /// The `CheckRequest` Envoy would send with `encode_raw_headers: true`.
    pub fn to_raw(&self) -> CheckRequest {
        let lines = self
            .lines()
            .into_iter()
            .map(|(key, raw_value)| HeaderValue {
                key,
                raw_value,
                ..Default::default()
            })
            .collect();
        self.request(HashMap::new(), Some(HeaderMap { headers: lines }))
    }

    pub fn build(&self, shape: Shape) -> CheckRequest {
        match shape {
            Shape::Map => self.to_map(),
            Shape::Raw => self.to_raw(),
        }
    }

    fn request(
        &self,
        headers: HashMap<String, String>,
        header_map: Option<HeaderMap>,
    ) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                source: (self.principal.is_some() || self.certificate.is_some()).then(|| Peer {
                    principal: self.principal.clone().unwrap_or_default(),
                    certificate: self.certificate.clone().unwrap_or_default(),
                    ..Default::default()
                }),
                request: Some(Request {
                    http: Some(HttpRequest {
                        id: self.stream_id.clone(),
                        method: self.method.clone(),
                        host: self.host.clone(),
                        path: self.path.clone(),
                        scheme: self.scheme.clone(),
                        protocol: "HTTP/1.1".to_string(),
                        headers,
                        header_map,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                context_extensions: self
                    .context
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                ..Default::default()
            }),
        }
    }
}

/// Envoy's `MessageUtil::sanitizeUtf8String`: each invalid byte becomes `!`.
pub fn sanitize_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let skip = e.error_len().unwrap_or(bad.len());
                out.extend(std::iter::repeat_n('!', skip));
                rest = &bad[skip..];
            }
        }
    }
}
