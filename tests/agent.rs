//! `pyprobe agent` against a real Prometheus (Debian's package): exact GC collections and
//! filtered call counts of several processes read back through Prometheus' HTTP API, a process
//! started later, one that exits, one in the sid chroot; bad scrapes; the overhead budget;
//! TLS and basic auth; SIGTERM.
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::agent::{Agent, ONLY_OURS, Prometheus, Workload, curl, sample, tls_web_config};
use common::{Python, TempDir, assert_clean_failure, semaphores, testbed};

/// One agent at a time: each is system-wide, and one's probes would show in another's checks.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

const WAIT: Duration = Duration::from_secs(20);

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = ONLY_OURS.to_vec();
    v.extend_from_slice(extra);
    v
}

fn gc_semaphore(pid: i32) -> u16 {
    pyprobe::target::Target::from_pid(pid)
        .unwrap()
        .semaphore_value("gc__start")
        .unwrap()
}

#[test]
fn prometheus_reads_exact_counts_of_every_process() {
    let _one = serial();
    let debian = Python::debian();
    let mut early = Workload::start(&debian, &["3,2,1", "1500"]);
    let mut chrooted = Workload::start(&Python::sid("3.14"), &["0,0,3", "0"]);
    // Durations too: on the shared probe (--latency).
    let agent = Agent::start(&args(&[
        "--filter",
        "agent_handle",
        "--latency",
        "--max-overhead",
        "1000",
    ]));
    let prom = Prometheus::start(agent.port);
    let (e_pid, s_pid) = (early.pid().to_string(), chrooted.pid().to_string());
    agent.wait_for("pyprobe_function_probes_active", &[("pid", &e_pid)], WAIT);
    agent.wait_for("python_gc_collections_total", &[("pid", &s_pid)], WAIT);

    // Started after the agent: found within a scan, and counted from its first collection.
    let mut late = Workload::start(&debian, &["1,1,2", "2000"]);
    let l_pid = late.pid().to_string();
    agent.wait_for("pyprobe_function_probes_active", &[("pid", &l_pid)], WAIT);

    let e = early.go();
    let s = chrooted.go();
    let l = late.go();
    assert_eq!(
        (e.collections.clone(), e.calls, e.imports),
        (vec![3, 2, 1], 1500, 3)
    );
    assert_eq!(s.collections[2], 3);
    assert_eq!((l.collections.clone(), l.calls), (vec![1, 1, 2], 2000));

    let exact = |expr: String, want: u64| {
        let got = prom.wait_value(&expr, want as f64, WAIT);
        assert_eq!(
            got,
            Some(want as f64),
            "{expr}; the agent said:\n{}",
            agent.said()
        );
    };
    for g in 0..3 {
        let at = |pid: &str, metric: &str| {
            format!("{metric}{{job=\"pyprobe\",pid=\"{pid}\",generation=\"{g}\"}}")
        };
        // Attached after the early process started: its window; the late one: its whole life.
        for (pid, metric, want) in [
            (&e_pid, "python_gc_collections_total", e.collections[g]),
            (&e_pid, "python_gc_pause_seconds_count", e.collections[g]),
            (&e_pid, "python_gc_collected_objects_total", e.collected[g]),
            (
                &l_pid,
                "python_gc_collections_total",
                l.collections_since_start[g],
            ),
            (
                &l_pid,
                "python_gc_collected_objects_total",
                l.collected_since_start[g],
            ),
        ] {
            exact(at(pid, metric), want);
        }
    }
    // The early process's imports since the agent came: the chain of three.
    exact(
        format!("python_imports_total{{pid=\"{e_pid}\"}}"),
        e.imports,
    );
    exact(
        format!("python_import_duration_seconds_count{{pid=\"{e_pid}\"}}"),
        e.imports,
    );
    let calls = |pid: &str| {
        format!("python_function_calls_total{{pid=\"{pid}\",function=\"agent_handle\"}}")
    };
    exact(calls(&e_pid), 1500);
    exact(calls(&l_pid), 2000);
    exact(
        format!(
            "python_function_duration_seconds_count{{pid=\"{l_pid}\",function=\"agent_handle\"}}"
        ),
        2000,
    );
    assert!(
        prom.query("python_function_calls_total{function=\"agent_other\"}")
            .is_empty(),
        "only --filter's functions are exported"
    );

    // The sid chroot's process: found through /proc/PID/root, labelled with its root and
    // version, its collections counted; its functions refused with the reason (3.14 without
    // the perf trampoline).
    exact(
        format!("python_gc_collections_total{{pid=\"{s_pid}\",generation=\"2\"}}"),
        3,
    );
    let sid = prom.query(&format!(
        "python_gc_collections_total{{pid=\"{s_pid}\",generation=\"2\"}}"
    ));
    assert_eq!(sid[0].0["container"], testbed("sid"));
    assert!(
        sid[0].0["python_version"].starts_with("3.14."),
        "{:?}",
        sid[0].0
    );
    assert_eq!(sid[0].0["comm"], common::agent::COMM);
    let refused = prom.query(&format!(
        "pyprobe_unsupported_processes{{pid=\"{s_pid}\",what=\"functions\"}}"
    ));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].0["reason"].contains("trampoline"), "{refused:?}");

    // An exited process stops being exported; Prometheus marks its series stale.
    early.guard.send_line("exit");
    let gone = format!("python_gc_collections_total{{pid=\"{e_pid}\"}}");
    assert!(prom.wait_empty(&gone, WAIT), "{gone} still there");
    assert!(
        prom.query(&format!("python_gc_collections_total{{pid=\"{l_pid}\"}}"))
            .len()
            == 3,
        "the others stay"
    );
    assert!(
        agent
            .said()
            .contains(&format!("PID {e_pid} (agentwork) exited"))
    );

    // SIGTERM: a clean end, every probe gone, every semaphore back to 0.
    let late_pid = late.pid();
    assert!(semaphores(late_pid).iter().any(|(_, v)| *v > 0));
    assert_eq!(gc_semaphore(late_pid), 1);
    let said = agent.stop();
    assert!(said.contains("stopped: probes detached"), "{said}");
    assert!(semaphores(late_pid).iter().all(|(_, v)| *v == 0));
    assert_eq!(gc_semaphore(late_pid), 0);
}

