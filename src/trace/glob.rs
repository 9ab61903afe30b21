//! Glob patterns for `--file` and `--event`: validated here, matched in the kernel
//! (bpf/glob.bpf.h) once per file name or event name.
use crate::abi::limits::{GLOB_LEN, MAX_GLOBS};
use crate::abi::types::GlobPattern;
use crate::error::{Error, Result};

/// The longest glob accepted, in bytes: `--file` adds two (`*/`) to a glob it also matches
/// after any `/`, and the kernel's automaton has GLOB_LEN - 1 positions.
pub const LONGEST: usize = GLOB_LEN - 3;

/// A validated glob: `*` matches any run of bytes (including `/`), `?` any one byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn parse(flag: &str, text: &str) -> Result<Glob> {
        let bad = |why: String| Error::Usage(format!("invalid {flag} {text:?}: {why}"));
        if text.is_empty() {
            return Err(bad("empty pattern".into()));
        }
        if text.contains(['[', ']']) {
            return Err(bad(
                "only '*' and '?' are supported, not [...] classes".into()
            ));
        }
        if text.contains('\0') {
            return Err(bad("patterns contain no NUL".into()));
        }
        if text.len() > LONGEST {
            return Err(bad(format!("longer than {LONGEST} bytes")));
        }
        Ok(Glob(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same test the kernel makes (bpf/glob.bpf.h), on the same automaton.
    pub fn matches(&self, subject: &str) -> bool {
        let g = self.to_bpf();
        let close = |reached: u64| reached | ((reached & g.star) << 1);
        let mut reached = close(1);
        for &c in subject.as_bytes() {
            reached = close(((reached & (g.byte[c as usize] | g.any)) << 1) | (reached & g.star));
        }
        reached & g.accept != 0
    }

    /// The kernel's automaton for this pattern (struct glob_pattern): one bit per position, a
    /// run of `*` being one position.
    pub fn to_bpf(&self) -> GlobPattern {
        let mut g = GlobPattern::default();
        let mut at = 0;
        let mut after_star = false;
        for &c in self.0.as_bytes() {
            if c == b'*' && after_star {
                continue;
            }
            after_star = c == b'*';
            let bit = 1u64 << at;
            match c {
                b'*' => g.star |= bit,
                b'?' => g.any |= bit,
                _ => g.byte[c as usize] |= bit,
            }
            at += 1;
        }
        // Parsing bounds the text to LONGEST bytes, and `--file`'s `*/` adds two.
        assert!(
            at < GLOB_LEN,
            "glob {:?} has more positions than the kernel's",
            self.0
        );
        g.accept = 1 << at;
        g
    }
}

/// What `--file GLOB` means for a path: a GLOB that starts with '/' or '*' is matched against
/// the whole path; otherwise it may also match after any '/' (`app.py` matches `/srv/app.py`
/// and the relative `app.py`, not `/srv/myapp.py`).
pub fn file_globs(text: &str) -> Result<Vec<Glob>> {
    let g = Glob::parse("--file", text)?;
    if text.starts_with('/') || text.starts_with('*') {
        return Ok(vec![g]);
    }
    let anywhere = Glob(format!("*/{text}"));
    Ok(vec![g, anywhere])
}

/// Every `--event GLOB`, refusing more than the kernel side holds.
pub fn event_globs(texts: &[String]) -> Result<Vec<Glob>> {
    if texts.len() > MAX_GLOBS {
        return Err(Error::Usage(format!(
            "at most {MAX_GLOBS} --event patterns"
        )));
    }
    texts.iter().map(|t| Glob::parse("--event", t)).collect()
}

/// The kernel's table of globs (`globs` and `nr_globs` in bpf/glob.bpf.h).
pub fn table(globs: &[Glob]) -> ([GlobPattern; MAX_GLOBS], u32) {
    let mut t = [GlobPattern::default(); MAX_GLOBS];
    for (slot, g) in t.iter_mut().zip(globs) {
        *slot = g.to_bpf();
    }
    (t, globs.len().min(MAX_GLOBS) as u32)
}

/// Whether any glob matches (no globs: everything matches), as the kernel decides it.
pub fn any_matches(globs: &[Glob], subject: &str) -> bool {
    globs.is_empty() || globs.iter().any(|g| g.matches(subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::parse("--file", p).unwrap().matches(s)
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("*.py", "/srv/app.py"));
        assert!(m("/srv/*", "/srv/pkg/mod.py"));
        assert!(m("socket.*", "socket.connect"));
        assert!(m("*o*e*", "subprocess.Popen"));
        assert!(m("op?n", "open"));
        assert!(!m("op?n", "opn"));
        assert!(!m("*.py", "/srv/app.pyc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("**", ""));
    }

    #[test]
    fn a_bare_file_name_matches_on_a_path_boundary() {
        let gs = file_globs("app.py").unwrap();
        assert!(any_matches(&gs, "/srv/app.py"));
        assert!(any_matches(&gs, "app.py"));
        assert!(!any_matches(&gs, "/srv/myapp.py"));
        let gs = file_globs("pkg/*.py").unwrap();
        assert!(any_matches(&gs, "/x/pkg/a.py"));
        assert!(!any_matches(&gs, "/x/notpkg/a.py"));
        assert_eq!(file_globs("/abs/*.py").unwrap().len(), 1);
    }

    /// What a glob means, written the plain recursive way: the automaton must agree.
    fn reference(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| reference(rest, &s[i..])),
            Some((&c, rest)) => {
                !s.is_empty() && (c == b'?' || c == s[0]) && reference(rest, &s[1..])
            }
        }
    }

    /// Every string of up to `n` bytes over `alphabet`.
    fn strings(alphabet: &[u8], n: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..n {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |&c| format!("{s}{}", c as char)))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn the_automaton_agrees_with_the_definition() {
        let subjects = strings(b"ab/", 5);
        for p in strings(b"a/*?", 4).into_iter().filter(|p| !p.is_empty()) {
            let g = Glob::parse("--file", &p).unwrap();
            for s in &subjects {
                assert_eq!(
                    g.matches(s),
                    reference(p.as_bytes(), s.as_bytes()),
                    "{p:?} on {s:?}"
                );
            }
        }
    }

    #[test]
    fn the_longest_globs_fit_the_kernels_positions() {
        let long = "x".repeat(LONGEST);
        for g in file_globs(&long).unwrap() {
            assert_eq!(g.to_bpf().accept, 1 << g.as_str().len());
        }
        assert_eq!(file_globs(&long).unwrap()[1].to_bpf().accept, 1 << 63);
        assert!(
            Glob::parse("--file", &"?".repeat(LONGEST))
                .unwrap()
                .matches(&long)
        );
        assert!(
            !Glob::parse("--file", &"?".repeat(LONGEST))
                .unwrap()
                .matches(&long[1..])
        );
        let stars = Glob::parse("--file", &"*".repeat(LONGEST)).unwrap();
        assert_eq!(stars.to_bpf().accept, 2, "a run of stars is one position");
        assert!(stars.matches("") && stars.matches(&"y".repeat(600)));
    }

    #[test]
    fn bad_globs_are_refused_with_the_flag() {
        let e = Glob::parse("--file", "[ab].py").unwrap_err().to_string();
        assert!(e.contains("--file") && e.contains("[...]"), "{e}");
        assert!(Glob::parse("--event", "").is_err());
        assert!(Glob::parse("--event", &"x".repeat(LONGEST)).is_ok());
        let e = Glob::parse("--event", &"x".repeat(LONGEST + 1)).unwrap_err();
        assert!(e.to_string().contains("longer than 61 bytes"), "{e}");
        let many: Vec<String> = (0..5).map(|i| format!("e{i}")).collect();
        let e = event_globs(&many).unwrap_err().to_string();
        assert!(e.contains("at most 4"), "{e}");
    }

    #[test]
    fn encodes_for_the_kernel() {
        let g = Glob::parse("--event", "o?*n**").unwrap().to_bpf();
        assert_eq!((g.byte[b'o' as usize], g.any, g.star), (0b1, 0b10, 0b10100));
        assert_eq!(g.byte[b'n' as usize], 0b1000);
        assert_eq!(g.accept, 1 << 5);
    }
}
