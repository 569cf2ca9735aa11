//! Request path normalisation and path patterns.
//!
//! Matching must see the path the upstream will act on, or an allow-list can be dodged
//! (`/public/../admin`, `/public/%2e%2e/admin`, `//admin`). ward splits the path (query
//! and fragment removed) into segments, percent-decodes each one, drops empty and `.`
//! segments and resolves `..`. Anything it cannot normalise without guessing how the
//! upstream would read it is refused: an encoded `/` or `\` or NUL inside a segment,
//! invalid UTF-8, a broken or double (`%252e`) percent-encoding, a raw `#`, a path that
//! does not start with `/`, and a `;` in a segment, raw or encoded: servlet containers
//! cut `;params` off each segment (`/public/..;/admin` is `/admin` to Tomcat), others
//! keep them, so no single reading is safe.

use std::borrow::Cow;
use std::sync::Arc;

use percent_encoding::percent_decode_str;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path does not start with /")]
    NotAbsolute,
    #[error("path has a fragment")]
    Fragment,
    #[error("path has a malformed percent-encoding")]
    BadEncoding,
    #[error("path segment holds an encoded separator, NUL or control character")]
    EncodedSeparator,
    #[error("path segment holds a `;` parameter")]
    SegmentParameter,
}

/// A normalised path: its decoded segments.
pub type Segments<'a> = Vec<Cow<'a, str>>;

/// Normalises the path part of a request target (query already removed or not).
pub fn normalize(raw: &str) -> Result<Segments<'_>, PathError> {
    let raw = raw.split('?').next().unwrap_or("");
    if raw.as_bytes().contains(&b'#') {
        return Err(PathError::Fragment);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let mut out: Segments<'_> = Vec::with_capacity(8);
    for seg in raw.split('/') {
        let seg = decode_segment(seg)?;
        match seg.as_ref() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(seg),
        }
    }
    Ok(out)
}

fn decode_segment(seg: &str) -> Result<Cow<'_, str>, PathError> {
    let bad_char = |c: char| c == '/' || c == '\\' || c.is_control();
    if !seg.as_bytes().contains(&b'%') {
        if seg.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(PathError::EncodedSeparator);
        }
        if seg.as_bytes().contains(&b';') {
            return Err(PathError::SegmentParameter);
        }
        return Ok(Cow::Borrowed(seg));
    }
    // Every `%` must start a valid escape; percent_decode would pass `%zz` through.
    let b = seg.as_bytes();
    for (i, _) in seg.match_indices('%') {
        let ok = b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
        if !ok {
            return Err(PathError::BadEncoding);
        }
    }
    let decoded = percent_decode_str(seg)
        .decode_utf8()
        .map_err(|_| PathError::BadEncoding)?;
    if decoded.chars().any(bad_char) {
        return Err(PathError::EncodedSeparator);
    }
    if decoded.as_bytes().contains(&b';') {
        return Err(PathError::SegmentParameter);
    }
    if looks_encoded(&decoded) {
        return Err(PathError::BadEncoding);
    }
    Ok(Cow::Owned(decoded.into_owned()))
}

/// True when decoded text still holds a `%XX` escape: a double encoding that an upstream
/// which decodes twice would read differently.
fn looks_encoded(s: &str) -> bool {
    let b = s.as_bytes();
    s.match_indices('%').any(|(i, _)| {
        b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()
    })
}

/// One segment of a `path` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatSeg {
    Lit(String),
    /// `{name}`: exactly one segment, bound by name.
    Param(Arc<str>),
    /// `*`: exactly one segment, unbound.
    One,
    /// `**`: zero or more segments.
    Rest,
}

/// A compiled `match.path` or `match.path_prefix`.
#[derive(Debug, Clone)]
pub enum PathMatch {
    Pattern(Vec<PatSeg>),
    Prefix(Vec<String>),
}

/// Path parameters bound by a match.
pub type Params<'a> = Vec<(Arc<str>, Cow<'a, str>)>;

