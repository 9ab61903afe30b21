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
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        parse(&text, dir)
            .map_err(|why| Error::Usage(format!("web config {}: {why}", path.display())))
    }
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
                if !v.starts_with("$2") {
                    return Err(at(format!("the password of {user} is not a bcrypt hash")));
                }
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
        let text = "# pyprobe\ntls_server_config:\n  cert_file: tls/server.crt\n  key_file: \"/etc/k.key\"  # key\n\nbasic_auth_users:\n  prometheus: '$2y$10$abc'\n";
        let c = parse(text, Path::new("/etc/pyprobe")).unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert_file: "/etc/pyprobe/tls/server.crt".into(),
                key_file: "/etc/k.key".into()
            })
        );
        assert_eq!(c.users, vec![("prometheus".into(), "$2y$10$abc".into())]);
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
