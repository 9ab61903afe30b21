//! Probes that processes forked from the target inherit (`--subprocesses`): uprobe trace events
//! opened as perf events with `inherit`, so that the kernel copies them, BPF program included,
//! into each child at fork, before it runs its first instruction.
//!
//! libbpf's uprobes cannot do this: it opens them through the uprobe PMU, whose events the
//! kernel re-creates at every fork from a path in the tracer's memory, read in the forking
//! process's context. Trace events defined in tracefs' `uprobe_events` are inherited as any
//! tracepoint is: a child's copy shares the event's BPF programs, and the kernel filters hits
//! by the child's own memory. A child that runs another program keeps its copy (dropping it with
//! `remove_on_exec` made the kernel lose siblings' copies now and then: calls went missing), and
//! the kernel side skips its hits (bpf/functions.bpf.h, `family_stack`).
//!
//! The BPF program is not attached to the inherited event itself: Linux 6.18 gives each
//! inherited copy the parent's program, and freeing a copy (its process exited) detaches that
//! program from the trace event for every process, so that after the first child's exit
//! nothing more was counted. A trace event runs its programs for every hit its events' filter
//! lets through, so each probe gets two perf events on the target: one that carries the program
//! and is not inherited, and one without a program that children inherit, which keeps their
//! memory in the filter.
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use libbpf_rs::{
    Link, MapCore, MapFlags, MapHandle, OpenProgramMut, PerfEventOpts, ProgramMut, ProgramType,
};

use super::perf::{self, PerfEventAttr};
use crate::error::{Error, Result};

/// The group every pyprobe trace event is defined in; each name carries pyprobe's PID.
const GROUP: &str = "pyprobe";

/// One uprobe trace event defined in tracefs for this session with the inherited perf event
/// open on it; dropped after the link that carries the program: the perf event is closed, then
/// the trace event removed (the kernel refuses to remove one in use).
pub struct TraceEvent {
    inherited: Option<OwnedFd>,
    name: String,
}

/// Where a probe goes: a file (by a path the kernel resolves at definition) and an offset in it.
pub struct Place<'a> {
    pub path: &'a Path,
    pub offset: u64,
    /// The file offset of a semaphore the kernel raises while the probe is attached.
    pub ref_ctr: Option<u64>,
}

/// Attaches `prog` at `place` for `pid` and every process forked from it later: returns the
/// link (it owns the perf event that carries the program) and the trace event, to be dropped
/// after the link.
pub fn attach(
    prog: &ProgramMut<'_>,
    pid: i32,
    place: &Place<'_>,
    cookie: u64,
) -> Result<(Link, TraceEvent)> {
    let mut event = TraceEvent::define(place)?;
    let id = event.id()?;
    let fd = open_event(id, pid, false)?;
    event.inherited = Some(open_event(id, pid, true)?);
    let link = prog
        .attach_perf_event_with_opts(
            fd.as_raw_fd(),
            PerfEventOpts {
                cookie,
                ..Default::default()
            },
        )
        .map_err(|e| Error::bpf(format!("attaching to the trace event {}", event.name), e))?;
    // The link closes the perf event when it goes.
    std::mem::forget(fd);
    Ok((link, event))
}

/// Makes a `SEC("usdt")` program attachable to a perf event: libbpf loads it for uprobe-multi
/// links where the kernel has them (expected attach type `BPF_TRACE_UPROBE_MULTI`, set at load
/// by the section's handler), which a perf event refuses (EINVAL). Changing a program's type
/// drops its section handler (libbpf's `bpf_program__set_type`), so it is changed away and
/// back: a plain kprobe-type program, as `SEC("uprobe")` makes.
pub fn for_perf_events(prog: &mut OpenProgramMut<'_>) {
    prog.set_prog_type(ProgramType::Tracepoint);
    prog.set_prog_type(ProgramType::Kprobe);
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TraceEvent {
    fn define(place: &Place<'_>) -> Result<TraceEvent> {
        sweep_stale();
        let name = format!(
            "p{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = place
            .path
            .to_str()
            .filter(|p| !p.contains(char::is_whitespace));
        let Some(path) = path else {
            return Err(trace_error(
                "defining a uprobe trace event",
                std::io::Error::other(format!("unusable path {}", place.path.display())),
            ));
        };
        // Always an entry probe (`p:`): no return probe (`r:`) ever, see Probes::uprobe.
        let kind = 'p';
        let ref_ctr = place
            .ref_ctr
            .map(|r| format!("({r:#x})"))
            .unwrap_or_default();
        let line = format!(
            "{kind}:{GROUP}/{name} {path}:{:#x}{ref_ctr}\n",
            place.offset
        );
        write_events(&line).map_err(|e| trace_error("defining a uprobe trace event", e))?;
        Ok(TraceEvent {
            inherited: None,
            name,
        })
    }

    fn id(&self) -> Result<u64> {
        let path = tracefs().join(format!("events/{GROUP}/{}/id", self.name));
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        text.trim()
            .parse()
            .map_err(|_| Error::io(&path, std::io::Error::other("not a number")))
    }
}

impl Drop for TraceEvent {
    fn drop(&mut self) {
        self.inherited = None;
        let line = format!("-:{GROUP}/{}\n", self.name);
        // The perf events closed just before may still be on their way out: try again briefly.
        for _ in 0..50 {
            match write_events(&line) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                _ => return,
            }
        }
    }
}

/// Events left by a pyprobe that was killed (harmless without a perf event, but kept out of
/// the list): those whose pyprobe is gone are removed.
fn sweep_stale() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(text) = std::fs::read_to_string(tracefs().join("uprobe_events")) else {
            return;
        };
        for name in text.lines().filter_map(|l| {
            let name = l.split_whitespace().next()?.split_once(':')?.1;
            name.strip_prefix(GROUP)?.strip_prefix('/')?;
            Some(name.to_string())
        }) {
            let pid = name
                .split_once('/')
                .and_then(|(_, n)| n.strip_prefix('p')?.split_once('_'))
                .and_then(|(p, _)| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = write_events(&format!("-:{name}\n"));
            }
        }
    });
}

