//! The agent's HTTP endpoint: `/metrics` (the latest snapshot, encoded once per cycle, so a
//! scrape never waits on the kernel) and `/healthz`, over hyper, optionally TLS (rustls) and
//! basic auth (bcrypt). Read-only: no request changes what is traced. Every connection is
//! bounded in time and in number, so garbage, floods and clients that never read cost a slot
//! for a while, not the agent.
use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
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
use super::webconfig::WebConfig;
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
    users: Vec<(String, String)>,
    /// Authorization headers already verified: bcrypt is slow on purpose, a scrape each
    /// second must not pay it each time.
    verified: Mutex<HashSet<String>>,
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
            users: web.users,
            verified: Mutex::new(HashSet::new()),
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
    if !shared.users.is_empty() && !authorized(&req, shared).await {
        let mut r = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"pyprobe\""),
        );
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(Full::new(shared.exposition.current()));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_TYPE));
            r
        }
        "/healthz" => plain(StatusCode::OK, "ok\n"),
        "/" => plain(
            StatusCode::OK,
            "pyprobe agent: Python processes as Prometheus metrics at /metrics\n",
        ),
        _ => plain(StatusCode::NOT_FOUND, "not found: try /metrics\n"),
    }
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

/// Basic auth against the web config's bcrypt hashes.
async fn authorized(req: &Request<Incoming>, shared: &Shared) -> bool {
    let Some(header) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    if shared
        .verified
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(header)
    {
        return true;
    }
    let Some((user, password)) = header
        .strip_prefix("Basic ")
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        })
    else {
        return false;
    };
    let Some(hash) = shared
        .users
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, h)| h.clone())
    else {
        return false;
    };
    // bcrypt takes tens of milliseconds by design: off the thread that serves the others.
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false);
    if ok {
        shared
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(header.to_string());
    }
    ok
}

fn tls_acceptor(files: &super::webconfig::TlsFiles) -> Result<TlsAcceptor> {
    let bad = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        Error::Usage(format!("web config: {}: {e}", what.display()))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert_file)
        .map_err(|e| bad(&files.cert_file, &e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(&files.cert_file, &e))?;
    if certs.is_empty() {
        return Err(bad(&files.cert_file, &"no certificate in it"));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| bad(&files.key_file, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&files.cert_file, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.cert_file, &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
