use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::{
    Address, HeaderMap, HeaderValue, Pipe, SocketAddress,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use prost::Message;

use super::{ReadError, check_input};
use crate::request::{CheckInput, Lookup};
use crate::server::grpc::input_from;

type Pairs = Vec<(String, Vec<u8>)>;

/// Everything a `CheckInput` carries, headers and context sorted (a decoded map has no
/// order).
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    method: String,
    host: String,
    path: String,
    scheme: String,
    stream_id: String,
    headers: Pairs,
    context: Pairs,
    principal: String,
    certificate: String,
    address: String,
}

fn view(i: &CheckInput<'_>) -> View {
    let mut headers: Pairs = i
        .headers
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_vec()))
        .collect();
    headers.sort();
    let mut context: Pairs = i
        .context
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    context.sort();
    View {
        method: i.method.into(),
        host: i.host.into(),
        path: i.path.into(),
        scheme: i.scheme.into(),
        stream_id: i.stream_id.into(),
        headers,
        context,
        principal: i.source_principal.into(),
        certificate: i.source_certificate.into(),
        address: i.source_address.into(),
    }
}

/// What the server reads from `bytes`, next to what prost's decode and `input_from` give.
fn both(bytes: &[u8]) -> (Result<Option<View>, ReadError>, Option<Option<View>>) {
    let ours = check_input(bytes).map(|i| i.as_ref().map(view));
    let theirs = CheckRequest::decode(bytes).ok().map(|r| {
        r.attributes
            .as_ref()
            .and_then(input_from)
            .as_ref()
            .map(view)
    });
    (ours, theirs)
}

/// `bytes` reads as a full decode reads it.
fn assert_same(bytes: &[u8], what: &str) -> Option<View> {
    let (ours, theirs) = both(bytes);
    let theirs = theirs.unwrap_or_else(|| panic!("{what}: prost refuses the test's own bytes"));
    assert_eq!(ours, Ok(theirs.clone()), "{what}");
    theirs
}

fn http(headers: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        id: "1234".into(),
        method: "POST".into(),
        path: "/api/v1/orders?page=2".into(),
        host: "api.example.com".into(),
        scheme: "https".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        query: "page=2".into(),
        protocol: "HTTP/2".into(),
        size: 17,
        body: "a body ward never reads".into(),
        ..Default::default()
    }
}

fn peer(address: Option<AddressKind>) -> Peer {
    Peer {
        address: Some(Address { address }),
        service: "frontend".into(),
        labels: HashMap::from([("app".into(), "frontend".into())]),
        principal: "spiffe://cluster.local/ns/shop/sa/frontend".into(),
        certificate: "-----BEGIN%20CERTIFICATE-----".into(),
    }
}

fn socket(address: &str) -> AddressKind {
    AddressKind::SocketAddress(SocketAddress {
        address: address.into(),
        resolver_name: "r".into(),
        ..Default::default()
    })
}

fn request(http: HttpRequest, source: Option<Peer>, context: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source,
            destination: Some(peer(Some(socket("10.0.0.9:8080")))),
            request: Some(Request {
                time: Some(Default::default()),
                http: Some(http),
            }),
            context_extensions: context
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }),
    }
}

fn http_mut(r: &mut CheckRequest) -> &mut HttpRequest {
    r.attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .expect("http")
}

fn envoy_like() -> CheckRequest {
    request(
        http(&[
            (":authority", "api.example.com"),
            (":method", "POST"),
            ("authorization", "Bearer abc.def.ghi"),
            ("x-request-id", "req-7"),
            ("accept", "application/json"),
        ]),
        Some(peer(Some(socket("10.0.0.7:51000")))),
        &[("route", "orders"), ("tier", "gold")],
    )
}

