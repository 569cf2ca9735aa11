//! The `/status` page for a browser: server-rendered tables, inline CSS, no script. Every
//! value goes through [`esc`]: provider and route names come from the config, errors
//! and kids from identity providers, and none of them may become markup. The admin
//! handler serves it with a `content-security-policy` that allows no script at all.

use std::fmt::Write as _;

use super::{FetchStatus, ProviderStatus, RouteStatus, Status, rfc3339, short_duration};

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.4em 0}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.bad{color:#b00020;font-weight:600}.ok{color:#1b5e20}\
pre{white-space:pre-wrap;margin:0}code{font-size:.95em}";

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A time with its distance from `now`: `2026-12-03T05:13:54Z (3m 2s ago)`.
fn when(t: u64, now: u64) -> String {
    if t <= now {
        format!("{} ({} ago)", rfc3339(t), short_duration(now - t))
    } else {
        format!("{} (in {})", rfc3339(t), short_duration(t - now))
    }
}

fn opt_when(t: Option<u64>, now: u64) -> String {
    t.map_or_else(|| "—".to_string(), |t| esc(&when(t, now)))
}

fn outcome(f: &Option<FetchStatus>, now: u64) -> String {
    match f {
        None => "—".to_string(),
        Some(f) => match &f.error {
            None => format!("<span class=ok>success</span>, {}", esc(&when(f.at, now))),
            Some(e) => format!(
                "<span class=bad>failure</span>, {}<pre>{}</pre>",
                esc(&when(f.at, now)),
                esc(e)
            ),
        },
    }
}

pub(super) fn render(s: &Status) -> String {
    let now = s.generated_at;
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width\">\
         <title>ward status</title><style>{STYLE}</style></head><body>\
         <h1>ward {}</h1><p>Generated {} · schema {}</p>",
        esc(&s.version),
        esc(&rfc3339(now)),
        s.schema
    );
    // Config.
    let c = &s.config;
    let _ = write!(
        h,
        "<h2>Config</h2><table><tr><th>source</th><td>{}</td></tr>\
         <tr><th>hash</th><td><code>{}</code></td></tr>\
         <tr><th>loaded</th><td>{}</td></tr><tr><th>last reload</th><td>",
        esc(c.source.as_deref().unwrap_or("(in process)")),
        esc(&c.hash),
        esc(&when(c.loaded_at, now)),
    );
    match &c.last_reload {
        None => h.push_str("none since start"),
        Some(r) if r.error.is_none() => {
            let _ = write!(
                h,
                "<span class=ok>success</span>, {}",
                esc(&when(r.at, now))
            );
        }
        Some(r) => {
            let _ = write!(
                h,
                "<span class=bad>failure</span>, {} (the config above keeps serving)<pre>{}</pre>",
                esc(&when(r.at, now)),
                esc(r.error.as_deref().unwrap_or(""))
            );
        }
    }
    h.push_str("</td></tr></table>");
    // Providers.
    h.push_str("<h2>Providers</h2>");
    for p in &s.providers {
        provider(&mut h, p, now);
    }
    // Routes.
    h.push_str(
        "<h2>Routes</h2><table><tr><th>#</th><th>route</th><th>match</th>\
         <th>providers</th><th>mode</th></tr>",
    );
    for (i, r) in s.routes.iter().enumerate() {
        route(&mut h, i + 1, r);
    }
    h.push_str("</table>");
    // Caches.
    let k = &s.caches;
    let _ = writeln!(
        h,
        "<h2>Caches</h2><table><tr><th>verified tokens</th><td>{}</td></tr>\
         <tr><th>introspection answers</th><td>{}</td></tr>\
         <tr><th>DPoP proofs (replay)</th><td>{}</td></tr></table></body></html>",
        k.token_cache_entries, k.introspection_cache_entries, k.dpop_replay_entries
    );
    h
}

