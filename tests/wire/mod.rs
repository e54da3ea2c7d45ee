//! Raw HTTP/1.1 over a `TcpStream` for the reliability tests, which must see exactly which bytes
//! came back before a connection ended (a real client hides that).
//!
//! Every test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The server said it closes the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// How reading one response ended.
#[derive(Debug)]
pub enum Read {
    /// Status line, headers and the whole body its `content-length` announced.
    Complete(RawResponse),
    /// The connection ended (EOF or an error) before a single byte of this response.
    Nothing(String),
    /// The connection ended, or the bytes made no sense, after `got` bytes of a response.
    Broken { got: usize, why: String },
}

/// One connection (or its read half) and the bytes read past the last response: they belong
/// to the next one.
#[derive(Debug)]
pub struct Conn<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

impl Conn<TcpStream> {
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self::new(stream))
    }
}

impl<S> Conn<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }
}

impl<S: AsyncWrite + Unpin> Conn<S> {
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }
}

impl<S: AsyncRead + Unpin> Conn<S> {
    /// Reads one response. No deadline of its own: callers wrap it in a timeout.
    pub async fn read_response(&mut self) -> Read {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if let Err(why) = self.fill().await {
                return self.ended(why);
            }
        };
        let head = match parse_head(&self.buf[..head_end]) {
            Ok(head) => head,
            Err(why) => return self.broken(why),
        };
        let (status, headers) = head;
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse::<usize>());
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            return self.broken("chunked responses are not expected here".into());
        }
        let body_len = match length {
            // RFC 9112 §6.3: these never have a body, whatever the headers say.
            _ if status == 204 || status == 304 || (100..200).contains(&status) => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => return self.broken("bad content-length".into()),
            None => {
                // No length: the body runs to the end of the connection.
                while self.fill().await.is_ok() {}
                self.buf.len() - head_end
            }
        };
        while self.buf.len() < head_end + body_len {
            if let Err(why) = self.fill().await {
                return self.broken(format!(
                    "{why} after {} of {body_len} body bytes",
                    self.buf.len() - head_end
                ));
            }
        }
        let body = self.buf[head_end..head_end + body_len].to_vec();
        self.buf.drain(..head_end + body_len);
        Read::Complete(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Reads until the peer closes or resets, up to `limit`. `Some(bytes received)` if it
    /// closed in time, `None` if the connection was still open at the limit.
    pub async fn read_to_close(&mut self, limit: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Err(_) => return None,
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Some(std::mem::take(&mut self.buf)),
            }
        }
    }

    /// Appends whatever the socket has; `Err` with a reason at EOF or on an error.
    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) => Err("eof".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("{:?}", e.kind())),
        }
    }

    fn ended(&mut self, why: String) -> Read {
        if self.buf.is_empty() {
            Read::Nothing(why)
        } else {
            self.broken(why)
        }
    }

    fn broken(&mut self, why: String) -> Read {
        Read::Broken {
            got: self.buf.len(),
            why: format!("{why}; got {:?}", String::from_utf8_lossy(&self.buf)),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

type Head = (u16, Vec<(String, String)>);

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|_| "head is not utf-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok((status, headers))
}

/// A request with `host` and, when there is a body, `content-length`.
pub fn request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: test\r\n").into_bytes();
    if !body.is_empty() || method == "POST" {
        out.extend_from_slice(
            format!(
                "content-type: application/octet-stream\r\ncontent-length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// `GET /` on a fresh connection: the greeting, or a panic saying what came instead.
pub async fn get_root(addr: SocketAddr) -> RawResponse {
    let mut conn = Conn::connect(addr).await.expect("connect");
    conn.send(&request("GET", "/", b"")).await.expect("send");
    match tokio::time::timeout(Duration::from_secs(5), conn.read_response()).await {
        Ok(Read::Complete(res)) => {
            assert_eq!(res.status, 200, "GET / after abuse");
            assert_eq!(res.body, hyper_cloudrun::routes::GREETING.as_bytes());
            res
        }
        Ok(other) => panic!("GET / after abuse: {other:?}"),
        Err(_) => panic!("GET / after abuse: no response within 5 s"),
    }
}
