//! What `ward status` prints in a terminal. Values from the config and from identity
//! providers go through [`clean`]: a control character (an escape sequence in an IdP's
//! error, say) is printed escaped, never sent to the terminal.

use std::fmt::Write as _;

use super::{FetchStatus, Status, rfc3339, short_duration};

/// `s` with control characters escaped (`\u{1b}`), so it cannot move the cursor,
/// recolour or retitle the terminal.
pub(super) fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

fn when(t: u64, now: u64) -> String {
    if t <= now {
        format!("{} ({} ago)", rfc3339(t), short_duration(now - t))
    } else {
        format!("{} (in {})", rfc3339(t), short_duration(t - now))
    }
}

/// Each line of a (cleaned) multi-line message, indented.
fn indented(out: &mut String, indent: &str, message: &str) {
    for line in message.lines() {
        let _ = writeln!(out, "{indent}{}", clean(line));
    }
}

fn outcome(out: &mut String, label: &str, f: &FetchStatus, now: u64) {
    match &f.error {
        None => {
            let _ = writeln!(out, "    {label}: success, {}", when(f.at, now));
        }
        Some(e) => {
            let _ = writeln!(out, "    {label}: FAILURE, {}", when(f.at, now));
            indented(out, "      ", e);
        }
    }
}

pub(super) fn render(s: &Status) -> String {
    let now = s.generated_at;
    let mut o = String::new();
    let c = &s.config;
    let _ = writeln!(o, "ward {} (status schema {})", clean(&s.version), s.schema);
    let _ = writeln!(
        o,
        "config   {} (hash {}), loaded {}",
        clean(c.source.as_deref().unwrap_or("(in process)")),
        clean(&c.hash),
        when(c.loaded_at, now)
    );
    match &c.last_reload {
        None => o.push_str("reload   none since start\n"),
        Some(r) if r.error.is_none() => {
            let _ = writeln!(o, "reload   success, {}", when(r.at, now));
        }
        Some(r) => {
            let _ = writeln!(
                o,
                "reload   FAILURE, {}; the config above keeps serving",
                when(r.at, now)
            );
            indented(&mut o, "  ", r.error.as_deref().unwrap_or(""));
        }
    }
    o.push_str("\nproviders\n");
    for p in &s.providers {
        let _ = writeln!(o, "  {} ({})", clean(&p.name), clean(&p.kind));
        if let Some(iss) = &p.issuer {
            let _ = writeln!(o, "    issuer: {}", clean(iss));
        }
        if let Some(src) = &p.key_source {
            let _ = writeln!(
                o,
                "    keys from: {} {}",
                clean(&src.kind),
                clean(src.location.as_deref().unwrap_or(""))
            );
            if let Some(u) = &src.discovered_jwks_uri {
                let _ = writeln!(o, "    discovered jwks_uri: {}", clean(u));
            }
            if let Some(f) = &src.fallback_file {
                let _ = writeln!(
                    o,
                    "    fallback file: {}{}",
                    clean(f),
                    if p.using_fallback { " (IN USE)" } else { "" }
                );
            }
            if p.keys.is_empty() {
                o.push_str("    NO KEYS HELD\n");
            }
            for k in &p.keys {
                let _ = writeln!(
                    o,
                    "    kid {}  {}  {}  held since {}",
                    clean(k.kid.as_deref().unwrap_or("(none)")),
                    clean(&k.family),
                    clean(&k.algorithms.join(",")),
                    k.held_since.map_or("?".to_string(), |t| when(t, now))
                );
            }
            if let Some(f) = &p.last_fetch {
                outcome(&mut o, "last fetch", f, now);
            }
            if let Some(t) = p.next_refresh_at {
                let _ = writeln!(o, "    next refresh: {}", when(t, now));
            }
        }
        if let Some(i) = &p.introspection {
            let _ = writeln!(o, "    endpoint: {}", clean(&i.endpoint));
            let _ = writeln!(
                o,
                "    breaker: {}, {} consecutive failures{}; {} cached answers",
                clean(&i.breaker),
                i.consecutive_failures,
                i.open_until
                    .map(|t| format!(", next probe {}", when(t, now)))
                    .unwrap_or_default(),
                i.cache_entries
            );
            if let Some(f) = &i.last_failure {
                outcome(&mut o, "last failure", f, now);
            }
        }
        if let Some(n) = p.api_keys {
            let _ = writeln!(o, "    {n} API keys");
        }
        if let Some(d) = &p.trust_domains {
            let _ = writeln!(o, "    trust domains: {}", clean(&d.join(", ")));
        }
    }
    o.push_str("\nroutes (first match wins)\n");
    for r in &s.routes {
        let parts = r.matcher.describe(clean, ",");
        let providers = if r.providers.is_empty() {
            "anonymous".to_string()
        } else {
            clean(&r.providers.join(","))
        };
        let _ = writeln!(
            o,
            "  {}  {}  -> {}{}",
            clean(&r.name),
            parts.join("  "),
            providers,
            if r.mode == "shadow" { "  [shadow]" } else { "" }
        );
    }
    let k = &s.caches;
    let _ = writeln!(
        o,
        "\ncaches   {} verified tokens, {} introspection answers, {} DPoP proofs",
        k.token_cache_entries, k.introspection_cache_entries, k.dpop_replay_entries
    );
    o
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("a\u{1b}[31mb\r\n"), "a\\u{1b}[31mb\\u{d}\\u{a}");
    }
}
