//! Glob patterns for `--file` and `--event`: validated here, matched in the kernel
//! (bpf/glob.bpf.h) once per file name or event name.
use crate::error::{Error, Result};
use crate::kernel::limits::{GLOB_LEN, MAX_GLOBS};
use crate::kernel::to_c_chars;
use crate::kernel::types::GlobPattern;

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
        if text.len() >= GLOB_LEN - 2 {
            return Err(bad(format!("longer than {} bytes", GLOB_LEN - 3)));
        }
        Ok(Glob(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same test the kernel makes (bpf/glob.bpf.h), for tests and userspace consumers.
    pub fn matches(&self, subject: &str) -> bool {
        wildcard(self.0.as_bytes(), subject.as_bytes())
    }

    /// The kernel's copy of this pattern.
    pub fn to_bpf(&self) -> GlobPattern {
        GlobPattern {
            text: to_c_chars(&self.0),
            len: self.0.len() as u32,
            ..Default::default()
        }
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
    let anywhere = Glob::parse("--file", &format!("*/{text}"))?;
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

/// Linear backtracking wildcard match with one remembered star, step for step the kernel's.
fn wildcard(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if let Some((sp, mark)) = star {
            p = sp + 1;
            i = mark + 1;
            star = Some((sp, mark + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
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

    #[test]
    fn bad_globs_are_refused_with_the_flag() {
        let e = Glob::parse("--file", "[ab].py").unwrap_err().to_string();
        assert!(e.contains("--file") && e.contains("[...]"), "{e}");
        assert!(Glob::parse("--event", "").is_err());
        assert!(Glob::parse("--event", &"x".repeat(62)).is_err());
        let many: Vec<String> = (0..5).map(|i| format!("e{i}")).collect();
        assert!(
            event_globs(&many)
                .unwrap_err()
                .to_string()
                .contains("at most 4")
        );
    }

    #[test]
    fn encodes_for_the_kernel() {
        let g = Glob::parse("--event", "open*").unwrap().to_bpf();
        assert_eq!(g.len, 5);
        assert_eq!(g.text[4] as u8, b'*');
        assert_eq!(g.text[5], 0);
    }
}
