//! A WebSocket connection's socket I/O after the handshake, outside actix-http's HTTP/1
//! dispatcher.
//!
//! The session stays an actix-web-actors [`WebsocketContext`] actor: this module feeds it the
//! bytes read from the socket and writes the frames it encodes. Why not let the dispatcher do
//! it: the dispatcher keeps an 8 KiB read buffer and an 8 KiB write buffer (and its task) for as
//! long as the connection lives, which was most of an idle connection's memory. Here an idle
//! connection holds no buffer: reads go through one scratch buffer per thread and only the bytes
//! received are kept; frames are kept only until the socket takes them.
//!
//! Writes follow Centrifugo's `websocket.write_timeout`: a socket that takes nothing for that
//! long is closed, so a client that stopped reading cannot hold its session (and everything
//! queued for it) forever.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_http::error::PayloadError;
use actix_http::ws::Codec;
use actix_web::rt::net::TcpStream;
use actix_web_actors::ws::WebsocketContext;
use bytes::{Buf, Bytes};
use futures_util::Stream;
use tokio::io::Interest;
use tokio::time::{sleep, Instant, Sleep};

use super::ClientSession;

/// Size of the per-thread buffer reads go through.
const SCRATCH_SIZE: usize = 16 * 1024;
/// Bytes read for one session before the connection yields to others on the thread.
const READ_TURN: usize = 64 * 1024;
/// The session is not polled for more frames while this many bytes wait for the socket: a
/// client that reads slowly then backs up into its outbox, where `client.queue_max_size`
/// applies (3008).
const PENDING_WRITE_LIMIT: usize = 64 * 1024;
/// Frames written in one `writev`.
const MAX_SLICES: usize = 32;
/// Write rounds for one session before the connection yields to others on the thread.
const WRITE_TURNS: usize = 16;
/// After the session ends: how long unread client bytes are drained, so closing the socket
/// sends FIN, not a reset that could destroy the close frame before the client reads it.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_SIZE]);
}

/// Runs `session` on `io` (already upgraded) on the current thread until the connection ends.
/// `early` holds bytes the client sent right behind its handshake.
pub fn start(session: ClientSession, codec: Codec, io: TcpStream, early: &[u8], write_timeout: Duration) {
    let io = Rc::new(io);
    let early = (!early.is_empty()).then(|| Bytes::copy_from_slice(early));
    let input = SocketInput { io: io.clone(), early, read_in_turn: 0, ended: false };
    // Boxed: the task then holds a pointer, not the session and its context inline in every
    // state of a generated future (which costs several copies of it per connection).
    let frames = Box::pin(WebsocketContext::with_codec(session, input, codec));
    actix_web::rt::spawn(Connection { io, frames, writer: Writer::default(), write_timeout });
}

/// The connection's task: runs the session by polling its frames and writes them.
struct Connection<S> {
    io: Rc<TcpStream>,
    frames: Pin<Box<S>>,
    writer: Writer,
    write_timeout: Duration,
}

impl<S> Future for Connection<S>
where
    S: Stream<Item = Result<Bytes, actix_web::Error>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Err(error) = ready!(this.writer.poll(&this.io, this.frames.as_mut(), this.write_timeout, task)) {
            tracing::debug!(%error, "WebSocket connection closed");
        }
        actix_web::rt::spawn(linger(this.io.clone()));
        Poll::Ready(())
    }
}

/// What the client sends, as the byte stream a [`WebsocketContext`] decodes frames from.
struct SocketInput {
    io: Rc<TcpStream>,
    early: Option<Bytes>,
    read_in_turn: usize,
    ended: bool,
}

impl Stream for SocketInput {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(early) = this.early.take() {
            return Poll::Ready(Some(Ok(early)));
        }
        if this.read_in_turn >= READ_TURN {
            // The decoder reads until Pending; a client that floods yields to the others here.
            this.read_in_turn = 0;
            task.waker().wake_by_ref();
            return Poll::Pending;
        }
        let result = loop {
            match this.io.poll_read_ready(task) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => break Err(error),
                Poll::Pending => {
                    this.read_in_turn = 0;
                    return Poll::Pending;
                }
            }
            match read_available(&this.io) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                other => break other,
            }
        };
        match result {
            Ok(Some(bytes)) => {
                this.read_in_turn += bytes.len();
                Poll::Ready(Some(Ok(bytes)))
            }
            Ok(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Err(error) => {
                this.ended = true;
                Poll::Ready(Some(Err(PayloadError::Io(error))))
            }
        }
    }
}

