//! HTTP/1.1 or h2c: which one a connection speaks, told once from its first bytes, and the
//! settings each is served with.
//!
//! HTTP/1.1 and HTTP/2 with prior knowledge (h2c) share one port: Cloud Run's end-to-end HTTP/2
//! option speaks h2c to the container (<https://cloud.google.com/run/docs/configuring/http2>).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::TokioTimer;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tracing::debug;

use super::clock::InFlight;
use crate::http::body::MAX_BODY;

/// Upper bound on a request head (request line + headers), HTTP/1 and HTTP/2 alike. Proxies
/// use the same order of magnitude (Envoy 60 KiB, nginx 32 KiB); hyper's own default read
/// buffer is ~400 KB. An HTTP/1 head over it gets 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// HTTP/2 streams a connection may have open at once (see [`Protocols::new`]).
const H2_MAX_STREAMS: u32 = 200;
/// HTTP/2 receive windows, per stream and per connection (see [`Protocols::new`]).
const H2_WINDOW: u32 = MAX_BODY as u32;

/// The protocol a client opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge: the 24-byte preface came first.
    H2c,
}

/// The h2 connection preface (RFC 9113 §3.4), which a client with prior knowledge sends first.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads until the client has sent enough to tell HTTP/1 from the h2 preface: the first byte
/// that differs from it, or all of it; `None` at the end of the stream. hyper is then told the
/// protocol ([`Protocols`]) and looks for no preface itself; the bytes read here are its first
/// read (see `socket::Socket`).
pub async fn sniff<T>(stream: &mut T) -> io::Result<Option<(Protocol, Sniffed)>>
where
    T: AsyncRead + Unpin,
{
    let mut sniffed = Sniffed {
        bytes: [0; H2_PREFACE.len()],
        start: 0,
        end: 0,
    };
    loop {
        let end = usize::from(sniffed.end);
        let n = stream.read(&mut sniffed.bytes[end..]).await?;
        if n == 0 {
            return Ok(None);
        }
        let end = end + n;
        // At most the preface's 24 bytes.
        sniffed.end = end as u8;
        if sniffed.bytes[..end] != H2_PREFACE[..end] {
            return Ok(Some((Protocol::Http1, sniffed)));
        }
        if end == H2_PREFACE.len() {
            return Ok(Some((Protocol::H2c, sniffed)));
        }
    }
}

/// The bytes [`sniff`] read, still to be handed to hyper.
#[derive(Debug)]
pub struct Sniffed {
    bytes: [u8; H2_PREFACE.len()],
    start: u8,
    end: u8,
}

impl Sniffed {
    /// Some of them are still to be read.
    #[inline]
    pub fn pending(&self) -> bool {
        self.start < self.end
    }

    /// What hyper has not read yet.
    pub fn rest(&self) -> &[u8] {
        &self.bytes[usize::from(self.start)..usize::from(self.end)]
    }

    /// hyper has read `n` more of them.
    pub fn consume(&mut self, n: usize) {
        // `n` is at most `rest().len()`, so this stays within the 24 bytes.
        self.start += n as u8;
    }
}

/// hyper's connection builders, one per protocol, configured once for every connection.
#[derive(Debug)]
pub struct Protocols {
    pub http1: http1::Builder,
    pub h2c: http2::Builder<StreamExecutor>,
}

