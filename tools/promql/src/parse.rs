//! The PromQL parser: operators by precedence (`^` right-associative), vector
//! matching, aggregations with `by`/`without` before or after their arguments,
//! function calls, selectors with matchers, ranges, subqueries and offsets.

use crate::lex::{Tok, lex};

/// A label matcher: `label op "value"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    pub value: String,
}

/// The vector matching of a binary operator: `on (...)` or `ignoring (...)`, and
/// `group_left`/`group_right`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    /// `on` (true) or `ignoring` (false).
    pub on: bool,
    pub labels: Vec<String>,
    /// `group_left` (true) or `group_right` (false), with its extra labels.
    pub group: Option<(bool, Vec<String>)>,
}

/// A parsed query: what the label checker needs of it (numbers' values, ranges' and
/// offsets' durations and `bool` are checked, then dropped).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number literal.
    Num,
    Str(String),
    Sel {
        name: String,
        matchers: Vec<Matcher>,
    },
    /// A range selector or a subquery around its inner expression.
    Range(Box<Expr>),
    Call {
        func: String,
        args: Vec<Expr>,
    },
    Agg {
        op: String,
        /// `without` (true) or `by` (false), with its labels.
        grouping: Option<(bool, Vec<String>)>,
        args: Vec<Expr>,
    },
    Bin {
        op: String,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        matching: Option<Matching>,
    },
    Neg(Box<Expr>),
}

/// The aggregation operators (which take `by`/`without`).
pub const AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
];

fn precedence(t: &Tok) -> Option<(u8, String)> {
    let op = match t {
        Tok::Op(o) if o != "=" && o != "=~" && o != "!~" => o.clone(),
        Tok::Ident(w) if ["and", "or", "unless", "atan2"].contains(&w.as_str()) => w.clone(),
        _ => return None,
    };
    let p = match op.as_str() {
        "or" => 1,
        "and" | "unless" => 2,
        "==" | "!=" | ">" | "<" | ">=" | "<=" => 3,
        "+" | "-" => 4,
        "*" | "/" | "%" | "atan2" => 5,
        "^" => 6,
        _ => return None,
    };
    Some((p, op))
}

/// A duration (`5m`, `1h30m`) or a subquery range (`15m:1m`, `6h:`).
pub fn is_range(text: &str) -> bool {
    let duration = |d: &str| {
        let mut rest = d;
        let mut any = false;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return false;
            }
            rest = &rest[digits..];
            let unit = ["ms", "s", "m", "h", "d", "w", "y"]
                .into_iter()
                .find(|u| rest.starts_with(u));
            let Some(u) = unit else {
                return false;
            };
            rest = &rest[u.len()..];
            any = true;
        }
        any
    };
    match text.trim().split_once(':') {
        Some((r, step)) => duration(r.trim()) && (step.trim().is_empty() || duration(step.trim())),
        None => duration(text.trim()),
    }
}

/// A recursive-descent parser over the tokens of one query.
struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

/// Parses one query; the error says what was found where something else was expected.
pub fn parse(src: &str) -> Result<Expr, String> {
    Parser::parse(src)
}

