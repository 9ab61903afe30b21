//! record as pprof: a gzipped `profile.proto` (github.com/google/pprof, proto/profile.proto)
//! that `go tool pprof`, Pyroscope and Parca read. Encoded here: the six messages it needs are
//! a few varints and length-delimited fields each, which a protobuf code generator (and its
//! build-time protoc) would not make shorter; the tests decode the file with the official
//! protobuf runtime compiled from profile.proto.
use std::collections::HashMap;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::output::{Never, Output, Window};
use crate::sample::Profile;

pub struct Pprof {
    w: Box<dyn Write>,
    per_thread: bool,
}

impl Pprof {
    pub fn new(w: Box<dyn Write>, per_thread: bool) -> Pprof {
        Pprof { w, per_thread }
    }
}

/// Protobuf wire format: a message's bytes, field by field.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    /// An integer field (int64 and uint64 encode alike); zero is the default and left out.
    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        if v != 0 {
            self.key(field, 0);
            self.varint(v as u64);
        }
        self
    }

    fn bytes(&mut self, field: u32, data: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
        self
    }

    fn message(&mut self, field: u32, m: &Message) -> &mut Self {
        self.bytes(field, &m.0)
    }

    fn packed(&mut self, field: u32, values: &[i64]) -> &mut Self {
        let mut inner = Message::default();
        for &v in values {
            inner.varint(v as u64);
        }
        self.bytes(field, &inner.0)
    }
}

/// The string table: index 0 is "".
struct Strings {
    index: HashMap<String, i64>,
    table: Vec<String>,
}

impl Strings {
    fn new() -> Strings {
        Strings {
            index: HashMap::from([(String::new(), 0)]),
            table: vec![String::new()],
        }
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// profile.proto's field numbers.
mod field {
    pub const SAMPLE_TYPE: u32 = 1;
    pub const SAMPLE: u32 = 2;
    pub const LOCATION: u32 = 4;
    pub const FUNCTION: u32 = 5;
    pub const STRING_TABLE: u32 = 6;
    pub const TIME_NANOS: u32 = 9;
    pub const DURATION_NANOS: u32 = 10;
    pub const PERIOD_TYPE: u32 = 11;
    pub const PERIOD: u32 = 12;
}

/// The uncompressed profile.proto bytes of a profile.
pub fn encode(p: &Profile, per_thread: bool, now: SystemTime) -> Vec<u8> {
    encode_labelled(p, per_thread, now, &[])
}

/// The same, with string labels of each sample (`labels[i]` for `p.counts[i]`, where given):
/// the agent's pid, comm, python_version and container.
pub fn encode_labelled(
    p: &Profile,
    per_thread: bool,
    now: SystemTime,
    labels: &[Vec<(&str, String)>],
) -> Vec<u8> {
    let mut strings = Strings::new();
    let mut out = Message::default();
    let period_ns = 1_000_000_000 / i64::from(p.rate_hz.max(1));
    let clock = if p.idle { "wall" } else { "cpu" };
    let value_type = |strings: &mut Strings, t: &str, unit: &str| {
        let mut m = Message::default();
        m.int(1, strings.id(t)).int(2, strings.id(unit));
        m
    };
    let samples_type = value_type(&mut strings, "samples", "count");
    let time_type = value_type(&mut strings, clock, "nanoseconds");
    out.message(field::SAMPLE_TYPE, &samples_type)
        .message(field::SAMPLE_TYPE, &time_type);

    // Functions by (name, file, def line); locations by (function, line).
    let mut functions: HashMap<(String, String, i32), i64> = HashMap::new();
    let mut locations: HashMap<(i64, i32), i64> = HashMap::new();
    let mut defs = Message::default();
    let mut location_of = |strings: &mut Strings, name: &str, file: &str, def: i32, line: i32| {
        let next = functions.len() as i64 + 1;
        let f = *functions
            .entry((name.to_string(), file.to_string(), def))
            .or_insert_with(|| {
                let mut m = Message::default();
                m.int(1, next)
                    .int(2, strings.id(name))
                    .int(3, strings.id(name))
                    .int(4, strings.id(file))
                    .int(5, i64::from(def));
                defs.message(field::FUNCTION, &m);
                next
            });
        let next = locations.len() as i64 + 1;
        *locations.entry((f, line)).or_insert_with(|| {
            let mut l = Message::default();
            l.int(1, f).int(2, i64::from(line));
            let mut m = Message::default();
            m.int(1, next).message(4, &l);
            defs.message(field::LOCATION, &m);
            next
        })
    };
    for (i, c) in p.counts.iter().enumerate() {
        let mut ids: Vec<i64> = match &c.stack {
            Some(s) => s
                .frames
                .iter()
                .map(|f| location_of(&mut strings, &f.name, &f.file, f.def_line, f.line))
                .collect(),
            None => vec![location_of(&mut strings, "<no Python frame>", "", 0, 0)],
        };
        if per_thread {
            let root = format!("thread {} {}", c.tid, c.thread);
            ids.push(location_of(&mut strings, &root, "", 0, 0));
        }
        let mut tid_label = Message::default();
        tid_label
            .int(1, strings.id("thread_id"))
            .int(3, i64::from(c.tid));
        let mut name_label = Message::default();
        name_label
            .int(1, strings.id("thread_name"))
            .int(2, strings.id(&c.thread));
        let mut s = Message::default();
        s.packed(1, &ids)
            .packed(2, &[c.count as i64, c.count as i64 * period_ns])
            .message(3, &tid_label)
            .message(3, &name_label);
        for (key, value) in labels.get(i).into_iter().flatten() {
            let mut l = Message::default();
            l.int(1, strings.id(key)).int(2, strings.id(value));
            s.message(3, &l);
        }
        out.message(field::SAMPLE, &s);
    }
    out.0.extend_from_slice(&defs.0);
    let period_type = value_type(&mut strings, clock, "nanoseconds");
    for s in &strings.table {
        out.bytes(field::STRING_TABLE, s.as_bytes());
    }
    let duration = p.elapsed.as_nanos() as i64;
    let end = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    out.int(field::TIME_NANOS, end - duration)
        .int(field::DURATION_NANOS, duration)
        .message(field::PERIOD_TYPE, &period_type)
        .int(field::PERIOD, period_ns);
    out.0
}

impl Output<Never, Profile> for Pprof {
    fn report(&mut self, p: &Profile, _: &Window) -> io::Result<()> {
        let bytes = encode(p, self.per_thread, SystemTime::now());
        let mut gz = GzEncoder::new(&mut self.w, Compression::default());
        gz.write_all(&bytes)?;
        gz.finish().map(drop)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::tests::profile;

    #[test]
    fn varints_as_protobuf_writes_them() {
        let mut m = Message::default();
        m.varint(1);
        m.varint(300);
        assert_eq!(m.0, [1, 0xac, 0x02]);
        let mut m = Message::default();
        m.int(2, 0).int(3, 150);
        assert_eq!(m.0, [0x18, 0x96, 0x01], "zero fields are left out");
    }

    #[test]
    fn strings_and_functions_are_listed_once() {
        let bytes = encode(&profile(), false, UNIX_EPOCH);
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("burn").count(), 1);
        assert_eq!(text.matches("/w/app.py").count(), 1);
        assert!(text.contains("samples") && text.contains("nanoseconds"));
    }
}
