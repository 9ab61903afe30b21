//! The commands, one folder each: its options, its report types, its `run`, its tracer and
//! its own text and JSON formatters. `tools` lists them all with what each needs from an
//! interpreter.
pub mod agent;
pub mod audit;
pub mod count;
pub mod exceptions;
pub mod floor;
pub mod flow;
pub mod gc;
pub mod imports;
pub mod lines;
pub mod probes;
pub mod record;
pub mod stacks;
pub mod tasks;
pub mod tools;
pub mod top;