#[test]
fn bad_scrapes_neither_stop_it_nor_lose_counts() {
    let _one = serial();
    let mut w = Workload::start(&Python::debian(), &["0,0,0", "0", "busy"]);
    let mut agent = Agent::start(&args(&[]));
    let pid = w.pid().to_string();
    agent.wait_for("python_gc_collections_total", &[("pid", &pid)], WAIT);
    w.go();
    let addr = format!("127.0.0.1:{}", agent.port);

    // A client that sends requests and never reads the answers, kept open throughout.
    let mut never_reads = TcpStream::connect(&addr).unwrap();
    let request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    let _ = never_reads.write_all(request.as_bytes());

    let mut made = 0;
    for round in 0..3 {
        // 1000 connections at once, each with half a request, held for a second.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut held = Vec::new();
        for _ in 0..1000 {
            if Instant::now() >= deadline {
                break;
            }
            if let Ok(mut c) =
                TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1))
            {
                let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost:");
                held.push(c);
            }
        }
        // Garbage of every kind.
        for junk in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"NOT HTTP AT ALL\r\n\r\n",
            b"GET /metrics HTTP/9.9\r\n\r\n",
            b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            &[0u8; 4096][..],
        ] {
            if let Ok(mut c) = TcpStream::connect(&addr) {
                let _ = c.write_all(junk);
            }
        }
        let own = common::agent::own(&w.ask("5"));
        made += own.collections[2];
        std::thread::sleep(Duration::from_secs(1));
        drop(held);
        assert!(
            agent.guard.child().try_wait().unwrap().is_none(),
            "round {round}"
        );
    }
    assert_eq!(made, 15);
    // Still serving, and nothing lost.
    let deadline = Instant::now() + WAIT;
    loop {
        let got = sample(
            &agent.scrape(),
            "python_gc_collections_total",
            &[("pid", &pid), ("generation", "2")],
        );
        if got == Some(made as f64) {
            break;
        }
        assert!(Instant::now() < deadline, "got {got:?}, want {made}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(curl(&[&format!("http://{addr}/healthz")]), "ok\n");
    agent.stop();
}

#[test]
fn a_process_over_budget_loses_its_function_probes_only() {
    let _one = serial();
    let mut w = Workload::start(&Python::debian(), &["0,0,0", "0", "busy"]);
    let agent = Agent::start(&args(&["--filter", "agent_handle"]));
    let pid = w.pid().to_string();
    agent.wait_for("pyprobe_function_probes_active", &[("pid", &pid)], WAIT);
    w.go(); // from here it calls agent_handle as fast as it can
    agent.wait_said(
        &format!("PID {pid} (agentwork): function probes stopped"),
        WAIT,
    );
    let text = agent.scrape();
    let active = sample(&text, "pyprobe_function_probes_active", &[("pid", &pid)]);
    let overhead = sample(&text, "pyprobe_overhead_ratio", &[("pid", &pid)]).unwrap();
    let calls = sample(&text, "python_function_calls_total", &[("pid", &pid)]).unwrap();
    assert_eq!(active, Some(0.0));
    assert!(overhead > 0.05, "{overhead}");
    assert!(calls > 0.0);
    // Its function probes are gone (their semaphores are 0), its GC probe stays.
    assert!(semaphores(w.pid()).iter().all(|(_, v)| *v == 0));
    assert_eq!(gc_semaphore(w.pid()), 1);
    let own = common::agent::own(&w.ask("4"));
    assert_eq!(own.collections[2], 4);
    agent.wait_for(
        "python_gc_collections_total",
        &[("pid", &pid), ("generation", "2")],
        WAIT,
    );
    let text = agent.wait_value(
        "python_gc_collections_total",
        &[("pid", &pid), ("generation", "2")],
        4.0,
        WAIT,
    );
    // The last counts stay, no longer updated.
    assert_eq!(
        sample(&text, "python_function_calls_total", &[("pid", &pid)]),
        Some(calls)
    );
    agent.stop();
}

#[test]
fn tls_and_basic_auth_from_a_web_config_file() {
    let _one = serial();
    let (_tmp, config, ca) = tls_web_config("tls");
    let agent = Agent::start(&args(&["--web-config-file", &config]));
    let url = format!("https://127.0.0.1:{}/metrics", agent.port);
    // Each request (`--next` starts another) writes only its status.
    let status = |extra: &[&str]| {
        let each = ["-o", "/dev/null", "-w", "%{http_code}", "--cacert", &ca];
        let mut a = each.to_vec();
        for arg in extra {
            a.push(arg);
            if *arg == "--next" {
                a.extend_from_slice(&each);
            }
        }
        a.push(&url);
        curl(&a)
    };
    assert_eq!(status(&[]), "401");
    // One curl for several requests, so that they follow each other by milliseconds: a failed
    // password holds back the next verification for a second, with a cheap 429...
    assert_eq!(
        status(&[
            "-u",
            "prometheus:wrong",
            &url,
            "--next",
            "-u",
            "prometheus:s3cret"
        ]),
        "401429"
    );
    std::thread::sleep(Duration::from_millis(1500));
    // ...and an unknown user is refused as a known user's wrong password is, backoff included;
    // credentials verified once are not held back.
    assert_eq!(status(&["-u", "prometheus:s3cret"]), "200");
    assert_eq!(
        status(&[
            "-u",
            "someone:s3cret",
            &url,
            "--next",
            "-u",
            "prometheus:s3cret",
            &url,
            "--next",
            "-u",
            "someone:s3cret",
        ]),
        "401200429"
    );
    let body = curl(&["--cacert", &ca, "-u", "prometheus:s3cret", &url]);
    assert!(body.contains("pyprobe_traced_processes"), "{body}");
    // Plain HTTP gets no answer from the TLS port.
    assert_eq!(curl(&[&url.replace("https", "http")]), "");
    agent.stop();
}

/// CPU time (user and system) the process has used so far.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis((f[0] + f[1]) * 1000 / hz)
}

