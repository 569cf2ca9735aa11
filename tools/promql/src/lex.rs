//! The PromQL lexer.

/// A token of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// A number or a duration (`0.005`, `14.4`, `30m`).
    Num(String),
    Str(String),
    /// The text between `[` and `]`: a range or a subquery.
    Range(String),
    Op(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
}

/// The tokens of `src`; `#` comments and whitespace are dropped.
pub fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '{' => {
                out.push(Tok::LBrace);
                i += 1;
            }
            '}' => {
                out.push(Tok::RBrace);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or("unclosed [")?;
                out.push(Tok::Range(chars[i + 1..i + end].iter().collect()));
                i += end + 1;
            }
            '"' | '\'' | '`' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&d) = chars.get(i) else {
                        return Err("unterminated string".into());
                    };
                    i += 1;
                    if d == c {
                        break;
                    }
                    if d == '\\' && c != '`' {
                        if let Some(&e) = chars.get(i) {
                            s.push(e);
                            i += 1;
                        }
                    } else {
                        s.push(d);
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                while i < chars.len() {
                    let d = chars[i];
                    let exp_sign = (d == '-' || d == '+')
                        && matches!(chars[i - 1], 'e' | 'E')
                        && chars[start..i]
                            .iter()
                            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E'));
                    if d.is_ascii_alphanumeric() || d == '.' || exp_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = if ["==", "!=", ">=", "<=", "=~", "!~"].contains(&two.as_str()) {
                    two
                } else if "+-*/%^><=".contains(c) {
                    c.to_string()
                } else {
                    return Err(format!("unexpected character {c:?}"));
                };
                i += op.len();
                out.push(Tok::Op(op));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
