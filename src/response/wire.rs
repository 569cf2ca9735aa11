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

use super::{check_response, metadata_texts};
use crate::decision::{Decision, Mutations, Verdict};

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
            Inner::Allow(d) => put_allow(buf, d, allowed(d)),
            Inner::Built(r) => r.encode_raw(buf),
        }
    }

    fn encoded_len(&self) -> usize {
        match &self.0 {
            Inner::Allow(d) => allow_len(d, allowed(d)),
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

/// The mutations of an allowed decision ([`Answer::new`] keeps no other kind here).
fn allowed(d: &Decision) -> &Mutations {
    static NONE: Mutations = Mutations {
        set: Vec::new(),
        remove: Vec::new(),
    };
    match &d.verdict {
        Verdict::Allow(m) => m,
        Verdict::Deny(_) => &NONE,
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

const LEN: u8 = WireType::LengthDelimited as u8;
const VARINT: u8 = WireType::Varint as u8;

/// A field's key: every field number here is below 16, so one byte.
const fn key(tag: u32, wire: u8) -> u8 {
    (tag as u8) << 3 | wire
}

fn varint_len(v: usize) -> usize {
    let bits = usize::BITS - (v | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

fn put_varint(buf: &mut impl BufMut, mut v: usize) {
    while v >= 0x80 {
        buf.put_u8(v as u8 | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// A length-delimited field holding `inner` bytes: key, length, content.
fn field_len(inner: usize) -> usize {
    1 + varint_len(inner) + inner
}

/// A string field, omitted when empty (proto3's default), as prost does.
fn str_len(s: &str) -> usize {
    if s.is_empty() { 0 } else { field_len(s.len()) }
}

fn put_str(buf: &mut impl BufMut, tag: u32, s: &str) {
    if !s.is_empty() {
        put_str_always(buf, tag, s);
    }
}

/// A string written even when empty (a oneof member, such as `Value.string_value`).
fn put_str_always(buf: &mut impl BufMut, tag: u32, s: &str) {
    put_head(buf, tag, s.len());
    buf.put_slice(s.as_bytes());
}

/// The key and length of a length-delimited field.
fn put_head(buf: &mut impl BufMut, tag: u32, len: usize) {
    buf.put_u8(key(tag, LEN));
    put_varint(buf, len);
}

// HeaderValueOption { header: HeaderValue { key, value }, append: BoolValue {},
// append_action }: `append` is an empty message (false is the default), 2 bytes; the
// action a one-byte varint, 2 bytes.
fn header_len(name: &str, value: &str) -> usize {
    str_len(name) + str_len(value)
}

fn option_len(name: &str, value: &str) -> usize {
    field_len(header_len(name, value)) + 2 + 2
}

fn ok_len(m: &Mutations) -> usize {
    let set: usize = m
        .set
        .iter()
        .map(|(h, v)| field_len(option_len(h.as_str(), v)))
        .sum();
    set + m.remove.iter().map(|h| str_len(h.as_str())).sum::<usize>()
}

// A map entry { key, value: Value { string_value } }.
fn text_entry_len(name: &str, value: &str) -> usize {
    str_len(name) + field_len(field_len(value.len()))
}

// ListValue { values: [Value { string_value }] }.
fn roles_list_len(roles: &crate::authn::claims::Names) -> usize {
    roles.iter().map(|r| field_len(field_len(r.len()))).sum()
}

// A map entry { key: "roles", value: Value { list_value } }.
fn roles_entry_len(list: usize) -> usize {
    str_len("roles") + field_len(field_len(list))
}

fn metadata_len(d: &Decision) -> usize {
    let texts: usize = metadata_texts(d)
        .iter()
        .flatten()
        .map(|(n, v)| field_len(text_entry_len(n, v)))
        .sum();
    let roles = d
        .identity
        .as_deref()
        .map_or(0, |i| field_len(roles_entry_len(roles_list_len(&i.roles))));
    texts + roles
}

fn allow_len(d: &Decision, m: &Mutations) -> usize {
    field_len(0) + field_len(ok_len(m)) + field_len(metadata_len(d))
}

fn put_allow(buf: &mut impl BufMut, d: &Decision, m: &Mutations) {
    // Status { code: OK }: the code is proto3's default, so the message is empty.
    put_head(buf, CHECK_RESPONSE_STATUS, 0);

    put_head(buf, CHECK_RESPONSE_OK, ok_len(m));
    for (h, v) in &m.set {
        let (name, value) = (h.as_str(), v.as_str());
        put_head(buf, OK_HEADERS, option_len(name, value));
        put_head(buf, OPTION_HEADER, header_len(name, value));
        put_str(buf, HEADER_KEY, name);
        put_str(buf, HEADER_VALUE, value);
        put_head(buf, OPTION_APPEND, 0);
        buf.put_u8(key(OPTION_APPEND_ACTION, VARINT));
        buf.put_u8(HeaderAppendAction::OverwriteIfExistsOrAdd as u8);
    }
    for h in &m.remove {
        put_str(buf, OK_HEADERS_TO_REMOVE, h.as_str());
    }

    put_head(buf, CHECK_RESPONSE_METADATA, metadata_len(d));
    for (name, value) in metadata_texts(d).into_iter().flatten() {
        put_head(buf, STRUCT_FIELDS, text_entry_len(name, value));
        put_str(buf, ENTRY_KEY, name);
        put_head(buf, ENTRY_VALUE, field_len(value.len()));
        put_str_always(buf, VALUE_STRING, value);
    }
    if let Some(id) = d.identity.as_deref() {
        let list = roles_list_len(&id.roles);
        put_head(buf, STRUCT_FIELDS, roles_entry_len(list));
        put_str(buf, ENTRY_KEY, "roles");
        put_head(buf, ENTRY_VALUE, field_len(list));
        put_head(buf, VALUE_LIST, list);
        for r in id.roles.iter() {
            put_head(buf, LIST_VALUES, field_len(r.len()));
            put_str_always(buf, VALUE_STRING, r);
        }
    }
}

#[cfg(test)]
mod tests;