impl PathMatch {
    pub fn pattern(text: &str) -> Result<Self, String> {
        let segs = pattern_segments(text)?;
        let mut out = Vec::new();
        let mut names = std::collections::HashSet::new();
        for s in segs {
            let seg = match s {
                "**" => PatSeg::Rest,
                "*" => PatSeg::One,
                _ if s.starts_with('{') && s.ends_with('}') => {
                    let name = &s[1..s.len() - 1];
                    let valid = !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if !valid {
                        return Err(format!("`{s}`: a parameter name is letters, digits or `_`"));
                    }
                    if !names.insert(name.to_string()) {
                        return Err(format!("parameter `{name}` appears twice"));
                    }
                    PatSeg::Param(name.into())
                }
                _ if s.contains(['{', '}', '*']) => {
                    return Err(format!(
                        "`{s}`: `{{name}}`, `*` and `**` must each be a whole segment"
                    ));
                }
                _ => PatSeg::Lit(s.to_string()),
            };
            out.push(seg);
        }
        Ok(PathMatch::Pattern(out))
    }

    pub fn prefix(text: &str) -> Result<Self, String> {
        let segs = pattern_segments(text)?;
        if segs.iter().any(|s| s.contains(['{', '}', '*'])) {
            return Err("a path_prefix is literal: use `path` for `{name}`, `*` and `**`".into());
        }
        Ok(PathMatch::Prefix(
            segs.into_iter().map(str::to_owned).collect(),
        ))
    }

    /// The parameter names this pattern binds.
    pub fn params(&self) -> Vec<String> {
        match self {
            PathMatch::Pattern(segs) => segs
                .iter()
                .filter_map(|s| match s {
                    PatSeg::Param(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            PathMatch::Prefix(_) => Vec::new(),
        }
    }

    /// Matches normalised segments; on success, the bound parameters.
    pub fn matches<'a>(&self, path: &[Cow<'a, str>]) -> Option<Params<'a>> {
        match self {
            PathMatch::Prefix(p) => {
                let ok = path.len() >= p.len() && p.iter().zip(path).all(|(a, b)| a == b);
                ok.then(Vec::new)
            }
            PathMatch::Pattern(p) => {
                let mut params = Vec::new();
                match_from(p, path, &mut params).then_some(params)
            }
        }
    }
}

/// Matches `pat` against `path`, binding parameters. `**` takes as few segments as it
/// can; when what follows it fails, it takes one more. Only the last `**` seen is ever
/// revisited (an earlier one could only take segments the later one can take too), so
/// the cost is at most segments × pattern length, however many `**` there are.
fn match_from<'a>(pat: &[PatSeg], path: &[Cow<'a, str>], params: &mut Params<'a>) -> bool {
    let (mut p, mut s) = (0, 0);
    // After the last `**`: the pattern index that follows it, the path index where its
    // segments end, and how many parameters were bound before it.
    let mut glob: Option<(usize, usize, usize)> = None;
    loop {
        let step = match (pat.get(p), path.get(s)) {
            (Some(PatSeg::Rest), _) if p + 1 == pat.len() => return true,
            (Some(PatSeg::Rest), _) => {
                p += 1;
                glob = Some((p, s, params.len()));
                continue;
            }
            (None, None) => return true,
            (Some(PatSeg::Lit(l)), Some(seg)) => l.as_str() == seg.as_ref(),
            (Some(PatSeg::Param(name)), Some(seg)) => {
                params.push((name.clone(), seg.clone()));
                true
            }
            (Some(PatSeg::One), Some(_)) => true,
            (None, Some(_)) | (Some(_), None) => false,
        };
        if step {
            p += 1;
            s += 1;
            continue;
        }
        match &mut glob {
            Some((after, end, bound)) if *end < path.len() => {
                *end += 1;
                (p, s) = (*after, *end);
                params.truncate(*bound);
            }
            _ => return false,
        }
    }
}

/// Splits a configured path into segments, refusing what could never match a
/// normalised request path.
fn pattern_segments(text: &str) -> Result<Vec<&str>, String> {
    if !text.starts_with('/') {
        return Err(format!("`{text}` must start with /"));
    }
    if text.contains(['?', '#', '%', '\\']) {
        return Err(format!(
            "`{text}`: write the decoded path, without query, fragment or escapes"
        ));
    }
    if text.contains(';') {
        return Err(format!(
            "`{text}`: a path with `;` never matches (such requests are refused)"
        ));
    }
    let segs: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
    if segs.iter().any(|s| *s == "." || *s == "..") {
        return Err(format!(
            "`{text}` holds `.` or `..` segments, which no normalised path has"
        ));
    }
    Ok(segs)
}

