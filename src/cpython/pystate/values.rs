//! A local variable's value, described briefly: simple types by value (None, bool, int, float,
//! str, bytes, the start of long texts), containers by their size, anything else by its type.
use std::fmt;

use super::Interpreter;
use crate::error::Result;

/// Characters or bytes of a str or bytes value shown at most.
const SHOWN: u64 = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i128),
    /// An int too wide for 128 bits: its digit count (30-bit digits).
    BigInt {
        digits: u64,
    },
    Float(f64),
    /// The text shown, and the full length in characters.
    Str {
        text: String,
        len: u64,
    },
    Bytes {
        data: Vec<u8>,
        len: u64,
    },
    /// list, tuple, dict, set, frozenset: the type and the number of items.
    Sized {
        type_name: String,
        len: u64,
    },
    /// Any other object: its type.
    Other(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt { digits } => write!(f, "<int of {} bits>", digits * 30),
            Value::Float(x) => {
                if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 {
                    write!(f, "{x:.1}")
                } else {
                    write!(f, "{x}")
                }
            }
            Value::Str { text, len } => {
                write!(f, "{text:?}")?;
                if *len > text.chars().count() as u64 {
                    write!(f, "... ({len} chars)")?;
                }
                Ok(())
            }
            Value::Bytes { data, len } => {
                f.write_str("b'")?;
                for &b in data {
                    match b {
                        b'\'' | b'\\' => write!(f, "\\{}", b as char)?,
                        0x20..=0x7e => write!(f, "{}", b as char)?,
                        _ => write!(f, "\\x{b:02x}")?,
                    }
                }
                f.write_str("'")?;
                if *len > data.len() as u64 {
                    write!(f, "... ({len} bytes)")?;
                }
                Ok(())
            }
            Value::Sized { type_name, len } => write!(f, "<{type_name} of {len} items>"),
            Value::Other(t) => write!(f, "<{t}>"),
        }
    }
}

/// Reads the object at `obj` and describes it.
pub fn describe(interp: &mut Interpreter, obj: u64) -> Result<Value> {
    let ty = interp.type_name(obj)?;
    Ok(match &*ty {
        "NoneType" => Value::None,
        "bool" => Value::Bool(int(interp, obj)? != Some(0)),
        "int" => match int(interp, obj)? {
            Some(i) => Value::Int(i),
            None => Value::BigInt {
                digits: digits(interp, obj)?.0,
            },
        },
        "float" => Value::Float(f64::from_bits(interp.u64(obj + 16, "float value")?)),
        "str" => match interp.str_text(obj, SHOWN)? {
            Some((text, len)) => Value::Str { text, len },
            None => Value::Other("str".into()),
        },
        "bytes" => {
            let (data, len) = interp.bytes_object(obj, SHOWN)?;
            Value::Bytes { data, len }
        }
        "list" | "tuple" | "set" | "frozenset" | "dict" => {
            // ob_size of a list or tuple; `used` of a set; `ma_used` of a dict.
            let at = if matches!(&*ty, "set" | "frozenset") {
                24
            } else {
                16
            };
            Value::Sized {
                type_name: ty.to_string(),
                len: interp.u64(obj + at, "container length")?,
            }
        }
        _ => Value::Other(ty.to_string()),
    })
}

/// (digit count, negative) of an int.
fn digits(interp: &Interpreter, obj: u64) -> Result<(u64, bool)> {
    let raw = interp.u64(obj + 16, "int size")?;
    Ok(if interp.layout.objects.long_tagged != 0 {
        // lv_tag: digits << 3 | sign (0 positive, 1 zero, 2 negative).
        (raw >> 3, raw & 3 == 2)
    } else {
        let size = raw as i64;
        (size.unsigned_abs(), size < 0)
    })
}

/// An int's value, when it fits in 120 bits (four 30-bit digits).
pub(super) fn int(interp: &Interpreter, obj: u64) -> Result<Option<i128>> {
    let (n, negative) = digits(interp, obj)?;
    if n > 4 {
        return Ok(None);
    }
    let at = obj + u64::from(interp.layout.objects.long_digits);
    let mut v: i128 = 0;
    for i in (0..n).rev() {
        v = (v << 30) | i128::from(interp.u32(at + 4 * i, "int digit")? & 0x3fff_ffff);
    }
    Ok(Some(if negative { -v } else { v }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_python_writes_them() {
        let s = |v: Value| v.to_string();
        assert_eq!(s(Value::None), "None");
        assert_eq!(s(Value::Bool(true)), "True");
        assert_eq!(s(Value::Int(-7)), "-7");
        assert_eq!(s(Value::Float(2.5)), "2.5");
        assert_eq!(s(Value::Float(3.0)), "3.0");
        assert_eq!(
            s(Value::Str {
                text: "héllo".into(),
                len: 5
            }),
            "\"héllo\""
        );
        assert_eq!(
            s(Value::Str {
                text: "ab".into(),
                len: 90
            }),
            "\"ab\"... (90 chars)"
        );
        assert_eq!(
            s(Value::Bytes {
                data: b"a'\x00".to_vec(),
                len: 3
            }),
            "b'a\\'\\x00'"
        );
        assert_eq!(
            s(Value::Sized {
                type_name: "list".into(),
                len: 3
            }),
            "<list of 3 items>"
        );
        assert_eq!(s(Value::Other("Foo".into())), "<Foo>");
    }
}