impl Parser {
    fn parse(src: &str) -> Result<Expr, String> {
        let mut p = Parser {
            toks: lex(src)?,
            pos: 0,
        };
        let e = p.expr(0)?;
        match p.peek() {
            None => Ok(e),
            Some(t) => Err(format!("unexpected {t:?} after the expression")),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Result<Tok, String> {
        let t = self.toks.get(self.pos).cloned().ok_or("unexpected end")?;
        self.pos += 1;
        Ok(t)
    }

    fn expect(&mut self, want: &Tok) -> Result<(), String> {
        match self.next()? {
            t if &t == want => Ok(()),
            t => Err(format!("expected {want:?}, found {t:?}")),
        }
    }

    fn word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(x)) if x == w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn labels(&mut self) -> Result<Vec<String>, String> {
        self.expect(&Tok::LParen)?;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                Tok::RParen => return Ok(out),
                Tok::Ident(l) => out.push(l),
                Tok::Comma => {}
                t => return Err(format!("expected a label name, found {t:?}")),
            }
        }
    }

    fn expr(&mut self, min: u8) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        while let Some((p, op)) = self.peek().and_then(precedence) {
            if p < min {
                break;
            }
            self.pos += 1;
            self.word("bool");
            let mut matching = None;
            for (kw, on) in [("on", true), ("ignoring", false)] {
                if self.word(kw) {
                    matching = Some(Matching {
                        on,
                        labels: self.labels()?,
                        group: None,
                    });
                }
            }
            for (kw, left) in [("group_left", true), ("group_right", false)] {
                if self.word(kw) {
                    let extra = if matches!(self.peek(), Some(Tok::LParen)) {
                        self.labels()?
                    } else {
                        Vec::new()
                    };
                    matching
                        .get_or_insert(Matching {
                            on: false,
                            labels: Vec::new(),
                            group: None,
                        })
                        .group = Some((left, extra));
                }
            }
            // `^` is right-associative, the others left.
            let rhs = self.expr(if op == "^" { p } else { p + 1 })?;
            lhs = Expr::Bin {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                matching,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Tok::Op(o)) if o == "-" || o == "+" => {
                let neg = o == "-";
                self.pos += 1;
                let e = self.unary()?;
                Ok(if neg { Expr::Neg(Box::new(e)) } else { e })
            }
            _ => {
                let e = self.primary()?;
                self.postfix(e)
            }
        }
    }

    fn postfix(&mut self, mut e: Expr) -> Result<Expr, String> {
        loop {
            match self.peek() {
                Some(Tok::Range(r)) => {
                    if !is_range(r) {
                        return Err(format!("[{r}] is not a range or subquery"));
                    }
                    self.pos += 1;
                    e = Expr::Range(Box::new(e));
                }
                Some(Tok::Ident(w)) if w == "offset" => {
                    self.pos += 1;
                    if matches!(self.peek(), Some(Tok::Op(o)) if o == "-") {
                        self.pos += 1;
                    }
                    match self.next()? {
                        Tok::Num(d) if is_range(&d) => {}
                        t => return Err(format!("offset needs a duration, found {t:?}")),
                    }
                }
                _ => return Ok(e),
            }
        }
    }

    fn args(&mut self) -> Result<Vec<Expr>, String> {
        self.expect(&Tok::LParen)?;
        let mut args = Vec::new();
        if matches!(self.peek(), Some(Tok::RParen)) {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expr(0)?);
            match self.next()? {
                Tok::Comma => {}
                Tok::RParen => return Ok(args),
                t => return Err(format!("expected , or ), found {t:?}")),
            }
        }
    }

    fn matchers(&mut self) -> Result<Vec<Matcher>, String> {
        self.expect(&Tok::LBrace)?;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                Tok::RBrace => return Ok(out),
                Tok::Comma => {}
                Tok::Ident(label) => {
                    let op = match self.next()? {
                        Tok::Op(o) if ["=", "!=", "=~", "!~"].contains(&o.as_str()) => o,
                        t => return Err(format!("expected a matcher operator, found {t:?}")),
                    };
                    let value = match self.next()? {
                        Tok::Str(v) => v,
                        t => return Err(format!("expected a quoted value, found {t:?}")),
                    };
                    out.push(Matcher { label, op, value });
                }
                t => return Err(format!("expected a label matcher, found {t:?}")),
            }
        }
    }

    fn grouping(&mut self) -> Result<Option<(bool, Vec<String>)>, String> {
        for (kw, without) in [("by", false), ("without", true)] {
            if self.word(kw) {
                return Ok(Some((without, self.labels()?)));
            }
        }
        Ok(None)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next()? {
            Tok::Num(n) => {
                n.parse::<f64>()
                    .map_err(|_| format!("{n} is not a number"))?;
                Ok(Expr::Num)
            }
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::LParen => {
                let e = self.expr(0)?;
                self.expect(&Tok::RParen)?;
                Ok(e)
            }
            Tok::LBrace => Err("a selector without a metric name".into()),
            Tok::Ident(name) if AGGREGATIONS.contains(&name.as_str()) => {
                let mut grouping = self.grouping()?;
                let args = self.args()?;
                if grouping.is_none() {
                    grouping = self.grouping()?;
                }
                Ok(Expr::Agg {
                    op: name,
                    grouping,
                    args,
                })
            }
            Tok::Ident(name) if matches!(self.peek(), Some(Tok::LParen)) => Ok(Expr::Call {
                func: name,
                args: self.args()?,
            }),
            Tok::Ident(name) => {
                let matchers = if matches!(self.peek(), Some(Tok::LBrace)) {
                    self.matchers()?
                } else {
                    Vec::new()
                };
                Ok(Expr::Sel { name, matchers })
            }
            t => Err(format!("unexpected {t:?}")),
        }
    }
}

#[cfg(test)]
mod tests;
