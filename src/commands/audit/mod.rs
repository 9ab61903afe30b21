//! pyprobe audit: `sys.audit` events (PEP 578) streamed from the audit probe, filtered by name
//! in the kernel (bpf/audit.bpf.c); security-relevant events have their arguments decoded.
mod json;
mod text;
mod tracer;

pub use tracer::AuditTracer;

use crate::abi::c_string;
use crate::abi::limits::ARG_LEN;
use crate::abi::types::{ArgKind, AuditEvent as RawEvent, AuditValue};
use crate::error::Result;
use crate::escape::escape;
use crate::output::formats;
use crate::output::json::Documents;
use crate::session::job::Job;
use crate::session::reported_once;
use crate::trace::glob::Glob;
use crate::trace::losses::Losses;

formats!(pub AuditFormat: Text, Json);

/// An event whose leading arguments are decoded: their names, and which one is a sequence
/// (a command line, an address) whose first items are decoded too.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    pub event: &'static str,
    pub args: &'static [&'static str],
    pub seq_arg: Option<usize>,
}

/// The security-relevant events and their arguments, as CPython documents them
/// (docs.python.org/3/library/audit_events.html).
pub const DECODERS: &[Decoder] = &[
    Decoder {
        event: "open",
        args: &["path", "mode", "flags"],
        seq_arg: None,
    },
    Decoder {
        event: "subprocess.Popen",
        args: &["executable", "args"],
        seq_arg: Some(1),
    },
    Decoder {
        event: "os.system",
        args: &["command"],
        seq_arg: None,
    },
    Decoder {
        event: "os.exec",
        args: &["path", "args"],
        seq_arg: Some(1),
    },
    Decoder {
        event: "socket.connect",
        args: &["socket", "address"],
        seq_arg: Some(1),
    },
    Decoder {
        event: "socket.bind",
        args: &["socket", "address"],
        seq_arg: Some(1),
    },
    Decoder {
        event: "import",
        args: &["module", "filename"],
        seq_arg: None,
    },
    Decoder {
        event: "exec",
        args: &["code"],
        seq_arg: None,
    },
    Decoder {
        event: "compile",
        args: &["source", "filename"],
        seq_arg: None,
    },
];

/// A decoded argument, or why it is not shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgValue {
    Str {
        text: String,
        truncated: bool,
    },
    /// A str that is neither compact ASCII nor has cached UTF-8: not decoded.
    NonAsciiStr {
        chars: u64,
    },
    Bytes {
        text: String,
        truncated: bool,
    },
    Int(i64),
    Bool(bool),
    BigInt,
    None,
    /// A tuple or list of `len` items, the first of which may be decoded.
    Seq {
        type_name: String,
        len: u64,
        items: Vec<ArgValue>,
    },
    Other {
        type_name: String,
    },
    Unreadable,
}

impl ArgValue {
    fn from_raw(v: &AuditValue) -> ArgValue {
        let type_name = c_string(&v.type_name);
        let text = |v: &AuditValue| {
            let n = (v.num.max(0) as usize).min(ARG_LEN - 1);
            v.text[..n].iter().map(|&c| c as u8).collect::<Vec<u8>>()
        };
        match ArgKind(v.kind.into()) {
            ArgKind::ARG_STR => ArgValue::Str {
                text: String::from_utf8_lossy(&text(v)).into_owned(),
                truncated: v.truncated != 0,
            },
            ArgKind::ARG_STR_OTHER => ArgValue::NonAsciiStr {
                chars: v.num as u64,
            },
            ArgKind::ARG_BYTES => ArgValue::Bytes {
                text: text(v)
                    .iter()
                    .flat_map(|&b| std::ascii::escape_default(b))
                    .map(char::from)
                    .collect(),
                truncated: v.truncated != 0,
            },
            ArgKind::ARG_INT if type_name == "bool" => ArgValue::Bool(v.num != 0),
            ArgKind::ARG_INT => ArgValue::Int(v.num),
            ArgKind::ARG_INT_BIG => ArgValue::BigInt,
            ArgKind::ARG_SEQ => ArgValue::Seq {
                type_name,
                len: v.num as u64,
                items: Vec::new(),
            },
            ArgKind::ARG_OTHER if type_name == "NoneType" => ArgValue::None,
            ArgKind::ARG_OTHER => ArgValue::Other { type_name },
            _ => ArgValue::Unreadable,
        }
    }

