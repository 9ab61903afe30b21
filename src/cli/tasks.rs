//! `pyprobe tasks`: its arguments.
use clap::Args;

use super::OutputArgs;
use crate::commands::tasks::{self, TasksOptions};
use crate::error::Result;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe tasks --pid 1234                 # the await tree of every pending asyncio task
    pyprobe tasks --pid 1234 --table         # one row per task, as python -m asyncio ps
    pyprobe tasks --pid 1234 --json          # as JSON, for scripts

Each task shows its name, what it awaits (`awaiting task NAME`, `awaiting gather(A, B)`,
`awaiting a Future`, `ready`, `running`) and its coroutines, each `function file:line`; under
the innermost, the tasks it awaits (asyncio.gather, a TaskGroup's tasks, a task awaited).
Example, a TaskGroup of three workers:

    └── (T) Task-1
        └──  main app.py:38
            └──  TaskGroup.__aexit__ .../asyncio/taskgroups.py:121
                ├── (T) consumer
                │   └──  consumer app.py:21
                │       └──  Queue.get .../asyncio/queues.py:158
                ...

Read from the process's memory, without BPF and without stopping it (unless the tasks change
while they are read: then it is held still a few milliseconds), on CPython 3.8 and 3.10-3.15
(3.14+: through the build's own AsyncioDebug offsets, the same tree as asyncio pstree).
The output says what a version cannot show (an await made only by a raw callback or shield).
Formats: text, json.

Needs no root: any user may read their own processes (same uid, where
kernel.yama.ptrace_scope allows); another user's needs root or CAP_SYS_PTRACE.
";

#[derive(Debug, Args, Clone)]
pub struct TasksArgs {
    /// The process to read
    #[arg(short, long)]
    pub pid: i32,
    /// One row per task (id, name, state, coroutines, awaited by), as `python -m asyncio ps`
    #[arg(long)]
    pub table: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl TasksArgs {
    pub fn run(&self) -> Result<()> {
        let opts = TasksOptions { table: self.table };
        let dest = self.output.destination("pyprobe tasks", tasks::FORMATS)?;
        tasks::run(self.pid, &opts, dest)
    }
}
