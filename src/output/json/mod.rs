//! The JSON format's shared part: how documents are written, and losses keyed (each command's
//! documents and streamed objects are its own json.rs).
use std::io::{self, Write};

use serde_json::{Map, Value, json};

use crate::output::{Never, Output, Window};
use crate::trace::losses::Losses;

/// Every loss a tool can have, by name, zero or not, with the limits they run into.
pub fn losses(losses: &Losses) -> Value {
    let mut m = Map::new();
    for l in &losses.0 {
        m.insert(l.loss.key().into(), json!(l.count));
        if let (Some(k), Some(limit)) = (l.loss.limit_key(), l.limit) {
            m.insert(k.into(), json!(limit));
        }
    }
    Value::Object(m)
}

/// Makes a report's document (the window tells an --interval report from the last).
type ReportDocument<R> = Box<dyn Fn(&R, &Window) -> Value>;

/// A command's JSON as written: a line for each streamed event and a document for each report,
/// each made by the command's own function (its json.rs); the commands differ only in those.
pub struct Documents<E, R> {
    w: Box<dyn Write>,
    event: fn(&E) -> Value,
    report: ReportDocument<R>,
}

impl<E, R> Documents<E, R> {
    pub fn new(
        w: Box<dyn Write>,
        event: fn(&E) -> Value,
        report: impl Fn(&R, &Window) -> Value + 'static,
    ) -> Documents<E, R> {
        Documents {
            w,
            event,
            report: Box::new(report),
        }
    }
}

impl<R> Documents<Never, R> {
    /// For a command that streams nothing.
    pub fn reports(
        w: Box<dyn Write>,
        report: impl Fn(&R, &Window) -> Value + 'static,
    ) -> Documents<Never, R> {
        Documents::new(w, |never| match *never {}, report)
    }
}

impl<E, R> Output<E, R> for Documents<E, R> {
    fn event(&mut self, e: &E) -> io::Result<()> {
        writeln!(self.w, "{}", (self.event)(e))
    }

    fn report(&mut self, r: &R, window: &Window) -> io::Result<()> {
        writeln!(self.w, "{}", (self.report)(r, window))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
