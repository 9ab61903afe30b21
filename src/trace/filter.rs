//! `--filter` patterns: parsed and validated here, matched in the kernel (bpf/functions.bpf.h).
use std::fmt;

use crate::abi::limits::{FILE_LEN, MAX_FILTERS, NAME_LEN};
use crate::abi::to_c_chars;
use crate::abi::types::NameFilter;
use crate::error::{Error, Result};

/// One pattern: `NAME`, `PREFIX*`, or `FILE:NAME` where FILE matches the end of the path. A
/// dotted NAME (`Class.method`, `outer.<locals>.inner`) is a qualified name, matched against
/// the code object's `co_qualname` (3.11+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub file: Option<String>,
    pub name: String,
    pub prefix: bool,
    pub qualified: bool,
}

/// What a module's function is selected by, said wherever a dotted NAME cannot select it.
const USE_FILE: &str = "a module's function is selected by FILE:NAME (mod.py:func)";

/// A function's own name (`co_name`) from its qualified name (`co_qualname`): `run` from
/// `A.run`, `helper` from `run.<locals>.helper`.
pub fn unqualified(qualname: &str) -> &str {
    qualname.rsplit('.').next().unwrap_or(qualname)
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern> {
        let bad = |why: &str| Error::InvalidFilter {
            pattern: text.to_string(),
            why: why.to_string(),
        };
        if text.is_empty() {
            return Err(bad("empty pattern; use NAME, PREFIX* or FILE:NAME"));
        }
        if text.chars().any(char::is_whitespace) {
            return Err(bad("patterns contain no spaces"));
        }
        let (file, name) = match text.rsplit_once(':') {
            Some((f, n)) => (Some(f), n),
            None => (None, text),
        };
        if let Some(f) = file {
            if f.is_empty() {
                return Err(bad("FILE before ':' is empty"));
            }
            if f.contains(['*', '?', '[']) {
                return Err(bad(
                    "FILE is matched literally against the end of the path; no wildcards",
                ));
            }
            if f.len() >= FILE_LEN {
                return Err(bad(&format!("FILE is longer than {} bytes", FILE_LEN - 1)));
            }
        }
        if name.is_empty() {
            return Err(bad("NAME is empty; use NAME, PREFIX* or FILE:*"));
        }
        let prefix = name.ends_with('*');
        let stem = name.strip_suffix('*').unwrap_or(name);
        if stem.contains(['*', '?', '[', ']']) {
            return Err(bad(
                "only one '*', at the end of NAME, is supported (a prefix match)",
            ));
        }
        let qualified = stem.contains('.');
        if qualified && stem.ends_with(".py") {
            return Err(bad(&format!(
                "NAME {stem} looks like a file: use FILE:NAME ({stem}:func) or FILE:* ({stem}:*)"
            )));
        }
        if qualified && !stem.is_ascii() {
            return Err(bad(
                "a dotted NAME is matched against qualified names as ASCII only; use FILE:NAME",
            ));
        }
        if stem.len() >= NAME_LEN {
            return Err(bad(&format!(
                "NAME is longer than {} bytes, the longest name pyprobe keeps; use a prefix (NAME*)",
                NAME_LEN - 1
            )));
        }
        Ok(Pattern {
            file: file.map(str::to_string),
            name: stem.to_string(),
            prefix,
            qualified,
        })
    }

    /// The same test the kernel makes, for userspace consumers and tests.
    pub fn matches(&self, file: &str, name: &str, qualname: &str) -> bool {
        let name = if self.qualified { qualname } else { name };
        let name_ok = if self.prefix {
            name.starts_with(&self.name)
        } else {
            name == self.name
        };
        let file_ok = match &self.file {
            None => true,
            Some(f) => file == f || file.ends_with(&format!("/{f}")),
        };
        name_ok && file_ok
    }

    /// The kernel's copy of this pattern.
    pub fn to_bpf(&self) -> NameFilter {
        let file = self.file.as_deref().unwrap_or("");
        NameFilter {
            name: to_c_chars(&self.name),
            file: to_c_chars(file),
            name_len: self.name.len() as u32,
            file_len: file.len() as u32,
            name_prefix: self.prefix.into(),
            qualified: self.qualified.into(),
            ..Default::default()
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        write!(f, "{}{}", self.name, if self.prefix { "*" } else { "" })
    }
}

/// Refuses a qualified pattern where the function source cannot read qualified names
/// (`why_not`), rather than let it match nothing.
pub fn require_qualnames(patterns: &[Pattern], why_not: Option<String>) -> Result<()> {
    match (patterns.iter().find(|p| p.qualified), why_not) {
        (Some(p), Some(why)) => Err(Error::InvalidFilter {
            pattern: p.to_string(),
            why: format!(
                "a dotted NAME is matched against qualified names (Class.method), and {why}; \
                 use FILE:NAME (app.py:method)"
            ),
        }),
        _ => Ok(()),
    }
}

/// A line for each pattern that matched no function that ran (`hits`: bit i set where pattern
/// i matched one, as the kernel records it), `so_far` while the session runs; a dotted NAME is
/// told the likeliest reason, a module-qualified name, which no code object carries.
pub fn unmatched(
    patterns: &[Pattern],
    hits: u32,
    so_far: Option<std::time::Duration>,
) -> Vec<String> {
    patterns
        .iter()
        .enumerate()
        .filter(|&(i, _)| hits & (1 << i) == 0)
        .map(|(_, p)| {
            let mut line = match so_far {
                Some(d) => format!(
                    "--filter {p} has matched no function that ran in the first {} s",
                    d.as_secs()
                ),
                None => format!("--filter {p} matched no function that ran"),
            };
            if p.qualified {
                line.push_str(&format!(
                    ": a dotted NAME is a qualified name (Class.method, outer.<locals>.inner), \
                     which names no module; {USE_FILE}"
                ));
            }
            line
        })
        .collect()
}

/// The kernel's table of patterns (`filters` and `nr_filters` in bpf/functions.bpf.h).
pub fn table(patterns: &[Pattern]) -> ([NameFilter; MAX_FILTERS], u32) {
    let mut t = [NameFilter::default(); MAX_FILTERS];
    for (slot, p) in t.iter_mut().zip(patterns) {
        *slot = p.to_bpf();
    }
    (t, patterns.len().min(MAX_FILTERS) as u32)
}

/// Parses every `--filter`, refusing more than the kernel side holds.
pub fn parse_all(patterns: &[String]) -> Result<Vec<Pattern>> {
    if patterns.len() > MAX_FILTERS {
        return Err(Error::InvalidFilter {
            pattern: patterns[MAX_FILTERS].clone(),
            why: format!("at most {MAX_FILTERS} --filter patterns"),
        });
    }
    patterns.iter().map(|p| Pattern::parse(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            Pattern::parse("func1").unwrap(),
            Pattern {
                file: None,
                name: "func1".into(),
                prefix: false,
                qualified: false,
            }
        );
        assert_eq!(
            Pattern::parse("handle_*").unwrap(),
            Pattern {
                file: None,
                name: "handle_".into(),
                prefix: true,
                qualified: false,
            }
        );
        assert_eq!(
            Pattern::parse("app.py:handle_*").unwrap(),
            Pattern {
                file: Some("app.py".into()),
                name: "handle_".into(),
                prefix: true,
                qualified: false,
            }
        );
        assert_eq!(Pattern::parse("pkg/app.py:*").unwrap().name, "");
        let q = Pattern::parse("app.py:Handler.get*").unwrap();
        assert_eq!(
            (q.name.as_str(), q.prefix, q.qualified),
            ("Handler.get", true, true)
        );
        assert_eq!(q.to_string(), "app.py:Handler.get*");
        assert_eq!(q.to_bpf().qualified, 1);
    }

    #[test]
    fn rejects_bad_patterns_with_a_reason() {
        for (p, why) in [
            ("", "empty"),
            ("a*b", "only one '*'"),
            ("*x", "only one '*'"),
            (":f", "FILE before ':' is empty"),
            ("app.py:", "NAME is empty"),
            ("*.py:f", "no wildcards"),
            ("a b", "no spaces"),
            ("app.py", "looks like a file: use FILE:NAME (app.py:func)"),
            ("Größe.run", "ASCII only"),
        ] {
            let e = Pattern::parse(p).unwrap_err().to_string();
            assert!(e.contains(why), "{p:?}: {e}");
        }
        let long = "x".repeat(64);
        assert!(
            Pattern::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("longer than 63")
        );
        assert!(Pattern::parse(&"x".repeat(63)).is_ok());
    }

    #[test]
    fn matches_like_the_kernel() {
        let p = Pattern::parse("app.py:handle_*").unwrap();
        assert!(p.matches("/srv/app.py", "handle_get", "C.handle_get"));
        assert!(p.matches("app.py", "handle_", "handle_"));
        assert!(!p.matches("/srv/myapp.py", "handle_get", "handle_get"));
        assert!(!p.matches("/srv/app.py", "handler", "handler"));
        let exact = Pattern::parse("func1").unwrap();
        assert!(exact.matches("/x.py", "func1", "A.func1"));
        assert!(!exact.matches("/x.py", "func10", "func10"));
        let method = Pattern::parse("A.run").unwrap();
        assert!(method.matches("/x.py", "run", "A.run"));
        assert!(!method.matches("/x.py", "run", "B.run"));
        assert!(
            !method.matches("/x.py", "A.run", "run"),
            "a name has no dots"
        );
    }

    #[test]
    fn qualified_patterns_are_refused_or_explained() {
        let ps = parse_all(&["run".into(), "A.run".into(), "mod.func".into()]).unwrap();
        let e = require_qualnames(&ps, Some("CPython 3.10 has none".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid filter \"A.run\": a dotted NAME is matched against qualified names \
             (Class.method), and CPython 3.10 has none; use FILE:NAME (app.py:method)"
        );
        assert!(require_qualnames(&ps, None).is_ok());
        assert!(require_qualnames(&ps[..1], Some("none".into())).is_ok());
        let notes = unmatched(&ps, 0b011, None);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].starts_with("--filter mod.func matched no function that ran: "));
        assert!(notes[0].ends_with("selected by FILE:NAME (mod.py:func)"));
        assert!(unmatched(&ps, 0b111, None).is_empty());
    }

    #[test]
    fn every_pattern_that_matched_nothing_is_told_once() {
        let ps = parse_all(&["app.py:run".into(), "handle_*".into(), "tick".into()]).unwrap();
        assert_eq!(
            unmatched(&ps, 0b100, None),
            [
                "--filter app.py:run matched no function that ran",
                "--filter handle_* matched no function that ran"
            ]
        );
        assert_eq!(
            unmatched(&ps, 0b101, Some(std::time::Duration::from_secs(3))),
            ["--filter handle_* has matched no function that ran in the first 3 s"]
        );
        assert!(unmatched(&[], 0, None).is_empty());
    }

    #[test]
    fn limits_the_number_of_patterns() {
        let many: Vec<String> = (0..9).map(|i| format!("f{i}")).collect();
        let e = parse_all(&many).unwrap_err().to_string();
        assert!(e.contains("at most 8"), "{e}");
        assert_eq!(parse_all(&many[..8]).unwrap().len(), 8);
    }

    #[test]
    fn encodes_for_the_kernel() {
        let f = Pattern::parse("a.py:fn*").unwrap().to_bpf();
        assert_eq!((f.name_len, f.file_len, f.name_prefix), (2, 4, 1));
        assert_eq!(f.name[0] as u8, b'f');
        assert_eq!(f.name[2], 0);
    }
}
