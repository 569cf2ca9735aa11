//! A `mesh` provider: the SPIFFE trust domains whose peers are accepted.

use serde::Deserialize;
use serde_json::Value;

use crate::authn::mesh::{self, MeshSettings};
use crate::config::Errors;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMesh {
    trust_domains: Vec<String>,
    from_certificate: Option<bool>,
}

pub(super) fn compile_mesh(v: Value, path: &str, errors: &mut Errors) -> Option<MeshSettings> {
    let raw: RawMesh = errors.parse(path, v)?;
    let before = errors.count();
    if raw.trust_domains.is_empty() {
        errors.add(
            &format!("{path}.trust_domains"),
            "list at least one trust domain, such as `cluster.local`",
        );
    }
    for (i, td) in raw.trust_domains.iter().enumerate() {
        if !mesh::valid_trust_domain(td) {
            errors.add(
                &format!("{path}.trust_domains[{i}]"),
                format!(
                    "`{td}` is not a SPIFFE trust domain: lower-case letters, digits, `.`, `-`, `_`, without `spiffe://` (e.g. `cluster.local`)"
                ),
            );
        }
    }
    if errors.count() != before {
        return None;
    }
    Some(MeshSettings {
        trust_domains: raw.trust_domains,
        from_certificate: raw.from_certificate.unwrap_or(true),
    })
}
