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
    pub line: usize,
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
            Event::Scalar(text, style, _, None) => Ok(scalar(&text, style)),
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
fn scalar(text: &str, style: ScalarStyle) -> Value {
    if style != ScalarStyle::Plain {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
