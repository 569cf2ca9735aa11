//! Every construct the shipped rules and dashboard use, and malformed queries.

use super::*;

fn sel(name: &str, matchers: &[(&str, &str, &str)]) -> Expr {
    Expr::Sel {
        name: name.into(),
        matchers: matchers
            .iter()
            .map(|(l, o, v)| Matcher {
                label: (*l).into(),
                op: (*o).into(),
                value: (*v).into(),
            })
            .collect(),
    }
}

fn call(func: &str, args: Vec<Expr>) -> Expr {
    Expr::Call {
        func: func.into(),
        args,
    }
}

fn by(op: &str, labels: &[&str], args: Vec<Expr>) -> Expr {
    Expr::Agg {
        op: op.into(),
        grouping: Some((false, labels.iter().map(|l| l.to_string()).collect())),
        args,
    }
}

fn bin(op: &str, lhs: Expr, rhs: Expr) -> Expr {
    Expr::Bin {
        op: op.into(),
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
        matching: None,
    }
}

fn ok(q: &str) -> Expr {
    parse(q).unwrap_or_else(|e| panic!("{q}: {e}"))
}

#[test]
fn selectors_with_every_matcher() {
    assert_eq!(
        ok(r#"ward_x{job="ward", result!~"active|inactive", le="0.005", a!="b", c=~"d"}"#),
        sel(
            "ward_x",
            &[
                ("job", "=", "ward"),
                ("result", "!~", "active|inactive"),
                ("le", "=", "0.005"),
                ("a", "!=", "b"),
                ("c", "=~", "d"),
            ]
        )
    );
    assert_eq!(ok("up"), sel("up", &[]));
    assert_eq!(
        ok("ward:check_requests:rate5m{}"),
        sel("ward:check_requests:rate5m", &[])
    );
}

#[test]
fn rate_over_a_range_in_a_sum_by() {
    assert_eq!(
        ok(r#"sum by (namespace, job) (rate(ward_x{job="ward"}[5m]))"#),
        by(
            "sum",
            &["namespace", "job"],
            vec![call(
                "rate",
                vec![Expr::Range(Box::new(sel(
                    "ward_x",
                    &[("job", "=", "ward")]
                )))]
            )]
        )
    );
}

#[test]
fn grouping_after_the_arguments_and_without() {
    assert_eq!(ok("sum (x) by (a)"), by("sum", &["a"], vec![sel("x", &[])]));
    assert_eq!(
        ok("max without (pod) (x)"),
        Expr::Agg {
            op: "max".into(),
            grouping: Some((true, vec!["pod".into()])),
            args: vec![sel("x", &[])],
        }
    );
    assert_eq!(
        ok("count by (version) (x)"),
        by("count", &["version"], vec![sel("x", &[])])
    );
    assert!(matches!(ok("topk(5, x)"), Expr::Agg { ref args, .. } if args.len() == 2));
}

#[test]
fn precedence_and_associativity() {
    // 1 - a / b: division first.
    assert_eq!(
        ok("1 - a / b"),
        bin("-", Expr::Num, bin("/", sel("a", &[]), sel("b", &[])))
    );
    // a - b - c is (a - b) - c; 2 ^ 3 ^ 2 is 2 ^ (3 ^ 2).
    assert_eq!(
        ok("a - b - c"),
        bin("-", bin("-", sel("a", &[]), sel("b", &[])), sel("c", &[]))
    );
    assert_eq!(
        ok("2 ^ 3 ^ 2"),
        bin("^", Expr::Num, bin("^", Expr::Num, Expr::Num))
    );
    // Comparison binds tighter than and, and tighter than or.
    assert_eq!(
        ok("a > 1 and b > 2 or c"),
        bin(
            "or",
            bin(
                "and",
                bin(">", sel("a", &[]), Expr::Num),
                bin(">", sel("b", &[]), Expr::Num)
            ),
            sel("c", &[])
        )
    );
    assert_eq!(ok("(14.4 * 0.01)"), bin("*", Expr::Num, Expr::Num));
    assert_eq!(ok("-x"), Expr::Neg(Box::new(sel("x", &[]))));
    assert_eq!(ok("+x"), sel("x", &[]));
    assert_eq!(
        ok("x unless y"),
        bin("unless", sel("x", &[]), sel("y", &[]))
    );
    assert_eq!(ok("x atan2 y"), bin("atan2", sel("x", &[]), sel("y", &[])));
}

#[test]
fn vector_matching() {
    let Expr::Bin { op, matching, .. } = ok("a > on (namespace, job, instance) b") else {
        panic!("a binary operator");
    };
    assert_eq!(op, ">");
    assert_eq!(
        matching,
        Some(Matching {
            on: true,
            labels: vec!["namespace".into(), "job".into(), "instance".into()],
            group: None,
        })
    );
    let Expr::Bin { matching, .. } = ok("a / ignoring (le) group_left (route) b") else {
        panic!("a binary operator");
    };
    assert_eq!(
        matching,
        Some(Matching {
            on: false,
            labels: vec!["le".into()],
            group: Some((true, vec!["route".into()])),
        })
    );
    let Expr::Bin { matching, .. } = ok("a * group_right b") else {
        panic!("a binary operator");
    };
    assert_eq!(
        matching,
        Some(Matching {
            on: false,
            labels: vec![],
            group: Some((false, vec![])),
        })
    );
    // `bool` is read and dropped.
    assert_eq!(ok("a == bool 1"), bin("==", sel("a", &[]), Expr::Num));
}

#[test]
fn offsets_subqueries_and_nested_calls() {
    // An offset is checked and dropped.
    assert_eq!(ok("2 * (x offset 30m)"), bin("*", Expr::Num, sel("x", &[])));
    ok("x offset -1h");
    ok("rate(x[5m] offset 1h)");
    // The config-reload alert: a subquery over a comparison inside timestamp().
    let q = r#"max_over_time((timestamp(increase(ward_y{result="failure"}[2m]) > 0))[6h:1m])
        > on (namespace, job, instance)
        (ward_z{job="ward"} + 180)"#;
    let Expr::Bin { lhs, .. } = ok(q) else {
        panic!("a comparison");
    };
    let Expr::Call { func, args } = *lhs else {
        panic!("max_over_time()");
    };
    assert_eq!(func, "max_over_time");
    assert!(matches!(&args[0], Expr::Range(_)));
    ok("x[1h30m]");
    ok("x[6h:]");
    ok("time() - ward_t{job=\"ward\"} > 1800");
    ok("absent(up{job=\"ward\"} == 1)");
    ok("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > 1");
    ok("label_replace(x, \"dst\", \"$1\", \"src\", \"(.*)\")");
    ok("vector(1)");
    ok("1e3 + 0.5 + .25");
}

#[test]
fn comments_and_newlines() {
    assert_eq!(
        ok("sum by (a) (\n  x # the numerator\n)\n/\nsum by (a) (y)"),
        bin(
            "/",
            by("sum", &["a"], vec![sel("x", &[])]),
            by("sum", &["a"], vec![sel("y", &[])])
        )
    );
}

#[test]
fn ranges() {
    for good in [
        "5m", "1h30m", "500ms", "1d", "2w", "1y", "15m:1m", "6h:", " 5m ",
    ] {
        assert!(is_range(good), "{good:?}");
    }
    for bad in ["", "5", "m", "5x", "5m:1", ":5m", "$__rate_interval", "5 m"] {
        assert!(!is_range(bad), "{bad:?}");
    }
}

/// Each malformed query, with the error it gets.
#[test]
fn malformed_queries_say_what_is_wrong() {
    let cases = [
        ("", "unexpected end"),
        ("sum(x", "unexpected end"),
        ("sum(x]", "unexpected character ']'"),
        ("x[5m", "unclosed ["),
        ("rate(x[5m] y)", "expected , or ), found Ident(\"y\")"),
        (
            "rate(x[$__rate_interval])",
            "[$__rate_interval] is not a range or subquery",
        ),
        ("x[5]", "[5] is not a range or subquery"),
        ("x offset y", "offset needs a duration, found Ident(\"y\")"),
        ("x offset 5", "offset needs a duration, found Num(\"5\")"),
        ("{job=\"ward\"}", "a selector without a metric name"),
        (
            "x{job=ward}",
            "expected a quoted value, found Ident(\"ward\")",
        ),
        (
            "x{job>\"ward\"}",
            "expected a matcher operator, found Op(\">\")",
        ),
        (
            "x{\"job\"=\"ward\"}",
            "expected a label matcher, found Str(\"job\")",
        ),
        ("x{job=\"ward\"", "unexpected end"),
        ("sum by (job (x)", "expected a label name, found LParen"),
        ("sum by job (x)", "expected LParen, found Ident(\"job\")"),
        ("x y", "unexpected Ident(\"y\") after the expression"),
        ("(x", "unexpected end"),
        ("x)", "unexpected RParen after the expression"),
        ("1.2.3", "1.2.3 is not a number"),
        ("x * ", "unexpected end"),
        ("x == ,", "unexpected Comma"),
        ("x ! y", "unexpected character '!'"),
        ("x{a=\"b}", "unterminated string"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(q, want)| parse(q) != Err(want.to_string()))
        .map(|(q, want)| format!("{q:?}: want {want:?}, got {:?}", parse(q)))
        .collect();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
