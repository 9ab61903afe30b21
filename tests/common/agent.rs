//! The agent's test harness: `pyprobe agent` on a free loopback port, Debian's Prometheus
//! scraping it, and workloads under a command name of their own (so that the agent can be told
//! to leave every other Python process on the machine alone).
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::{Guard, Python, TempDir, pyprobe_bin, script};

/// The command name the tests' workloads run under, and the agent flags that keep it to them.
pub const COMM: &str = "agentwork";
pub const ONLY_OURS: [&str; 2] = ["--exclude-comm", "python*"];

/// A running agent: its port, and what it said on stderr so far.
pub struct Agent {
    pub guard: Guard,
    pub port: u16,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    /// Starts `pyprobe agent ARGS` on a free loopback port (unless ARGS name --listen) and
    /// returns once it serves.
    pub fn start(args: &[&str]) -> Agent {
        let mut cmd = Command::new(pyprobe_bin());
        cmd.arg("agent");
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut guard = Guard::spawn(&mut cmd);
        let stderr = guard.child().stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let keep = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                if let Some(port) = banner_port(&line) {
                    return Agent {
                        guard,
                        port,
                        stderr: lines,
                    };
                }
            } else if !guard.alive() {
                break;
            }
        }
        panic!(
            "the agent did not start serving:\n{}",
            lines.lock().unwrap().join("\n")
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.port)
    }

    pub fn scrape(&self) -> String {
        curl(&[&self.url()])
    }

    pub fn said(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until the agent has said `needle` on its stderr, failing after `limit`.
    pub fn wait_said(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let said = self.said();
            if said.contains(needle) {
                return;
            }
            assert!(Instant::now() < deadline, "no {needle:?} in:\n{said}");
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a scrape has a series of `name` with these labels, and returns its value.
    pub fn wait_for(&self, name: &str, labels: &[(&str, &str)], limit: Duration) -> f64 {
        self.scrape_until(limit, &format!("no {name}{labels:?}"), |text| {
            sample(text, name, labels)
        })
    }

    /// Waits until a scrape has a series of `name` with these labels at `want`, and returns
    /// that scrape's text.
    pub fn wait_value(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        want: f64,
        limit: Duration,
    ) -> String {
        self.scrape_until(limit, &format!("{name}{labels:?} not {want}"), |text| {
            (sample(text, name, labels) == Some(want)).then(|| text.to_string())
        })
    }

    /// Scrapes every 200 ms until `found` finds something in the text, within `limit`; else
    /// fails saying `what`, the last scrape and what the agent said.
    fn scrape_until<T>(&self, limit: Duration, what: &str, found: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.scrape();
            if let Some(v) = found(&text) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what} after {limit:?}:\n{text}\nthe agent said:\n{}",
                self.said()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends SIGTERM and waits for the agent to end; its exit status and last words.
    /// `terminate`, which must end well: what the agent said.
    pub fn stop(self) -> String {
        let (ok, said) = self.terminate();
        assert!(ok, "{said}");
        said
    }

    pub fn terminate(mut self) -> (bool, String) {
        let pid = self.guard.pid();
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Ok(Some(st)) = self.guard.child().try_wait() {
                break Some(st);
            }
            if Instant::now() >= deadline {
                break None;
            }
            thread::sleep(Duration::from_millis(50));
        };
        thread::sleep(Duration::from_millis(100));
        (status.is_some_and(|s| s.success()), self.said())
    }
}

