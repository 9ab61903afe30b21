//! The layers of src/ (ARCHITECTURE.md draws them), kept by reading the source: every `crate::`
//! path in a module may name only modules of lower layers, never a sibling of its own layer nor
//! one above; a command uses another only where `COMMAND_USES` says so; no circle among the
//! modules one level down either (`kernel::overhead`, `commands::count`, ...); and at most
//! `MAX_MODULES` top-level modules, each placed in a layer. No BPF, no build: text only.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may use the modules of the layers below its own.
const LAYERS: &[(&str, &[&str])] = &[
    ("text escaping and stop signals", &["escape", "signals"]),
    (
        "the BPF ABI: skeletons, types and limits of bpf/pyprobe.h",
        &["abi"],
    ),
    ("typed errors", &["error"]),
    (
        "what a trace is made of: functions, calls, filters, globs, histograms, losses",
        &["trace"],
    ),
    ("CPython's facts per version", &["versions"]),
    (
        "the target process, its files and memory, privileges",
        &["target"],
    ),
    (
        "the live interpreter (state, stacks, trampoline) and the kernel side (loading, links, \
         perf events, overhead)",
        &["cpython", "kernel"],
    ),
    (
        "function sources: probes, eval frame, breakpoints, watchpoints",
        &["source"],
    ),
    (
        "output machinery: formats, destinations, the Output trait",
        &["output"],
    ),
    (
        "the session: lifecycle, tracee, children, run-as",
        &["session"],
    ),
    ("sampling profiles and their encoders", &["sample"]),
    ("the commands", &["commands"]),
    ("the command line", &["cli"]),
];

const MAX_MODULES: usize = 16;

/// Commands that use another command: the agent counts calls per process with count's tracer.
/// Every command may use `commands::tools`, the list of what each needs.
const COMMAND_USES: &[(&str, &str)] = &[("agent", "count")];

/// A module one level down (`kernel::overhead`) or a top-level one's own files (`kernel`).
type Node = String;

/// One `crate::` reference: the file, the path as written, the module it lands in.
#[derive(Debug, Clone)]
struct Reference {
    file: String,
    path: String,
    from: Node,
    to: Node,
}

fn top(node: &str) -> &str {
    node.split("::").next().unwrap()
}

/// The node a file belongs to: src/a.rs and src/a/mod.rs are `a`; src/a/b.rs, src/a/b/mod.rs
/// and everything under src/a/b/ are `a::b`.
fn node_of(rel: &str) -> Option<Node> {
    let rel = rel.strip_suffix(".rs")?;
    let mut parts: Vec<&str> = rel.split('/').collect();
    if parts.last() == Some(&"mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [] | ["lib"] | ["main"] => None,
        [a] => Some(a.to_string()),
        [a, b, ..] => Some(format!("{a}::{b}")),
    }
}

/// The code of a Rust file without its comments, string and char literals (each replaced by a
/// space), so that only real paths are read.
fn at(c: &[char], i: usize) -> char {
    c.get(i).copied().unwrap_or('\0')
}

fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        if at(&c, i) == '/' && at(&c, i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(&c, i) == '/' && at(&c, i + 1) == '*' {
            let mut depth = 0;
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '/' && at(&c, i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(&c, i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if at(&c, i) == 'r'
            && (at(&c, i + 1) == '"'
                || (at(&c, i + 1) == '#' && (at(&c, i + 2) == '"' || at(&c, i + 2) == '#')))
            && !c
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            let mut hashes = 0;
            i += 1;
            while at(&c, i) == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1; // the opening quote
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '"' && (1..=hashes).all(|k| at(&c, i + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push(' ');
        } else if at(&c, i) == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if at(&c, i) == '\'' && (at(&c, i + 1) == '\\' || at(&c, i + 2) == '\'') {
            // A char literal ('a', '\n', '\u{1F600}'); a lifetime ('a) has no closing quote.
            i += 1;
            while i < c.len() && c[i] != '\'' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Every path after `crate::` in code, groups expanded (`crate::a::{b, c::d}` gives `a::b` and
/// `a::c::d`), `self` in a group meaning the prefix; and every `super::` path, made absolute
/// from `module` (the file's own module path), since `super::super::x` reaches as far as
/// `crate::x` does.
fn crate_paths(code: &str, module: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    // Inline modules (`mod tests { ... }`) open below the file's: their name and the brace depth
    // that closes them.
    let mut inline: Vec<(&str, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let before = code[..i].chars().next_back();
        let starts =
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':');
        let here = || {
            let mut m: Vec<&str> = module.to_vec();
            m.extend(inline.iter().map(|(n, _)| *n));
            m
        };
        let (skip, base) = if starts && rest.starts_with("crate::") {
            ("crate::".len(), Vec::new())
        } else if starts && rest.starts_with("super::") {
            let mut ups = 0;
            let mut k = 0;
            while rest[k..].starts_with("super::") {
                ups += 1;
                k += "super::".len();
            }
            let m = here();
            (k, m[..m.len().saturating_sub(ups)].to_vec())
        } else {
            if starts && rest.starts_with("mod ") {
                let after = rest["mod ".len()..].trim_start();
                let name_len = after
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                if after[name_len..].trim_start().starts_with('{') {
                    inline.push((&after[..name_len], depth + 1));
                }
            }
            match rest.chars().next() {
                Some('{') => depth += 1,
                Some('}') => {
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let rest = &rest[skip..];
        let mut chars = rest.char_indices().peekable();
        tree(rest, &mut chars, base.join("::"), &mut out);
        i += skip;
    }
    out
}

/// The module path of a file under src/: `a/b.rs` and `a/b/mod.rs` are `a::b`.
fn module_of(rel: &str) -> Vec<&str> {
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<&str> = rel.split('/').collect();
    if matches!(parts.last(), Some(&"mod") | Some(&"lib") | Some(&"main")) {
        parts.pop();
    }
    parts
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Reads one use tree at `chars` under `prefix` into `out`.
fn tree(s: &str, chars: &mut Chars<'_>, prefix: String, out: &mut Vec<String>) {
    let skip_ws = |chars: &mut Chars<'_>| {
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
    };
    let mut path = prefix;
    loop {
        skip_ws(chars);
        match chars.peek().copied() {
            Some((_, '{')) => {
                chars.next();
                loop {
                    tree(s, chars, path.clone(), out);
                    skip_ws(chars);
                    match chars.next() {
                        Some((_, ',')) => {
                            skip_ws(chars);
                            if chars.peek().is_some_and(|(_, c)| *c == '}') {
                                chars.next();
                                return;
                            }
                        }
                        _ => return,
                    }
                }
            }
            Some((start, c)) if c.is_alphanumeric() || c == '_' => {
                let mut end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' {
                        end = i + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let ident = &s[start..end];
                if ident != "self" {
                    if !path.is_empty() {
                        path.push_str("::");
                    }
                    path.push_str(ident);
                }
                if s[end..].starts_with("::") {
                    chars.next();
                    chars.next();
                    continue;
                }
                if !path.is_empty() {
                    out.push(path);
                }
                return;
            }
            _ => {
                if !path.is_empty() {
                    out.push(path);
                }
                return;
            }
        }
    }
}

/// The references between modules in `files` (path under src/ → text).
fn references(files: &BTreeMap<String, String>) -> (BTreeSet<Node>, Vec<Reference>) {
    let nodes: BTreeSet<Node> = files.keys().filter_map(|f| node_of(f)).collect();
    let tops: BTreeSet<&str> = nodes.iter().map(|n| top(n)).collect();
    let mut refs = Vec::new();
    for (file, text) in files {
        let Some(from) = node_of(file) else { continue };
        for path in crate_paths(&code_only(text), &module_of(file)) {
            let segs: Vec<&str> = path.split("::").collect();
            let two = segs.get(1).map(|b| format!("{}::{b}", segs[0]));
            let to = match two {
                Some(t) if nodes.contains(&t) => t,
                _ if tops.contains(segs[0]) => segs[0].to_string(),
                _ => continue,
            };
            if to != from {
                refs.push(Reference {
                    file: format!("src/{file}"),
                    path: format!("crate::{path}"),
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    (nodes, refs)
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// Everything wrong with the layering of `files`, one line each.
fn violations(files: &BTreeMap<String, String>) -> Vec<String> {
    let (nodes, refs) = references(files);
    let mut bad = Vec::new();
    let tops: BTreeSet<&str> = nodes.iter().map(|n| top(n)).collect();
    if tops.len() > MAX_MODULES {
        bad.push(format!(
            "{} top-level modules under src/, more than {MAX_MODULES}: {tops:?}",
            tops.len()
        ));
    }
    for t in &tops {
        if layer_of(t).is_none() {
            bad.push(format!(
                "src/{t}: a top-level module in no layer (add it to LAYERS)"
            ));
        }
    }
    for r in &refs {
        let (a, b) = (top(&r.from), top(&r.to));
        if a != b {
            if let (Some(la), Some(lb)) = (layer_of(a), layer_of(b))
                && lb >= la
            {
                let how = if lb == la {
                    "a sibling in its layer"
                } else {
                    "a higher layer"
                };
                bad.push(format!(
                    "{}: {} ({a} is in layer {la}, \"{}\"; {b} is {how}, \"{}\")",
                    r.file, r.path, LAYERS[la].0, LAYERS[lb].0
                ));
            }
        } else if a == "commands" && r.from != "commands" && r.to != "commands" {
            let (x, y) = (&r.from["commands::".len()..], &r.to["commands::".len()..]);
            if y != "tools" && !COMMAND_USES.contains(&(x, y)) {
                bad.push(format!(
                    "{}: {} (the {x} command uses the {y} command; commands share through the \
                     layers below, or COMMAND_USES says why not)",
                    r.file, r.path
                ));
            }
        }
    }
    bad.extend(circles(&nodes, &refs));
    bad
}

/// Each circle among the nodes, as the references that close it.
fn circles(nodes: &BTreeSet<Node>, refs: &[Reference]) -> Vec<String> {
    let mut edges: BTreeMap<&str, BTreeMap<&str, &Reference>> = BTreeMap::new();
    for r in refs {
        edges
            .entry(r.from.as_str())
            .or_default()
            .entry(r.to.as_str())
            .or_insert(r);
    }
    // Tarjan's strongly connected components.
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        found: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(
        v: &'a str,
        edges: &BTreeMap<&'a str, BTreeMap<&'a str, &'a Reference>>,
        st: &mut State<'a>,
    ) {
        let i = st.index.len();
        st.index.insert(v, i);
        st.low.insert(v, i);
        st.stack.push(v);
        st.on.insert(v);
        for &w in edges
            .get(v)
            .map(|m| m.keys().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if !st.index.contains_key(w) {
                visit(w, edges, st);
                let l = st.low[w].min(st.low[v]);
                st.low.insert(v, l);
            } else if st.on.contains(w) {
                let l = st.index[w].min(st.low[v]);
                st.low.insert(v, l);
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                st.found.push(comp);
            }
        }
    }
    let mut st = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        found: Vec::new(),
    };
    for n in nodes {
        if !st.index.contains_key(n.as_str()) {
            visit(n, &edges, &mut st);
        }
    }
    st.found
        .iter()
        .map(|comp| {
            let inside: BTreeSet<&str> = comp.iter().copied().collect();
            let links: Vec<String> = comp
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|(b, _)| inside.contains(*b))
                        .map(move |(b, r)| format!("{a} -> {b} ({}: {})", r.file, r.path))
                })
                .collect();
            format!("a circle of {} modules: {}", comp.len(), links.join("; "))
        })
        .collect()
}

fn read_tree(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).expect("readable src/") {
        let p: PathBuf = e.expect("readable entry").path();
        if p.is_dir() {
            read_tree(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, std::fs::read_to_string(&p).expect("readable source"));
        }
    }
}

#[test]
fn every_reference_points_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    read_tree(&root, &root, &mut files);
    let bad = violations(&files);
    assert!(
        bad.is_empty(),
        "{} layering violations:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn every_layer_holds_a_module_of_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (name, modules) in LAYERS {
        for m in *modules {
            assert!(
                root.join(m).is_dir() || root.join(format!("{m}.rs")).is_file(),
                "layer \"{name}\" names {m}, which src/ does not have"
            );
        }
    }
}

/// How a violation the checker must find is told: by its start, or by a part of it.
#[derive(Debug)]
enum Says {
    Starts(&'static str),
    Has(&'static str),
}

impl Says {
    fn found_in(&self, violation: &str) -> bool {
        match self {
            Says::Starts(start) => violation.starts_with(start),
            Says::Has(part) => violation.contains(part),
        }
    }
}

/// A case of `the_checker_catches_what_it_is_for`: files with their text, and what it finds.
type Case = (&'static [(&'static str, &'static str)], &'static [Says]);

/// The checker itself: it sees through groups, literals, `super::` and inline modules, and it
/// fails where it should.
#[test]
fn the_checker_catches_what_it_is_for() {
    let code = code_only(
        "use crate::a::{b, c::{self, d}};\n// crate::x::y\nlet s = \"crate::z\";\n\
         let r = r#\"crate::w\"#; let c = '\"'; f(crate::e::f()); use super::g::h;\n\
         use super::super::k::Probes; x::super::y; let _ = super::*;\n\
         mod tests { use super::*; fn f() { super::super::m::n(); } }",
    );
    assert_eq!(
        crate_paths(&code, &["trace", "glob"]),
        [
            "a::b",
            "a::c",
            "a::c::d",
            "e::f",
            "trace::g::h",
            "k::Probes",
            "trace",
            "trace::glob",
            "trace::m::n"
        ]
    );
    let files = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect()
    };
    // (the files and their text, each violation that must be among those found).
    let cases: [Case; 5] = [
        // An upward reference: the ABI naming the kernel side.
        (
            &[
                ("abi/mod.rs", "use crate::kernel::Probes;"),
                ("kernel/mod.rs", "use crate::abi::types;"),
            ],
            &[
                Says::Starts("src/abi/mod.rs: crate::kernel::Probes"),
                Says::Starts("a circle of 2 modules"),
            ],
        ),
        // The same through super::, which reaches the crate root as well.
        (
            &[
                ("trace/glob.rs", "use super::super::kernel::Probes;"),
                ("kernel/mod.rs", ""),
            ],
            &[Says::Starts("src/trace/glob.rs: crate::kernel::Probes")],
        ),
        // A sibling: the kernel side naming the live interpreter, in its own layer.
        (
            &[
                ("kernel/links.rs", "crate::cpython::walk::take()"),
                ("cpython/walk.rs", ""),
            ],
            &[Says::Has("a sibling in its layer")],
        ),
        // A command using another command.
        (
            &[
                (
                    "commands/record/mod.rs",
                    "use crate::commands::stacks::Frame;",
                ),
                ("commands/stacks/mod.rs", ""),
            ],
            &[Says::Has("the record command uses the stacks command")],
        ),
        // A circle one level down, inside one top-level module.
        (
            &[
                ("kernel/overhead.rs", "crate::kernel::perf::open()"),
                ("kernel/perf.rs", "crate::kernel::overhead::thread_cpu()"),
            ],
            &[Says::Has("kernel::overhead -> kernel::perf")],
        ),
    ];
    for (pairs, says) in cases {
        let v = violations(&files(pairs));
        for s in says {
            assert!(v.iter().any(|v| s.found_in(v)), "{pairs:?}: {s:?} in {v:?}");
        }
    }
    // A module in no layer, and too many of them.
    let many: Vec<(String, String)> = (0..=MAX_MODULES)
        .map(|i| (format!("m{i}.rs"), String::new()))
        .collect();
    let many: BTreeMap<String, String> = many.into_iter().collect();
    let v = violations(&many);
    assert!(v.iter().any(|v| v.contains("more than 16")), "{v:?}");
    assert!(v.iter().any(|v| v.contains("in no layer")), "{v:?}");
}
