//! Which of the interpreter's accesses to a function's first code unit are calls, learned per
//! interpreter file from a process of that file calling two known functions under watch.
//!
//! The unit is read by the dispatch that starts each new call (the caller's instruction picks
//! the dispatch site: a specialized CALL, the generic path, a call from C), and also at
//! moments that are no call: once per code object at warm-up (the specializer rewriting
//! `RESUME`: 3.11 once or twice, 3.13+ twice) and, on 3.12, a second read in every call. A
//! watchpoint traps after the access, so each hit carries the instruction that made it. The
//! calibration calls `a` 20 times from Python and `b` 33 times from C (`map`; its bytecode
//! differs from `a`'s, which 3.10 would share): an instruction
//! that hit both the same number of times is warm-up (the same for any code object); one that
//! hit both k times per call is the callee's own per-call read. Where the caller's sites alone
//! account for every call, those per-call reads are skipped; else (every call dispatched by
//! one shared site) the hits left are divided by the reads per call.
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::abi::record;
use crate::abi::types::WpKey;
use crate::error::{Error, Result};
use crate::target::{Mapping, Target, parse_maps};

/// Calls of the calibration's functions: from Python and from C, of different numbers, so
/// that a per-call site and a once-per-code-object site cannot be mistaken for each other.
const FROM_PYTHON: u64 = 20;
const FROM_C: u64 = 33;
/// A calibration that takes longer than this failed (the interpreter could not start).
const PATIENCE: Duration = Duration::from_secs(10);

const SCRIPT: &str = "import sys
def a(x=None): return x
def b(x=None): y = x; return y
sys.stdout.write('%d %d\\n' % (id(a.__code__), id(b.__code__))); sys.stdout.flush()
sys.stdin.readline()
for i in range(20): a()
list(map(b, range(33)))
sys.stdout.write('done\\n'); sys.stdout.flush()
sys.stdin.readline()
";

/// The watchpoints' hit map as read: (`wp_key`, count) pairs of bytes.
pub type Hits = Vec<(Vec<u8>, Vec<u8>)>;

/// An instruction of the interpreter, wherever the file is mapped: its file and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Site {
    pub dev: u64,
    pub inode: u64,
    pub offset: u64,
}

/// The file and offset of `ip` in a process with these mappings.
pub fn site(maps: &[Mapping], ip: u64) -> Option<Site> {
    maps.iter()
        .find(|m| m.start <= ip && ip < m.end)
        .map(|m| Site {
            dev: m.dev,
            inode: m.inode,
            offset: ip - m.start + m.offset,
        })
}

/// Which hits are calls: all but those at `skip`, divided by `per_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub skip: HashSet<Site>,
    pub per_call: u64,
}

impl Rule {
    /// The calls among one unit's hits by site (a hit at an unknown site counts).
    pub fn calls(&self, hits: impl IntoIterator<Item = (Option<Site>, u64)>) -> u64 {
        let kept: u64 = hits
            .into_iter()
            .filter(|(s, _)| s.is_none_or(|s| !self.skip.contains(&s)))
            .map(|(_, n)| n)
            .sum();
        kept / self.per_call.max(1)
    }
}

