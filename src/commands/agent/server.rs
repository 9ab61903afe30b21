//! The agent's HTTP endpoint: `/metrics` (the latest snapshot, encoded once per cycle, so a
//! scrape never waits on the kernel) and `/healthz`, over hyper, optionally TLS (rustls) and
//! basic auth (bcrypt). Read-only: no request changes what is traced. Every connection is
//! bounded in time and in number, so garbage, floods and clients that never read cost a slot
//! for a while, not the agent; and the bcrypt work of basic auth is bounded too (`Auth`).
use std::collections::HashSet;
use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::metrics::CONTENT_TYPE as METRICS_TYPE;
use super::profiles::{self, Store};
use super::webconfig::{self, WebConfig};
use crate::error::{Error, Result};

/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 256;
/// A client has this long to send its request headers (garbage and slow senders)...
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// ...and a connection this long in all (a client that never reads its response).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The latest exposition, swapped in whole by the collecting loop.
#[derive(Default)]
pub struct Exposition(Mutex<Bytes>);

impl Exposition {
    pub fn publish(&self, text: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Bytes::from(text);
    }

    fn current(&self) -> Bytes {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What every connection shares.
struct Shared {
    exposition: Arc<Exposition>,
    /// --profile's samples (None: off, and /debug/pprof/profile says so).
    profiles: Option<Arc<Store>>,
    /// None: no basic auth.
    auth: Option<Auth>,
}

/// The first wait after a failed password; it doubles with each failure in a row...
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// ...up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Basic auth against the web config's bcrypt hashes, with the work that clients who do not
/// know a password can cause bounded: bcrypt is slow on purpose (80 ms at cost 10, seconds at
/// 14), so unbounded it lets anyone burn the agent's CPU. One verification runs at a time;
/// after a failure, verifications wait (globally: an attacker has many addresses) for a
/// backoff that doubles with each failure in a row, answered meanwhile by a cheap 429.
/// Credentials once verified are remembered, so a Prometheus that scrapes each second pays
/// bcrypt once and is never held back by someone else's failures.
struct Auth {
    users: Vec<(String, String)>,
    /// Checked for an unknown user, at the largest cost among the users, so that refusing
    /// one takes as long as refusing a known user's wrong password (names are not told by
    /// timing).
    dummy: String,
    /// Verified credentials as keyed hashes of user and password (the key is random per
    /// process, so the set holds nothing an attacker could match or reverse).
    keys: RandomState,
    verified: Mutex<HashSet<u64>>,
    verifying: Arc<Semaphore>,
    backoff: Mutex<Backoff>,
}

/// What a request's credentials got.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Refused,
    /// Not verified now: another verification is running, or failures are being backed off
    /// from; ask again after this.
    Later(Duration),
}

/// Failures in a row and the end of the wait they earned.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    fn wait(&self, now: Instant) -> Option<Duration> {
        self.until
            .filter(|&until| until > now)
            .map(|until| until - now)
    }

    fn failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let wait = BACKOFF_FIRST
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(BACKOFF_MAX);
        self.until = Some(now + wait);
    }
}

impl Auth {
    fn new(users: Vec<(String, String)>) -> Option<Auth> {
        let cost = users
            .iter()
            .filter_map(|(_, h)| webconfig::check_hash(h).ok())
            .max()?;
        Some(Auth {
            users,
            dummy: dummy_hash(cost),
            keys: RandomState::new(),
            verified: Mutex::new(HashSet::new()),
            verifying: Arc::new(Semaphore::new(1)),
            backoff: Mutex::new(Backoff::default()),
        })
    }

    /// The hash that `user`'s password is checked against: theirs, or the dummy.
    fn hash_of(&self, user: &str) -> (&str, bool) {
        match self.users.iter().find(|(u, _)| u == user) {
            Some((_, h)) => (h, true),
            None => (&self.dummy, false),
        }
    }

    async fn check(&self, user: String, password: String) -> Verdict {
        let key = self.keys.hash_one((&user, &password));
        if lock(&self.verified).contains(&key) {
            return Verdict::Allowed;
        }
        if let Some(wait) = lock(&self.backoff).wait(Instant::now()) {
            return Verdict::Later(wait);
        }
        // One at a time: a second client gets its answer at once rather than a thread.
        let Ok(permit) = self.verifying.clone().try_acquire_owned() else {
            return Verdict::Later(Duration::from_secs(1));
        };
        let (hash, known) = self.hash_of(&user);
        let hash = hash.to_string();
        // bcrypt takes tens of milliseconds by design: off the thread that serves the others,
        // its permit held until it ends even if the client has gone.
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if matched && known {
            lock(&self.verified).insert(key);
            *lock(&self.backoff) = Backoff::default();
            Verdict::Allowed
        } else {
            lock(&self.backoff).failed(Instant::now());
            Verdict::Refused
        }
    }
}