/// Where tracefs is, mounting it at its usual place when nothing has (a fresh machine and many
/// containers mount neither tracefs nor debugfs; perf and bpftrace mount it the same way).
fn tracefs() -> PathBuf {
    let mounted = PathBuf::from("/sys/kernel/tracing");
    let debug = PathBuf::from("/sys/kernel/debug/tracing");
    if mounted.join("uprobe_events").exists() {
        return mounted;
    }
    if debug.join("uprobe_events").exists() {
        return debug;
    }
    static MOUNT: std::sync::Once = std::sync::Once::new();
    MOUNT.call_once(|| {
        // SAFETY: mount(2) with NUL-terminated strings we own; failure leaves errors to the
        // open that follows, which names the path it tried.
        unsafe {
            libc::mount(
                c"tracefs".as_ptr(),
                c"/sys/kernel/tracing".as_ptr(),
                c"tracefs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            );
        }
    });
    mounted
}

fn write_events(line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(tracefs().join("uprobe_events"))?;
    f.write_all(line.as_bytes())
}

fn trace_error(what: &str, e: std::io::Error) -> Error {
    Error::bpf(
        format!("{what} in tracefs ({})", tracefs().display()),
        libbpf_rs::Error::from(e),
    )
}

const PERF_TYPE_TRACEPOINT: u32 = 2;
/// `inherit`: children forked later get a copy of the event.
const PERF_ATTR_FLAG_INHERIT: u64 = 1 << 1;

/// Opens the trace event `id` on process `pid`, with `inherit` for its children to come.
fn open_event(id: u64, pid: i32, inherit: bool) -> Result<OwnedFd> {
    let inherit = if inherit { PERF_ATTR_FLAG_INHERIT } else { 0 };
    let attr = PerfEventAttr {
        kind: PERF_TYPE_TRACEPOINT,
        config: id,
        sample_freq: 1,
        flags: inherit,
        wakeup_events: 1,
        ..Default::default()
    };
    perf::perf_event_open(attr, pid, -1).map_err(|e| {
        Error::bpf(
            format!("opening a perf event on PID {pid}"),
            libbpf_rs::Error::from(e),
        )
    })
}

/// libbpf's USDT argument specs (`struct __bpf_usdt_spec` of usdt.bpf.h), written for the
/// probes pyprobe attaches itself: `bpf_usdt_arg` finds a hit's spec by the link's cookie.
pub struct UsdtSpecs {
    map: MapHandle,
    next: u32,
}

/// `struct __bpf_usdt_spec`: 12 argument specs of 24 bytes, the cookie, the argument count.
const SPEC_SIZE: usize = 304;
const ARG_SIZE: usize = 24;
const MAX_ARGS: usize = 12;
const ARG_CONST: u8 = 0;
const ARG_REG: u8 = 1;
const ARG_REG_DEREF: u8 = 2;

impl UsdtSpecs {
    pub fn of(map: MapHandle) -> UsdtSpecs {
        UsdtSpecs { map, next: 0 }
    }

    /// Stores the spec of a probe site's arguments (`8@%r12 -4@-292(%rbp) -4@$5`) and returns
    /// the cookie that names it.
    pub fn add(&mut self, args: &str) -> Result<u64> {
        let spec = encode_spec(args).map_err(|why| {
            Error::ProbeUnavailable(format!(
                "--subprocesses cannot read the USDT arguments {args:?}: {why}"
            ))
        })?;
        let id = self.next;
        self.next += 1;
        self.map
            .update(&id.to_ne_bytes(), &spec, MapFlags::ANY)
            .map_err(|e| Error::bpf("storing a USDT argument spec", e))?;
        Ok(u64::from(id))
    }
}

fn encode_spec(args: &str) -> std::result::Result<Vec<u8>, String> {
    let mut spec = vec![0u8; SPEC_SIZE];
    let args: Vec<&str> = args.split_whitespace().collect();
    if args.len() > MAX_ARGS {
        return Err("more than 12 arguments".into());
    }
    for (i, arg) in args.iter().enumerate() {
        let (size, loc) = arg.split_once('@').ok_or("no size@location")?;
        let size: i32 = size.parse().map_err(|_| "bad size")?;
        let bytes = size.unsigned_abs();
        if ![1, 2, 4, 8].contains(&bytes) {
            return Err(format!("size {size}"));
        }
        let (kind, val_off, reg_off) = if let Some(c) = loc.strip_prefix('$') {
            (ARG_CONST, c.parse::<i64>().map_err(|_| "bad constant")?, 0)
        } else if let Some(r) = loc.strip_prefix('%') {
            (ARG_REG, 0, pt_regs_offset(r).ok_or("unknown register")?)
        } else if let Some((off, r)) = loc.split_once("(%") {
            let r = r.strip_suffix(')').ok_or("bad dereference")?;
            let off = if off.is_empty() {
                0
            } else {
                off.parse::<i64>().map_err(|_| "bad offset")?
            };
            (
                ARG_REG_DEREF,
                off,
                pt_regs_offset(r).ok_or("unknown register")?,
            )
        } else {
            return Err("unsupported location".into());
        };
        let a = &mut spec[i * ARG_SIZE..(i + 1) * ARG_SIZE];
        a[0..8].copy_from_slice(&val_off.to_ne_bytes());
        a[8] = kind;
        a[14..16].copy_from_slice(&reg_off.to_ne_bytes());
        a[16] = u8::from(size < 0);
        a[17] = (64 - 8 * bytes) as u8;
    }
    spec[MAX_ARGS * ARG_SIZE + 8..MAX_ARGS * ARG_SIZE + 10]
        .copy_from_slice(&(args.len() as i16).to_ne_bytes());
    Ok(spec)
}

/// Where x86-64's `struct pt_regs` keeps a register named in any of its widths.
fn pt_regs_offset(reg: &str) -> Option<i16> {
    const REGS: [(&[&str], i16); 17] = [
        (&["r15", "r15d", "r15w", "r15b"], 0),
        (&["r14", "r14d", "r14w", "r14b"], 8),
        (&["r13", "r13d", "r13w", "r13b"], 16),
        (&["r12", "r12d", "r12w", "r12b"], 24),
        (&["rbp", "ebp", "bp", "bpl"], 32),
        (&["rbx", "ebx", "bx", "bl"], 40),
        (&["r11", "r11d", "r11w", "r11b"], 48),
        (&["r10", "r10d", "r10w", "r10b"], 56),
        (&["r9", "r9d", "r9w", "r9b"], 64),
        (&["r8", "r8d", "r8w", "r8b"], 72),
        (&["rax", "eax", "ax", "al"], 80),
        (&["rcx", "ecx", "cx", "cl"], 88),
        (&["rdx", "edx", "dx", "dl"], 96),
        (&["rsi", "esi", "si", "sil"], 104),
        (&["rdi", "edi", "di", "dil"], 112),
        (&["rip", "eip", "ip"], 128),
        (&["rsp", "esp", "sp", "spl"], 152),
    ];
    REGS.iter()
        .find(|(names, _)| names.contains(&reg))
        .map(|(_, off)| *off)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::skel::count::types::{__bpf_usdt_arg_spec, __bpf_usdt_spec};

    #[test]
    fn specs_have_libbpfs_layout() {
        assert_eq!(std::mem::size_of::<__bpf_usdt_spec>(), SPEC_SIZE);
        assert_eq!(std::mem::size_of::<__bpf_usdt_arg_spec>(), ARG_SIZE);
        assert_eq!(std::mem::offset_of!(__bpf_usdt_arg_spec, reg_off), 14);
        assert_eq!(std::mem::offset_of!(__bpf_usdt_arg_spec, arg_bitshift), 17);
        assert_eq!(
            std::mem::offset_of!(__bpf_usdt_spec, arg_cnt),
            MAX_ARGS * ARG_SIZE + 8
        );
    }

    #[test]
    fn debian_and_sid_argument_notes() {
        let s = encode_spec("8@%rbp 8@%r12 -4@%eax").unwrap();
        assert_eq!(&s[8..9], [ARG_REG]);
        assert_eq!(i16::from_ne_bytes([s[14], s[15]]), 32);
        assert_eq!(s[17], 0);
        let eax = &s[2 * ARG_SIZE..3 * ARG_SIZE];
        assert_eq!(
            (i16::from_ne_bytes([eax[14], eax[15]]), eax[16], eax[17]),
            (80, 1, 32)
        );
        let s = encode_spec("-4@-292(%rbp) 8@(%rax) -4@$5").unwrap();
        assert_eq!(i64::from_ne_bytes(s[0..8].try_into().unwrap()), -292);
        assert_eq!(s[8], ARG_REG_DEREF);
        assert_eq!(s[ARG_SIZE + 8], ARG_REG_DEREF);
        assert_eq!(s[2 * ARG_SIZE], 5);
        assert_eq!(s[2 * ARG_SIZE + 8], ARG_CONST);
        assert_eq!(i16::from_ne_bytes([s[296], s[297]]), 3);
        assert!(encode_spec("8@(%rax,%rbx,8)").is_err());
        assert!(encode_spec("3@%rax").is_err());
    }
}