#[test]
fn an_envoy_request_reads_as_a_full_decode_reads_it() {
    let v = assert_same(&envoy_like().encode_to_vec(), "headers map").expect("http");
    assert_eq!(v.method, "POST");
    assert_eq!(v.path, "/api/v1/orders?page=2");
    assert_eq!(v.address, "10.0.0.7:51000");
    assert_eq!(v.principal, "spiffe://cluster.local/ns/shop/sa/frontend");
    assert_eq!(v.headers.len(), 5);
    assert_eq!(v.context.len(), 2);

    // `encode_raw_headers`: the header map, raw bytes preferred over `value`, repeated
    // names kept, and the map ignored once the header map has entries.
    let mut r = envoy_like();
    let h = http_mut(&mut r);
    h.header_map = Some(HeaderMap {
        headers: vec![
            HeaderValue {
                key: "authorization".into(),
                value: String::new(),
                raw_value: b"Bearer raw".to_vec(),
            },
            HeaderValue {
                key: "x-latin1".into(),
                value: "ignored".into(),
                raw_value: vec![0xe9, 0x74, 0xe9],
            },
            HeaderValue {
                key: "cookie".into(),
                value: "a=1".into(),
                raw_value: Vec::new(),
            },
            HeaderValue {
                key: "cookie".into(),
                value: "b=2".into(),
                raw_value: Vec::new(),
            },
        ],
    });
    let bytes = r.encode_to_vec();
    let v = assert_same(&bytes, "header map").expect("http");
    assert_eq!(v.headers.len(), 4);
    let input = check_input(&bytes).expect("reads").expect("http");
    assert_eq!(
        input.headers.get("authorization"),
        Lookup::One(b"Bearer raw")
    );
    assert_eq!(
        input.headers.get("x-latin1"),
        Lookup::One(&[0xe9, 0x74, 0xe9])
    );
    assert_eq!(input.headers.get("cookie"), Lookup::Many);

    // An empty header map falls back to the map, as a full decode does.
    http_mut(&mut r).header_map = Some(HeaderMap::default());
    assert_eq!(
        assert_same(&r.encode_to_vec(), "empty header map")
            .expect("http")
            .headers
            .len(),
        5
    );
}

#[test]
fn empty_fields_fall_back_to_the_pseudo_headers() {
    let mut h = http(&[
        (":method", "PUT"),
        (":authority", "pseudo.example"),
        (":path", "/from/pseudo"),
        (":scheme", "http"),
    ]);
    h.method.clear();
    h.host.clear();
    h.path.clear();
    h.scheme.clear();
    let v = assert_same(&request(h, None, &[]).encode_to_vec(), "pseudo").expect("http");
    assert_eq!(
        (
            v.method.as_str(),
            v.host.as_str(),
            v.path.as_str(),
            v.scheme.as_str()
        ),
        ("PUT", "pseudo.example", "/from/pseudo", "http")
    );
    assert_eq!((v.address.as_str(), v.principal.as_str()), ("", ""));
}

#[test]
fn a_request_without_http_attributes_reads_as_none() {
    let none = [
        CheckRequest::default(),
        CheckRequest {
            attributes: Some(AttributeContext::default()),
        },
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request::default()),
                source: Some(peer(Some(socket("10.0.0.1:1")))),
                ..Default::default()
            }),
        },
    ];
    for (i, r) in none.iter().enumerate() {
        assert_eq!(
            assert_same(&r.encode_to_vec(), &format!("case {i}")),
            None,
            "case {i}"
        );
    }
    // An empty `http` message is a request with every field empty.
    let empty = request(HttpRequest::default(), None, &[]);
    let v = assert_same(&empty.encode_to_vec(), "empty http").expect("present");
    assert_eq!((v.method.as_str(), v.headers.len()), ("", 0));
}