/// A well-formed bcrypt hash of `cost` that no password is checked to match (the result of
/// checking it is discarded anyway): bcrypt does its full work on it.
fn dummy_hash(cost: u32) -> String {
    format!("$2b${cost:02}$pyprobe.dummy.salt.0uu8dWa9.aFa1fl5opHiBzKrG10rgnBCR.")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The server thread; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub tls: bool,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds `listen` (errors are the caller's, before anything is attached) and serves from
    /// a thread of its own.
    pub fn start(
        listen: SocketAddr,
        web: WebConfig,
        exposition: Arc<Exposition>,
        profiles: Option<Arc<Store>>,
    ) -> Result<Server> {
        let tls = web.tls.as_ref().map(tls_acceptor).transpose()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::Usage(format!("cannot start the HTTP server: {e}")))?;
        // A long accept queue: connections beyond MAX_CONNECTIONS wait there, not in SYN
        // retries.
        let listener = runtime
            .block_on(async {
                let socket = if listen.is_ipv4() {
                    TcpSocket::new_v4()
                } else {
                    TcpSocket::new_v6()
                }?;
                socket.set_reuseaddr(true)?;
                socket.bind(listen)?;
                socket.listen(1024)
            })
            .map_err(|e| Error::Usage(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr().unwrap_or(listen);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            exposition,
            profiles,
            auth: Auth::new(web.users),
        });
        let has_tls = tls.is_some();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("pyprobe-http".into())
            .spawn(move || runtime.block_on(accept_loop(listener, tls, shared, stopping)))
            .map_err(|e| Error::Usage(format!("cannot start the HTTP server: {e}")))?;
        Ok(Server {
            addr,
            tls: has_tls,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut told_error = false;
    while !stop.load(Ordering::SeqCst) {
        // Both waits are bounded, only to look at the stop flag.
        let slot =
            match tokio::time::timeout(Duration::from_millis(200), slots.clone().acquire_owned())
                .await
            {
                Err(_) => continue,
                Ok(Ok(slot)) => slot,
                Ok(Err(_)) => return,
            };
        let stream = match tokio::time::timeout(Duration::from_millis(200), listener.accept()).await
        {
            Err(_) => continue,
            Ok(Ok((stream, _))) => stream,
            Ok(Err(e)) => {
                // Out of descriptors, or a connection reset before it was accepted: the
                // listener is fine, and the next accept may succeed.
                if !told_error {
                    eprintln!("pyprobe: agent: accepting a connection: {e}");
                    told_error = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (tls, shared) = (tls.clone(), shared.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, serve(stream, tls, shared)).await;
        });
    }
}

async fn serve(stream: TcpStream, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(respond(req, &shared).await) }
    });
    let http = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .to_owned();
    match tls {
        Some(acceptor) => {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await
            else {
                return;
            };
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        }
        None => {
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        }
    }
}

async fn respond(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    if let Some(auth) = &shared.auth {
        let verdict = match credentials(&req) {
            Some((user, password)) => auth.check(user, password).await,
            None => Verdict::Refused,
        };
        match verdict {
            Verdict::Allowed => {}
            Verdict::Refused => {
                let mut r = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"pyprobe\""),
                );
                return r;
            }
            Verdict::Later(wait) => {
                let mut r = plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many failed passwords: try again later\n",
                );
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
                return r;
            }
        }
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(Full::new(shared.exposition.current()));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_TYPE));
            r
        }
        "/healthz" => plain(StatusCode::OK, "ok\n"),
        "/debug/pprof/profile" => profile(req.uri().query(), shared),
        "/" => plain(
            StatusCode::OK,
            "pyprobe agent: Python processes as Prometheus metrics at /metrics\n",
        ),
        _ => plain(StatusCode::NOT_FOUND, "not found: try /metrics\n"),
    }
}

