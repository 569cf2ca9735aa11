//! Every pattern matcher, fed a pattern and an input (split at the first newline, after
//! a byte that picks the matcher): `source_principals` globs (checked against their
//! definition on small inputs), host patterns, `path` patterns and `path_prefix`es.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use ward::authz::condition::Glob;
use ward::authz::path::{self, HostPattern, PatSeg, PathMatch};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Some((pattern, input)) = ward_fuzz::two_lines(rest) else {
        return;
    };
    match which % 4 {
        0 => {
            let got = Glob::new(pattern).matches(input);
            if pattern.len() <= 24 && input.len() <= 48 {
                assert_eq!(
                    got,
                    ward_fuzz::glob_reference(pattern, input),
                    "{pattern:?} on {input:?}"
                );
            }
        }
        1 => {
            if let Ok(h) = HostPattern::parse(pattern) {
                let hit = h.matches(input);
                // A host and its upper-case spelling, or with a port, decide alike.
                assert_eq!(hit, h.matches(&input.to_ascii_uppercase()), "{input:?}");
                if !input.contains([':', '[', ']']) {
                    assert_eq!(hit, h.matches(&format!("{input}:8443")), "{input:?}");
                }
            }
        }
        2 => {
            let (Ok(m), Ok(segs)) = (PathMatch::pattern(pattern), path::normalize(input)) else {
                return;
            };
            let got = m.matches(&segs).is_some();
            if let PathMatch::Pattern(p) = &m
                && p.len() <= 8
                && segs.len() <= 12
            {
                assert_eq!(got, reference(p, &segs), "{pattern:?} on {segs:?}");
            }
        }
        _ => {
            let (Ok(m), Ok(segs)) = (PathMatch::prefix(pattern), path::normalize(input)) else {
                return;
            };
            let _ = m.matches(&segs);
        }
    }
});

/// Whether `pat` matches `path` by trying every placement of every `**`.
fn reference(pat: &[PatSeg], path: &[Cow<'_, str>]) -> bool {
    let Some((first, rest)) = pat.split_first() else {
        return path.is_empty();
    };
    match first {
        PatSeg::Rest => (0..=path.len()).any(|skip| reference(rest, &path[skip..])),
        PatSeg::Lit(l) => path.first().is_some_and(|s| s == l) && reference(rest, &path[1..]),
        PatSeg::Param(_) | PatSeg::One => !path.is_empty() && reference(rest, &path[1..]),
    }
}
