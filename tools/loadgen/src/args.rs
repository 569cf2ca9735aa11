//! The benches' command-line values.

use std::time::Duration;

/// `30m`, `90s`, `1h` or a bare number of seconds; None for zero or anything else.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// The number following option `name`, or an error naming the option.
pub fn number(value: Option<String>, name: &str) -> Result<u64, String> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{name} takes a number"))
}

/// The comma-separated list following option `name` (`--workloads a,e`).
pub fn list(value: Option<String>, name: &str, example: &str) -> Result<Vec<String>, String> {
    Ok(value
        .ok_or_else(|| format!("{name} takes a list such as {example}"))?
        .split(',')
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_seconds() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [
            "",
            "0",
            "0m",
            "m",
            "10d",
            "1.5m",
            "-3s",
            "5 m",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numbers_name_their_option() {
        assert_eq!(number(Some("64".into()), "--concurrency"), Ok(64));
        assert_eq!(
            number(Some("x".into()), "--reps"),
            Err("--reps takes a number".into())
        );
        assert_eq!(number(None, "--rate"), Err("--rate takes a number".into()));
    }

    #[test]
    fn lists_split_on_commas() {
        assert_eq!(
            list(Some("a,e".into()), "--workloads", "a,e"),
            Ok(vec!["a".to_string(), "e".to_string()])
        );
        assert_eq!(
            list(None, "--workloads", "a,e"),
            Err("--workloads takes a list such as a,e".into())
        );
    }
}
