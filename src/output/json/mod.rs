//! The JSON format: one document per report and one object per streamed event, one file per
//! command; losses are keyed here.
pub mod audit;
pub mod count;
pub mod exceptions;
pub mod flow;
pub mod gc;
pub mod imports;
pub mod lines;
pub mod probes;
pub mod profile;
pub mod stacks;

use serde_json::{Map, Value, json};

use crate::losses::Losses;

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
