//! YAML text to a JSON value tree plus a map from config paths to source lines.
//!
//! ward reads YAML with `saphyr-parser` (an event parser, pure Rust, maintained) and builds
//! a `serde_json::Value` itself. Doing the tree ourselves buys two things the archived
//! `serde_yaml` never gave: every node's line number (so every validation error can name
//! `providers[1].jwt.audiences` *and* line 14), and a strict reading of the document:
//! duplicate keys, aliases, tags and non-string keys are errors, not surprises.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// Where each config path starts in the source (1-based line).
#[derive(Debug, Default, Clone)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

/// A YAML syntax problem, with the line it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// Parses one YAML document into a JSON value and its line index.
pub fn parse(text: &str) -> Result<(Value, LineIndex), YamlError> {
    let mut b = Builder {
        events: Parser::new_from_str(text),
        index: LineIndex::default(),
    };
    b.document()
}

struct Builder<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    index: LineIndex,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.events.next() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(YamlError {
                line: e.marker().line(),
                message: e.info().to_string(),
            }),
            None => Err(YamlError {
                line: 0,
                message: "unexpected end of document".into(),
            }),
        }
    }

    fn document(&mut self) -> Result<(Value, LineIndex), YamlError> {
        let mut root = Value::Null;
        let mut docs = 0;
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart(_) => {
                    docs += 1;
                    if docs > 1 {
                        return Err(YamlError {
                            line: span.start.line(),
                            message: "more than one YAML document; ward reads exactly one".into(),
                        });
                    }
                    let (ev, span) = self.next()?;
                    self.index.lines.insert(String::new(), span.start.line());
                    root = self.node(ev, span, "", 0)?;
                }
                Event::StreamEnd => break,
                _ => {
                    return Err(YamlError {
                        line: span.start.line(),
                        message: "unexpected YAML event".into(),
                    });
                }
            }
        }
        Ok((root, std::mem::take(&mut self.index)))
    }

    fn node(
        &mut self,
        ev: Event<'a>,
        span: Span,
        path: &str,
        depth: usize,
    ) -> Result<Value, YamlError> {
        let line = span.start.line();
        if depth > MAX_DEPTH {
            // Block sequences (`- - - …`) nest without the parser's own limit: without
            // this a 10 KB file would overflow the stack of a reloading server.
            return Err(YamlError {
                line,
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
        let refuse = |what: &str| {
            Err(YamlError {
                line,
                message: format!("{what} are not supported in ward's config"),
            })
        };
        match ev {
            Event::Alias(_) => refuse("YAML aliases"),
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _)
                if anchor != 0 =>
            {
                refuse("YAML anchors")
            }
            Event::Scalar(_, _, _, Some(_))
            | Event::SequenceStart(_, Some(_))
            | Event::MappingStart(_, Some(_)) => refuse("YAML tags"),
            Event::Scalar(text, style, _, None) => scalar(&text, style).map_err(|why| YamlError {
                line,
                message: format!("`{path}`: {why}"),
            }),
            Event::SequenceStart(..) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    let child = format!("{path}[{}]", items.len());
                    self.index.lines.insert(child.clone(), span.start.line());
                    items.push(self.node(ev, span, &child, depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            Event::MappingStart(..) => {
                let mut map = Map::new();
                loop {
                    let (ev, span) = self.next()?;
                    let key = match ev {
                        Event::MappingEnd => break,
                        Event::Scalar(k, _, 0, None) => k.into_owned(),
                        _ => {
                            return Err(YamlError {
                                line: span.start.line(),
                                message: "mapping keys must be plain strings".into(),
                            });
                        }
                    };
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    if map.contains_key(&key) {
                        return Err(YamlError {
                            line: span.start.line(),
                            message: format!("duplicate key `{child}`"),
                        });
                    }
                    self.index.lines.insert(child.clone(), span.start.line());
                    let (ev, span) = self.next()?;
                    let value = self.node(ev, span, &child, depth + 1)?;
                    map.insert(key, value);
                }
                Ok(Value::Object(map))
            }
            _ => Err(YamlError {
                line,
                message: "unexpected YAML event".into(),
            }),
        }
    }
}

/// How deep collections may nest; ward's own schema needs about a dozen levels
/// (conditions nest up to 32 `all`/`any`/`not`, two YAML levels each).
const MAX_DEPTH: usize = 100;

/// Resolves a scalar with the YAML 1.2 core schema: quoted scalars are always strings;
/// plain ones may be null, booleans, integers or floats. (`yes`/`on` stay strings: 1.2.)
///
/// Numbers keep their exact value or are refused: an integer is held as i64 or u64
/// (never rounded through a float, where `18446744073709551615` would equal
/// `18446744073709551614`), and a number no JSON value can hold exactly (an integer
/// beyond u64, a float that overflows) is an error rather than a string or a neighbour.
fn scalar(text: &str, style: ScalarStyle) -> Result<Value, String> {
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let unsigned = text.strip_prefix('+').unwrap_or(text);
        if let Ok(i) = unsigned.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = unsigned.parse::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        return Err(format!(
            "the integer {} is outside the range ward compares exactly \
             (-9223372036854775808 to 18446744073709551615); quote it to mean a string",
            clip(text)
        ));
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric && let Ok(f) = text.parse::<f64>() {
        return Number::from_f64(f).map(Value::Number).ok_or_else(|| {
            format!(
                "the number {} is too large to hold; quote it to mean a string",
                clip(text)
            )
        });
    }
    Ok(Value::String(text.to_owned()))
}

/// At most 40 characters of a scalar, for a message.
fn clip(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(40).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_keep_their_exact_value() {
        let (v, _) = parse(
            "a: 18446744073709551615\nb: 18446744073709551614\nc: -9223372036854775808\nd: +7\n",
        )
        .unwrap();
        assert_eq!(v["a"].as_u64(), Some(u64::MAX));
        assert_eq!(v["b"].as_u64(), Some(u64::MAX - 1));
        assert_ne!(v["a"], v["b"], "neighbours stay apart");
        assert_eq!(v["c"].as_i64(), Some(i64::MIN));
        assert_eq!(v["d"].as_i64(), Some(7));
        assert!(v["a"].is_u64() && !v["a"].is_f64(), "never a float");
    }

    #[test]
    fn numbers_that_cannot_be_held_exactly_are_errors() {
        for (text, why) in [
            ("18446744073709551616", "outside the range"),
            ("-9223372036854775809", "outside the range"),
            ("1e400", "too large"),
        ] {
            let e = parse(&format!("x:\n  y: {text}\n")).unwrap_err();
            assert_eq!(e.line, 2, "{text}");
            assert!(e.message.starts_with("`x.y`: the "), "{}", e.message);
            assert!(e.message.contains(why), "{}", e.message);
        }
        // Quoted, it is a string, as the message says.
        let (v, _) = parse("a: '18446744073709551616'\n").unwrap();
        assert_eq!(v["a"], "18446744073709551616");
        // Floats keep the value JSON claims get for the same text.
        let (v, _) = parse("a: 0.1\nb: 2.5e3\n").unwrap();
        assert_eq!(v["a"], serde_json::json!(0.1));
        assert_eq!(v["b"], serde_json::json!(2500.0));
    }

    #[test]
    fn builds_values_and_lines() {
        let (v, idx) = parse("a: 1\nb:\n  - x\n  - 'true'\n  - true\nc: {d: 1.5, e: ~}\n").unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"][1], "true");
        assert_eq!(v["b"][2], true);
        assert_eq!(v["c"]["d"], 1.5);
        assert!(v["c"]["e"].is_null());
        assert_eq!(idx.line_of("b[1]"), Some(4));
        assert_eq!(idx.line_of("c.e"), Some(6));
        assert_eq!(idx.line_of("c.e.nothing[3]"), Some(6));
    }

    #[test]
    fn yaml_1_2_keeps_yes_and_version_strings() {
        let (v, _) = parse("a: yes\nb: 1.10.2\nc: 0x10\n").unwrap();
        assert_eq!(v["a"], "yes");
        assert_eq!(v["b"], "1.10.2");
        assert_eq!(v["c"], "0x10");
    }

    #[test]
    fn rejects_duplicate_keys_aliases_and_tags() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("duplicate key `a`"), "{e:?}");
        assert!(parse("a: &x 1\nb: *x\n").is_err());
        assert!(parse("a: !!str 1\n").is_err());
        assert!(parse("? [a]\n: 1\n").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // On a tokio worker's stack (2 MiB) the file is refused long before overflowing.
        const STACK: usize = 2 * 1024 * 1024;
        let deep = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(|| parse(&format!("routes:\n  - {}x\n", "- ".repeat(200_000))))
            .expect("thread")
            .join()
            .expect("no overflow");
        let e = deep.unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (2, "nested deeper than 100 levels")
        );
        let (shallow, _) = parse(&format!("a: {}1{}\n", "[".repeat(90), "]".repeat(90))).unwrap();
        assert!(shallow["a"].is_array());
    }

    #[test]
    fn syntax_error_names_its_line() {
        let e = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
    }
}
