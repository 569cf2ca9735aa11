//! Where a credential is read from, and reading it without repairing it.
//!
//! A credential is taken exactly as sent: never trimmed or unquoted. A request that
//! carries it more than once in the same place (two `authorization` lines, Envoy's joined
//! `Bearer a,Bearer b`, two cookies or two query parameters of that name) is refused:
//! ward and the upstream could otherwise each pick a different one.

use std::borrow::Cow;

use percent_encoding::percent_decode;

use crate::header::HeaderName;
use crate::request::{CheckInput, Lookup};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A header, optionally with a scheme prefix such as `Bearer ` (matched case-insensitively).
    Header {
        name: HeaderName,
        prefix: Option<String>,
    },
    Cookie(String),
    Query(String),
}

/// What looking for a credential found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    Nothing,
    One(Cow<'a, str>),
    /// The same place held more than one credential.
    Duplicate,
    /// A credential was there but cannot be read as text.
    Unreadable,
}

impl TokenSource {
    pub fn default_bearer() -> Self {
        TokenSource::Header {
            name: HeaderName::parse("authorization").expect("static header name"),
            prefix: Some("Bearer ".into()),
        }
    }

    pub fn find<'a>(&self, input: &CheckInput<'a>) -> Found<'a> {
        match self {
            TokenSource::Header { name, prefix } => header(input, name.as_str(), prefix.as_deref()),
            TokenSource::Cookie(name) => cookie(input, name),
            TokenSource::Query(name) => query(input.query(), name),
        }
    }
}

/// Finds the first source that holds something.
pub fn find_in<'a>(sources: &[TokenSource], input: &CheckInput<'a>) -> Found<'a> {
    for s in sources {
        match s.find(input) {
            Found::Nothing => continue,
            other => return other,
        }
    }
    Found::Nothing
}

fn header<'a>(input: &CheckInput<'a>, name: &str, prefix: Option<&str>) -> Found<'a> {
    let raw = match input.headers.get(name) {
        Lookup::Absent => return Found::Nothing,
        Lookup::Many => return Found::Duplicate,
        Lookup::One(v) => v,
    };
    let value = match prefix {
        Some(p) => {
            let matches = raw.len() >= p.len() && raw[..p.len()].eq_ignore_ascii_case(p.as_bytes());
            if !matches {
                // Another scheme (Basic, DPoP...): not this provider's credential, unless
                // Envoy joined two lines (`Basic x,Bearer t`) and one of them is ours.
                let ours_joined = raw.split(|b| *b == b',').skip(1).any(|part| {
                    let part = trim_ows(part);
                    part.len() >= p.len() && part[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                });
                return if ours_joined {
                    Found::Duplicate
                } else {
                    Found::Nothing
                };
            }
            &raw[p.len()..]
        }
        None => raw,
    };
    // Envoy joins repeated headers with ','; no token or key format contains one.
    if value.contains(&b',') {
        return Found::Duplicate;
    }
    match std::str::from_utf8(value) {
        Ok(s) => Found::One(Cow::Borrowed(s)),
        Err(_) => Found::Unreadable,
    }
}

fn cookie<'a>(input: &CheckInput<'a>, name: &str) -> Found<'a> {
    let mut found: Option<&'a [u8]> = None;
    for line in input.headers.get_all("cookie") {
        for pair in line.split(|b| *b == b';' || *b == b',') {
            let pair = trim_ows(pair);
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if &pair[..eq] == name.as_bytes() {
                if found.is_some() {
                    return Found::Duplicate;
                }
                found = Some(&pair[eq + 1..]);
            }
        }
    }
    match found {
        None => Found::Nothing,
        Some(v) => match std::str::from_utf8(v) {
            Ok(s) => Found::One(Cow::Borrowed(s)),
            Err(_) => Found::Unreadable,
        },
    }
}

fn trim_ows(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b' ' && *c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| *c != b' ' && *c != b'\t')
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

fn query<'a>(q: &'a str, name: &str) -> Found<'a> {
    let mut found: Option<&'a str> = None;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decode(k).as_deref() == Some(name) {
            if found.is_some() {
                return Found::Duplicate;
            }
            found = Some(v);
        }
    }
    match found {
        None => Found::Nothing,
        Some(v) => match form_decode(v) {
            Some(s) => Found::One(s),
            None => Found::Unreadable,
        },
    }
}

