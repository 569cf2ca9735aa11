//! Unknown keys: every one reported (serde stops at the first of each mapping), each
//! with the nearest known key when it is a likely typo.

use serde_json::Value;

/// The message for an unknown key `key` where `expected` are the known ones.
pub(crate) fn message(key: &str, expected: &[&str]) -> String {
    let list = expected
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut msg = if expected.is_empty() {
        format!("unknown field `{key}`: nothing is expected here")
    } else {
        format!("unknown field `{key}`, expected one of {list}")
    };
    if let Some(near) = nearest(key, expected) {
        msg.push_str(&format!("; did you mean `{near}`?"));
    }
    msg
}

/// The known key a typo most likely meant: the one at the smallest edit distance
/// (insert, delete, substitute, swap two neighbours), if that distance is small for
/// the key's length (1 up to 4 characters, 2 up to 8, else 3) and unique.
pub(crate) fn nearest<'a>(key: &str, expected: &[&'a str]) -> Option<&'a str> {
    let limit = match key.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    let mut best: Option<(usize, &'a str)> = None;
    let mut tie = false;
    for &k in expected {
        let d = distance(&key.to_ascii_lowercase(), &k.to_ascii_lowercase());
        match best {
            Some((b, _)) if d > b => {}
            Some((b, _)) if d == b => tie = true,
            _ => {
                best = Some((d, k));
                tie = false;
            }
        }
    }
    match best {
        Some((d, k)) if d <= limit && !tie => Some(k),
        _ => None,
    }
}

/// Optimal string alignment distance (Damerau–Levenshtein without repeated edits of
/// one substring), over characters.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Reads serde's "unknown field `k`, expected one of `a`, `b`" (or "expected `a`", or
/// "there are no fields"): the key and the known keys.
pub(crate) fn parse_serde_message(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((key.to_owned(), expected))
}

/// Removes the key at `path` (serde_path_to_error's path to an unknown field) from
/// `value`; false when the path does not lead to a key of a mapping.
pub(crate) fn remove_at(value: &mut Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else {
        return false;
    };
    let mut at = value;
    for s in parents {
        at = match (s, at) {
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Map { key }, Value::Object(map)) => match map.get_mut(key.as_str()) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match at {
        Value::Object(map) => map.remove(key.as_str()).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_get_a_suggestion_and_far_ones_do_not() {
        let route = ["name", "match", "providers", "require", "mode", "mint"];
        assert_eq!(nearest("provider", &route), Some("providers"));
        assert_eq!(nearest("requires", &route), Some("require"));
        assert_eq!(
            nearest("reqiure", &route),
            Some("require"),
            "a swap is one edit"
        );
        assert_eq!(
            nearest("Match", &route),
            Some("match"),
            "case is not an edit"
        );
        assert_eq!(nearest("audiences", &route), None);
        assert_eq!(nearest("x", &route), None);
        // Equally near two keys: no guess.
        assert_eq!(nearest("mide", &["mode", "mine"]), None);
    }

    #[test]
    fn the_message_lists_the_known_keys_and_the_guess() {
        assert_eq!(
            message("method", &["path", "methods"]),
            "unknown field `method`, expected one of `path`, `methods`; did you mean `methods`?"
        );
        assert_eq!(
            message("zzz", &["path"]),
            "unknown field `zzz`, expected one of `path`"
        );
        assert_eq!(
            message("a", &[]),
            "unknown field `a`: nothing is expected here"
        );
    }

    #[test]
    fn serde_messages_are_read_back() {
        assert_eq!(
            parse_serde_message("unknown field `method`, expected one of `path`, `methods`"),
            Some(("method".into(), vec!["path".into(), "methods".into()]))
        );
        assert_eq!(
            parse_serde_message("unknown field `x`, expected `name`"),
            Some(("x".into(), vec!["name".into()]))
        );
        assert_eq!(
            parse_serde_message("unknown field `x`, there are no fields"),
            Some(("x".into(), vec![]))
        );
        assert_eq!(parse_serde_message("missing field `name`"), None);
    }
}