fn banner_port(line: &str) -> Option<u16> {
    let rest = line.split("://127.0.0.1:").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

/// `curl -s ARGS`, its stdout.
pub fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the sample `name{...}` whose labels include `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.rsplit_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| set.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// A self-signed certificate for 127.0.0.1 (server.crt, server.key) and a web config file
/// (web.yml) that serves TLS with it and lets in user prometheus with password s3cret, in a
/// directory of its own named after `name`: the directory (removed when dropped), the config's
/// path and the certificate's (what a client trusts).
pub fn tls_web_config(name: &str) -> (super::TempDir, String, String) {
    let tmp = super::TempDir::new(name);
    let dir = tmp.path();
    super::output_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .args(["-keyout", "server.key", "-out", "server.crt"])
            .current_dir(dir),
    );
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();
    let path = |file: &str| dir.join(file).to_string_lossy().into_owned();
    let (config, ca) = (path("web.yml"), path("server.crt"));
    (tmp, config, ca)
}

/// A free loopback port (bound, then released for the caller).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's Prometheus, scraping one target every second, its data in a directory of its own.
pub struct Prometheus {
    _guard: Guard,
    pub port: u16,
    /// Its configuration and data (dropped after the guard has stopped it).
    _dir: TempDir,
}

impl Prometheus {
    pub fn start(target_port: u16) -> Prometheus {
        Prometheus::start_with_rules(target_port, &[])
    }

    /// The same, evaluating these rule files every second.
    pub fn start_with_rules(target_port: u16, rule_files: &[&str]) -> Prometheus {
        let tmp = TempDir::new("prometheus");
        let dir = tmp.path();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: pyprobe\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target_port}']\n{}",
                rules(rule_files)
            ),
        )
        .unwrap();
        let port = free_port();
        let guard = Guard::spawn(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let p = Prometheus {
            _guard: guard,
            port,
            _dir: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !curl(&[&format!("http://127.0.0.1:{port}/-/ready")]).contains("Ready") {
            assert!(Instant::now() < deadline, "Prometheus did not get ready");
            thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// An instant query through the HTTP API: each series' labels and value.
    pub fn query(&self, expr: &str) -> Vec<(HashMap<String, String>, f64)> {
        let body = curl(&[
            "--get",
            "--data-urlencode",
            &format!("query={expr}"),
            &format!("http://127.0.0.1:{}/api/v1/query", self.port),
        ]);
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("Prometheus answered {body:?}: {e}"));
        assert_eq!(v["status"], "success", "{body}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect();
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// Waits until `expr` has exactly one series equal to `want`; returns what it had last.
    pub fn wait_value(&self, expr: &str, want: f64, limit: Duration) -> Option<f64> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.query(expr);
            let last = got.first().map(|(_, v)| *v);
            if got.len() == 1 && last == Some(want) {
                return last;
            }
            if Instant::now() >= deadline {
                return last;
            }
            thread::sleep(Duration::from_millis(300));
        }
    }

    /// Waits until `expr` has no series (a target's series gone stale); true if it got there.
    pub fn wait_empty(&self, expr: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.query(expr).is_empty() {
                return true;
            }
            thread::sleep(Duration::from_millis(300));
        }
        false
    }
}

/// The `rule_files:` section naming these files (none: nothing).
fn rules(files: &[&str]) -> String {
    if files.is_empty() {
        return String::new();
    }
    let list: String = files.iter().map(|f| format!("  - '{f}'\n")).collect();
    format!("rule_files:\n{list}")
}

/// agent_work.py under the command name COMM, on `python`: started, "ready".
pub struct Workload {
    pub guard: Guard,
    lines: mpsc::Receiver<String>,
}

/// What a workload reported of itself.
#[derive(Debug, Clone)]
pub struct Own {
    /// Collections per generation made between "go" and the report.
    pub collections: Vec<u64>,
    /// The same, since the interpreter started.
    pub collections_since_start: Vec<u64>,
    /// Objects collected (collected + uncollectable) per generation in the same window...
    pub collected: Vec<u64>,
    /// ...and since the interpreter started.
    pub collected_since_start: Vec<u64>,
    pub calls: u64,
    /// Modules it loaded.
    pub imports: u64,
}

impl Workload {
    pub fn start(python: &Python, args: &[&str]) -> Workload {
        Self::start_script(python, "agent_work.py", args)
    }

    /// Another script of tests/scripts under the same name (comm) and protocol ("ready").
    pub fn start_script(python: &Python, script: &str, args: &[&str]) -> Workload {
        let dir = format!("/tmp/pyprobe-agent-{}", std::process::id());
        let inside = format!("{dir}/{COMM}");
        let link = PathBuf::from(format!("{}{inside}", python.root.unwrap_or("")));
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&python.exe, &link).unwrap();
        let named = Python {
            exe: inside,
            ..python.clone()
        };
        let (guard, lines) = super::Workload::script(script)
            .on(&named)
            .args(args)
            .quiet()
            .ready_lines();
        Workload { guard, lines }
    }

    pub fn pid(&self) -> i32 {
        self.guard.pid()
    }

    /// Sends a line and returns the JSON line the workload answers with.
    pub fn ask(&mut self, line: &str) -> serde_json::Value {
        self.guard.send_line(line);
        let answer = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the workload answers");
        serde_json::from_str(&answer).unwrap()
    }

    /// "go": runs the work and returns what the workload counted of itself.
    pub fn go(&mut self) -> Own {
        let v = self.ask("go");
        let mut own = own(&v);
        own.calls = v["calls"].as_u64().unwrap_or(0);
        own.imports = v["imports"].as_u64().unwrap_or(0);
        own
    }
}

/// Collections and collected objects between two gc.get_stats() in a workload's JSON line.
pub fn own(v: &serde_json::Value) -> Own {
    let stat = |when: &str, g: usize, field: &str| v[when][g][field].as_u64().unwrap();
    let gens = 0..3;
    Own {
        collections: gens
            .clone()
            .map(|g| stat("after", g, "collections") - stat("before", g, "collections"))
            .collect(),
        collections_since_start: gens
            .clone()
            .map(|g| stat("after", g, "collections"))
            .collect(),
        collected: gens
            .clone()
            .map(|g| {
                let total = |w| stat(w, g, "collected") + stat(w, g, "uncollectable");
                total("after") - total("before")
            })
            .collect(),
        collected_since_start: gens
            .map(|g| stat("after", g, "collected") + stat("after", g, "uncollectable"))
            .collect(),
        calls: 0,
        imports: 0,
    }
}

pub fn script_path() -> String {
    script("agent_work.py")
}
