//! The request URL a DPoP proof's `htu` must name (RFC 9449 §4.3 point 9), and the
//! normalisation both sides go through before they are compared (RFC 3986 §6.2.2 and
//! §6.2.3: scheme and host in lower case, the scheme's default port dropped, an empty
//! path as `/`, percent-escapes of unreserved characters decoded and the others in upper
//! case; query and fragment ignored).
//!
//! ward builds the request's URL from what the proxy reports: the scheme from
//! `x-forwarded-proto` when the request carries exactly one (`http` or `https`: what a
//! client used in front of a TLS-terminating load balancer), else the request's own
//! scheme (Envoy's `:scheme`), else `https`; the host from `:authority`; the path without
//! its query. Dot segments are not resolved: a proof for `/a/../b` names that path, as
//! the client sent it.

use crate::request::CheckInput;

/// The normalised URL of the request, for comparison with a proof's `htu`.
pub fn request_url(input: &CheckInput<'_>) -> Option<String> {
    let forwarded = input
        .headers
        .get_str("x-forwarded-proto")
        .filter(|p| p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("https"));
    let scheme = match (forwarded, input.scheme) {
        (Some(p), _) => p,
        (None, s) if !s.is_empty() => s,
        _ => "https",
    };
    normalise_parts(scheme, input.host, input.path_only())
}

/// A proof's `htu`, normalised: an absolute `http`/`https` URL without user info; its
/// query and fragment are ignored.
pub fn normalise(htu: &str) -> Option<String> {
    let (scheme, rest) = htu.split_once("://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return None;
    }
    normalise_parts(scheme, authority, path)
}

fn normalise_parts(scheme: &str, authority: &str, path: &str) -> Option<String> {
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    if authority.is_empty()
        || !authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_~:[]%".contains(&b))
    {
        return None;
    }
    let mut host = authority.to_ascii_lowercase();
    if host.ends_with(default_port) {
        host.truncate(host.len() - default_port.len());
    }
    let mut out = String::with_capacity(scheme.len() + 3 + host.len() + path.len() + 1);
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&host);
    if path.is_empty() {
        out.push('/');
        return Some(out);
    }
    if !path.starts_with('/') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                out.push(char::from(v));
            } else {
                out.push('%');
                out.push_str(&std::str::from_utf8(hex).ok()?.to_ascii_uppercase());
            }
            i += 3;
        } else if b.is_ascii_graphic() {
            out.push(char::from(b));
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_urls_normalise_alike() {
        let n = |u| normalise(u).unwrap();
        assert_eq!(n("https://api.example.com/a"), "https://api.example.com/a");
        assert_eq!(
            n("HTTPS://API.Example.COM:443/a"),
            "https://api.example.com/a"
        );
        assert_eq!(n("http://h:80"), "http://h/");
        assert_eq!(n("https://h:8443/a?x=1#f"), "https://h:8443/a");
        assert_eq!(n("https://h/%7euser/%2fx"), "https://h/~user/%2Fx");
        assert_ne!(n("https://h/a"), n("https://h/A"));
        assert_ne!(n("https://h/a"), n("http://h/a"));
        for bad in [
            "h/a",
            "ftp://h/a",
            "https://u@h/a",
            "https:///a",
            "https://h/a b",
            "https://h/%zz",
        ] {
            assert_eq!(normalise(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_request_url_reads_the_forwarded_scheme_first() {
        let mut i = CheckInput {
            host: "API.example.com:443",
            path: "/orders/1?x=2",
            ..Default::default()
        };
        assert_eq!(
            request_url(&i).as_deref(),
            Some("https://api.example.com/orders/1")
        );
        i.scheme = "http";
        assert_eq!(
            request_url(&i).as_deref(),
            Some("http://api.example.com:443/orders/1")
        );
        i.headers.push("x-forwarded-proto", b"https");
        assert_eq!(
            request_url(&i).as_deref(),
            Some("https://api.example.com/orders/1")
        );
    }
}
