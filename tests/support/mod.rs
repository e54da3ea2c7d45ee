//! Shared helpers for the integration tests: an in-process server on `127.0.0.1:0`, real
//! HTTP/1.1 and h2c clients, the compiled binary as a child process and its figures from
//! `/proc` (resident memory, open descriptors), and the descriptor limit that many-socket tests
//! raise.
//!
//! Every test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::{http1, http2};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_cloudrun::config::ServerConfig;
use hyper_cloudrun::http::body::MAX_BODY;
use hyper_cloudrun::http::budget::{self, Budget};
use hyper_cloudrun::routes::State;
use hyper_cloudrun::server::{self, Drain};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running in this test's runtime.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Drain>,
}

impl TestServer {
    /// With the body budget the binary would size for this machine.
    pub async fn start(config: ServerConfig) -> Self {
        let memory_limit = hyper_cloudrun::cgroup::memory_limit();
        let (bytes, _) = budget::size(None, memory_limit, MAX_BODY);
        let state = State {
            budget: Budget::new(bytes),
            body_read_timeout: config.body_read_timeout,
        };
        Self::with_state(config, state).await
    }

    pub async fn with_state(config: ServerConfig, state: State) -> Self {
        let listener = hyper_cloudrun::listener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            server::serve(listener, &config, state, async {
                let _ = rx.await;
            })
            .await
        });
        Self {
            addr,
            shutdown: Some(tx),
            handle,
        }
    }

    pub async fn start_default() -> Self {
        Self::start(ServerConfig::default()).await
    }

    /// Fires the shutdown future without waiting for the drain.
    pub fn signal(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Fires shutdown and waits for the drain to end.
    pub async fn shutdown(mut self) -> Drain {
        self.signal();
        self.handle.await.expect("serve task panicked")
    }

    pub async fn join(self) -> Drain {
        self.handle.await.expect("serve task panicked")
    }
}

/// A completed response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub type Body = Full<Bytes>;

/// An HTTP/1.1 connection.
pub async fn http1(addr: SocketAddr) -> http1::SendRequest<Body> {
    let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
    let (sender, conn) = http1::handshake(io).await.expect("http1 handshake");
    tokio::spawn(conn);
    sender
}

/// An HTTP/2 connection with prior knowledge (h2c), as Cloud Run's end-to-end HTTP/2 uses.
pub async fn h2c(addr: SocketAddr) -> http2::SendRequest<Body> {
    let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
    let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
        .await
        .expect("h2c handshake");
    tokio::spawn(conn);
    sender
}

pub fn request(method: &str, path: &str, body: impl Into<Bytes>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "test")
        .body(Full::new(body.into()))
        .unwrap()
}

pub async fn send1(sender: &mut http1::SendRequest<Body>, req: Request<Body>) -> Reply {
    sender.ready().await.expect("connection ready");
    collect(sender.send_request(req).await.expect("response head")).await
}

pub async fn send2(sender: &mut http2::SendRequest<Body>, req: Request<Body>) -> Reply {
    sender.ready().await.expect("connection ready");
    collect(sender.send_request(req).await.expect("response head")).await
}

pub async fn collect(res: hyper::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("complete body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// One request on a fresh HTTP/1.1 connection.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut c = http1(addr).await;
    send1(&mut c, request("GET", path, Bytes::new())).await
}

/// Runs the binary with `env` only until it exits (killed after 5 s, which fails the caller's
/// exit-code assertion); returns (exit code, stdout, stderr).
pub fn run_to_exit(env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hyper-cloudrun"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the binary");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The compiled binary, started with exactly `env` (plus nothing inherited), stdout piped.
pub struct Process {
    pub child: Child,
    pub port: u16,
    /// Every stdout line so far, and the rest as they come.
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Process {
    /// Starts the binary with `PORT=0` unless `env` sets it, and waits for its `listening` line.
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_command(Command::new(env!("CARGO_BIN_EXE_hyper-cloudrun")), env)
    }

    /// [`start`](Self::start), but the binary is started by `sh -c SCRIPT`, where the script
    /// ends with `exec "$0"` (e.g. `ulimit -n 256 && exec "$0"`).
    pub fn start_in_shell(script: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script, env!("CARGO_BIN_EXE_hyper-cloudrun")]);
        Self::start_command(cmd, env)
    }

    fn start_command(mut cmd: Command, env: &[(&str, &str)]) -> Self {
        cmd.env_clear()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !env.iter().any(|(k, _)| *k == "PORT") {
            cmd.env("PORT", "0");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the binary");
        let lines = pump(child.stdout.take().unwrap());
        let mut p = Self {
            child,
            port: 0,
            lines,
            seen: Vec::new(),
        };
        let listening = p
            .wait_for(|l| l.contains("listening"), Duration::from_secs(10))
            .expect("a listening line");
        p.port = port_of(&listening).expect("port in the listening line");
        p
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits up to `timeout` for a stdout line matching `pred`; keeps every line in `seen`.
    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if pred(&line) {
                return Some(line);
            }
        }
    }

    /// Reads the rest of stdout (the process must be exiting).
    pub fn drain_lines(&mut self) -> &[String] {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Linux only, like the tests that call it: they are what a Darwin build leaves out.
    #[cfg(target_os = "linux")]
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for exit, failing the test after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("process did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `"port":N` from a JSON log line, or `port=N` from a text one.
pub fn port_of(line: &str) -> Option<u16> {
    let rest = line
        .split_once("\"port\":")
        .or_else(|| line.split_once(" port="))?
        .1;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Raises this process's soft `RLIMIT_NOFILE` towards `want` (children inherit it) and returns
/// the limit now in force, which is below `want` only if the hard limit is.
#[cfg(target_os = "linux")]
pub fn raise_fd_limit(want: u64) -> u64 {
    rlimit::increase_nofile_limit(want).unwrap_or_else(|e| {
        eprintln!("cannot raise RLIMIT_NOFILE: {e}");
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
    })
}

/// `VmRSS` of process `pid`, in KiB, from `/proc/<pid>/status`.
#[cfg(target_os = "linux")]
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// `VmHWM` (the most resident memory so far) of process `pid`, in KiB.
#[cfg(target_os = "linux")]
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM")
}

#[cfg(target_os = "linux")]
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} line"))
}

/// How many descriptors process `pid` has open.
#[cfg(target_os = "linux")]
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc fd")
        .count()
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A two-worker runtime for tests that drive many clients against the spawned binary.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
