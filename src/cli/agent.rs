//! `pyprobe agent`: its arguments and their validation.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{parse_percent, parse_seconds};
use crate::commands::agent::{self, AgentOptions};
use crate::error::Result;
use crate::trace::filter;
use crate::trace::glob::Glob;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe agent                                   # every Python process, at 127.0.0.1:9464/metrics
    pyprobe agent --filter handle --filter app.py:process   # also the calls of these
    pyprobe agent --filter 'handle_*' --latency                 # and their durations
    pyprobe agent --listen 0.0.0.0:9464 --web-config-file /etc/pyprobe/web.yml   # TLS, basic auth
    pyprobe agent --exclude-comm 'celery*' --max-overhead 2
    pyprobe agent --profile                         # also CPU profiles at /debug/pprof/profile

GC pauses and imports come from probes attached once per interpreter file, for all its
processes (started later ones included). Functions selected with --filter are counted per
process: on hardware watchpoints where up to 4 functions match (nothing for the calls of other
functions), else on the probe every call passes. A process whose function probes cost more than
--max-overhead loses them (a log line and pyprobe_function_probes_active say so). --latency
times them on that probe: on CPython 3.11 that needs tracing mode, about 2 us per Python call
of the process while attached.
";

#[derive(Debug, Args, Clone)]
pub struct AgentArgs {
    /// Address to serve /metrics and /healthz on (a non-loopback address only when given)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// TLS and basic auth, in the web config file form of Prometheus' exporters
    #[arg(long, value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Only this process; repeatable (default: every Python process on the host)
    #[arg(short, long, value_name = "PID")]
    pub pid: Vec<i32>,
    /// Leave alone processes whose command name (comm) matches GLOB; repeatable
    #[arg(long, value_name = "GLOB")]
    pub exclude_comm: Vec<String>,
    /// Count matching functions in every process: NAME, PREFIX*, or FILE:NAME; repeatable
    #[arg(short, long, value_name = "PATTERN")]
    pub filter: Vec<String>,
    /// Time the --filter functions' calls too (a duration histogram) on the probe every call
    /// passes, instead of counting them on hardware watchpoints (on CPython 3.11 with tracing
    /// mode: about 2 us per Python call of the process)
    #[arg(long)]
    pub latency: bool,
    /// Calls only (the default since watchpoints count them; kept for old command lines)
    #[arg(long, hide = true, conflicts_with = "latency")]
    pub no_latency: bool,
    /// Function series exported at most (over every process); the calls of the others are counted in pyprobe_function_calls_dropped_total
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_series: usize,
    /// Stop a process's function probes once they slow it by more than PCT percent (3 s in a row)
    #[arg(long, value_name = "PCT", default_value = "5", value_parser = parse_percent)]
    pub max_overhead: f64,
    /// Look for new processes and read the counts this often: seconds, or 500ms, 2s, 1m
    #[arg(long, value_name = "DURATION", default_value = "1", value_parser = parse_seconds)]
    pub interval: Duration,
    /// Size of each process's kernel function table (every function seen, matched or not)
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_functions: u32,
    /// Also sample every watched process's CPU stacks in the kernel (as pyprobe record does),
    /// served as pprof at /debug/pprof/profile?seconds=N (N up to 60; &pid=P for one process)
    #[arg(long)]
    pub profile: bool,
    /// --profile's sampling rate per thread on CPU, 1-100 (19: Parca's and Pyroscope's eBPF agents' rate)
    #[arg(long, value_name = "HZ", default_value_t = 19, requires = "profile",
          value_parser = clap::value_parser!(u32).range(1..=crate::commands::agent::MAX_PROFILE_HZ as i64))]
    pub profile_hz: u32,
}

impl AgentArgs {
    pub fn options(&self) -> Result<AgentOptions> {
        Ok(AgentOptions {
            listen: self.listen,
            web_config: self.web_config_file.clone(),
            pids: self.pid.clone(),
            exclude_comm: self
                .exclude_comm
                .iter()
                .map(|g| Glob::parse("--exclude-comm", g))
                .collect::<Result<_>>()?,
            filters: filter::parse_all(&self.filter)?,
            latency: self.latency,
            max_series: self.max_series,
            max_overhead: self.max_overhead,
            interval: self.interval,
            max_functions: self.max_functions,
            profile_hz: self.profile.then_some(self.profile_hz),
        })
    }

    pub fn run(&self) -> Result<()> {
        agent::run(&self.options()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Command, parse};

    #[test]
    fn defaults_to_loopback_and_a_small_budget() {
        let Command::Agent(a) = parse(&["pyprobe", "agent"]).unwrap().command else {
            panic!("not agent")
        };
        let o = a.options().unwrap();
        assert_eq!(o.listen.to_string(), "127.0.0.1:9464");
        assert_eq!(o.max_overhead, 5.0);
        assert!(o.filters.is_empty() && o.pids.is_empty());
        assert_eq!(o.profile_hz, None, "profiles are off by default");
        let Command::Agent(a) = parse(&["pyprobe", "agent", "--profile"]).unwrap().command else {
            panic!("not agent")
        };
        assert_eq!(a.options().unwrap().profile_hz, Some(19));
    }

    #[test]
    fn refuses_bad_flags() {
        assert!(parse(&["pyprobe", "agent", "--listen", "localhost"]).is_err());
        assert!(parse(&["pyprobe", "agent", "--max-overhead", "-1"]).is_err());
        assert!(parse(&["pyprobe", "agent", "--profile", "--profile-hz", "101"]).is_err());
        assert!(parse(&["pyprobe", "agent", "--profile", "--profile-hz", "0"]).is_err());
        assert!(
            parse(&["pyprobe", "agent", "--profile-hz", "50"]).is_err(),
            "a rate without --profile"
        );
        let Command::Agent(a) = parse(&["pyprobe", "agent", "--filter", "*x"])
            .unwrap()
            .command
        else {
            panic!("not agent")
        };
        assert!(a.options().is_err());
    }
}
