//! ward's plain-HTTP listener as proxies call it: [`AuthReq`] is one original request,
//! written as each [`Asker`] (Envoy `http_service`, nginx `auth_request`, forward auth)
//! sends it, byte for byte over TCP, so a test can also send what no well-behaved client
//! would (a header twice, bytes that are not UTF-8, an absolute-form target, CONNECT);
//! [`Answer`] is what came back.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which proxy's shape of auth request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    Envoy,
    Nginx,
    Forward,
}

pub const ASKERS: [Asker; 3] = [Asker::Envoy, Asker::Nginx, Asker::Forward];

/// One original request, to be asked about in any shape.
#[derive(Debug, Clone)]
pub struct AuthReq {
    pub method: String,
    pub uri: String,
    pub host: String,
    /// Headers of the original request, passed on as the proxy passes them.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl AuthReq {
    pub fn new(method: &str, uri: &str) -> Self {
        Self {
            method: method.into(),
            uri: uri.into(),
            host: "api.example.com".into(),
            headers: Vec::new(),
        }
    }

    pub fn get(uri: &str) -> Self {
        Self::new("GET", uri)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.as_bytes().to_vec()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// The request line and headers `asker` sends ward for this request (no blank line),
    /// with `Connection: close` unless `keep_alive`.
    pub fn head(&self, asker: Asker, keep_alive: bool) -> Vec<u8> {
        let mut head = match asker {
            Asker::Envoy => format!(
                "{} /auth/envoy{} HTTP/1.1\r\nhost: {}\r\n",
                self.method, self.uri, self.host
            ),
            Asker::Nginx => format!(
                "GET /auth/nginx HTTP/1.1\r\nhost: {}\r\nx-original-method: {}\r\nx-original-uri: {}\r\n",
                self.host, self.method, self.uri
            ),
            Asker::Forward => format!(
                "GET /auth/forward HTTP/1.1\r\nhost: ward.internal\r\nx-forwarded-method: {}\r\nx-forwarded-uri: {}\r\nx-forwarded-host: {}\r\nx-forwarded-proto: https\r\n",
                self.method, self.uri, self.host
            ),
        }
        .into_bytes();
        for (n, v) in &self.headers {
            head.extend_from_slice(n.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(v);
            head.extend_from_slice(b"\r\n");
        }
        if !keep_alive {
            head.extend_from_slice(b"connection: close\r\n");
        }
        head
    }

    /// Asks ward at `addr` in `asker`'s shape, on a connection of its own.
    pub async fn ask(&self, addr: SocketAddr, asker: Asker) -> Answer {
        send_raw(addr, &self.head(asker, false)).await
    }
}

/// What ward answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// Every value of `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of `name`; fails the test if it was sent more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} sent {} times: {self:?}", all.len());
        all.first().copied()
    }

    /// The body as JSON; fails the test if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }

    /// Status and the body's `error`: `(401, "missing_credential")`.
    pub fn short(&self) -> (u16, String) {
        let error = match self.status {
            200 => "ok".to_string(),
            _ => self.json()["error"].as_str().unwrap_or("?").to_string(),
        };
        (self.status, error)
    }

    /// The names of the `x-auth-*` headers it sets, sorted.
    pub fn identity(&self) -> Vec<(String, String)> {
        let mut set: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-auth-"))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        set.sort();
        set
    }
}

/// Sends `head` (request line and headers, without the blank line) and reads one answer.
pub async fn send_raw(addr: SocketAddr, head: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.write_all(head).await.expect("write request");
    s.write_all(b"\r\n").await.expect("write request");
    read_answer(&mut s)
        .await
        .unwrap_or_else(|| panic!("no answer to {:?}", String::from_utf8_lossy(head)))
}

/// Reads one answer (head, then `content-length` bytes of body); `None` if the
/// connection closes first.
pub async fn read_answer(s: &mut TcpStream) -> Option<Answer> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

impl AuthReq {
    /// The same request as Envoy describes it over gRPC (no stream id: the request id is
    /// `x-request-id` or nothing, as over HTTP).
    pub fn to_grpc(&self) -> super::Req {
        let mut r = super::Req::new(&self.method, &self.uri).stream_id("");
        r.host = self.host.clone();
        for (n, v) in &self.headers {
            r = r.raw_header(n, v);
        }
        r
    }
}
