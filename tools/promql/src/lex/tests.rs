use super::*;

fn words(src: &str) -> Vec<Tok> {
    lex(src).expect("lexes")
}

#[test]
fn punctuation_names_and_operators() {
    assert_eq!(
        words("sum by (le) (x{a=~\"b|c\"}) >= 0.5"),
        vec![
            Tok::Ident("sum".into()),
            Tok::Ident("by".into()),
            Tok::LParen,
            Tok::Ident("le".into()),
            Tok::RParen,
            Tok::LParen,
            Tok::Ident("x".into()),
            Tok::LBrace,
            Tok::Ident("a".into()),
            Tok::Op("=~".into()),
            Tok::Str("b|c".into()),
            Tok::RBrace,
            Tok::RParen,
            Tok::Op(">=".into()),
            Tok::Num("0.5".into()),
        ]
    );
}

#[test]
fn recording_rule_names_keep_their_colons() {
    assert_eq!(
        words("ward:check_requests:rate5m"),
        vec![Tok::Ident("ward:check_requests:rate5m".into())]
    );
}

#[test]
fn numbers_durations_and_exponents() {
    assert_eq!(
        words("14.4 30m 1e-3 .5 0x1F"),
        vec![
            Tok::Num("14.4".into()),
            Tok::Num("30m".into()),
            Tok::Num("1e-3".into()),
            Tok::Num(".5".into()),
            Tok::Num("0x1F".into()),
        ]
    );
    // A minus after a duration is an operator, not an exponent's sign.
    assert_eq!(
        words("5m-1"),
        vec![
            Tok::Num("5m".into()),
            Tok::Op("-".into()),
            Tok::Num("1".into())
        ]
    );
}

#[test]
fn strings_in_three_quotes() {
    assert_eq!(
        words(r#""a\"b" 'c\'d' `e\f`"#),
        vec![
            Tok::Str("a\"b".into()),
            Tok::Str("c'd".into()),
            Tok::Str("e\\f".into()),
        ]
    );
}

#[test]
fn ranges_and_comments() {
    assert_eq!(
        words("rate(x[5m]) # per second\n[1h:5m]"),
        vec![
            Tok::Ident("rate".into()),
            Tok::LParen,
            Tok::Ident("x".into()),
            Tok::Range("5m".into()),
            Tok::RParen,
            Tok::Range("1h:5m".into()),
        ]
    );
}

#[test]
fn malformed_input_says_why() {
    assert_eq!(lex("x[5m"), Err("unclosed [".into()));
    assert_eq!(lex("x{a=\"b}"), Err("unterminated string".into()));
    assert_eq!(lex("x ; y"), Err("unexpected character ';'".into()));
    assert_eq!(lex("a & b"), Err("unexpected character '&'".into()));
}
