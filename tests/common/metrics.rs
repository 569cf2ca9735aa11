//! Readers for the Prometheus text of `/metrics`: [`metric`], [`samples`], [`families`].

use std::collections::{BTreeMap, BTreeSet};

/// The value of the sample `name{labels...}` in Prometheus text, where `labels` must
/// equal the sample's labels exactly (order does not matter). `None` if absent.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_sample)
        .find(|(n, ls, _)| {
            n == name
                && ls
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .eq(want.iter().map(|(k, v)| (*k, *v)))
        })
        .map(|(_, _, v)| v)
}

/// Every sample of `name` (any labels): labels and value.
pub fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_sample)
        .filter(|(n, _, _)| n == name)
        .map(|(_, ls, v)| (ls, v))
        .collect()
}

/// One metric family of a Prometheus text exposition.
#[derive(Debug, Default, Clone)]
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

/// Every family declared by a `# TYPE` line, with what its samples carry. A histogram's
/// `_bucket`, `_sum` and `_count` samples count for the histogram. Fails the test on a
/// sample line that does not parse.
pub fn families(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, ty) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            out.entry(name.to_string()).or_default().ty = ty.to_string();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (sample, labels, _) =
            parse_sample(line).unwrap_or_else(|| panic!("not a Prometheus sample: {line:?}"));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                sample
                    .strip_suffix(s)
                    .filter(|f| out.get(*f).is_some_and(|f| f.ty == "histogram"))
            })
            .unwrap_or(&sample)
            .to_string();
        let Some(f) = out.get_mut(&family) else {
            continue;
        };
        for (k, v) in labels {
            if k == "le" {
                f.le.insert(v);
            } else {
                f.labels.insert(k.clone());
                f.values.entry(k).or_default().insert(v);
            }
        }
    }
    out
}

fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        None => (head.to_string(), BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}')?;
            let mut labels = BTreeMap::new();
            let mut s = body;
            while !s.is_empty() {
                let (k, after) = s.split_once("=\"")?;
                let mut val = String::new();
                let mut chars = after.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                val.push(match n {
                                    'n' => '\n',
                                    other => other,
                                });
                            }
                        }
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        c => val.push(c),
                    }
                }
                let end = end?;
                labels.insert(k.trim_start_matches(',').to_string(), val);
                s = after[end + 1..].trim_start_matches(',');
            }
            (name.to_string(), labels)
        }
    };
    Some((name, labels, value))
}
