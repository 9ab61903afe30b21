//! Output formats: human tables and JSON, one module per kind of report.
pub mod audit;
pub mod calls;
pub mod flow;
pub mod gc;
pub mod imports;
pub mod lines;
pub mod probes;

/// A duration in the unit that keeps it readable: `850ns`, `12.3us`, `4.56ms`, `1.20s`.
pub fn duration(ns: u64) -> String {
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}us", f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", f / 1e6)
    } else {
        format!("{:.2}s", f / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(850), "850ns");
        assert_eq!(duration(12_345), "12.3us");
        assert_eq!(duration(4_561_000), "4.56ms");
        assert_eq!(duration(1_200_000_000), "1.20s");
    }
}