/// Reads what the socket holds (up to the scratch size); `None` at end of stream.
fn read_available(io: &TcpStream) -> io::Result<Option<Bytes>> {
    read_into_scratch(io, |read| (!read.is_empty()).then(|| Bytes::copy_from_slice(read)))
}

/// One read into this thread's scratch buffer; `use_bytes` sees what was read (empty at end of
/// stream).
fn read_into_scratch<T>(io: &TcpStream, use_bytes: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
    SCRATCH.with_borrow_mut(|scratch| {
        let read = io.try_read(scratch)?;
        Ok(use_bytes(&scratch[..read]))
    })
}

#[derive(Default)]
struct Writer {
    /// Encoded frames the socket has not taken yet (the first may be partly written).
    pending: VecDeque<Bytes>,
    pending_bytes: usize,
    frames_ended: bool,
    /// Armed while the socket refuses pending bytes: `websocket.write_timeout`.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Writer {
    fn poll<S>(
        &mut self,
        io: &TcpStream,
        mut frames: Pin<&mut S>,
        write_timeout: Duration,
        task: &mut Context<'_>,
    ) -> Poll<io::Result<()>>
    where
        S: Stream<Item = Result<Bytes, actix_web::Error>>,
    {
        for _ in 0..WRITE_TURNS {
            // Polling the frame stream is what runs the session actor.
            while !self.frames_ended && self.pending_bytes < PENDING_WRITE_LIMIT {
                match frames.as_mut().poll_next(task) {
                    Poll::Ready(Some(Ok(bytes))) => self.queue(bytes),
                    Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(io::Error::other(error.to_string()))),
                    Poll::Ready(None) => self.frames_ended = true,
                    Poll::Pending => break,
                }
            }
            if self.pending.is_empty() {
                // An idle connection keeps no queue allocation.
                self.pending = VecDeque::new();
                self.deadline = None;
                return if self.frames_ended { Poll::Ready(Ok(())) } else { Poll::Pending };
            }
            match self.write_pending(io) {
                Ok(written) => {
                    self.advance(written);
                    self.deadline = None;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if ready!(self.poll_writable(io, write_timeout, task)).is_err() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client took nothing for websocket.write_timeout",
                        )));
                    }
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        task.waker().wake_by_ref();
        Poll::Pending
    }

    fn queue(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.pending_bytes += bytes.len();
            self.pending.push_back(bytes);
        }
    }

    fn write_pending(&self, io: &TcpStream) -> io::Result<usize> {
        if self.pending.len() == 1 {
            return io.try_write(&self.pending[0]);
        }
        let slices: Vec<IoSlice<'_>> = self.pending.iter().take(MAX_SLICES).map(|bytes| IoSlice::new(bytes)).collect();
        io.try_write_vectored(&slices)
    }

    fn advance(&mut self, mut written: usize) {
        self.pending_bytes -= written;
        while written > 0 {
            let Some(front) = self.pending.front_mut() else { return };
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.pending.pop_front();
        }
    }

    /// Ready(Ok) when the socket can take bytes again, Ready(Err) when the write deadline passed.
    fn poll_writable(
        &mut self,
        io: &TcpStream,
        write_timeout: Duration,
        task: &mut Context<'_>,
    ) -> Poll<Result<(), ()>> {
        if io.poll_write_ready(task).is_ready() {
            // Ready, or failed: the next write tells which.
            return Poll::Ready(Ok(()));
        }
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(sleep(write_timeout)));
        match deadline.as_mut().poll(task) {
            Poll::Ready(()) => Poll::Ready(Err(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Sends FIN and drains what the client still sends (bounded in time and bytes), then closes.
async fn linger(io: Rc<TcpStream>) {
    let deadline = Instant::now() + LINGER;
    if shutdown_write(&io).is_err() {
        return;
    }
    let mut drained = 0;
    while drained < LINGER_BYTES {
        let Ok(Ok(ready)) = tokio::time::timeout_at(deadline, io.ready(Interest::READABLE)).await else { return };
        if !ready.is_readable() {
            continue;
        }
        // Discarded where it was read: no copy.
        match read_into_scratch(&io, <[u8]>::len) {
            Ok(0) => return,
            Ok(read) => drained += read,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
    }
}

fn shutdown_write(io: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(io).shutdown(std::net::Shutdown::Write)
}
