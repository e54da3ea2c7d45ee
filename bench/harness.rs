//! The small client the benchmark needs where wrk, h2load and curl do not fit. Standard library
//! only, built by `bench/run.sh` with `rustc -O` (it is not part of the package or `cargo test`).
//!
//! - `coldstart RUNS PORT CPU BIN`: RUNS times, exec BIN (pinned to CPU, `PORT` set) and time
//!   exec → first `200` on `GET /`, polling `127.0.0.1:PORT`; kills it after each run. Prints one
//!   duration in microseconds per line.
//! - `wait PORT SECONDS`: polls `GET /` on `127.0.0.1:PORT` until it answers `200`.
//! - `keepalive PORT N`: waits until `127.0.0.1:PORT` accepts, then sends N sequential
//!   keep-alive `GET /` on one connection, reading each response in full, and closes it.
//!   Exits non-zero unless all N were `200`. Used under callgrind to count instructions per
//!   request.
//! - `idle PORT N KIND SECONDS`: opens N connections to `127.0.0.1:PORT` and leaves them idle,
//!   prints `open N` once they are, holds them SECONDS, then closes them. KIND says what each
//!   sent first: `silent` (nothing), `get` (a keep-alive `GET /`, answered), `echo` (a 64 KiB
//!   `POST /echo`, answered) or `h2c` (the HTTP/2 preface and an empty SETTINGS frame). For
//!   `bench/idle.sh`, which reads the server's memory meanwhile.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

unsafe extern "C" {
    // glibc's wrappers; std links libc already, so no crate is needed.
    fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
}

const PR_SET_PDEATHSIG: i32 = 1;
const SIGKILL: u64 = 9;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["coldstart", runs, port, cpu, bin] => coldstart(
            runs.parse().expect("RUNS"),
            port.parse().expect("PORT"),
            cpu.parse().expect("CPU"),
            bin,
        ),
        ["wait", port, secs] => wait(port.parse().expect("PORT"), secs.parse().expect("SECONDS")),
        ["keepalive", port, n] => keepalive(port.parse().expect("PORT"), n.parse().expect("N")),
        ["idle", port, n, kind, secs] => idle(
            port.parse().expect("PORT"),
            n.parse().expect("N"),
            kind,
            secs.parse().expect("SECONDS"),
        ),
        _ => {
            eprintln!(
                "usage: harness coldstart RUNS PORT CPU BIN | wait PORT SECONDS | keepalive PORT N | idle PORT N KIND SECONDS"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("harness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Reads one HTTP/1.1 response with a `content-length` body; returns its status code.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(io::Error::other)?;
            let status: u16 = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::other(format!("bad status line: {head:?}")))?;
            let len: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .ok_or_else(|| io::Error::other("no content-length"))?;
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn get_once(port: u16, buf: &mut Vec<u8>) -> io::Result<u16> {
    let mut s = TcpStream::connect(addr(port))?;
    s.set_nodelay(true)?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    read_response(&mut s, buf)
}

fn coldstart(runs: usize, port: u16, cpu: u32, bin: &str) -> io::Result<()> {
    let mask: u64 = 1 << cpu;
    let mut buf = Vec::new();
    for _ in 0..runs {
        // Nothing may be listening before the exec, or we would time the previous process.
        if TcpStream::connect(addr(port)).is_ok() {
            return Err(io::Error::other(format!("port {port} already in use")));
        }
        let mut cmd = Command::new(bin);
        cmd.env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe syscalls between fork and exec. The server dies with
        // the harness, so no server outlives a killed benchmark.
        unsafe {
            cmd.pre_exec(move || {
                if sched_setaffinity(0, std::mem::size_of::<u64>(), &mask) != 0
                    || prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        let deadline = started + Duration::from_secs(10);
        let elapsed = loop {
            if let Ok(200) = get_once(port, &mut buf) {
                break started.elapsed();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(io::Error::other(format!(
                    "{bin} did not answer within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_micros(20));
        };
        child.kill()?;
        child.wait()?;
        println!("{}", elapsed.as_micros());
    }
    Ok(())
}

fn wait(port: u16, secs: u64) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = Vec::new();
    while !matches!(get_once(port, &mut buf), Ok(200)) {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "no 200 on port {port} within {secs} s"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn keepalive(port: u16, n: usize) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stream = loop {
        match TcpStream::connect(addr(port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    stream.set_nodelay(true)?;
    let mut buf = Vec::new();
    for i in 0..n {
        stream.write_all(REQUEST)?;
        let status = read_response(&mut stream, &mut buf)?;
        if status != 200 {
            return Err(io::Error::other(format!("request {i}: status {status}")));
        }
    }
    Ok(())
}

fn idle(port: u16, n: usize, kind: &str, secs: u64) -> io::Result<()> {
    const H2_PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    let echo = {
        let mut req = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: 65536\r\n\r\n".to_vec();
        req.resize(req.len() + 65536, b'x');
        req
    };
    let mut buf = Vec::new();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr(port))?;
        match kind {
            "silent" => {}
            "get" | "echo" => {
                s.write_all(if kind == "get" { REQUEST } else { &echo })?;
                let status = read_response(&mut s, &mut buf)?;
                if status != 200 {
                    return Err(io::Error::other(format!("{kind}: status {status}")));
                }
            }
            "h2c" => {
                s.write_all(H2_PREFACE_AND_SETTINGS)?;
                // The server's SETTINGS: the connection is open on its side.
                let mut frame = [0u8; 9];
                s.read_exact(&mut frame)?;
            }
            _ => return Err(io::Error::other(format!("unknown KIND {kind}"))),
        }
        held.push(s);
    }
    println!("open {n}");
    io::stdout().flush()?;
    std::thread::sleep(Duration::from_secs(secs));
    drop(held);
    Ok(())
}
