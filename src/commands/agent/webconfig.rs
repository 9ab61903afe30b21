//! The web config file of Prometheus' own exporters (exporter-toolkit's `--web.config.file`):
//! TLS and basic auth. pyprobe reads the subset below, a YAML document of two levels; anything
//! else in it is refused by name rather than ignored.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt      # relative paths are relative to this file
//!   key_file: server.key
//! basic_auth_users:
//!   prometheus: $2y$10$...     # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':')
//! ```
//!
//! The file, the certificate and the key are read only if nobody but root (or pyprobe's user)
//! could have written them (`crate::target::trusted`): whoever can write them controls the agent's TLS
//! and users. Each hash must be bcrypt ($2a$, $2b$, $2y$) of a cost in `COSTS`, checked here,
//! so that a typo or a cost-31 hash (days per attempt) fails at start, not at each scrape.
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::target::trusted::{self, Refusal};

/// bcrypt costs accepted: 4 is bcrypt's least; each step doubles the work, and 14 already
/// takes about a second per attempt on a server core.
pub const COSTS: RangeInclusive<u32> = 4..=14;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebConfig {
    pub tls: Option<TlsFiles>,
    /// User name and bcrypt hash of each user allowed in; none: no authentication.
    pub users: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl WebConfig {
    pub fn read(path: &Path) -> Result<WebConfig> {
        let bytes = read_trusted(path)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::Usage(format!(
                "web config {}: it is not UTF-8 text",
                path.display()
            ))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let config = parse(&text, dir)
            .map_err(|why| Error::Usage(format!("web config {}: {why}", path.display())))?;
        if let Some(tls) = &config.tls {
            // Checked now, with the config: the server reads them again as it starts.
            read_trusted(&tls.cert_file)?;
            read_trusted(&tls.key_file)?;
        }
        Ok(config)
    }
}

/// A file of the web config (itself, its certificate, its key), read under `trusted`'s checks.
pub fn read_trusted(path: &Path) -> Result<Vec<u8>> {
    trusted::read(path).map_err(|refusal| {
        let why = match refusal {
            Refusal::OthersMayWrite(why) => {
                format!("{why}: whoever can write it controls the agent's TLS and users")
            }
            Refusal::Unfit(why) => why,
        };
        Error::Usage(format!("web config {}: {why}", path.display()))
    })
}

/// Checks a bcrypt hash as bcrypt itself would read it; its cost.
pub fn check_hash(hash: &str) -> std::result::Result<u32, String> {
    let rest = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|p| hash.strip_prefix(p))
        .ok_or("is not a bcrypt hash ($2a$, $2b$ or $2y$)")?;
    let (cost, salted) = rest
        .split_once('$')
        .ok_or("is not a bcrypt hash (no cost)")?;
    let cost: u32 = cost
        .parse()
        .ok()
        .filter(|_| cost.len() == 2)
        .ok_or("is not a bcrypt hash (its cost is not two digits)")?;
    let alphabet = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '/';
    if salted.len() != 53 || !salted.chars().all(alphabet) {
        return Err(
            "is not a bcrypt hash (salt and hash are not 53 characters of bcrypt's \
                    base64)"
                .into(),
        );
    }
    if !COSTS.contains(&cost) {
        return Err(format!(
            "has cost {cost}, outside {}..={} (each step doubles the time an attempt takes)",
            COSTS.start(),
            COSTS.end()
        ));
    }
    Ok(cost)
}

