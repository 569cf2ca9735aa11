//! The header mutations of an allowed check: set every identity header that has a value,
//! remove every other header ward owns (and other spellings of them), so that a client
//! can never smuggle one upstream.

use super::policy::{Policy, Route, length_bit};
use crate::authn::Identity;
use crate::decision::Mutations;
use crate::header::{self, HeaderName};
use crate::request::CheckInput;

impl Policy {
    /// Sets every identity header that has a value (and the route's minted token);
    /// removes every other header ward owns, then the route's credential headers
    /// (`strip_authorization`).
    pub(super) fn mutations(
        &self,
        route: &Route,
        input: &CheckInput<'_>,
        id: Option<&Identity>,
        minted: Option<&str>,
    ) -> Mutations {
        let ih = &self.config.identity_headers;
        let mut set: Vec<(HeaderName, String)> = Vec::new();
        if let Some(id) = id {
            set.reserve_exact(self.owned.len());
            let mut put = |h: &HeaderName, v: Option<String>| {
                // Verification refused unrepresentable subjects, roles and scopes; this
                // keeps any other value (an introspected `iss`) from being read otherwise.
                if let Some(v) = v.filter(|v| header::is_exact_value(v)) {
                    set.push((h.clone(), v));
                }
            };
            put(&ih.subject, id.subject.as_deref().map(str::to_owned));
            put(&ih.issuer, id.issuer.as_deref().map(str::to_owned));
            put(&ih.provider, Some(String::from(&*id.provider)));
            put(&ih.roles, Some(id.roles.join(',')));
            put(&ih.scopes, Some(id.scopes.join(' ')));
            for (h, v) in &id.claim_headers {
                put(h, Some(v.to_string()));
            }
            if let (Some(mint), Some(token)) = (&route.mint, minted) {
                // Base64url and dots by construction (ward signed it): a valid value
                // without scanning its few hundred bytes on every check.
                set.push((mint.spec.header.clone(), token.to_owned()));
            }
        }
        let strip = &route.strip;
        // Every name set is an owned one: the others are removed. An identity with every
        // header set removes nothing and allocates nothing here.
        let mut remove =
            Vec::with_capacity(self.owned.len().saturating_sub(set.len()) + strip.len());
        for h in &self.owned {
            if !set.iter().any(|(s, _)| s == h) {
                remove.push(h.clone());
            }
        }
        // `x_auth_subject` is `x-auth-subject` to CGI-style upstreams (both become
        // HTTP_X_AUTH_SUBJECT): a client header that spells an owned name with `_` for
        // `-` or `-` for `_` goes too, unless ward sets that very name.
        for (name, _) in input.headers.iter() {
            if self.owned_lengths & length_bit(name.len()) != 0
                && self
                    .owned
                    .iter()
                    .any(|o| o.as_str() != name && other_spelling(name, o))
                && !set.iter().any(|(s, _)| s.as_str() == name)
                && let Ok(h) = HeaderName::parse(name)
                && !remove.contains(&h)
            {
                remove.push(h);
            }
        }
        remove.extend(strip.iter().cloned());
        Mutations { set, remove }
    }
}

/// Whether `name` is `owned` with some of its `-` and `_` swapped (CGI reads both as `_`).
fn other_spelling(name: &str, owned: &HeaderName) -> bool {
    let separator = |c: u8| c == b'-' || c == b'_';
    let owned = owned.as_str().as_bytes();
    name.len() == owned.len()
        && name
            .bytes()
            .zip(owned)
            .all(|(a, &b)| a == b || (separator(a) && separator(b)))
}