/// `path` (with its query) without the query parameters a credential is read from:
/// those named by a `query` source in `sources`, compared as [`TokenSource::find`]
/// compares them (decoded), and those whose name cannot be decoded (they could be any
/// of them). For URLs ward hands back to the client, such as a login redirect's `{url}`:
/// a token must never travel further than the request that carried it.
pub fn without_query_credentials<'a, 's>(
    path: &'a str,
    sources: impl IntoIterator<Item = &'s TokenSource>,
) -> Cow<'a, str> {
    let Some((before, query)) = path.split_once('?') else {
        return Cow::Borrowed(path);
    };
    let names: Vec<&str> = sources
        .into_iter()
        .filter_map(|s| match s {
            TokenSource::Query(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            form_decode(key).is_some_and(|k| !names.contains(&k.as_ref()))
        })
        .collect();
    if kept.len() == query.split('&').count() {
        return Cow::Borrowed(path);
    }
    if kept.is_empty() {
        return Cow::Borrowed(before);
    }
    Cow::Owned(format!("{before}?{}", kept.join("&")))
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, then `%XX`.
fn form_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains(['+', '%']) {
        return Some(Cow::Borrowed(s));
    }
    let plus = s.replace('+', " ");
    percent_decode(plus.as_bytes())
        .decode_utf8()
        .ok()
        .map(|c| Cow::Owned(c.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_with<'a>(headers: &[(&'a str, &'a [u8])], path: &'a str) -> CheckInput<'a> {
        let mut i = CheckInput {
            path,
            ..Default::default()
        };
        for (n, v) in headers {
            i.headers.push(n, v);
        }
        i
    }

    #[test]
    fn query_credentials_are_cut_from_a_url_and_nothing_else() {
        let q = [
            TokenSource::default_bearer(),
            TokenSource::Query("access_token".into()),
            TokenSource::Cookie("session".into()),
        ];
        let cut = |p| without_query_credentials(p, &q).into_owned();
        assert_eq!(cut("/a?access_token=t"), "/a");
        assert_eq!(cut("/a?x=1&access_token=t&y=2"), "/a?x=1&y=2");
        assert_eq!(cut("/a?x=1&access_token"), "/a?x=1");
        // Compared decoded, as the credential was read.
        assert_eq!(cut("/a?acc%65ss_token=t&x=1"), "/a?x=1");
        assert_eq!(cut("/a?access%5Ftoken=t"), "/a");
        // A name that cannot be decoded could be any name: it goes too.
        assert_eq!(cut("/a?%ff=t&x=1"), "/a?x=1");
        // Other sources and other parameters are kept, as they were written.
        assert_eq!(
            cut("/a?session=s&authorization=z"),
            "/a?session=s&authorization=z"
        );
        assert_eq!(cut("/a?x=%20&y"), "/a?x=%20&y");
        assert_eq!(cut("/a?"), "/a?");
        assert_eq!(cut("/a"), "/a");
        assert_eq!(cut("/a?access_tokens=t"), "/a?access_tokens=t");
        let none: [TokenSource; 0] = [];
        assert_eq!(
            without_query_credentials("/a?access_token=t", &none),
            "/a?access_token=t"
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_never_trimmed() {
        let b = TokenSource::default_bearer();
        let i = input_with(&[("authorization", b"bEaReR abc.def.ghi")], "/");
        assert_eq!(b.find(&i), Found::One("abc.def.ghi".into()));
        let i = input_with(&[("authorization", b"Bearer  abc ")], "/");
        assert_eq!(b.find(&i), Found::One(" abc ".into()));
        let i = input_with(&[("authorization", b"Basic dXNlcjpwYXNz")], "/");
        assert_eq!(b.find(&i), Found::Nothing);
        let i = input_with(&[("authorization", b"Bearer \xff")], "/");
        assert_eq!(b.find(&i), Found::Unreadable);
    }

    #[test]
    fn duplicates_in_one_place_are_refused() {
        let b = TokenSource::default_bearer();
        let i = input_with(&[("authorization", b"Bearer a,Bearer b")], "/");
        assert_eq!(b.find(&i), Found::Duplicate);
        let i = input_with(
            &[
                ("authorization", b"Bearer a"),
                ("authorization", b"Bearer b"),
            ],
            "/",
        );
        assert_eq!(b.find(&i), Found::Duplicate);
        let c = TokenSource::Cookie("at".into());
        let i = input_with(&[("cookie", b"at=1; x=2"), ("cookie", b"at=2")], "/");
        assert_eq!(c.find(&i), Found::Duplicate);
        let q = TokenSource::Query("access_token".into());
        let i = input_with(&[], "/p?access_token=a&access%5Ftoken=b");
        assert_eq!(q.find(&i), Found::Duplicate);
    }

    #[test]
    fn cookies_and_queries_are_found() {
        let c = TokenSource::Cookie("at".into());
        let i = input_with(&[("cookie", b"x=1; at=tok; y=2")], "/");
        assert_eq!(c.find(&i), Found::One("tok".into()));
        let i = input_with(&[("cookie", b"xat=1")], "/");
        assert_eq!(c.find(&i), Found::Nothing);
        let q = TokenSource::Query("access_token".into());
        let i = input_with(&[], "/p?a=1&access_token=t%2Bk");
        assert_eq!(q.find(&i), Found::One("t+k".into()));
        let i = input_with(&[], "/p?access_token=%ff");
        assert_eq!(q.find(&i), Found::Unreadable);
    }

    // === reading credentials exactly ===

    #[test]
    fn a_header_shorter_than_the_scheme_is_no_credential() {
        let b = TokenSource::default_bearer();
        for short in [&b"Bear"[..], b"", b"B"] {
            let i = input_with(&[("authorization", short)], "/");
            assert_eq!(b.find(&i), Found::Nothing, "{short:?}");
        }
        // Joined after another scheme, a part shorter than ours is not ours either.
        let i = input_with(&[("authorization", b"Basic x,Bear")], "/");
        assert_eq!(b.find(&i), Found::Nothing);
    }

    #[test]
    fn our_scheme_joined_after_another_is_a_duplicate() {
        let b = TokenSource::default_bearer();
        for joined in [&b"Basic dXNlcjpwYXNz,Bearer t"[..], b"DPoP x, bearer t"] {
            let i = input_with(&[("authorization", joined)], "/");
            assert_eq!(b.find(&i), Found::Duplicate, "{joined:?}");
        }
        let i = input_with(&[("authorization", b"Basic a,Basic b")], "/");
        assert_eq!(b.find(&i), Found::Nothing);
        // Without a scheme, the whole value is the credential; a joined one is two.
        let raw = TokenSource::Header {
            name: HeaderName::parse("x-api-key").unwrap(),
            prefix: None,
        };
        let i = input_with(&[("x-api-key", b"k1")], "/");
        assert_eq!(raw.find(&i), Found::One("k1".into()));
        let i = input_with(&[("x-api-key", b"k1,k2")], "/");
        assert_eq!(raw.find(&i), Found::Duplicate);
    }

    #[test]
    fn cookie_pairs_split_on_semicolons_and_commas_and_lose_only_outer_whitespace() {
        let c = TokenSource::Cookie("at".into());
        for line in [
            &b"x=1,at=tok"[..],
            b"x=1;at=tok",
            b"x=1;\tat=tok\t;y=2",
            b"at=tok ; y=2",
            b"at=tok \t",
            b" \tat=tok",
            b"x=1; ; at=tok",
            b"novalue; at=tok",
        ] {
            let i = input_with(&[("cookie", line)], "/");
            assert_eq!(c.find(&i), Found::One("tok".into()), "{line:?}");
        }
        let i = input_with(&[("cookie", b"at=a b")], "/");
        assert_eq!(c.find(&i), Found::One("a b".into()), "inner space kept");
        let i = input_with(&[("cookie", b"at=")], "/");
        assert_eq!(c.find(&i), Found::One("".into()));
        let i = input_with(&[("cookie", b"at=tok,at=tok2")], "/");
        assert_eq!(c.find(&i), Found::Duplicate);
        let i = input_with(&[("cookie", b"at=\xff")], "/");
        assert_eq!(c.find(&i), Found::Unreadable);
        let i = input_with(&[("cookie", b"a t=tok; at =tok")], "/");
        assert_eq!(c.find(&i), Found::Nothing, "names compare exactly");
    }

    #[test]
    fn the_first_source_that_holds_something_decides() {
        let sources = [
            TokenSource::Cookie("at".into()),
            TokenSource::default_bearer(),
            TokenSource::Query("access_token".into()),
        ];
        let i = input_with(&[("authorization", b"Bearer h")], "/p?access_token=q");
        assert_eq!(find_in(&sources, &i), Found::One("h".into()));
        let i = input_with(&[], "/p?access_token=q");
        assert_eq!(find_in(&sources, &i), Found::One("q".into()));
        let i = input_with(&[("cookie", b"at=1; at=2")], "/p?access_token=q");
        assert_eq!(
            find_in(&sources, &i),
            Found::Duplicate,
            "a duplicate decides"
        );
        assert_eq!(find_in(&sources, &input_with(&[], "/p")), Found::Nothing);
    }

    #[test]
    fn query_names_and_values_are_form_decoded() {
        let q = TokenSource::Query("access_token".into());
        let i = input_with(&[], "/p?access%5Ftoken=a+b%2Fc");
        assert_eq!(q.find(&i), Found::One("a b/c".into()));
        let i = input_with(&[], "/p?access_token");
        assert_eq!(q.find(&i), Found::One("".into()));
        let i = input_with(&[], "/p?access_tokenx=1&xaccess_token=2");
        assert_eq!(q.find(&i), Found::Nothing);
        assert_eq!(form_decode("plain").as_deref(), Some("plain"));
        assert_eq!(form_decode("a+b").as_deref(), Some("a b"));
        assert_eq!(form_decode("%ff"), None);
    }
}