fn parse(text: &str, dir: &Path) -> std::result::Result<WebConfig, String> {
    let mut config = WebConfig::default();
    let (mut cert, mut key) = (None, None);
    let mut section: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let at = |why: String| format!("line {}: {why}", n + 1);
        let line = strip_comment(raw);
        if line.trim().is_empty() || line.trim() == "---" {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        let (k, v) = line
            .trim()
            .split_once(':')
            .ok_or_else(|| at("expected `key: value`".into()))?;
        let (k, v) = (k.trim(), unquote(v.trim()));
        if !indented {
            match k {
                "tls_server_config" | "basic_auth_users" if v.is_empty() => {
                    section = Some(k.to_string())
                }
                "tls_server_config" | "basic_auth_users" => {
                    return Err(at(format!("{k} takes indented `key: value` lines")));
                }
                _ => {
                    return Err(at(format!(
                        "{k} is not supported (pyprobe reads tls_server_config.cert_file, \
                         tls_server_config.key_file and basic_auth_users)"
                    )));
                }
            }
            continue;
        }
        let path = |v: &str| dir.join(v);
        match (section.as_deref(), k) {
            (Some("tls_server_config"), "cert_file") => cert = Some(path(&v)),
            (Some("tls_server_config"), "key_file") => key = Some(path(&v)),
            (Some("tls_server_config"), other) => {
                return Err(at(format!(
                    "tls_server_config.{other} is not supported (only cert_file and key_file)"
                )));
            }
            (Some("basic_auth_users"), user) => {
                check_hash(&v).map_err(|why| at(format!("the password of {user} {why}")))?;
                config.users.push((user.to_string(), v));
            }
            _ => return Err(at(format!("{k} is outside any section"))),
        }
    }
    config.tls = match (cert, key) {
        (Some(cert_file), Some(key_file)) => Some(TlsFiles {
            cert_file,
            key_file,
        }),
        (None, None) => None,
        _ => return Err("tls_server_config needs both cert_file and key_file".into()),
    };
    Ok(config)
}

/// The line without a `#` comment (one that starts the line or follows a space).
fn strip_comment(line: &str) -> &str {
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        if c == '#' && prev.is_whitespace() {
            return &line[..i];
        }
        prev = c;
    }
    line
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tls_and_users() {
        let text = format!(
            "# pyprobe\ntls_server_config:\n  cert_file: tls/server.crt\n  key_file: \"/etc/k.key\"  # key\n\nbasic_auth_users:\n  prometheus: '{HASH}'\n"
        );
        let c = parse(&text, Path::new("/etc/pyprobe")).unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert_file: "/etc/pyprobe/tls/server.crt".into(),
                key_file: "/etc/k.key".into()
            })
        );
        assert_eq!(c.users, vec![("prometheus".into(), HASH.into())]);
    }

    /// bcrypt of "s3cret" at cost 10.
    const HASH: &str = "$2b$10$abcdefghijklmnopqrstuu3KWNuWLhBnmgYfnzONPueahDuedC/lu";

    #[test]
    fn hashes_are_checked_and_bounded() {
        assert_eq!(check_hash(HASH), Ok(10));
        assert!(bcrypt::verify("s3cret", HASH).unwrap());
        let y = HASH.replacen("$2b$", "$2y$", 1);
        assert_eq!(check_hash(&y), Ok(10));
        let cost = |c: &str| HASH.replacen("$10$", &format!("${c}$"), 1);
        assert_eq!(check_hash(&cost("04")), Ok(4));
        assert_eq!(check_hash(&cost("14")), Ok(14));
        for (bad, why) in [
            ("$2garbage", "is not a bcrypt hash ($2a$"),
            ("$2x$10$abc", "is not a bcrypt hash ($2a$"),
            (&cost("31"), "has cost 31, outside 4..=14"),
            (&cost("03"), "has cost 3, outside 4..=14"),
            (&cost("1"), "its cost is not two digits"),
            (&HASH[..HASH.len() - 1], "53 characters"),
            (&HASH.replacen("abc", "!bc", 1), "53 characters"),
        ] {
            let err = check_hash(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let err = parse(
            &format!(
                "basic_auth_users:\n  alice: '{HASH}'\n  bob: '{}'\n",
                cost("31")
            ),
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "line 3: the password of bob has cost 31, outside 4..=14 (each step doubles the \
             time an attempt takes)"
        );
    }

    #[test]
    fn refuses_what_it_does_not_read() {
        let dir = Path::new(".");
        assert!(
            parse("http_server_config:\n  http2: false\n", dir)
                .unwrap_err()
                .contains("http_server_config is not supported")
        );
        assert!(
            parse(
                "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n",
                dir
            )
            .unwrap_err()
            .contains("client_auth_type")
        );
        assert!(
            parse("basic_auth_users:\n  alice: secret\n", dir)
                .unwrap_err()
                .contains("not a bcrypt hash")
        );
        assert!(
            parse("tls_server_config:\n  cert_file: a.crt\n", dir)
                .unwrap_err()
                .contains("both")
        );
        assert_eq!(parse("", dir).unwrap(), WebConfig::default());
    }
}
