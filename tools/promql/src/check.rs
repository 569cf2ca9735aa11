//! The label checker: follows label sets through a query (selectors, `rate()` and
//! friends, aggregations, binary operators with their vector matching, recording rules)
//! and reports every name, label or value that the scrape it checks against does not
//! have.

use std::collections::{BTreeMap, BTreeSet};

use crate::parse::{Expr, Matcher, Matching, parse};

// ================================================================ label checking

/// Label names of a vector, each with the metric families it comes from (empty for
/// target labels).
pub type Labels = BTreeMap<String, BTreeSet<String>>;

/// The type of an expression: a scalar, a string, or a vector with its labels.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Scalar,
    Str,
    Vector(Labels),
}

fn names(l: &Labels) -> BTreeSet<&str> {
    l.keys().map(String::as_str).collect()
}

fn show(l: &Labels) -> String {
    l.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The metric names and label sets the checks run against: ward's scrape and the
/// recording rules of prometheusrule.yaml.
pub struct Checker {
    families: BTreeMap<String, Family>,
    /// Labels every scraped series carries (added by the scraper).
    target_labels: Vec<String>,
    /// The values a label may take beyond those seen in the scrape, by family and label;
    /// None where any value seen is the contract.
    contract: Contract,
    /// Recording rules: name -> expression.
    pub rules: BTreeMap<String, String>,
    rule_labels: BTreeMap<String, Option<Labels>>,
    /// Every problem found, as `context: message`.
    pub errors: BTreeSet<String>,
    /// ward/process families queried, and recording rules, by context.
    pub used: BTreeMap<String, BTreeSet<String>>,
}

/// The label values a metrics contract allows, by family and label name.
pub type Contract = fn(&str, &str) -> Option<&'static [&'static str]>;

/// A metric family as a scrape shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Family {
    /// From `# TYPE`: counter, gauge, histogram, ...
    pub ty: String,
    /// Label names on its samples (without `le`).
    pub labels: BTreeSet<String>,
    /// The `le` bounds of a histogram's buckets, as exposed.
    pub le: BTreeSet<String>,
    /// Label values seen, by label name.
    pub values: BTreeMap<String, BTreeSet<String>>,
}

impl Checker {
    /// A checker of queries against `families`, whose series also carry
    /// `target_labels`, and whose label values `contract` names.
    pub fn new(
        families: BTreeMap<String, Family>,
        target_labels: &[&str],
        contract: Contract,
    ) -> Self {
        Checker {
            families,
            target_labels: target_labels.iter().map(|l| l.to_string()).collect(),
            contract,
            rules: BTreeMap::new(),
            rule_labels: BTreeMap::new(),
            errors: BTreeSet::new(),
            used: BTreeMap::new(),
        }
    }

    /// Records a problem found in `ctx`.
    pub fn error(&mut self, ctx: &str, msg: impl std::fmt::Display) {
        self.errors.insert(format!("{ctx}: {msg}"));
    }

    fn target_labels(&self) -> Labels {
        self.target_labels
            .iter()
            .map(|l| (l.clone(), BTreeSet::new()))
            .collect()
    }

