//! Running one case and comparing what ward decided with what the case expects.

use serde_json::{Value, json};

use crate::clock::unix_now;
use crate::decision::{DenyReason, Report, Verdict};
use crate::engine::Engine;
use crate::request::CheckInput;

use super::*;

// === running one case ===

impl Case {
    /// Decides the case's request; on a mismatch, the lines that explain it.
    pub(super) async fn run(&self, engine: &Engine) -> Result<(), Vec<String>> {
        let r = &self.request;
        let mut headers = r.headers.clone();
        let mut path = r.path.clone();
        if let Some(t) = &self.token {
            let token = t
                .mint(unix_now())
                .map_err(|e| vec![format!("cannot mint the case's token: {e}")])?;
            match &t.place {
                Place::Header { name, prefix } => {
                    headers.push((name.clone(), format!("{prefix}{token}")))
                }
                Place::Cookie(name) => headers.push(("cookie".into(), format!("{name}={token}"))),
                Place::Query(name) => {
                    let sep = if path.contains('?') { '&' } else { '?' };
                    path = format!("{path}{sep}{name}={token}");
                }
            }
        }
        let context: Vec<(String, String)> = r
            .context
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut input = CheckInput::from_pairs(&r.method, &r.host, &path, &headers, &context);
        input.source_principal = &r.source_principal;
        input.stream_id = "ward-test";
        let decision = engine.check(&input).await;
        let config = engine.config();
        let mut actual = Actual::of(&decision);
        actual.minted_header = minted::header_of(config, decision.route.as_deref());
        let mut diff = self.expect.compare(&actual);
        if let Some(m) = &self.expect.minted {
            diff.extend(m.compare(config, &decision));
        }
        if diff.is_empty() {
            Ok(())
        } else {
            Err(diff.into_iter().chain([actual.summary()]).collect())
        }
    }
}

impl TokenSpec {
    /// Signs the claims, with `iat` and `exp` filled in unless given or omitted.
    pub(super) fn mint(&self, now: u64) -> Result<String, crate::devtoken::DevTokenError> {
        let mut claims = self.claims.clone();
        let (iat, exp) = if self.expired {
            (
                now.saturating_sub(2 * EXPIRED_AGO),
                now.saturating_sub(EXPIRED_AGO),
            )
        } else {
            (now, now.saturating_add(self.ttl.as_secs()))
        };
        claims.entry("iat").or_insert(json!(iat));
        claims.entry("exp").or_insert(json!(exp));
        for name in &self.omit {
            claims.remove(name);
        }
        self.key
            .sign_typed(&Value::Object(claims), self.typ.as_deref())
    }
}

/// What ward decided, in the terms a case can expect.
struct Actual {
    decision: &'static str,
    status: u16,
    route: Option<String>,
    reason: &'static str,
    detail: Option<String>,
    explain: Option<String>,
    condition: Option<String>,
    set: Vec<(String, String)>,
    removed: Vec<String>,
    www_authenticate: Option<String>,
    /// The route's mint header: its value, a token, is never shown.
    minted_header: Option<String>,
}

impl Actual {
    fn of(d: &crate::Decision) -> Self {
        let report = Report::new(d);
        let denial = match (&d.verdict, &d.shadow_deny) {
            (Verdict::Deny(r), _) | (Verdict::Allow(_), Some(r)) => Some(r),
            (Verdict::Allow(_), None) => None,
        };
        let (set, removed) = match &d.verdict {
            Verdict::Allow(m) => (
                m.set
                    .iter()
                    .map(|(h, v)| (h.to_string(), v.clone()))
                    .collect(),
                m.remove.iter().map(ToString::to_string).collect(),
            ),
            Verdict::Deny(_) => (Vec::new(), Vec::new()),
        };
        let www_authenticate = match &d.verdict {
            Verdict::Deny(r) => r.challenge(),
            Verdict::Allow(_) => None,
        };
        Actual {
            decision: d.label(),
            status: report.status(),
            route: d.route.as_deref().map(str::to_owned),
            reason: d.reason_code(),
            detail: denial.map(|r| r.detail().into_owned()),
            explain: denial.map(|r| r.explain().into_owned()),
            condition: denial.and_then(|r| match r {
                DenyReason::Forbidden(f) => Some(f.condition.to_string()),
                _ => None,
            }),
            set,
            removed,
            www_authenticate,
            minted_header: None,
        }
    }

    /// One line saying what was decided, printed under a failed case.
    fn summary(&self) -> String {
        let route = self.route.as_deref().unwrap_or("none");
        let mut s = format!(
            "got: {} {} {} (route {route})",
            self.decision, self.status, self.reason
        );
        if let Some(why) = &self.explain {
            s.push_str(": ");
            s.push_str(why);
        }
        s
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .find(|(h, _)| h == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A value in a difference line: strings quoted, absence spelled out.
fn shown(v: Option<&str>, absent: &str) -> String {
    match v {
        Some(s) => Value::String(s.to_owned()).to_string(),
        None => absent.to_owned(),
    }
}

impl Expect {
    /// Every expectation that does not hold, as `field: expected X, got Y`.
    fn compare(&self, a: &Actual) -> Vec<String> {
        let mut diff = Vec::new();
        let mut check = |field: &str, expected: String, actual: String| {
            if expected != actual {
                diff.push(format!("{field}: expected {expected}, got {actual}"));
            }
        };
        check("decision", self.decision.as_str().into(), a.decision.into());
        if let Some(s) = self.status {
            check("status", s.to_string(), a.status.to_string());
        }
        if let Some(r) = &self.route {
            check(
                "route",
                shown(r.as_deref(), "none"),
                shown(a.route.as_deref(), "none"),
            );
        }
        if let Some(r) = &self.reason {
            check("reason", shown(Some(r), ""), shown(Some(a.reason), ""));
        }
        if let Some(d) = &self.detail {
            check(
                "detail",
                shown(Some(d), ""),
                shown(a.detail.as_deref(), "none"),
            );
        }
        if let Some(w) = &self.www_authenticate {
            check(
                "www_authenticate",
                shown(w.as_deref(), "none"),
                shown(a.www_authenticate.as_deref(), "none"),
            );
        }
        for (name, want) in &self.headers {
            let got = match a.header(name) {
                Some(_) if a.minted_header.as_deref() == Some(name) => "a minted token".into(),
                got => shown(got, "not set"),
            };
            check(
                &format!("headers.{name}"),
                shown(want.as_deref(), "not set"),
                got,
            );
        }
        if let Some(c) = &self.condition {
            let holds = a
                .condition
                .as_deref()
                .is_some_and(|got| got.contains(c.as_str()));
            if !holds {
                diff.push(format!(
                    // The description is printed as ward wrote it: quoting it would
                    // escape the quotes and backslashes it already holds.
                    "condition: expected one containing {}, got {}",
                    shown(Some(c), ""),
                    a.condition.as_deref().unwrap_or("none")
                ));
            }
        }
        for name in &self.removed {
            if !a.removed.contains(name) {
                diff.push(format!(
                    "removed: expected {name} in headers_to_remove, it is not"
                ));
            }
        }
        diff
    }
}
