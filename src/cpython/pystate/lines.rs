//! A frame's current line from its code object's line table, in each format CPython has used
//! since 3.8 (checked against `co_lines()` on every version).
use crate::versions::LineTable;

/// The line of the instruction at byte offset `addr` into the bytecode; None where the table
/// gives that instruction no line.
pub fn line_at(format: LineTable, firstlineno: i32, table: &[u8], addr: i64) -> Option<i32> {
    if addr < 0 {
        return Some(firstlineno);
    }
    match format {
        LineTable::Lnotab => Some(lnotab(firstlineno, table, addr)),
        LineTable::Pep626 => pep626(firstlineno, table, addr),
        LineTable::Locations => locations(firstlineno, table, addr / 2),
    }
}

/// 3.8, 3.9: pairs (bytecode bytes, signed line delta).
fn lnotab(firstlineno: i32, table: &[u8], addr: i64) -> i32 {
    let (mut line, mut a) = (firstlineno, 0i64);
    for pair in table.chunks_exact(2) {
        a += i64::from(pair[0]);
        if a > addr {
            break;
        }
        line += i32::from(pair[1] as i8);
    }
    line
}

/// 3.10: pairs (bytecode bytes covered, signed line delta; -128: no line).
fn pep626(firstlineno: i32, table: &[u8], addr: i64) -> Option<i32> {
    let (mut line, mut end) = (firstlineno, 0i64);
    for pair in table.chunks_exact(2) {
        let start = end;
        end += i64::from(pair[0]);
        let delta = pair[1] as i8;
        let current = if delta == -128 {
            None
        } else {
            line += i32::from(delta);
            Some(line)
        };
        if start <= addr && addr < end {
            return current;
        }
    }
    None
}

/// 3.11+: PEP 657 location entries, each covering up to 8 code units; `unit` in code units.
fn locations(firstlineno: i32, table: &[u8], unit: i64) -> Option<i32> {
    let mut bytes = table.iter().copied();
    let (mut line, mut at) = (firstlineno, 0i64);
    let varint = |bytes: &mut dyn Iterator<Item = u8>| -> Option<i64> {
        let mut b = bytes.next()?;
        let mut v = i64::from(b & 63);
        let mut shift = 0;
        while b & 64 != 0 {
            b = bytes.next()?;
            shift += 6;
            v |= i64::from(b & 63) << shift;
        }
        Some(v)
    };
    let svarint = |bytes: &mut dyn Iterator<Item = u8>| -> Option<i64> {
        let u = varint(bytes)?;
        Some(if u & 1 != 0 { -(u >> 1) } else { u >> 1 })
    };
    while let Some(first) = bytes.next() {
        if first & 0x80 == 0 {
            return None;
        }
        let code = (first >> 3) & 15;
        let len = i64::from(first & 7) + 1;
        let current = match code {
            15 => None,
            14 => {
                line += svarint(&mut bytes)? as i32;
                for _ in 0..3 {
                    varint(&mut bytes)?;
                }
                Some(line)
            }
            13 => {
                line += svarint(&mut bytes)? as i32;
                Some(line)
            }
            10..=12 => {
                line += i32::from(code) - 10;
                bytes.next()?;
                bytes.next()?;
                Some(line)
            }
            _ => {
                bytes.next()?;
                Some(line)
            }
        };
        if at <= unit && unit < at + len {
            return current;
        }
        at += len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lnotab_adds_deltas_up_to_the_instruction() {
        // +0 bytes: line +1 (at 0); +6 bytes: line +2; +4 bytes: line -1 (signed).
        let t = [0, 1, 6, 2, 4, 0xff];
        assert_eq!(line_at(LineTable::Lnotab, 10, &t, 0), Some(11));
        assert_eq!(line_at(LineTable::Lnotab, 10, &t, 5), Some(11));
        assert_eq!(line_at(LineTable::Lnotab, 10, &t, 6), Some(13));
        assert_eq!(line_at(LineTable::Lnotab, 10, &t, 10), Some(12));
        assert_eq!(line_at(LineTable::Lnotab, 10, &t, -1), Some(10));
    }

    #[test]
    fn pep626_ranges_may_have_no_line() {
        let t = [4, 1, 2, 0x80, 6, 2];
        assert_eq!(line_at(LineTable::Pep626, 5, &t, 2), Some(6));
        assert_eq!(line_at(LineTable::Pep626, 5, &t, 4), None);
        assert_eq!(line_at(LineTable::Pep626, 5, &t, 7), Some(8));
        assert_eq!(line_at(LineTable::Pep626, 5, &t, 20), None);
    }

    #[test]
    fn location_entries_cover_code_units() {
        // 1 unit, no-column form (13) line +1; 2 units one-line form +1 (code 11), two column
        // bytes; 3 units short form (code 0), one column byte; 1 unit long form (14) line -2.
        let t = [
            0x80 | 13 << 3,
            2, // svarint +1
            0x80 | 11 << 3 | 1,
            0,
            4,
            0x80 | 2,
            7,
            0x80 | 14 << 3,
            5, // svarint -2
            0,
            1,
            1,
            0x80 | 15 << 3, // no location
        ];
        let at = |u: i64| line_at(LineTable::Locations, 100, &t, u * 2);
        assert_eq!(at(0), Some(101));
        assert_eq!((at(1), at(2)), (Some(102), Some(102)));
        assert_eq!((at(3), at(5)), (Some(102), Some(102)));
        assert_eq!(at(6), Some(100));
        assert_eq!(at(7), None);
        assert_eq!(at(9), None);
    }
}
