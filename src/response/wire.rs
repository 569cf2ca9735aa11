//! Allowed answers written straight into gRPC's output buffer.
//!
//! An allowed `CheckResponse` built as prost structs costs one allocation per header name,
//! header value, removed header and metadata key and value, a hashed map for the
//! metadata, then an encoding pass and a drop of all of it: on a cached-token check that
//! was most of ward's own work. [`Answer`] keeps the [`Decision`] and writes the same
//! protobuf message from it directly, with no intermediate structs. Denials (rarer, with
//! a body) still go through [`check_response`].
//!
//! The bytes decode to exactly the message [`check_response`] builds: the tests compare
//! the two for every kind of decision.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};

use super::check_response;
use crate::decision::{Decision, Verdict};

/// What the gRPC service answers: encoded by prost's codec through [`prost::Message`].
#[derive(Debug)]
pub struct Answer(Inner);

#[derive(Debug)]
enum Inner {
    Allow(Decision),
    Built(CheckResponse),
}

impl Answer {
    pub fn new(d: Decision, request_id: &str) -> Self {
        match d.verdict {
            Verdict::Allow(_) => Self(Inner::Allow(d)),
            Verdict::Deny(_) => Self(Inner::Built(check_response(&d, request_id))),
        }
    }
}

impl prost::Message for Answer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match &self.0 {
            Inner::Allow(d) => allow(&mut Write(buf), d),
            Inner::Built(r) => r.encode_raw(buf),
        }
    }

    fn encoded_len(&self) -> usize {
        match &self.0 {
            Inner::Allow(d) => {
                let mut c = Count(0);
                allow(&mut c, d);
                c.0
            }
            Inner::Built(r) => r.encoded_len(),
        }
    }

    /// An answer is only ever sent, never read: decoding one skips every field.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn clear(&mut self) {
        self.0 = Inner::Built(CheckResponse::default());
    }
}

// Field numbers, from envoy/service/auth/v3/external_auth.proto and its imports.
const CHECK_RESPONSE_STATUS: u32 = 1;
const CHECK_RESPONSE_OK: u32 = 3;
const CHECK_RESPONSE_METADATA: u32 = 4;
const OK_HEADERS: u32 = 2;
const OK_HEADERS_TO_REMOVE: u32 = 5;
const OPTION_HEADER: u32 = 1;
const OPTION_APPEND: u32 = 2;
const OPTION_APPEND_ACTION: u32 = 3;
const HEADER_KEY: u32 = 1;
const HEADER_VALUE: u32 = 2;
const STRUCT_FIELDS: u32 = 1;
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;
const VALUE_STRING: u32 = 3;
const VALUE_LIST: u32 = 6;
const LIST_VALUES: u32 = 1;

/// Where bytes go: counted (for a length prefix) or written.
trait Out {
    fn put(&mut self, bytes: &[u8]);
    /// The running count, when this only counts.
    fn count(&mut self) -> Option<&mut usize>;
}

struct Count(usize);

impl Out for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }

    fn count(&mut self) -> Option<&mut usize> {
        Some(&mut self.0)
    }
}

struct Write<'b, B>(&'b mut B);

impl<B: BufMut> Out for Write<'_, B> {
    fn put(&mut self, bytes: &[u8]) {
        self.0.put_slice(bytes);
    }

    fn count(&mut self) -> Option<&mut usize> {
        None
    }
}

fn varint(o: &mut dyn Out, mut v: u64) {
    let mut b = [0u8; 10];
    let mut n = 0;
    while v >= 0x80 {
        b[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    b[n] = v as u8;
    o.put(&b[..=n]);
}

fn key(o: &mut dyn Out, tag: u32, wire: WireType) {
    varint(o, u64::from(tag << 3 | wire as u32));
}

/// A string field, omitted when empty (proto3's default), as prost does.
fn string(o: &mut dyn Out, tag: u32, s: &str) {
    if !s.is_empty() {
        string_always(o, tag, s);
    }
}

/// A string that is written even when empty (a oneof member).
fn string_always(o: &mut dyn Out, tag: u32, s: &str) {
    key(o, tag, WireType::LengthDelimited);
    varint(o, s.len() as u64);
    o.put(s.as_bytes());
}

/// A nested message: its length first (from a counting pass), then its fields. While
/// counting, the fields are visited once: a message costs a pass per level above it, not
/// one per path through the levels.
fn message(o: &mut dyn Out, tag: u32, fields: &dyn Fn(&mut dyn Out)) {
    let mut c = Count(0);
    fields(&mut c);
    key(o, tag, WireType::LengthDelimited);
    varint(o, c.0 as u64);
    match o.count() {
        Some(n) => *n += c.0,
        None => fields(o),
    }
}

fn allow(o: &mut dyn Out, d: &Decision) {
    let Verdict::Allow(m) = &d.verdict else {
        return;
    };
    // Status { code: OK }: the code is proto3's default, so the message is empty.
    message(o, CHECK_RESPONSE_STATUS, &|_| {});
    message(o, CHECK_RESPONSE_OK, &|o| {
        for (h, v) in &m.set {
            message(o, OK_HEADERS, &|o| {
                message(o, OPTION_HEADER, &|o| {
                    string(o, HEADER_KEY, h.as_str());
                    string(o, HEADER_VALUE, v);
                });
                // append: BoolValue { value: false } (an empty message), and the action.
                message(o, OPTION_APPEND, &|_| {});
                key(o, OPTION_APPEND_ACTION, WireType::Varint);
                varint(o, HeaderAppendAction::OverwriteIfExistsOrAdd as u64);
            });
        }
        for h in &m.remove {
            string(o, OK_HEADERS_TO_REMOVE, h.as_str());
        }
    });
    message(o, CHECK_RESPONSE_METADATA, &|o| metadata(o, d));
}

/// The fields of `response::metadata`, in the same shape.
fn metadata(o: &mut dyn Out, d: &Decision) {
    let text = |o: &mut dyn Out, name: &str, value: &str| {
        message(o, STRUCT_FIELDS, &|o| {
            string(o, ENTRY_KEY, name);
            message(o, ENTRY_VALUE, &|o| string_always(o, VALUE_STRING, value));
        });
    };
    if let Some(r) = &d.route {
        text(o, "route", r);
    }
    text(o, "decision", d.label());
    text(o, "reason", d.reason_code());
    let Some(id) = &d.identity else {
        return;
    };
    if let Some(sub) = id.subject.as_deref() {
        text(o, "subject", sub);
    }
    if let Some(iss) = id.issuer.as_deref() {
        text(o, "issuer", iss);
    }
    text(o, "provider", &id.provider);
    message(o, STRUCT_FIELDS, &|o| {
        string(o, ENTRY_KEY, "roles");
        message(o, ENTRY_VALUE, &|o| {
            message(o, VALUE_LIST, &|o| {
                for r in &id.roles {
                    message(o, LIST_VALUES, &|o| string_always(o, VALUE_STRING, r));
                }
            });
        });
    });
}

#[cfg(test)]
mod tests;