    /// How a human reads it in the event's detail.
    pub fn display(&self) -> String {
        let cut = |t: &str, truncated: bool| format!("{t}{}", if truncated { "..." } else { "" });
        match self {
            // Text the target passed: escaped (bytes are escaped as they are decoded).
            ArgValue::Str { text, truncated } => cut(&escape(text), *truncated),
            ArgValue::NonAsciiStr { chars } => {
                format!("<non-ASCII str of {chars} characters, not decoded>")
            }
            ArgValue::Bytes { text, truncated } => format!("b'{}'", cut(text, *truncated)),
            ArgValue::Int(n) => n.to_string(),
            ArgValue::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            ArgValue::BigInt => "<int wider than 60 bits, not decoded>".into(),
            ArgValue::None => "None".into(),
            ArgValue::Seq {
                type_name,
                len,
                items,
            } => {
                if items.is_empty() && *len > 0 {
                    return format!("<{} of {len}>", escape(type_name));
                }
                let mut parts: Vec<String> = items.iter().map(|i| i.display()).collect();
                if (items.len() as u64) < *len {
                    parts.push(format!("...{} more", *len - items.len() as u64));
                }
                let (open, close) = if type_name == "tuple" {
                    ("(", ")")
                } else {
                    ("[", "]")
                };
                format!("{open}{}{close}", parts.join(", "))
            }
            ArgValue::Other { type_name } => format!("<{}>", escape(type_name)),
            ArgValue::Unreadable => "<unreadable>".into(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let not_decoded = |t: &str, why: &str| json!({"type": t, "decoded": false, "why": why});
        match self {
            ArgValue::Str {
                text,
                truncated: false,
            } => json!(text),
            ArgValue::Str { text, .. } => json!({"type": "str", "text": text, "truncated": true}),
            ArgValue::NonAsciiStr { chars } => {
                json!({"type": "str", "decoded": false, "why": "non-ASCII", "length": chars})
            }
            ArgValue::Bytes { text, truncated } => {
                json!({"type": "bytes", "text": text, "truncated": truncated})
            }
            ArgValue::Int(n) => json!(n),
            ArgValue::Bool(b) => json!(b),
            ArgValue::BigInt => not_decoded("int", "wider than 60 bits"),
            ArgValue::None => serde_json::Value::Null,
            ArgValue::Seq { len, items, .. } if items.len() as u64 == *len => {
                json!(items.iter().map(|i| i.to_json()).collect::<Vec<_>>())
            }
            ArgValue::Seq {
                type_name,
                len,
                items,
            } => json!({
                "type": type_name,
                "length": len,
                "items": items.iter().map(|i| i.to_json()).collect::<Vec<_>>(),
            }),
            ArgValue::Other { type_name } => json!({ "type": type_name }),
            ArgValue::Unreadable => not_decoded("unknown", "unreadable"),
        }
    }

    /// `host:port` for a socket address tuple (`[host]:port` for IPv6), if it is one.
    fn as_address(&self) -> Option<String> {
        let ArgValue::Seq { items, .. } = self else {
            return None;
        };
        match items.as_slice() {
            [ArgValue::Str { text, .. }, ArgValue::Int(port), ..] if text.contains(':') => {
                Some(format!("[{text}]:{port}"))
            }
            [ArgValue::Str { text, .. }, ArgValue::Int(port), ..] => Some(format!("{text}:{port}")),
            _ => None,
        }
    }
}

/// One `sys.audit` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Since tracing began, nanoseconds.
    pub time_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub name: String,
    pub name_truncated: bool,
    /// Length of the event's argument tuple.
    pub nargs: u32,
    /// The decoded leading arguments, by name (empty for events pyprobe does not decode).
    pub args: Vec<(&'static str, ArgValue)>,
}

impl AuditEvent {
    /// An event as the kernel recorded it; `start_ns` is when tracing began (CLOCK_MONOTONIC).
    pub fn from_raw(r: &RawEvent, start_ns: u64) -> AuditEvent {
        let name = c_string(&r.name);
        let mut args = Vec::new();
        if r.decoded != 0
            && let Some(d) = DECODERS.iter().find(|d| d.event == name)
        {
            let n = d.args.len().min(r.nargs as usize).min(r.args.len());
            for (i, arg) in d.args.iter().enumerate().take(n) {
                let mut v = ArgValue::from_raw(&r.args[i]);
                if d.seq_arg == Some(i)
                    && let ArgValue::Seq { items, .. } = &mut v
                {
                    let k = (r.nitems as usize).min(r.items.len());
                    *items = r.items[..k].iter().map(ArgValue::from_raw).collect();
                }
                args.push((*arg, v));
            }
        }
        AuditEvent {
            time_ns: r.ts.saturating_sub(start_ns),
            pid: r.pid,
            tid: r.tid,
            name,
            name_truncated: r.name_truncated != 0,
            nargs: r.nargs,
            args,
        }
    }

    /// The decoded arguments as `name=value`, an address as `host:port`.
    pub fn detail(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| {
                let shown = match (*k, v.as_address()) {
                    ("address", Some(a)) => a,
                    _ => v.display(),
                };
                format!("{k}={shown}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a session saw: how many events, what was lost, and whether arguments were decoded.
#[derive(Debug, Clone, Default)]
pub struct AuditSummary {
    pub events: u64,
    pub losses: Losses,
    /// Arguments are decoded on this version (its object layouts are known).
    pub decodes: bool,
}

reported_once!(AuditSummary);

pub fn run(job: Job, events: &[Glob]) -> Result<()> {
    job.trace(
        "sys.audit events",
        |target| AuditTracer::attach(target, events),
        |format, w| match format {
            AuditFormat::Json => Box::new(Documents::new(w, json::event, json::summary)),
            AuditFormat::Text => Box::new(text::Table::new(w)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> ArgValue {
        ArgValue::Str {
            text: t.into(),
            truncated: false,
        }
    }

    #[test]
    fn every_decoder_fits_the_kernel_tables() {
        use crate::abi::limits::{AUDIT_ARGS, EVENT_LEN, MAX_DECODED_EVENTS};
        assert!(DECODERS.len() <= MAX_DECODED_EVENTS);
        for d in DECODERS {
            assert!(
                d.args.len() <= AUDIT_ARGS && d.event.len() < EVENT_LEN,
                "{}",
                d.event
            );
            assert!(d.seq_arg.is_none_or(|i| i < d.args.len()));
        }
    }

    #[test]
    fn details_read_like_the_call() {
        let addr = ArgValue::Seq {
            type_name: "tuple".into(),
            len: 2,
            items: vec![s("127.0.0.1"), ArgValue::Int(8080)],
        };
        let e = AuditEvent {
            time_ns: 0,
            pid: 1,
            tid: 1,
            name: "socket.connect".into(),
            name_truncated: false,
            nargs: 2,
            args: vec![
                (
                    "socket",
                    ArgValue::Other {
                        type_name: "socket".into(),
                    },
                ),
                ("address", addr.clone()),
            ],
        };
        assert_eq!(e.detail(), "socket=<socket> address=127.0.0.1:8080");
        assert_eq!(addr.to_json(), serde_json::json!(["127.0.0.1", 8080]));
        let argv = ArgValue::Seq {
            type_name: "list".into(),
            len: 9,
            items: vec![s("/bin/echo"), s("hi")],
        };
        assert_eq!(argv.display(), "[/bin/echo, hi, ...7 more]");
        assert_eq!(argv.to_json()["length"], 9);
        assert_eq!(
            ArgValue::NonAsciiStr { chars: 5 }.display(),
            "<non-ASCII str of 5 characters, not decoded>"
        );
        let cmd = ArgValue::Bytes {
            text: "true\\n".into(),
            truncated: false,
        };
        assert_eq!(cmd.display(), "b'true\\n'");
    }
}
