//! pygc as JSON: one `{"type":"pause"}` object per streamed pause, one `{"type":"report"}` per
//! report.

use serde_json::{Value, json};

use crate::commands::gc::text::usec_rows;
use crate::commands::gc::{GcPause, GcReport, GenerationStats};
use crate::output::time_of_day;

fn generation(g: &GenerationStats) -> Value {
    let [p50, p90, p99] = g.percentiles();
    let histogram: Vec<Value> = usec_rows(&g.histogram)
        .into_iter()
        .map(|(lo, hi, count)| json!({"low_us": lo, "high_us": hi, "count": count}))
        .collect();
    json!({
        "generation": g.generation,
        "count": g.count,
        "total_ns": g.total_ns,
        "p50_ns": p50,
        "p90_ns": p90,
        "p99_ns": p99,
        "max_ns": g.max_ns,
        "collected": g.collected,
        "histogram_us": histogram,
    })
}

pub fn report(r: &GcReport) -> Value {
    json!({
        "type": "report",
        "generations": r.generations.iter().map(generation).collect::<Vec<_>>(),
        "collections": r.collections(),
        "total_pause_ns": r.total_pause_ns(),
        "elapsed_ns": r.elapsed.as_nanos() as u64,
        "gc_share": r.gc_share(),
        "other_generation": r.other_generation,
        "lost": crate::output::json::losses(&r.losses),
    })
}

pub fn pause(p: &GcPause) -> Value {
    json!({
        "type": "pause",
        "time": time_of_day(p.unix_ns),
        "unix_ns": p.unix_ns,
        "pid": p.pid,
        "tid": p.tid,
        "generation": p.generation,
        "duration_ns": p.duration_ns,
        "collected": p.collected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::gc::testing::gc_report;

    #[test]
    fn json_report_and_pause() {
        let v = report(&gc_report());
        assert_eq!(v["type"], "report");
        assert_eq!(v["generations"][2]["count"], 3);
        assert_eq!(v["generations"][2]["max_ns"], 35_000_000);
        assert_eq!(v["generations"][0]["count"], 0);
        assert_eq!(v["total_pause_ns"], 66_500_000);
        let p = crate::commands::gc::testing::gc_pause();
        assert_eq!(pause(&p)["time"], "01:01:01.250000");
    }
}
