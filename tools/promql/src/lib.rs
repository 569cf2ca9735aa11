//! A PromQL parser and label checker for ward's tests.
//!
//! [`parse`] reads the PromQL that ward's Grafana dashboard and PrometheusRule use (and
//! a little more): numbers, strings, selectors with matchers, ranges, subqueries and
//! offsets, function calls, aggregations with `by`/`without`, and binary operators by
//! precedence with `bool`, `on`/`ignoring` and `group_left`/`group_right`. A malformed
//! query is an error that says what was found where.
//!
//! [`Checker`] follows label sets through parsed queries against a scrape's metric
//! families ([`Family`]) and recording rules, and reports every metric, label, label
//! value or bucket that does not exist where it is used, one-to-one operators whose
//! sides cannot match, `histogram_quantile` without `le`, and range functions without
//! a range. It knows ward's naming: `ward_*` and `process_*` are exported families,
//! `name:with:colons` are recording rules, `up` carries the target labels.
//!
//! PromQL syntax in full is promtool's to check; this is the part a test can run
//! without it.

pub mod check;
pub mod lex;
pub mod parse;

pub use check::{Checker, Contract, Family, Labels, Ty};
pub use parse::{Expr, Matcher, Matching, parse};
