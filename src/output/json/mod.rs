//! The JSON format's shared part: losses are keyed here (each command's documents and streamed
//! objects are its own json.rs).

use serde_json::{Map, Value, json};

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