/// The rule from the hits by site of `FROM_PYTHON` calls of one function and `FROM_C` of
/// another; an error where they fit no rule.
pub fn classify(
    a: &HashMap<Site, u64>,
    b: &HashMap<Site, u64>,
) -> std::result::Result<Rule, String> {
    let (na, nb) = (FROM_PYTHON, FROM_C);
    let mut warm_up = HashSet::new();
    let mut per_call = HashSet::new();
    for (s, &ca) in a {
        let Some(&cb) = b.get(s) else { continue };
        if ca == cb {
            warm_up.insert(*s);
        } else if ca % na == 0 && cb % nb == 0 && ca / na == cb / nb {
            per_call.insert(*s);
        }
    }
    let rest = |h: &HashMap<Site, u64>, skip: &dyn Fn(&Site) -> bool| -> u64 {
        h.iter().filter(|(s, _)| !skip(s)).map(|(_, n)| n).sum()
    };
    let both = |s: &Site| warm_up.contains(s) || per_call.contains(s);
    if rest(a, &both) == na && rest(b, &both) == nb {
        return Ok(Rule {
            skip: warm_up.union(&per_call).copied().collect(),
            per_call: 1,
        });
    }
    let only_warm = |s: &Site| warm_up.contains(s);
    let (ra, rb) = (rest(a, &only_warm), rest(b, &only_warm));
    if ra > 0 && ra % na == 0 && rb % nb == 0 && ra / na == rb / nb {
        return Ok(Rule {
            skip: warm_up,
            per_call: ra / na,
        });
    }
    Err(format!(
        "the interpreter's reads of a function's first code unit fit no rule pyprobe knows \
         ({na} calls from Python: {ra} reads, {nb} calls from C: {rb})"
    ))
}