fn provider(h: &mut String, p: &ProviderStatus, now: u64) {
    let _ = write!(
        h,
        "<h3 id=\"provider-{}\">{} <small>({})</small></h3><table>",
        esc(&p.name),
        esc(&p.name),
        esc(&p.kind)
    );
    if let Some(iss) = &p.issuer {
        let _ = write!(h, "<tr><th>issuer</th><td>{}</td></tr>", esc(iss));
    }
    if let Some(src) = &p.key_source {
        let _ = write!(
            h,
            "<tr><th>key source</th><td>{} {}</td></tr>",
            esc(&src.kind),
            esc(src.location.as_deref().unwrap_or(""))
        );
        if let Some(u) = &src.discovered_jwks_uri {
            let _ = write!(
                h,
                "<tr><th>discovered jwks_uri</th><td>{}</td></tr>",
                esc(u)
            );
        }
        if let Some(f) = &src.fallback_file {
            let _ = write!(
                h,
                "<tr><th>fallback file</th><td>{}{}</td></tr>",
                esc(f),
                if p.using_fallback {
                    " <span class=bad>(in use)</span>"
                } else {
                    ""
                }
            );
        }
        let _ = write!(
            h,
            "<tr><th>last fetch</th><td>{}</td></tr>\
             <tr><th>last success</th><td>{}</td></tr>\
             <tr><th>next refresh</th><td>{}</td></tr>",
            outcome(&p.last_fetch, now),
            opt_when(p.last_success_at, now),
            opt_when(p.next_refresh_at, now)
        );
    }
    if let Some(i) = &p.introspection {
        let state = if i.breaker == "closed" {
            "<span class=ok>closed</span>".to_string()
        } else {
            format!("<span class=bad>{}</span>", esc(&i.breaker))
        };
        let _ = write!(
            h,
            "<tr><th>endpoint</th><td>{}</td></tr><tr><th>breaker</th><td>{state}, \
             {} consecutive failures{}</td></tr><tr><th>last failure</th><td>{}</td></tr>\
             <tr><th>cached answers</th><td>{}</td></tr>",
            esc(&i.endpoint),
            i.consecutive_failures,
            i.open_until
                .map(|t| format!(", next probe {}", esc(&when(t, now))))
                .unwrap_or_default(),
            outcome(&i.last_failure, now),
            i.cache_entries
        );
        if let Some(d) = &i.discovered_endpoint {
            let _ = write!(
                h,
                "<tr><th>discovered endpoint</th><td>{}</td></tr>",
                esc(d)
            );
        }
    }
    if let Some(n) = p.api_keys {
        let _ = write!(h, "<tr><th>API keys</th><td>{n}</td></tr>");
    }
    if let Some(d) = &p.trust_domains {
        let _ = write!(
            h,
            "<tr><th>trust domains</th><td>{}</td></tr>",
            esc(&d.join(", "))
        );
    }
    h.push_str("</table>");
    if p.key_source.is_some() {
        if p.keys.is_empty() {
            h.push_str("<p class=bad>No keys held.</p>");
        } else {
            h.push_str(
                "<table><tr><th>kid</th><th>family</th><th>algorithms</th>\
                 <th>held since</th></tr>",
            );
            for k in &p.keys {
                let _ = write!(
                    h,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(k.kid.as_deref().unwrap_or("(no kid)")),
                    esc(&k.family),
                    esc(&k.algorithms.join(", ")),
                    opt_when(k.held_since, now)
                );
            }
            h.push_str("</table>");
        }
    }
}

fn route(h: &mut String, n: usize, r: &RouteStatus) {
    let parts = r.matcher.describe(esc, ", ");
    let providers = if r.providers.is_empty() {
        "none (anonymous)".to_string()
    } else {
        esc(&r.providers.join(", "))
    };
    let _ = write!(
        h,
        "<tr><td>{n}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>",
        esc(&r.name),
        parts.join("<br>"),
        providers,
        if r.allow_anonymous && !r.providers.is_empty() {
            " (anonymous allowed)"
        } else {
            ""
        },
        esc(&r.mode)
    );
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }
}