impl Protocols {
    /// The builders; an h2c stream whose answer makes no progress for `send_timeout` is reset
    /// ([`StreamExecutor`]).
    pub fn new(send_timeout: Duration) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            // Kept per connection instead (see `clock`): hyper's own costs a timer per request.
            .header_read_timeout(None)
            // The head limit itself: `max_buf_size` alone is not one, since a read may fill the
            // read buffer's spare capacity, which grows past it (hyper 1.x `proto/h1/io.rs`),
            // and a whole head that arrives in that read is parsed and served. hyper applies
            // this limit to chunked trailers too, as h2 applies `max_header_list_size`.
            .max_header_size(MAX_HEAD_BYTES)
            .max_buf_size(MAX_HEAD_BYTES)
            // Otherwise hyper polls the socket once more between each request head and its
            // response, only to notice a client hanging up, and that read reserves a fresh 8 KiB
            // read buffer because the request still holds the old one (callgrind: -640
            // instructions per request). It also answers a client that shuts its write side
            // after sending the request (`nc -N`), which hyper would otherwise drop unanswered.
            .half_close(true)
            // One flat buffer and one `write` instead of a head buffer plus a queue of body
            // chunks for `writev` (-400 instructions per request). Bodies come in 16 KiB slices,
            // so the buffer stays within `max_buf_size` (see `http::response::BODY_SLICE`).
            .writev(false);
        let mut h2c = http2::Builder::new(StreamExecutor { send_timeout });
        h2c.timer(TokioTimer::new())
            .max_header_list_size(MAX_HEAD_BYTES as u32)
            // hyper's defaults, set here because hyper may change them and because they bound
            // what one connection holds. Streams: Cloud Run caps requests in flight per instance
            // at its concurrency setting, 80 by default and at most 1 000
            // (<https://cloud.google.com/run/docs/about-concurrency>); 200 lets one front-end
            // connection carry the default with room, and a setting above it spreads over more
            // connections. More streams would cost little in bodies (the budget bounds those,
            // and a stream it refuses is answered at once) but up to a head of MAX_HEAD_BYTES
            // each.
            .max_concurrent_streams(H2_MAX_STREAMS)
            // Stream window: the largest body, so one arrives without waiting for a
            // WINDOW_UPDATE. Connection window the same: the request bytes h2 holds unread for a
            // connection stay at 1 MiB however many streams are open (RFC 9113 §6.9.2; the
            // spec's default is 64 KiB, which would stall a 1 MiB upload on round trips).
            .initial_stream_window_size(H2_WINDOW)
            .initial_connection_window_size(H2_WINDOW);
        Self { http1, h2c }
    }
}

/// hyper's executor for h2c streams (it spawns a task per stream): each runs under a send
/// deadline. Once its answer is out ([`Answered`]), a stream whose task is not woken for a
/// `send_timeout` (no window update, no body data: a client that gives the stream a window of
/// 0) is dropped, at the latest a second `send_timeout` later. Dropping it resets the stream
/// (`RST_STREAM` `CANCEL`) and frees its answer, with the body budget that answer holds. The
/// connection's own send timeout (`clock::Deadline`) cannot see this: such a client keeps its
/// connection busy with PINGs and WINDOW_UPDATEs for other streams.
#[derive(Debug, Clone, Copy)]
pub struct StreamExecutor {
    send_timeout: Duration,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        tokio::spawn(SendDeadline {
            stream,
            send_timeout: self.send_timeout,
            deadline: None,
            progressed: false,
        });
    }
}

pin_project_lite::pin_project! {
    /// A stream's task under [`StreamExecutor`]'s send deadline. A struct rather than an
    /// `async fn`, which would move the stream's future (hyper's `H2Stream`, hundreds of bytes)
    /// once more per stream (callgrind: +500 instructions per h2c request).
    struct SendDeadline<F> {
        #[pin]
        stream: F,
        send_timeout: Duration,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        progressed: bool,
    }
}

impl<F: Future<Output = ()>> Future for SendDeadline<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if let Some(sleep) = this.deadline.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                // Woken by the deadline: cut, unless woken by something else since it was
                // armed; then look again a whole timeout later.
                if !*this.progressed {
                    debug!(
                        "an h2c answer made no progress for the send timeout, resetting its stream"
                    );
                    return Poll::Ready(());
                }
                *this.progressed = false;
                sleep
                    .as_mut()
                    .reset(tokio::time::Instant::now() + *this.send_timeout);
                let _ = sleep.as_mut().poll(cx);
            } else {
                *this.progressed = true;
            }
        }
        ANSWERED.with(|a| a.set(false));
        if this.stream.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        // Answered, not done (waiting for window): the deadline starts.
        if this.deadline.is_none() && ANSWERED.with(Cell::get) {
            let mut sleep = Box::pin(tokio::time::sleep(*this.send_timeout));
            let _ = sleep.as_mut().poll(cx);
            *this.deadline = Some(sleep);
        }
        Poll::Pending
    }
}

thread_local! {
    /// Set when an h2c stream's answer is ready ([`Answered`]), for [`StreamExecutor`].
    static ANSWERED: Cell<bool> = const { Cell::new(false) };
}

/// An h2c stream's service future, telling [`StreamExecutor`] when the answer is ready: from
/// then on the stream is only sending, and the send deadline applies. (The service future is
/// polled inside the stream's task, that is inside the executor's poll.) Until then it also
/// keeps its connection from counting as idle ([`InFlight`]).
#[derive(Debug)]
pub struct Answered<F> {
    pub respond: F,
    pub _in_flight: InFlight,
}

impl<F: Future + Unpin> Future for Answered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let polled = Pin::new(&mut self.get_mut().respond).poll(cx);
        if polled.is_ready() {
            ANSWERED.with(|a| a.set(true));
        }
        polled
    }
}
