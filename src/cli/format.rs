//! Printing replies the way `redis-cli` prints them.
//!
//! Two modes, as in `redis-cli`: the TTY form (`(integer) 1`, quoted strings, numbered
//! nested aggregates) and the raw form used when output is not a terminal.

use monocoque_proto::resp::Value;

/// Formats `value` as `redis-cli` does on a terminal (`cliFormatReplyTTY`).
pub fn tty(value: &Value) -> String {
    let mut out = String::new();
    tty_into(&mut out, value.without_attributes(), "");
    out
}

/// Formats `value` as `redis-cli` does when stdout is not a terminal
/// (`cliFormatReplyRaw`), followed by a newline.
pub fn raw(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    raw_into(&mut out, value.without_attributes());
    out.push(b'\n');
    out
}

fn tty_into(out: &mut String, value: &Value, prefix: &str) {
    match value {
        Value::SimpleError(e) | Value::BlobError(e) => {
            out.push_str("(error) ");
            out.push_str(&String::from_utf8_lossy(e));
        }
        Value::SimpleString(s) => out.push_str(&String::from_utf8_lossy(s)),
        Value::Integer(i) => {
            out.push_str("(integer) ");
            out.push_str(&i.to_string());
        }
        Value::Double(d) => {
            out.push_str("(double) ");
            out.push_str(&format_double(*d));
        }
        Value::BigNumber(n) => {
            out.push_str("(big number) ");
            out.push_str(&String::from_utf8_lossy(n));
        }
        Value::BulkString(b) => repr(out, b),
        Value::Verbatim { text, .. } => out.push_str(&String::from_utf8_lossy(text)),
        Value::Null => out.push_str("(nil)"),
        Value::Boolean(b) => out.push_str(if *b { "(true)" } else { "(false)" }),
        Value::Array(items) | Value::Set(items) | Value::Push(items) if items.is_empty() => {
            out.push_str(match value {
                Value::Array(_) => "(empty array)",
                Value::Set(_) => "(empty set)",
                _ => "(empty push)",
            });
        }
        Value::Map(pairs) if pairs.is_empty() => out.push_str("(empty hash)"),
        Value::Array(items) | Value::Push(items) => list(out, items.iter(), items.len(), ')', prefix),
        Value::Set(items) => list(out, items.iter(), items.len(), '~', prefix),
        Value::Map(pairs) => {
            let (idx_len, child) = child_prefix(pairs.len(), prefix);
            for (i, (k, v)) in pairs.iter().enumerate() {
                index(out, if i == 0 { "" } else { prefix }, i + 1, idx_len, '#');
                tty_into(out, k.without_attributes(), &child);
                out.push_str(" => ");
                let v = v.without_attributes();
                if is_multiline(v) {
                    out.push('\n');
                    out.push_str(&child);
                }
                tty_into(out, v, &child);
                if i + 1 < pairs.len() {
                    out.push('\n');
                }
            }
        }
        Value::Attributed { value, .. } => tty_into(out, value, prefix),
    }
}

fn list<'a>(out: &mut String, items: impl Iterator<Item = &'a Value>, len: usize, sep: char, prefix: &str) {
    let (idx_len, child) = child_prefix(len, prefix);
    for (i, item) in items.enumerate() {
        index(out, if i == 0 { "" } else { prefix }, i + 1, idx_len, sep);
        tty_into(out, item.without_attributes(), &child);
        if i + 1 < len {
            out.push('\n');
        }
    }
}

fn child_prefix(len: usize, prefix: &str) -> (usize, String) {
    let idx_len = len.to_string().len();
    (idx_len, format!("{prefix}{}", " ".repeat(idx_len + 2)))
}

fn index(out: &mut String, prefix: &str, n: usize, width: usize, sep: char) {
    out.push_str(prefix);
    out.push_str(&format!("{n:>width$}{sep} "));
}

fn is_multiline(v: &Value) -> bool {
    match v {
        Value::Array(items) | Value::Set(items) | Value::Push(items) => !items.is_empty(),
        Value::Map(pairs) => !pairs.is_empty(),
        _ => false,
    }
}

/// `sdscatrepr`: a double-quoted string with C-style escapes.
fn repr(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &c in bytes {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(char::from(c)),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push('"');
}

fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        let mut buf = ryu::Buffer::new();
        let s = buf.format_finite(d);
        s.strip_suffix(".0").unwrap_or(s).to_string()
    }
}

fn raw_into(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => {}
        Value::SimpleError(s) | Value::BlobError(s) | Value::SimpleString(s) | Value::BulkString(s) => {
            out.extend_from_slice(s);
        }
        Value::Verbatim { text, .. } => out.extend_from_slice(text),
        Value::BigNumber(n) => out.extend_from_slice(n),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"(true)" } else { b"(false)" }),
        Value::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Double(d) => out.extend_from_slice(format_double(*d).as_bytes()),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                raw_into(out, item.without_attributes());
            }
        }
        Value::Map(pairs) => {
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                raw_into(out, k.without_attributes());
                out.push(b' ');
                raw_into(out, v.without_attributes());
            }
        }
        Value::Attributed { value, .. } => raw_into(out, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &'static str) -> Value {
        Value::from(x)
    }

    #[test]
    fn scalars_like_redis_cli() {
        assert_eq!(tty(&Value::Integer(5)), "(integer) 5");
        assert_eq!(tty(&Value::Null), "(nil)");
        assert_eq!(tty(&Value::SimpleString("OK".into())), "OK");
        assert_eq!(tty(&Value::SimpleError("ERR x".into())), "(error) ERR x");
        assert_eq!(tty(&s("a\"b\n\x01")), "\"a\\\"b\\n\\x01\"");
        assert_eq!(tty(&Value::Double(3.0)), "(double) 3");
        assert_eq!(tty(&Value::Boolean(true)), "(true)");
    }

    #[test]
    fn nested_aggregates_are_numbered_and_indented() {
        let v = Value::Array(vec![s("a"), Value::Array(vec![s("b"), s("c")])]);
        assert_eq!(tty(&v), "1) \"a\"\n2) 1) \"b\"\n   2) \"c\"");
        let m = Value::Map(vec![(s("k"), Value::Array(vec![Value::Integer(1)]))]);
        assert_eq!(tty(&m), "1# \"k\" => \n   1) (integer) 1");
        assert_eq!(tty(&Value::Array(vec![])), "(empty array)");
        let long = Value::Array((0..10).map(Value::Integer).collect());
        assert!(tty(&long).starts_with(" 1) (integer) 0\n 2)"));
    }

    #[test]
    fn raw_form() {
        let v = Value::Array(vec![s("a"), Value::Integer(2), Value::Null]);
        assert_eq!(raw(&v), b"a\n2\n\n");
    }
}
