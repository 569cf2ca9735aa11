//! Reads a `CheckRequest` from its protobuf bytes straight into a [`CheckInput`] that
//! borrows them: one pass, no `String` or map per field, nothing copied.
//!
//! A Check needs a dozen of the request's fields; decoding the whole message (every
//! header into a `String` and a `HashMap`, peers, metadata, TLS session) and then
//! borrowing those fields cost as much as the rest of a cached check. This reader walks
//! the same bytes and keeps slices of the fields ward reads:
//!
//! - `attributes.request.http`: `id`, `method`, `path`, `host`, `scheme`, `headers`
//!   (the map) and `header_map` (Envoy's `encode_raw_headers`);
//! - `attributes.source`: `address.socket_address.address`, `principal`, `certificate`;
//! - `attributes.context_extensions`.
//!
//! It gives what decoding the message and then [`super::input_from`] give, which the
//! tests and the `check` fuzz target compare on every input both accept, with the
//! protobuf rules that make that true: a field sent twice keeps its last value; a
//! message field sent twice is merged (its fields read into the same place); a `oneof`
//! keeps the last member sent; a `context_extensions` key sent twice keeps its last
//! value; fields ward does not read are skipped by their wire type, groups included.
//!
//! Two choices differ from a full decode, both on input no Envoy sends:
//! - a header name sent twice in the `headers` *map* is kept twice, as a header sent
//!   twice is, rather than silently keeping the last: ward then sees an ambiguous
//!   header, never one of two values picked by position;
//! - fields ward does not read are not checked for UTF-8, so a request whose `body` or a
//!   peer label is not UTF-8 is decided instead of failing the call (a failed call is
//!   Envoy's error, which `failure_mode_allow` lets through).
//!
//! Everything else malformed (a length past the end, a bad varint or tag, a field ward
//! reads with the wrong wire type or with bytes that are not UTF-8) is a [`ReadError`].

use crate::request::{CheckInput, Headers};

/// Why a `CheckRequest` could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The message ends inside a field.
    #[error("truncated message")]
    Truncated,
    /// A varint longer than 10 bytes or over 64 bits.
    #[error("invalid varint")]
    Varint,
    /// A field key with field number 0, over 32 bits, or an unknown wire type.
    #[error("invalid field key")]
    Key,
    /// A group whose end does not match its start, or an end with no start.
    #[error("unmatched group")]
    Group,
    /// A field ward reads, sent with another wire type than its declared one.
    #[error("field {0} has the wrong wire type")]
    WireType(u32),
    /// A string field ward reads that is not UTF-8.
    #[error("field {0} is not UTF-8")]
    Utf8(u32),
}

/// The request Envoy describes, or `None` when it has no `attributes.request.http` (as
/// [`super::input_from`] gives `None`).
pub fn check_input(buf: &[u8]) -> Result<Option<CheckInput<'_>>, ReadError> {
    let mut acc = Acc::default();
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                let m = r.message(field, wire)?;
                acc.attributes(m)?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Ok(acc.finish())
}

// === wire ===

/// A protobuf wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Varint,
    Fixed64,
    Len,
    StartGroup,
    EndGroup,
    Fixed32,
}