#[test]
fn a_flood_of_wrong_passwords_costs_the_agent_little() {
    let _one = serial();
    let tmp = TempDir::new("flood");
    let dir = tmp.path();
    // Cost 10: about 80 ms of CPU per verification. Unbounded, 40 connections sending wrong
    // passwords kept both cores busy.
    let hash = bcrypt::hash("s3cret", 10).unwrap();
    let config = dir.join("web.yml");
    std::fs::write(
        &config,
        format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
    )
    .unwrap();
    let agent = Agent::start(&args(&["--web-config-file", config.to_str().unwrap()]));
    let url = agent.url();
    let code = |user: &str| curl(&["-o", "/dev/null", "-w", "%{http_code}", "-u", user, &url]);
    assert_eq!(code("prometheus:s3cret"), "200");
    let before = cpu_time(agent.guard.pid());
    let started = Instant::now();
    let (mut refused, mut held_back) = (0, 0);
    while started.elapsed() < Duration::from_secs(4) {
        let mut a = vec!["-Z", "--parallel-max", "40", "-w", "%{http_code}\n"];
        a.extend(["-u", "prometheus:wrong"]);
        for _ in 0..40 {
            a.extend(["-o", "/dev/null", &url]);
        }
        for line in curl(&a).lines() {
            match line {
                "401" => refused += 1,
                "429" => held_back += 1,
                other => panic!("answered {other}"),
            }
        }
    }
    let spent = cpu_time(agent.guard.pid()) - before;
    // Verifications at 0, 1, 3 and 7 s at most (the backoff doubles), the rest answered 429.
    assert!(
        (1..=4).contains(&refused),
        "{refused} verified, {held_back} held back"
    );
    assert!(held_back >= 40, "{refused} verified, {held_back} held back");
    assert!(
        spent < Duration::from_secs(3),
        "the agent spent {spent:?} of CPU"
    );
    // A scraper verified before the flood is not held back by it.
    assert_eq!(code("prometheus:s3cret"), "200");
    agent.stop();
}