/// Two encoded messages one after the other are their merge, by protobuf's rules: the
/// reader must follow them, for every field it reads.
#[test]
fn messages_sent_twice_merge_as_protobuf_merges_them() {
    let first = envoy_like();
    let mut h = http(&[("x-second", "2"), ("accept-language", "fr")]);
    h.method = "GET".into();
    h.path = String::new(); // an empty string is not sent: the first path stays
    h.id = "5678".into();
    let second = request(
        h,
        Some(Peer {
            principal: "spiffe://cluster.local/ns/shop/sa/second".into(),
            ..Default::default()
        }),
        &[("tier", "silver"), ("zone", "b")],
    );
    let mut bytes = first.encode_to_vec();
    bytes.extend(second.encode_to_vec());
    let v = assert_same(&bytes, "merged").expect("http");
    assert_eq!(v.method, "GET");
    assert_eq!(v.path, "/api/v1/orders?page=2");
    assert_eq!(v.stream_id, "5678");
    assert_eq!(v.headers.len(), 7);
    // The second source carried no address: the first one's stays.
    assert_eq!(v.address, "10.0.0.7:51000");
    assert_eq!(v.principal, "spiffe://cluster.local/ns/shop/sa/second");
    let context: Vec<(&str, &[u8])> = v
        .context
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert_eq!(
        context,
        [
            ("route", &b"orders"[..]),
            ("tier", b"silver"),
            ("zone", b"b")
        ]
    );
}

#[test]
fn the_address_is_the_last_member_of_its_oneof() {
    let pipe = AddressKind::Pipe(Pipe {
        path: "/run/envoy.sock".into(),
        mode: 0,
    });
    let with = |a: AddressKind| request(http(&[]), Some(peer(Some(a))), &[]).encode_to_vec();
    let cases: [(Vec<Vec<u8>>, &str); 4] = [
        (vec![with(pipe.clone())], ""),
        (vec![with(socket("10.1.1.1:1")), with(pipe.clone())], ""),
        (
            vec![with(pipe.clone()), with(socket("10.2.2.2:2"))],
            "10.2.2.2:2",
        ),
        (
            vec![with(socket("10.3.3.3:3")), with(socket(""))],
            // Merged into the same member: an empty address is not sent, the first stays.
            "10.3.3.3:3",
        ),
    ];
    for (parts, want) in cases {
        let bytes = parts.concat();
        let v = assert_same(&bytes, want).expect("http");
        assert_eq!(v.address, want);
    }
}

/// Hand-written bytes: a `CheckRequest` whose `attributes` (1) > `request` (4) >
/// `http` (2) holds `inner`.
fn in_http(inner: &[u8]) -> Vec<u8> {
    let request = len_field(2, inner);
    let attributes = len_field(4, &request);
    len_field(1, &attributes)
}