    /// `ward_x_bucket` -> (`ward_x`, Some("_bucket")) when ward_x is a histogram.
    fn family_of(&self, name: &str) -> Option<(String, Option<&'static str>)> {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && self.families.get(base).is_some_and(|f| f.ty == "histogram")
            {
                return Some((base.to_string(), Some(suffix)));
            }
        }
        self.families
            .get(name)
            .filter(|f| f.ty != "histogram")
            .map(|_| (name.to_string(), None))
    }

    /// Every `ward_*` / `process_*` identifier in a query's text (strings included)
    /// must name an exported family.
    fn scan_names(&mut self, ctx: &str, text: &str) {
        let bytes = text.as_bytes();
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        let mut i = 0;
        while i < bytes.len() {
            if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) {
                let start = i;
                while i < bytes.len() && ident(bytes[i]) {
                    i += 1;
                }
                let word = &text[start..i];
                if word.starts_with("ward_") || word.starts_with("process_") {
                    match self.family_of(word) {
                        Some((f, _)) => {
                            self.used.entry(ctx.to_string()).or_default().insert(f);
                        }
                        None if self.families.contains_key(word) => self.error(
                            ctx,
                            format!(
                                "`{word}` is a histogram: query its _bucket, _sum or _count series"
                            ),
                        ),
                        None => self.error(
                            ctx,
                            format!("`{word}` is not a metric ward exports on /metrics"),
                        ),
                    }
                }
            } else {
                i += 1;
            }
        }
    }

    /// Checks one query; its label set when it parses.
    pub fn query(&mut self, ctx: &str, text: &str) -> Option<Ty> {
        self.scan_names(ctx, text);
        match parse(text) {
            Ok(e) => Some(self.ty(ctx, &e)),
            Err(e) => {
                self.error(ctx, format!("cannot parse `{text}`: {e}"));
                None
            }
        }
    }

    /// The labels of recording rule `name`'s vector (None when it has none or is
    /// unknown).
    pub fn rule_labels(&mut self, name: &str) -> Option<Labels> {
        if let Some(l) = self.rule_labels.get(name) {
            return l.clone();
        }
        let expr = self.rules.get(name)?.clone();
        // In progress: a rule that refers to itself gets no labels.
        self.rule_labels.insert(name.to_string(), None);
        let ctx = format!("recording rule {name}");
        let labels = match self.query(&ctx, &expr) {
            Some(Ty::Vector(l)) => Some(l),
            Some(_) => {
                self.error(&ctx, "a recording rule must produce a vector");
                None
            }
            None => None,
        };
        self.rule_labels.insert(name.to_string(), labels.clone());
        labels
    }

    fn check_value(&mut self, ctx: &str, family: &str, m: &Matcher) {
        if m.value.contains('$') {
            return; // a Grafana variable
        }
        let values: Vec<&str> = match m.op.as_str() {
            "=" | "!=" if !m.value.is_empty() => vec![m.value.as_str()],
            "=~" | "!~"
                if m.value.split('|').all(|v| {
                    !v.is_empty()
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                }) =>
            {
                m.value.split('|').collect()
            }
            _ => return,
        };
        let Some(f) = self.families.get(family) else {
            return;
        };
        let allowed: BTreeSet<String> = if m.label == "le" {
            f.le.clone()
        } else {
            let Some(contract) = (self.contract)(family, &m.label) else {
                return;
            };
            let mut a: BTreeSet<String> = contract.iter().map(|s| s.to_string()).collect();
            a.extend(f.values.get(&m.label).cloned().unwrap_or_default());
            a
        };
        for v in values {
            if !allowed.contains(v) {
                let what = if m.label == "le" {
                    format!("no bucket of {family} has le=\"{v}\"")
                } else {
                    format!("{family} never has {}=\"{v}\"", m.label)
                };
                self.error(
                    ctx,
                    format!(
                        "{what} (it has: {})",
                        allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
    }

    fn selector(&mut self, ctx: &str, name: &str, matchers: &[Matcher]) -> Ty {
        let labels: Labels = if name.contains(':') {
            self.used
                .entry(ctx.to_string())
                .or_default()
                .insert(name.to_string());
            match self.rule_labels(name) {
                Some(l) => l,
                None => {
                    if !self.rules.contains_key(name) {
                        self.error(
                            ctx,
                            format!("`{name}` is not a recording rule of prometheusrule.yaml"),
                        );
                    }
                    return Ty::Vector(Labels::new());
                }
            }
        } else if name == "up" {
            self.target_labels()
        } else if name.starts_with("ward_") || name.starts_with("process_") {
            let Some((family, suffix)) = self.family_of(name) else {
                // Reported by scan_names.
                return Ty::Vector(Labels::new());
            };
            let mut l = self.target_labels();
            for label in &self.families[&family].labels {
                l.entry(label.clone()).or_default().insert(family.clone());
            }
            if suffix == Some("_bucket") {
                l.entry("le".into()).or_default().insert(family.clone());
            }
            l
        } else {
            self.error(
                ctx,
                format!("`{name}` is neither ward's metric, nor a recording rule, nor up"),
            );
            return Ty::Vector(Labels::new());
        };
        for m in matchers {
            if m.label == "__name__" {
                continue;
            }
            match labels.get(&m.label) {
                None => self.error(
                    ctx,
                    format!(
                        "{{{}{}...}}: {} is not a label of {name} (labels: {})",
                        m.label,
                        m.op,
                        m.label,
                        show(&labels)
                    ),
                ),
                Some(from) => {
                    for family in from.clone() {
                        self.check_value(ctx, &family, m);
                    }
                }
            }
        }
        Ty::Vector(labels)
    }

    /// Reports each of `wanted` that is not a label of `of`.
    pub fn subset(&mut self, ctx: &str, what: &str, wanted: &[String], of: &Labels) {
        for l in wanted {
            if !of.contains_key(l) {
                self.error(
                    ctx,
                    format!("{what}: {l} is not a label there (labels: {})", show(of)),
                );
            }
        }
    }

    fn ty(&mut self, ctx: &str, e: &Expr) -> Ty {
        match e {
            Expr::Num => Ty::Scalar,
            Expr::Str(_) => Ty::Str,
            Expr::Neg(e) | Expr::Range(e) => self.ty(ctx, e),
            Expr::Sel { name, matchers } => self.selector(ctx, name, matchers),
            Expr::Call { func, args } => self.call(ctx, func, args),
            Expr::Agg { op, grouping, args } => {
                let tys: Vec<Ty> = args.iter().map(|a| self.ty(ctx, a)).collect();
                let Some(Ty::Vector(inner)) = tys.last().cloned() else {
                    self.error(ctx, format!("{op}() needs a vector"));
                    return Ty::Vector(Labels::new());
                };
                let mut out = match grouping {
                    Some((false, by)) => {
                        self.subset(ctx, &format!("{op} by ({})", by.join(", ")), by, &inner);
                        by.iter()
                            .filter_map(|l| inner.get_key_value(l))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    }
                    Some((true, without)) => {
                        self.subset(
                            ctx,
                            &format!("{op} without ({})", without.join(", ")),
                            without,
                            &inner,
                        );
                        let mut l = inner.clone();
                        l.retain(|k, _| !without.contains(k));
                        l
                    }
                    None => Labels::new(),
                };
                match op.as_str() {
                    "topk" | "bottomk" | "limitk" | "limit_ratio" => out = inner,
                    "count_values" => {
                        if let Some(Expr::Str(l)) = args.first() {
                            out.insert(l.clone(), BTreeSet::new());
                        }
                    }
                    _ => {}
                }
                Ty::Vector(out)
            }
            Expr::Bin {
                op,
                lhs,
                rhs,
                matching,
            } => {
                let (l, r) = (self.ty(ctx, lhs), self.ty(ctx, rhs));
                let (l, r) = match (l, r) {
                    (Ty::Vector(l), Ty::Vector(r)) => (l, r),
                    (Ty::Vector(v), _) | (_, Ty::Vector(v)) => return Ty::Vector(v),
                    _ => return Ty::Scalar,
                };
                self.binary(ctx, op, l, r, matching.as_ref())
            }
        }
    }

    fn binary(&mut self, ctx: &str, op: &str, l: Labels, r: Labels, m: Option<&Matching>) -> Ty {
        let set_op = ["and", "or", "unless"].contains(&op);
        let Some(m) = m else {
            if op == "or" {
                let mut out = l.clone();
                out.retain(|k, _| r.contains_key(k));
                return Ty::Vector(out);
            }
            if names(&l) != names(&r) {
                self.error(
                    ctx,
                    format!(
                        "`{op}` between vectors with different labels ({}) and ({}): no series would match; aggregate both sides alike or use on(...)",
                        show(&l),
                        show(&r)
                    ),
                );
            }
            return Ty::Vector(l);
        };
        let what = format!(
            "{} ({})",
            if m.on { "on" } else { "ignoring" },
            m.labels.join(", ")
        );
        if m.on {
            self.subset(ctx, &format!("{what}, left side"), &m.labels, &l);
            self.subset(ctx, &format!("{what}, right side"), &m.labels, &r);
        } else {
            let mut both = l.clone();
            both.extend(r.clone());
            self.subset(ctx, &what, &m.labels, &both);
        }
        match &m.group {
            Some((left, extra)) => {
                let (many, one) = if *left { (l, r) } else { (r, l) };
                self.subset(ctx, "group_left/group_right", extra, &one);
                let mut out = many;
                for x in extra {
                    if let Some(v) = one.get(x) {
                        out.insert(x.clone(), v.clone());
                    }
                }
                Ty::Vector(out)
            }
            None if set_op => Ty::Vector(l),
            None if m.on => {
                let mut out = l;
                out.retain(|k, _| m.labels.contains(k));
                Ty::Vector(out)
            }
            None => {
                let (mut a, mut b) = (l, r);
                a.retain(|k, _| !m.labels.contains(k));
                b.retain(|k, _| !m.labels.contains(k));
                if names(&a) != names(&b) {
                    self.error(
                        ctx,
                        format!(
                            "`{op} {what}`: the sides still differ ({}) vs ({})",
                            show(&a),
                            show(&b)
                        ),
                    );
                }
                Ty::Vector(a)
            }
        }
    }

    fn call(&mut self, ctx: &str, func: &str, args: &[Expr]) -> Ty {
        const NEED_RANGE: &[&str] = &[
            "rate",
            "irate",
            "increase",
            "delta",
            "idelta",
            "deriv",
            "predict_linear",
            "changes",
            "resets",
            "avg_over_time",
            "min_over_time",
            "max_over_time",
            "sum_over_time",
            "count_over_time",
            "last_over_time",
            "quantile_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "present_over_time",
            "absent_over_time",
        ];
        const KEEP_LABELS: &[&str] = &[
            "timestamp",
            "abs",
            "ceil",
            "floor",
            "round",
            "clamp",
            "clamp_min",
            "clamp_max",
            "exp",
            "ln",
            "log2",
            "log10",
            "sqrt",
            "sgn",
            "sort",
            "sort_desc",
        ];
        let tys: Vec<Ty> = args.iter().map(|a| self.ty(ctx, a)).collect();
        let first_vector = tys.iter().find_map(|t| match t {
            Ty::Vector(l) => Some(l.clone()),
            _ => None,
        });
        if NEED_RANGE.contains(&func) && !args.iter().any(|a| matches!(a, Expr::Range(_))) {
            self.error(ctx, format!("{func}() needs a range vector, like x[5m]"));
        }
        match func {
            "time" => Ty::Scalar,
            "scalar" => Ty::Scalar,
            "vector" => Ty::Vector(Labels::new()),
            "absent" | "absent_over_time" => {
                let mut out = Labels::new();
                let inner = match args.first() {
                    Some(Expr::Range(e)) => Some(&**e),
                    other => other,
                };
                if let Some(Expr::Sel { matchers, .. }) = inner {
                    for m in matchers.iter().filter(|m| m.op == "=") {
                        out.insert(m.label.clone(), BTreeSet::new());
                    }
                }
                Ty::Vector(out)
            }
            "histogram_quantile" => {
                let Some(mut l) = first_vector else {
                    self.error(ctx, "histogram_quantile() needs a vector of buckets");
                    return Ty::Vector(Labels::new());
                };
                if l.remove("le").is_none() {
                    self.error(
                        ctx,
                        format!(
                            "histogram_quantile() over a vector without le (labels: {}): keep le in the sum by (...)",
                            show(&l)
                        ),
                    );
                }
                Ty::Vector(l)
            }
            "label_replace" => {
                let mut l = first_vector.unwrap_or_default();
                if let Some(Expr::Str(dst)) = args.get(1) {
                    l.insert(dst.clone(), BTreeSet::new());
                }
                Ty::Vector(l)
            }
            f if NEED_RANGE.contains(&f) || KEEP_LABELS.contains(&f) => {
                Ty::Vector(first_vector.unwrap_or_default())
            }
            f => {
                self.error(
                    ctx,
                    format!("function {f}() is not modelled by the promql checker (add it to Checker::call)"),
                );
                Ty::Vector(first_vector.unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests;