#[test]
fn web_config_files_others_may_write_or_that_never_end_are_refused() {
    let _one = serial();
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("webtrust");
    let dir = tmp.path();
    let chmod = |p: &std::path::Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let users = format!("basic_auth_users:\n  prometheus: '{hash}'\n");
    let refused = |config: &std::path::Path, why: &str| {
        let started = Instant::now();
        assert_clean_failure(
            &["agent", "--web-config-file", config.to_str().unwrap()],
            why,
        );
        // Refused unread, never waited on.
        assert!(started.elapsed() < Duration::from_secs(3), "{why}");
    };
    let controls = ": whoever can write it controls the agent's TLS and users";

    let web = dir.join("web.yml");
    std::fs::write(&web, &users).unwrap();
    chmod(&web, 0o666);
    refused(
        &web,
        &format!(
            "{0}: {0} is writable by others (mode 666){controls}",
            web.display()
        ),
    );
    chmod(&web, 0o644);
    std::os::unix::fs::chown(&web, Some(65534), None).unwrap();
    refused(
        &web,
        &format!("{} belongs to user 65534{controls}", web.display()),
    );
    std::os::unix::fs::chown(&web, Some(0), None).unwrap();

    let open_dir = dir.join("open");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::write(open_dir.join("web.yml"), &users).unwrap();
    chmod(&open_dir, 0o777);
    refused(
        &open_dir.join("web.yml"),
        &format!(
            "its directory {} is writable by others (mode 777){controls}",
            open_dir.display()
        ),
    );

    // A link another user planted in a sticky directory, leading to a good file.
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    let link = shared.join("web.yml");
    std::os::unix::fs::symlink(&web, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    refused(
        &link,
        &format!(
            "{} is a symbolic link of user 65534{controls}",
            link.display()
        ),
    );

    // A certificate that never ends, a config that blocks open(), one too large.
    let tls = dir.join("tls.yml");
    std::fs::write(
        &tls,
        "tls_server_config:\n  cert_file: /dev/zero\n  key_file: /dev/zero\n",
    )
    .unwrap();
    refused(
        &tls,
        "web config /dev/zero: it is a character device, not a regular file",
    );
    let fifo = dir.join("fifo.yml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo of a path we made.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    refused(&fifo, "it is a FIFO, not a regular file");
    let big = dir.join("big.yml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    refused(&big, "it is larger than 1 MiB");

    // Hashes that are not bcrypt, or would take days per attempt.
    let bad = dir.join("bad.yml");
    std::fs::write(&bad, "basic_auth_users:\n  alice: $2garbage\n").unwrap();
    refused(&bad, "line 2: the password of alice is not a bcrypt hash");
    let slow = hash.replacen("$04$", "$31$", 1);
    std::fs::write(&bad, format!("{users}  bob: '{slow}'\n")).unwrap();
    refused(
        &bad,
        "line 3: the password of bob has cost 31, outside 4..=14",
    );
}

#[test]
fn bad_input_is_one_line() {
    let _one = serial();
    assert_clean_failure(
        &["agent", "--web-config-file", "/nonexistent/web.yml"],
        "/nonexistent/web.yml",
    );
    let tmp = TempDir::new("webcfg");
    let dir = tmp.path();
    let bad = dir.join("web.yml");
    std::fs::write(&bad, "http_server_config:\n  http2: false\n").unwrap();
    assert_clean_failure(
        &["agent", "--web-config-file", bad.to_str().unwrap()],
        "http_server_config is not supported",
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_clean_failure(&["agent", "--listen", &addr], "cannot listen on");
    assert_clean_failure(&["agent", "--filter", "a b"], "invalid filter");
}

#[test]
fn no_latency_counts_calls_without_tracing_mode() {
    let _one = serial();
    let mut w = Workload::start(&Python::debian(), &["0,0,0", "700"]);
    let agent = Agent::start(&args(&["--filter", "agent_handle", "--no-latency"]));
    let pid = w.pid().to_string();
    agent.wait_for("pyprobe_function_probes_active", &[("pid", &pid)], WAIT);
    // Calls only (--no-latency is the default now): on watchpoints, no probe's semaphore up
    // (neither the return probe nor 3.11's tracing mode).
    let sems: std::collections::HashMap<String, u16> = semaphores(w.pid()).into_iter().collect();
    assert_eq!(
        (
            sems["function__return"],
            sems["function__entry"],
            sems["line"]
        ),
        (0, 0, 0),
        "{sems:?}"
    );
    assert_eq!(w.go().calls, 700);
    let labels = [("pid", pid.as_str()), ("function", "agent_handle")];
    let text = agent.wait_value("python_function_calls_total", &labels, 700.0, WAIT);
    assert!(!text.contains("python_function_duration_seconds"), "{text}");
    agent.stop();
}

/// A process names itself (its comm is its own to set) with a terminal control sequence and a
/// forged line: the agent's log line about it carries them escaped.
#[test]
fn a_hostile_process_name_is_logged_escaped() {
    let _one = serial();
    let script = "import sys\n\
                  open('/proc/self/comm', 'wb').write(b'py\\x1b]0;x\\x07\\r\\nX')\n\
                  print('ready', flush=True)\n\
                  sys.stdin.readline()\n";
    let w = common::Workload::code(script).ready();
    let pid = w.pid().to_string();
    let agent = Agent::start(&["--pid", &pid, "--no-latency"]);
    let needle = format!("pyprobe: agent: PID {pid} (");
    agent.wait_said(&needle, WAIT);
    let (_, said) = agent.terminate();
    let line = said.lines().find(|l| l.starts_with(&needle)).unwrap();
    assert!(
        line.starts_with(&format!(r"{needle}py\x1b]0;x\x07\x0d\x0aX, CPython 3.11")),
        "{line}"
    );
    assert!(
        !said.chars().any(|c| c != '\n' && c.is_control()),
        "{said:?}"
    );
}

/// A 3.11 service idling in a Python loop (tests/scripts/idle_service.py): on the shared probe
/// (`--latency`) its function probes cost more than the default budget and are stopped; on the
/// watchpoints the agent takes by default they stay on, and its calls are counted exactly.
#[test]
fn function_metrics_stay_on_for_an_idling_service_on_watchpoints() {
    let _one = serial();
    let mut w = Workload::start_script(&Python::debian(), "idle_service.py", &[]);
    let pid = w.pid().to_string();

    // The probe every call passes: over the 5% budget on this service.
    let agent = Agent::start(&args(&["--filter", "agent_idle_handle", "--latency"]));
    agent.wait_said(
        &format!("PID {pid} (agentwork): function probes stopped"),
        WAIT,
    );
    agent.stop();

    let agent = Agent::start(&args(&["--filter", "agent_idle_handle"]));
    agent.wait_for("pyprobe_function_probes_active", &[("pid", &pid)], WAIT);
    assert_eq!(w.ask("300")["calls"], 300);
    // Five estimates, each under budget (three in a row over it would stop the probes).
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(w.ask("200")["calls"], 200);
    let labels = [("pid", pid.as_str()), ("function", "agent_idle_handle")];
    let text = agent.wait_value("python_function_calls_total", &labels, 500.0, WAIT);
    assert_eq!(
        sample(&text, "pyprobe_function_probes_active", &[("pid", &pid)]),
        Some(1.0),
        "{text}"
    );
    let overhead = sample(&text, "pyprobe_overhead_ratio", &[("pid", &pid)]).unwrap();
    assert!(overhead < 0.05, "{overhead}\n{text}");
    assert!(!text.contains("python_function_duration_seconds"), "{text}");
    assert!(
        !agent.said().contains("function probes stopped"),
        "{}",
        agent.said()
    );
    // No probe in it: watchpoints only.
    assert!(semaphores(w.pid()).iter().all(|(_, v)| *v == 0));
    agent.stop();
}
