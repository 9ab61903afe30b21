//! The script a target runs to switch its trampoline on, and the files that carry it there and
//! bring its answer back, in the target's own /tmp.
use std::fs::{self, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::target::{Dir, Target};

/// What the target runs: switches the trampoline on unless it is on (never off, see
/// `super::activate_within`), prints nothing (errors in it would go to the target's stderr), and
/// reports to a status file it creates exclusively, /tmp being shared.
const SCRIPT: &str = r#"def _pyprobe_activate(status_path):
    import sys
    try:
        if not sys.is_stack_trampoline_active():
            sys.activate_stack_trampoline("perf")
        if sys.is_stack_trampoline_active():
            status = "ok"
        else:
            status = "error the trampoline is still off after activate_stack_trampoline"
    except Exception as e:
        status = "error %s: %s" % (type(e).__name__, e)
    try:
        with open(status_path, "x") as f:
            f.write(status)
    except OSError:
        pass


_pyprobe_activate(STATUS_PATH)
"#;

fn activation_script(status_path: &str) -> String {
    // The path is ours, made of characters that need no escaping in a Python string.
    SCRIPT.replace("STATUS_PATH", &format!("\"{status_path}\""))
}

/// The activation script and its status file in the target's /tmp, under a name no one can
/// guess, both removed when dropped. Created, read and removed through the target's /tmp held
/// open, resolved inside its root: a link the target planted leads nowhere else.
pub struct ScriptFiles {
    /// The script as the target opens it (inside its root).
    pub script: String,
    tmp: Dir,
    script_name: String,
    status_name: String,
}

/// A status is a word and an exception's message.
const STATUS_LIMIT: u64 = 4096;

impl ScriptFiles {
    pub fn create(target: &Target) -> Result<ScriptFiles> {
        let tmp = target.root.dir("/tmp").map_err(|e| Error::UnsafeFile {
            path: format!("PID {}'s /tmp", target.pid),
            why: e.to_string(),
        })?;
        let name = format!(".pyprobe-trampoline-{}-{}", target.pid, random_hex()?);
        let script_name = format!("{name}.py");
        let status_name = format!("{name}.status");
        let status = format!("/tmp/{status_name}");
        let failed = |e: std::io::Error| Error::UnsafeFile {
            path: format!("PID {}'s /tmp/{script_name}", target.pid),
            why: e.to_string(),
        };
        // Exclusive: never write through a file or a link someone planted under the name.
        let mut file = tmp.create_new(&script_name, 0o644).map_err(failed)?;
        let files = ScriptFiles {
            script: format!("/tmp/{script_name}"),
            tmp,
            script_name: script_name.clone(),
            status_name,
        };
        // The target may run as another user: readable by all, whatever our umask.
        file.set_permissions(Permissions::from_mode(0o644))
            .and_then(|()| file.write_all(activation_script(&status).as_bytes()))
            .map_err(failed)?;
        Ok(files)
    }

    /// What the script reported, once it has.
    pub fn status(&self) -> Option<String> {
        let bytes = self.tmp.read(&self.status_name, STATUS_LIMIT).ok()?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (!text.is_empty()).then_some(text)
    }
}

impl Drop for ScriptFiles {
    fn drop(&mut self) {
        self.tmp.remove_regular(&self.script_name);
        self.tmp.remove_regular(&self.status_name);
    }
}

/// 64 random bits in hex, for file names in a shared directory.
fn random_hex() -> Result<String> {
    let source = Path::new("/dev/urandom");
    let mut bytes = [0u8; 8];
    fs::File::open(source)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io(source, e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_reports_to_its_status_file_and_never_switches_off() {
        let s = activation_script("/tmp/.pyprobe-trampoline-1-00ff.status");
        assert!(s.ends_with("_pyprobe_activate(\"/tmp/.pyprobe-trampoline-1-00ff.status\")\n"));
        assert!(s.contains("if not sys.is_stack_trampoline_active():"));
        assert!(s.contains("open(status_path, \"x\")"));
        assert!(!s.contains("deactivate"));
        assert!(!s.contains("print"));
    }

    #[test]
    fn random_names_differ() {
        let (a, b) = (random_hex().unwrap(), random_hex().unwrap());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
