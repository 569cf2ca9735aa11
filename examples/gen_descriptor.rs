//! Regenerates `proto/authz_descriptor.bin`, the FileDescriptorSet that gRPC server
//! reflection serves: `envoy/service/auth/v3/external_auth.proto` and every file it
//! imports, cut from the full set that the envoy-types crate ships.
//!
//! cargo run --example gen_descriptor -- <path to envoy-types>/src/generated/types.bin

use std::collections::{BTreeSet, HashMap};

use prost::Message;
use prost_types::FileDescriptorSet;

const ROOT: &str = "envoy/service/auth/v3/external_auth.proto";

fn main() {
    let input = std::env::args()
        .nth(1)
        .expect("usage: gen_descriptor <types.bin>");
    let bytes = std::fs::read(&input).expect("read types.bin");
    let set = FileDescriptorSet::decode(bytes.as_slice()).expect("a FileDescriptorSet");
    let by_name: HashMap<&str, _> = set.file.iter().map(|f| (f.name(), f)).collect();
    let mut keep = BTreeSet::new();
    let mut todo = vec![ROOT.to_string()];
    while let Some(name) = todo.pop() {
        if !keep.insert(name.clone()) {
            continue;
        }
        let file = by_name
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} missing from the set"));
        todo.extend(file.dependency.iter().cloned());
    }
    // Dependencies first, as protoc orders them.
    let mut out = FileDescriptorSet::default();
    let mut done = BTreeSet::new();
    fn visit(
        name: &str,
        by_name: &HashMap<&str, &prost_types::FileDescriptorProto>,
        done: &mut BTreeSet<String>,
        out: &mut FileDescriptorSet,
    ) {
        if !done.insert(name.to_string()) {
            return;
        }
        let f = by_name[name];
        for d in &f.dependency {
            visit(d, by_name, done, out);
        }
        let mut f = (*f).clone();
        f.source_code_info = None;
        out.file.push(f);
    }
    visit(ROOT, &by_name, &mut done, &mut out);
    std::fs::write("proto/authz_descriptor.bin", out.encode_to_vec()).expect("write");
    eprintln!("{} files", out.file.len());
}