/// A cursor over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn varint(&mut self) -> Result<u64, ReadError> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().take(10).enumerate() {
            // The tenth byte holds bit 63 only.
            if i == 9 && b > 1 {
                return Err(ReadError::Varint);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        // Ten bytes always end above (or fail): fewer ran out.
        Err(ReadError::Truncated)
    }

    /// The next field's number and wire type, or `None` at the end of the message.
    fn key(&mut self) -> Result<Option<(u32, Wire)>, ReadError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint,
            1 => Wire::Fixed64,
            2 => Wire::Len,
            3 => Wire::StartGroup,
            4 => Wire::EndGroup,
            5 => Wire::Fixed32,
            _ => return Err(ReadError::Key),
        };
        match u32::try_from(key >> 3) {
            Ok(field) if field > 0 => Ok(Some((field, wire))),
            _ => Err(ReadError::Key),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if n > self.buf.len() {
            return Err(ReadError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A length-delimited field's bytes.
    fn len_delimited(&mut self) -> Result<&'a [u8], ReadError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| ReadError::Truncated)?;
        self.take(n)
    }

    /// A field ward reads as bytes or an embedded message: it must be length-delimited.
    fn bytes(&mut self, field: u32, wire: Wire) -> Result<&'a [u8], ReadError> {
        if wire != Wire::Len {
            return Err(ReadError::WireType(field));
        }
        self.len_delimited()
    }

    /// An embedded message, as a reader of its own bytes.
    fn message(&mut self, field: u32, wire: Wire) -> Result<Reader<'a>, ReadError> {
        self.bytes(field, wire).map(Reader::new)
    }

    /// A string field ward reads.
    fn string(&mut self, field: u32, wire: Wire) -> Result<&'a str, ReadError> {
        let b = self.bytes(field, wire)?;
        std::str::from_utf8(b).map_err(|_| ReadError::Utf8(field))
    }

    /// Skips a field ward does not read. A group is skipped to its matching end,
    /// without recursion into nested groups (a stack of the open groups' numbers), so
    /// nesting depth costs memory in proportion to the message, never the thread's stack.
    fn skip(&mut self, field: u32, wire: Wire) -> Result<(), ReadError> {
        match wire {
            Wire::Varint => self.varint().map(drop),
            Wire::Fixed64 => self.take(8).map(drop),
            Wire::Fixed32 => self.take(4).map(drop),
            Wire::Len => self.len_delimited().map(drop),
            Wire::EndGroup => Err(ReadError::Group),
            Wire::StartGroup => {
                let mut open = vec![field];
                while let Some(&innermost) = open.last() {
                    let (f, w) = self.key()?.ok_or(ReadError::Truncated)?;
                    match w {
                        Wire::StartGroup => open.push(f),
                        Wire::EndGroup if f == innermost => {
                            open.pop();
                        }
                        // A scalar or length-delimited field: one level, no group.
                        _ => self.skip(f, w)?,
                    }
                }
                Ok(())
            }
        }
    }
}

// === the fields ward reads ===

/// What the walk has read so far. Every message is read into the same places however
/// many times it is sent, which is protobuf's merge.
#[derive(Default)]
struct Acc<'a> {
    /// `attributes.request.http` was sent (possibly empty).
    http: bool,
    id: &'a str,
    method: &'a str,
    path: &'a str,
    host: &'a str,
    scheme: &'a str,
    /// `http.headers`, the map.
    map_headers: Vec<(&'a str, &'a [u8])>,
    /// `http.header_map.headers`: used instead of the map when it has any.
    raw_headers: Vec<(&'a str, &'a [u8])>,
    context: Vec<(&'a str, &'a str)>,
    principal: &'a str,
    certificate: &'a str,
    /// `source.address.socket_address.address`; `Address.address` is a `oneof`, so
    /// another member sent after it (a pipe, an internal address) clears it.
    socket_address: &'a str,
}

/// Room for a usual request's headers at the first push, instead of growing through
/// 4 and 8.
const HEADERS_HINT: usize = 16;

fn push_header<'a>(list: &mut Vec<(&'a str, &'a [u8])>, name: &'a str, value: &'a [u8]) {
    if list.capacity() == 0 {
        list.reserve(HEADERS_HINT);
    }
    list.push((name, value));
}

impl<'a> Acc<'a> {
    /// `AttributeContext`.
    fn attributes(&mut self, mut r: Reader<'a>) -> Result<(), ReadError> {
        while let Some((field, wire)) = r.key()? {
            match field {
                1 => {
                    let m = r.message(field, wire)?;
                    self.source(m)?;
                }
                4 => {
                    let m = r.message(field, wire)?;
                    self.request(m)?;
                }
                10 => {
                    let m = r.message(field, wire)?;
                    let (k, v) = map_entry(m)?;
                    self.context.push((k, v));
                }
                _ => r.skip(field, wire)?,
            }
        }
        Ok(())
    }

    /// `AttributeContext.Peer`, the source.
    fn source(&mut self, mut r: Reader<'a>) -> Result<(), ReadError> {
        while let Some((field, wire)) = r.key()? {
            match field {
                1 => {
                    let m = r.message(field, wire)?;
                    self.address(m)?;
                }
                4 => self.principal = r.string(field, wire)?,
                5 => self.certificate = r.string(field, wire)?,
                _ => r.skip(field, wire)?,
            }
        }
        Ok(())
    }

    /// `config.core.v3.Address`.
    fn address(&mut self, mut r: Reader<'a>) -> Result<(), ReadError> {
        while let Some((field, wire)) = r.key()? {
            match field {
                1 => {
                    let m = r.message(field, wire)?;
                    self.socket_address(m)?;
                }
                2 | 3 => {
                    r.bytes(field, wire)?;
                    self.socket_address = "";
                }
                _ => r.skip(field, wire)?,
            }
        }
        Ok(())
    }