fn len_field(field: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, u64::from(field) << 3 | 2);
    varint(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[test]
fn unknown_fields_of_every_wire_type_are_skipped() {
    let mut inner = len_field(2, b"DELETE");
    inner.extend([0xf8, 0x01, 0x96, 0x01]); // field 31, varint 150
    inner.extend([0xf9, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]); // field 31, fixed64
    inner.extend([0xfd, 0x01, 1, 2, 3, 4]); // field 31, fixed32
    inner.extend(len_field(30, &[0xff, 0xfe])); // field 30, bytes (not UTF-8)
    // field 29, a group holding a varint, a nested group (28) and bytes; then its end.
    inner.extend([0xeb, 0x01, 0x08, 0x01, 0xe3, 0x01, 0xe4, 0x01]);
    inner.extend(len_field(3, b"x"));
    inner.extend([0xec, 0x01]);
    inner.extend(len_field(4, b"/after"));
    let v = assert_same(&in_http(&inner), "unknown fields").expect("http");
    assert_eq!((v.method.as_str(), v.path.as_str()), ("DELETE", "/after"));
}

#[test]
fn fields_ward_does_not_read_are_not_held_to_utf8() {
    // `body` (11) is a string that a full decode refuses when it is not UTF-8; ward never
    // reads it and decides the request.
    let mut inner = len_field(2, b"POST");
    inner.extend(len_field(11, &[0xc3, 0x28]));
    let bytes = in_http(&inner);
    assert!(CheckRequest::decode(bytes.as_slice()).is_err());
    let input = check_input(&bytes).expect("reads").expect("http");
    assert_eq!(input.method, "POST");
}

#[test]
fn a_header_name_twice_in_the_map_is_ambiguous_not_last_wins() {
    let mut inner = Vec::new();
    for value in ["Bearer first", "Bearer second"] {
        let mut entry = len_field(1, b"authorization");
        entry.extend(len_field(2, value.as_bytes()));
        inner.extend(len_field(3, &entry));
    }
    let bytes = in_http(&inner);
    // A full decode keeps one of the two silently.
    let decoded = CheckRequest::decode(bytes.as_slice()).expect("decodes");
    let http = decoded
        .attributes
        .and_then(|a| a.request)
        .and_then(|r| r.http);
    assert_eq!(http.expect("http").headers.len(), 1);
    let input = check_input(&bytes).expect("reads").expect("http");
    assert_eq!(input.headers.get("authorization"), Lookup::Many);
}

#[test]
fn malformed_bytes_are_errors_never_a_request() {
    let good = in_http(&len_field(2, b"GET"));
    let wrong_wire = in_http(&[0x10, 0x01]); // method (2) as a varint
    let bad_utf8 = in_http(&len_field(4, &[0x2f, 0xff])); // path (4)
    let end_group = [0x14]; // field 2, end group, with no start
    let mismatched = [0x13, 0x1c]; // group 2 closed by group 3
    let open_group = [0x13, 0x08, 0x01]; // group 2 never closed
    let field_zero = [0x02, 0x00];
    let wire_six = [0x0e];
    let attributes_as_varint = [0x08, 0x01];
    let long_varint = [
        0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
    ];
    let eleven_bytes = [
        0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
    ];
    let huge_key = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    let past_end = [0x0a, 0x05, 0x01];
    let cases: [(&[u8], ReadError); 13] = [
        (&attributes_as_varint, ReadError::WireType(1)),
        (&wrong_wire, ReadError::WireType(2)),
        (&bad_utf8, ReadError::Utf8(4)),
        (&end_group, ReadError::Group),
        (&mismatched, ReadError::Group),
        (&open_group, ReadError::Truncated),
        (&field_zero, ReadError::Key),
        (&wire_six, ReadError::Key),
        (&long_varint, ReadError::Varint),
        (&eleven_bytes, ReadError::Varint),
        (&huge_key, ReadError::Key),
        (&past_end, ReadError::Truncated),
        (&good[..good.len() - 1], ReadError::Truncated),
    ];
    for (bytes, want) in cases {
        assert_eq!(check_input(bytes).err(), Some(want), "{bytes:02x?}");
        assert!(
            CheckRequest::decode(bytes).is_err(),
            "prost too: {bytes:02x?}"
        );
    }
    // The largest varints that are valid still read.
    let mut max = vec![0x48]; // field 9 (`size`), varint
    varint(&mut max, u64::MAX);
    assert_same(&in_http(&max), "u64::MAX");
}

#[test]
fn every_cut_of_a_request_reads_as_a_full_decode_or_is_refused() {
    let mut r = envoy_like();
    http_mut(&mut r).header_map = Some(HeaderMap {
        headers: vec![HeaderValue {
            key: "x-raw".into(),
            value: "v".into(),
            raw_value: b"raw".to_vec(),
        }],
    });
    let bytes = r.encode_to_vec();
    let mut refused = 0;
    for cut in 0..=bytes.len() {
        let (ours, theirs) = both(&bytes[..cut]);
        match theirs {
            Some(theirs) => assert_eq!(ours, Ok(theirs), "cut at {cut}"),
            None => {
                assert!(ours.is_err(), "cut at {cut}: prost refuses, ward reads");
                refused += 1;
            }
        }
    }
    assert!(
        refused > bytes.len() / 2,
        "most cuts end inside a field: {refused}"
    );
}

#[test]
fn deeply_nested_groups_do_not_exhaust_the_stack() {
    let depth = 200_000;
    let mut bytes = vec![0xfb, 0x01]; // group 31
    bytes.extend(std::iter::repeat_n([0xfb, 0x01], depth).flatten());
    assert_eq!(check_input(&bytes).err(), Some(ReadError::Truncated));
    bytes.extend(std::iter::repeat_n([0xfc, 0x01], depth + 1).flatten());
    assert_eq!(check_input(&bytes).map(|i| i.is_none()), Ok(true));
}