/// Learns the rule of the target's interpreter file: runs it (inside the target's root),
/// watches the calibration's two functions with `prog` on `probes` (already armed), reads
/// `hits`.
pub fn learn(
    target: &Target,
    code_unit: &dyn Fn(i32, u64) -> Result<u64>,
    watch: &mut dyn FnMut(i32, u64) -> Result<()>,
    hits: &dyn Fn() -> Result<Hits>,
) -> Result<Rule> {
    let fail = |why: String| Error::ProbeUnavailable(format!("calibrating the watchpoints: {why}"));
    let mut child = spawn(target).map_err(|e| fail(format!("cannot run {}: {e}", target.exe)))?;
    let result = (|| {
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if line.is_err() || tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let line = next_line(&rx)?;
        let codes: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [a, b] = codes[..] else {
            return Err(fail(format!("unexpected output {line:?}")));
        };
        let pid = child.id() as i32;
        let units = [code_unit(pid, a)?, code_unit(pid, b)?];
        for u in units {
            watch(pid, u)?;
        }
        let maps =
            parse_maps(&std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default());
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(b"go\n").map_err(|e| fail(e.to_string()))?;
        let line = next_line(&rx)?;
        if line != "done" {
            return Err(fail(format!("unexpected output {line:?}")));
        }
        let mut by_unit = [HashMap::new(), HashMap::new()];
        for (k, v) in hits()? {
            let key: WpKey = record(&k);
            let n = u64::from_ne_bytes(v[..8].try_into().expect("8 bytes"));
            let Some(i) = units.iter().position(|&u| u == key.addr) else {
                continue;
            };
            let Some(s) = site(&maps, key.ip) else {
                continue;
            };
            *by_unit[i].entry(s).or_insert(0) += n;
        }
        if std::env::var_os("PYPROBE_WATCH_DEBUG").is_some() {
            eprintln!(
                "pyprobe: watch calibration: from Python {:?}; from C {:?}",
                by_unit[0], by_unit[1]
            );
        }
        let rule = classify(&by_unit[0], &by_unit[1]).map_err(fail)?;
        // The file run must be the one the target runs (not one put in its place since).
        let theirs = parse_maps(
            &std::fs::read_to_string(format!("/proc/{}/maps", target.pid)).unwrap_or_default(),
        );
        let same_file = |s: &Site| theirs.iter().any(|m| m.dev == s.dev && m.inode == s.inode);
        if !by_unit.iter().flat_map(|h| h.keys()).all(same_file) {
            return Err(fail(format!(
                "{} is not the file PID {} runs (replaced since it started?)",
                target.exe, target.pid
            )));
        }
        Ok(rule)
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn next_line(rx: &mpsc::Receiver<String>) -> Result<String> {
    let start = Instant::now();
    loop {
        if crate::signals::stop_requested() {
            return Err(Error::Stopped);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => return Ok(line),
            Err(mpsc::RecvTimeoutError::Timeout) if start.elapsed() < PATIENCE => {}
            Err(_) => {
                return Err(Error::ProbeUnavailable(
                    "calibrating the watchpoints: the interpreter did not answer".into(),
                ));
            }
        }
    }
}

/// The target's interpreter, isolated (`-I -S`: no site, no user paths), in the target's
/// root directory when it has one of its own (a container, a chroot).
fn spawn(target: &Target) -> std::io::Result<Child> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let root = format!("/proc/{}/root", target.pid);
    let same =
        |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    let own_root = !same(&std::fs::metadata(&root)?, &std::fs::metadata("/")?);
    // /proc/PID/exe reads as a path from pyprobe's root: inside the target's, without the
    // prefix that leads there.
    let mut exe = target.exe.clone();
    if own_root
        && let Ok(dir) = std::fs::read_link(&root)
        && let Some(inner) = exe.strip_prefix(&*dir.to_string_lossy())
        && inner.starts_with('/')
    {
        exe = inner.to_string();
    }
    let mut cmd = Command::new(&exe);
    cmd.args(["-I", "-S", "-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_clear();
    if own_root {
        let root = std::ffi::CString::new(root).expect("no NUL");
        // SAFETY: chroot and chdir are async-signal-safe; between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> Site {
        Site {
            dev: 1,
            inode: 2,
            offset,
        }
    }

    fn hits(pairs: &[(u64, u64)]) -> HashMap<Site, u64> {
        pairs.iter().map(|&(o, n)| (at(o), n)).collect()
    }

    #[test]
    fn warm_up_is_skipped() {
        // 3.11-like: one dispatch per call shared by every caller, two warm-up accesses.
        let r = classify(
            &hits(&[(10, 20), (50, 1), (60, 1)]),
            &hits(&[(10, 33), (50, 1), (60, 1)]),
        )
        .unwrap();
        assert_eq!(r.per_call, 1);
        assert_eq!(
            r.calls([(Some(at(10)), 1000), (Some(at(50)), 1), (Some(at(60)), 1)]),
            1000
        );
    }

    #[test]
    fn a_second_read_per_call_is_skipped() {
        // 3.12-like: the caller's dispatch (the generic one once, then the specialized) and the
        // callee's own second read in every call.
        let a = hits(&[(10, 1), (11, 19), (70, 20)]);
        let b = hits(&[(10, 33), (70, 33)]);
        let r = classify(&a, &b).unwrap();
        assert_eq!(r.per_call, 1);
        assert_eq!(r.calls([(Some(at(11)), 1000), (Some(at(70)), 1000)]), 1000);
        // A call site the calibration never saw still counts.
        assert_eq!(r.calls([(Some(at(12)), 5), (Some(at(70)), 5)]), 5);
    }

    #[test]
    fn two_shared_reads_per_call_are_divided() {
        let r = classify(&hits(&[(10, 20), (70, 20)]), &hits(&[(10, 33), (70, 33)])).unwrap();
        assert_eq!(r.per_call, 2);
        assert_eq!(r.calls([(Some(at(10)), 7), (Some(at(70)), 7)]), 7);
    }

    #[test]
    fn the_first_calls_own_path_counts() {
        // 3.14-like: the first call on the generic path, shared with calls from C; two
        // warm-up accesses.
        let a = hits(&[(10, 1), (11, 19), (50, 1), (60, 1)]);
        let b = hits(&[(10, 33), (50, 1), (60, 1)]);
        let r = classify(&a, &b).unwrap();
        assert_eq!(
            r.calls([
                (Some(at(10)), 1),
                (Some(at(11)), 998),
                (Some(at(50)), 1),
                (Some(at(60)), 1)
            ]),
            999
        );
    }

    #[test]
    fn reads_that_fit_no_rule_are_refused() {
        assert!(classify(&hits(&[(10, 7)]), &hits(&[(10, 33)])).is_err());
    }
}