/// The last N seconds of CPU samples as gzipped profile.proto; built on the request (a few
/// milliseconds for thousands of stacks), as no scraper asks more than once per N seconds.
fn profile(query: Option<&str>, shared: &Shared) -> Response<Full<Bytes>> {
    let Some(store) = &shared.profiles else {
        return plain(
            StatusCode::NOT_FOUND,
            "CPU profiles are off: start the agent with --profile\n",
        );
    };
    let (seconds, pid) = match profiles::parse_query(query) {
        Ok(q) => q,
        Err(why) => {
            let mut r = plain(StatusCode::BAD_REQUEST, "");
            *r.body_mut() = Full::new(Bytes::from(format!("{why}\n")));
            return r;
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(store.pprof(seconds, pid))));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r.headers_mut().insert(
        hyper::header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"profile\""),
    );
    r
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The user and password of a Basic Authorization header.
fn credentials(req: &Request<Incoming>) -> Option<(String, String)> {
    let header = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(header.strip_prefix("Basic ")?.trim())
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn tls_acceptor(files: &super::webconfig::TlsFiles) -> Result<TlsAcceptor> {
    let bad = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        Error::Usage(format!("web config: {}: {e}", what.display()))
    };
    // Read under the web config's checks (owner, mode, a regular file, its size).
    let cert_pem = webconfig::read_trusted(&files.cert_file)?;
    let key_pem = webconfig::read_trusted(&files.key_file)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(&files.cert_file, &e))?;
    if certs.is_empty() {
        return Err(bad(&files.cert_file, &"no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad(&files.key_file, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&files.cert_file, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.cert_file, &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bcrypt of "s3cret" at cost 4.
    const HASH: &str = "$2b$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG";

    fn auth() -> Auth {
        Auth::new(vec![("prometheus".into(), HASH.into())]).unwrap()
    }

    fn check(a: &Auth, user: &str, password: &str) -> Verdict {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(a.check(user.into(), password.into()))
    }

    #[test]
    fn an_unknown_user_costs_a_full_bcrypt_of_the_same_cost() {
        let a = auth();
        assert!(bcrypt::verify("s3cret", HASH).unwrap());
        let (dummy, known) = a.hash_of("nobody");
        assert!(!known);
        assert_eq!(webconfig::check_hash(dummy), Ok(4));
        // A full verification that finds no match, not an early error.
        assert_eq!(bcrypt::verify("s3cret", dummy).ok(), Some(false));
        assert_eq!(a.hash_of("prometheus"), (HASH, true));
        let a = Auth::new(vec![
            ("a".into(), HASH.into()),
            ("b".into(), HASH.replacen("$04$", "$06$", 1)),
        ])
        .unwrap();
        assert_eq!(webconfig::check_hash(&a.dummy), Ok(6));
    }

    #[test]
    fn failures_back_off_and_verified_credentials_do_not_wait() {
        let a = auth();
        assert_eq!(check(&a, "prometheus", "wrong"), Verdict::Refused);
        // Backing off: even the right password is not verified now...
        let Verdict::Later(wait) = check(&a, "prometheus", "s3cret") else {
            panic!("no backoff after a failure")
        };
        assert!(wait <= BACKOFF_FIRST && wait > Duration::ZERO, "{wait:?}");
        assert!(matches!(check(&a, "nobody", "x"), Verdict::Later(_)));
        // ...until the wait is over.
        *lock(&a.backoff) = Backoff::default();
        assert_eq!(check(&a, "prometheus", "s3cret"), Verdict::Allowed);
        // A failure after that holds back others, not credentials already verified.
        assert_eq!(check(&a, "nobody", "s3cret"), Verdict::Refused);
        assert_eq!(check(&a, "prometheus", "s3cret"), Verdict::Allowed);
        assert!(matches!(
            check(&a, "prometheus", "other"),
            Verdict::Later(_)
        ));
        assert_eq!(lock(&a.verified).len(), 1);
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let now = Instant::now();
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..6)
            .map(|_| {
                b.failed(now);
                b.wait(now).unwrap()
            })
            .collect();
        let secs = |s| Duration::from_secs(s);
        assert_eq!(
            waits,
            [secs(1), secs(2), secs(4), secs(5), secs(5), secs(5)]
        );
        assert_eq!(b.wait(now + secs(5)), None);
    }

    #[test]
    fn one_verification_at_a_time() {
        let a = auth();
        let _running = a.verifying.clone().try_acquire_owned().unwrap();
        assert_eq!(
            check(&a, "prometheus", "s3cret"),
            Verdict::Later(Duration::from_secs(1))
        );
    }
}