    /// `config.core.v3.SocketAddress`.
    fn socket_address(&mut self, mut r: Reader<'a>) -> Result<(), ReadError> {
        while let Some((field, wire)) = r.key()? {
            match field {
                2 => self.socket_address = r.string(field, wire)?,
                _ => r.skip(field, wire)?,
            }
        }
        Ok(())
    }

    /// `AttributeContext.Request`.
    fn request(&mut self, mut r: Reader<'a>) -> Result<(), ReadError> {
        while let Some((field, wire)) = r.key()? {
            match field {
                2 => {
                    let m = r.message(field, wire)?;
                    self.http = true;
                    self.http(m)?;
                }
                _ => r.skip(field, wire)?,
            }
        }
        Ok(())
    }

    /// `AttributeContext.HttpRequest`.
    fn http(&mut self, mut r: Reader<'a>) -> Result<(), ReadError> {
        while let Some((field, wire)) = r.key()? {
            match field {
                1 => self.id = r.string(field, wire)?,
                2 => self.method = r.string(field, wire)?,
                3 => {
                    let m = r.message(field, wire)?;
                    let (k, v) = map_entry(m)?;
                    push_header(&mut self.map_headers, k, v.as_bytes());
                }
                4 => self.path = r.string(field, wire)?,
                5 => self.host = r.string(field, wire)?,
                6 => self.scheme = r.string(field, wire)?,
                13 => {
                    let m = r.message(field, wire)?;
                    self.header_map(m)?;
                }
                _ => r.skip(field, wire)?,
            }
        }
        Ok(())
    }

    /// `config.core.v3.HeaderMap`, Envoy's `encode_raw_headers`.
    fn header_map(&mut self, mut r: Reader<'a>) -> Result<(), ReadError> {
        while let Some((field, wire)) = r.key()? {
            match field {
                1 => {
                    let m = r.message(field, wire)?;
                    let (k, v) = header_value(m)?;
                    push_header(&mut self.raw_headers, k, v);
                }
                _ => r.skip(field, wire)?,
            }
        }
        Ok(())
    }

    fn finish(self) -> Option<CheckInput<'a>> {
        if !self.http {
            return None;
        }
        let entries = if self.raw_headers.is_empty() {
            self.map_headers
        } else {
            self.raw_headers
        };
        let headers = Headers::from_entries(entries);
        let header = |name: &str| headers.get_str(name).unwrap_or("");
        let method = or_pseudo(self.method, || header(":method"));
        let host = or_pseudo(self.host, || header(":authority"));
        let path = or_pseudo(self.path, || header(":path"));
        let scheme = or_pseudo(self.scheme, || header(":scheme"));
        Some(CheckInput {
            method,
            host,
            path,
            context: last_of_each_key(self.context),
            source_principal: self.principal,
            source_certificate: self.certificate,
            source_address: self.socket_address,
            stream_id: self.id,
            headers,
            scheme,
        })
    }
}

/// `field`, or when Envoy left it empty, the pseudo-header it also sends.
fn or_pseudo<'a>(field: &'a str, pseudo: impl FnOnce() -> &'a str) -> &'a str {
    if field.is_empty() { pseudo() } else { field }
}

/// A `map<string, string>` entry: key and value, each empty when not sent.
fn map_entry(mut r: Reader<'_>) -> Result<(&str, &str), ReadError> {
    let (mut key, mut value) = ("", "");
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => key = r.string(field, wire)?,
            2 => value = r.string(field, wire)?,
            _ => r.skip(field, wire)?,
        }
    }
    Ok((key, value))
}

/// `config.core.v3.HeaderValue`: the key, and `raw_value` when sent non-empty, else
/// `value`.
fn header_value(mut r: Reader<'_>) -> Result<(&str, &[u8]), ReadError> {
    let (mut key, mut value, mut raw): (&str, &str, &[u8]) = ("", "", b"");
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => key = r.string(field, wire)?,
            2 => value = r.string(field, wire)?,
            3 => raw = r.bytes(field, wire)?,
            _ => r.skip(field, wire)?,
        }
    }
    Ok((
        key,
        if raw.is_empty() {
            value.as_bytes()
        } else {
            raw
        },
    ))
}

/// Map entries as a map holds them: one per key, the last one sent. Order is not kept
/// (a decoded map has none either).
fn last_of_each_key<'a>(mut entries: Vec<(&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
    if entries.len() > 1 {
        // Latest first, then a stable sort by key: each key's run starts with its last
        // value, which dedup keeps.
        entries.reverse();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        entries.dedup_by(|later, kept| later.0 == kept.0);
    }
    entries
}

#[cfg(test)]
mod tests;