/// A `match.hosts` entry: exact, or `*.example.com` for any subdomain.
#[derive(Debug, Clone)]
pub enum HostPattern {
    Exact(String),
    /// Holds `.example.com`.
    Suffix(String),
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |s: &str| {
            !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
                })
        };
        let unbracketed = t
            .strip_prefix('[')
            .map_or(t.as_str(), |v6| v6.strip_suffix(']').map_or(v6, |_| ""));
        if unbracketed.contains(':') {
            // The request's port is ignored, so a pattern with one could never match.
            return Err(format!(
                "`{text}`: hosts are compared without the port; write `{}`",
                strip_port(text)
            ));
        }
        if let Some(rest) = t.strip_prefix("*.") {
            if label_ok(rest) {
                return Ok(HostPattern::Suffix(format!(".{rest}")));
            }
        } else if label_ok(&t) && !t.contains('*') {
            return Ok(HostPattern::Exact(t));
        }
        Err(format!("`{text}` is not a host name or `*.domain` pattern"))
    }

    /// Compares with a request's host (port ignored, case-insensitive).
    pub fn matches(&self, host: &str) -> bool {
        let host = strip_port(host).trim_end_matches('.');
        match self {
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

/// `host:port` to `host`; `[::1]:80` to `[::1]`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize(p).map(|s| format!("/{}", s.join("/")))
    }

    #[test]
    fn dot_segments_and_encodings_resolve() {
        assert_eq!(norm("/public/../admin").unwrap(), "/admin");
        assert_eq!(norm("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(norm("/public/%2E%2e/admin").unwrap(), "/admin");
        assert_eq!(norm("//admin").unwrap(), "/admin");
        assert_eq!(norm("/./admin/").unwrap(), "/admin");
        assert_eq!(norm("/../../admin").unwrap(), "/admin");
        assert_eq!(norm("/a%20b?x=/../y").unwrap(), "/a b");
        assert_eq!(norm("/caf%C3%A9").unwrap(), "/café");
        assert_eq!(norm("/").unwrap(), "/");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert_eq!(norm("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a\\..\\admin"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%00b"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEncoding));
        assert_eq!(norm("/a%"), Err(PathError::BadEncoding));
        assert_eq!(norm("/a%ff"), Err(PathError::BadEncoding));
        assert_eq!(norm("/%252e%252e/admin"), Err(PathError::BadEncoding));
        assert_eq!(norm("/public#/../admin"), Err(PathError::Fragment));
        assert_eq!(norm("admin"), Err(PathError::NotAbsolute));
        assert_eq!(norm("*"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn segment_parameters_are_refused_raw_or_encoded() {
        // Tomcat and Jetty cut `;...` off each segment: `..;` is `..` to them.
        for p in [
            "/public/..;/admin/users",
            "/public/..%3B/admin/users",
            "/public/..%3b/admin",
            "/admin;jsessionid=1/users",
            "/;x=1/admin",
            "/a/b;",
        ] {
            assert_eq!(norm(p), Err(PathError::SegmentParameter), "{p}");
        }
        assert_eq!(
            norm("/a/b?x=1;y=2").unwrap(),
            "/a/b",
            "the query may hold `;`"
        );
    }

    fn segs(p: &str) -> Segments<'_> {
        normalize(p).unwrap()
    }

    #[test]
    fn prefix_matches_whole_segments() {
        let m = PathMatch::prefix("/public").unwrap();
        assert!(m.matches(&segs("/public")).is_some());
        assert!(m.matches(&segs("/public/x")).is_some());
        assert!(m.matches(&segs("/publicity")).is_none());
        assert!(
            PathMatch::prefix("/")
                .unwrap()
                .matches(&segs("/anything"))
                .is_some()
        );
    }

    #[test]
    fn patterns_bind_params_and_globs() {
        let m = PathMatch::pattern("/tenants/{tenant}/orders/**").unwrap();
        let p = m
            .matches(&segs("/tenants/acme%20co/orders/1/items"))
            .unwrap();
        assert_eq!(&*p[0].0, "tenant");
        assert_eq!(p[0].1, "acme co");
        assert!(m.matches(&segs("/tenants/acme/orders")).is_some());
        assert!(m.matches(&segs("/tenants/acme")).is_none());
        assert!(m.matches(&segs("/tenants/acme/invoices")).is_none());

        let m = PathMatch::pattern("/a/**/b/{id}").unwrap();
        let p = m.matches(&segs("/a/x/y/b/7")).unwrap();
        assert_eq!(p, vec![(Arc::from("id"), Cow::Borrowed("7"))]);
        assert!(m.matches(&segs("/a/b/7")).is_some());

        let m = PathMatch::pattern("/admin").unwrap();
        assert!(m.matches(&segs("/admin/")).is_some());
        assert!(m.matches(&segs("/admin/x")).is_none());
        assert!(
            PathMatch::pattern("/x/*/y")
                .unwrap()
                .matches(&segs("/x/1/y"))
                .is_some()
        );
    }

    #[test]
    fn bad_patterns_are_config_errors() {
        assert!(PathMatch::pattern("no-slash").is_err());
        assert!(PathMatch::pattern("/a/{b}/{b}").is_err());
        assert!(PathMatch::pattern("/a/x{b}").is_err());
        assert!(PathMatch::pattern("/a/{}").is_err());
        assert!(PathMatch::pattern("/a/../b").is_err());
        assert!(PathMatch::pattern("/a?x=1").is_err());
        assert!(PathMatch::prefix("/a/{b}").is_err());
        assert!(PathMatch::pattern("/a;v=1/b").is_err());
        assert!(PathMatch::prefix("/a;b").is_err());
    }

    /// The plain recursive definition of a match: every way to place each `**`, fewest
    /// segments first. Exponential, so only for checking [`match_from`] on small inputs.
    fn reference<'a>(pat: &[PatSeg], path: &[Cow<'a, str>], params: &mut Params<'a>) -> bool {
        let Some((first, rest)) = pat.split_first() else {
            return path.is_empty();
        };
        match first {
            PatSeg::Rest => (0..=path.len()).any(|skip| {
                let mark = params.len();
                let ok = reference(rest, &path[skip..], params);
                if !ok {
                    params.truncate(mark);
                }
                ok
            }),
            _ => {
                let Some((seg, tail)) = path.split_first() else {
                    return false;
                };
                match first {
                    PatSeg::Lit(l) if l != seg => false,
                    PatSeg::Param(name) => {
                        params.push((name.clone(), seg.clone()));
                        reference(rest, tail, params)
                    }
                    _ => reference(rest, tail, params),
                }
            }
        }
    }

    #[test]
    fn matching_agrees_with_the_recursive_definition() {
        // Every pattern of up to 5 segments over {a, b, {p}, *, **} (the parameter at
        // most once) against every path of up to 6 segments over {a, b}.
        let kinds = |i: usize| match i {
            0 => PatSeg::Lit("a".into()),
            1 => PatSeg::Lit("b".into()),
            2 => PatSeg::Param("p".into()),
            3 => PatSeg::One,
            _ => PatSeg::Rest,
        };
        let mut patterns = vec![Vec::new()];
        for len in 1..=5u32 {
            for mut n in 0..5usize.pow(len) {
                let mut pat = Vec::new();
                for _ in 0..len {
                    pat.push(kinds(n % 5));
                    n /= 5;
                }
                if pat.iter().filter(|s| matches!(s, PatSeg::Param(_))).count() <= 1 {
                    patterns.push(pat);
                }
            }
        }
        let mut paths: Vec<Segments<'static>> = vec![Vec::new()];
        for len in 1..=6u32 {
            for n in 0..2usize.pow(len) {
                let segs = (0..len).map(|i| if n >> i & 1 == 0 { "a" } else { "b" });
                paths.push(segs.map(Cow::Borrowed).collect());
            }
        }
        let mut checked = 0;
        for pat in &patterns {
            for path in &paths {
                let (mut want, mut got) = (Vec::new(), Vec::new());
                let expected = reference(pat, path, &mut want).then_some(want);
                let actual = match_from(pat, path, &mut got).then_some(got);
                assert_eq!(actual, expected, "{pat:?} on {path:?}");
                checked += 1;
            }
        }
        assert!(checked > 300_000, "{checked}");
    }

    #[test]
    fn many_globs_on_a_long_path_stay_linear() {
        // Backtracking over every placement would take minutes here.
        let m = PathMatch::pattern("/**/x/**/y/**/z").unwrap();
        let long = "/x".repeat(30_000);
        let s = normalize(&long).unwrap();
        assert!(m.matches(&s).is_none());
        let hit = format!("{long}/y/z");
        assert!(m.matches(&normalize(&hit).unwrap()).is_some());
    }

    #[test]
    fn hosts_ignore_case_and_port() {
        let h = HostPattern::parse("API.example.com").unwrap();
        assert!(h.matches("api.example.com:8443"));
        assert!(h.matches("Api.Example.Com"));
        assert!(h.matches("api.example.com."));
        assert!(!h.matches("api.example.com.evil.io"));
        let w = HostPattern::parse("*.example.com").unwrap();
        assert!(w.matches("a.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("aexample.com"));
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert!(HostPattern::parse("a b").is_err());
        assert!(HostPattern::parse("[::1]").unwrap().matches("[::1]:8443"));
        for with_port in [
            "admin.example.com:8443",
            "*.example.com:443",
            "[::1]:80",
            "::1",
        ] {
            assert!(HostPattern::parse(with_port).is_err(), "{with_port}");
        }
        let e = HostPattern::parse("admin.example.com:8443").unwrap_err();
        assert!(e.ends_with("write `admin.example.com`"), "{e}");
    }

    // === escapes at the end of a segment, and literal `%` ===

    #[test]
    fn an_escape_cut_short_at_the_end_of_a_segment_is_refused() {
        // One hex digit, or none, before the segment ends (the path, a `/`, or the query).
        for p in ["/a%2", "/a%2/b", "/%2", "/a%2?x=1", "/a%", "/a%/b", "/%"] {
            assert_eq!(norm(p), Err(PathError::BadEncoding), "{p}");
        }
        // An escape that takes the segment's last two bytes is whole.
        assert_eq!(norm("/a%41").unwrap(), "/aA");
        assert_eq!(norm("/%41").unwrap(), "/A");
    }

    #[test]
    fn an_encoded_percent_is_a_literal_percent() {
        assert_eq!(norm("/a%25").unwrap(), "/a%");
        assert_eq!(norm("/100%25off").unwrap(), "/100%off");
        assert_eq!(norm("/%25/x").unwrap(), "/%/x");
        assert_eq!(norm("/a%25zz").unwrap(), "/a%zz");
        // What follows the decoded `%` is no escape: one hex digit, or none, then the end.
        assert_eq!(norm("/a%252").unwrap(), "/a%2");
        assert_eq!(norm("/a%25%25").unwrap(), "/a%%");
        assert_eq!(norm("/a%252g").unwrap(), "/a%2g");
        // Decoded again, these would be other text: refused as double encodings.
        for p in ["/a%2541", "/100%2525off", "/%252F"] {
            assert_eq!(norm(p), Err(PathError::BadEncoding), "{p}");
        }
        // Matched as decoded text, against a pattern written decoded.
        let m = PathMatch::pattern("/discounts/*").unwrap();
        assert!(m.matches(&segs("/discounts/100%25off")).is_some());
    }

    #[test]
    fn a_parameter_is_a_whole_braced_segment_of_letters_digits_and_underscores() {
        let m = PathMatch::pattern("/t/{tenant_id}/{v2}").unwrap();
        assert_eq!(m.params(), ["tenant_id", "v2"]);
        let p = m.matches(&segs("/t/acme/x")).unwrap();
        assert_eq!(&*p[0].0, "tenant_id");
        for bad in [
            "/a/{bc", "/a/bc}", "/a/{b-c}", "/a/{b.c}", "/a/{b c}", "/a/{}",
        ] {
            assert!(PathMatch::pattern(bad).is_err(), "{bad}");
        }
    }
}
