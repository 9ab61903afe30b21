//! flow_calls.py's exact flow per thread, as every version's pyflow must show it.
use serde_json::Value;

/// `->name@depth` / `<-name@depth` per thread, threads in order of their first event.
pub fn flows(events: &[Value]) -> Vec<(u64, Vec<String>)> {
    let mut out: Vec<(u64, Vec<String>)> = Vec::new();
    for e in events {
        let tid = e["tid"].as_u64().unwrap();
        let line = format!(
            "{}{}@{}",
            if e["event"] == "call" { "->" } else { "<-" },
            e["function"].as_str().unwrap(),
            e["depth"]
        );
        match out.iter_mut().find(|(t, _)| *t == tid) {
            Some((_, v)) => v.push(line),
            None => out.push((tid, vec![line])),
        }
    }
    out
}

/// A call at `depth` and the calls it makes.
pub fn call(depth: u32, name: &str, inner: Vec<String>) -> Vec<String> {
    let mut v = vec![format!("->{name}@{depth}")];
    v.extend(inner);
    v.push(format!("<-{name}@{depth}"));
    v
}

/// flow_calls.py's top() at `d`, and as much of it as `levels` (None: all) shows.
pub fn top(d: u32, levels: Option<u32>) -> Vec<String> {
    let shown = |depth: u32| levels.is_none_or(|l| depth < d + l);
    let c = |depth: u32, name: &str, inner: Vec<String>| {
        if shown(depth) {
            call(depth, name, inner)
        } else {
            vec![]
        }
    };
    let mut rec = vec![];
    for k in (1..=4).rev() {
        rec = c(d + k, "rec", rec);
    }
    let mut inner = c(
        d + 1,
        "middle",
        [c(d + 2, "leaf", vec![]), c(d + 2, "leaf", vec![])].concat(),
    );
    for _ in 0..3 {
        inner.extend(c(d + 1, "gen", vec![])); // two yields and the final return
    }
    inner.extend(c(d + 1, "catcher", c(d + 2, "raiser", vec![])));
    inner.extend(rec);
    c(d, "top", inner)
}

pub fn slow_path(d: u32) -> Vec<String> {
    call(
        d,
        "slow_path",
        [
            call(d + 1, "leaf", vec![]),
            call(d + 1, "slow", vec![]),
            call(d + 1, "leaf", vec![]),
        ]
        .concat(),
    )
}
