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
mod tests;
