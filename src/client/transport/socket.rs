//! A WebSocket connection's socket I/O after the handshake, outside actix-http's HTTP/1
//! dispatcher.
//!
//! The session is an actix actor whose future this connection's task runs: this module decodes
//! the client's frames ([`super::ws_frames`]) into [`Inbound`] messages for it and writes the
//! frames it hands over ([`Flow`]). Why not let actix-http's dispatcher do it: the dispatcher keeps an 8 KiB read buffer and an 8 KiB write buffer (and its task) for as
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

use actix::dev::ContextFut;
use actix::{AsyncContext, Context as ActorContext};
use actix_web::rt::net::TcpStream;
use bytes::{Buf, Bytes};
use futures_util::Stream;
use tokio::io::Interest;
use tokio::time::{sleep, Instant, Sleep};

use super::ws_frames::{compress_frame, CompressionSettings, Decoder, DecoderSettings, Inbound};
use super::Flow;
use crate::client::ClientSession;
use crate::config::WebsocketSettings;

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
/// `early` holds bytes the client sent right behind its handshake; `deflate` says whether
/// permessage-deflate was negotiated.
pub fn start(session: ClientSession, io: TcpStream, early: &[u8], settings: &WebsocketSettings, deflate: bool) {
    let io = Rc::new(io);
    let flow = session.flow.clone();
    let limit = settings.message_size_limit;
    let inflated_limit = match settings.decompressed_message_size_limit {
        0 => limit.saturating_mul(10),
        set => set,
    };
    let input = SocketInput {
        io: io.clone(),
        flow: flow.clone(),
        unread: Bytes::copy_from_slice(early),
        decoder: Decoder::new(DecoderSettings { limit, inflated_limit, deflate }),
        read_in_turn: 0,
        ended: false,
    };
    let mut context = ActorContext::new();
    context.add_stream(input);
    // Boxed: the task then holds a pointer, not the session and its context inline in every
    // state of a generated future (which costs several copies of it per connection).
    let session = Box::pin(context.into_future(session));
    let compression = deflate
        .then_some(CompressionSettings { min_size: settings.compression_min_size, level: settings.deflate_level() });
    let writer = Writer { flow, compression, ..Writer::default() };
    actix_web::rt::spawn(Connection { io, session, writer, write_timeout: settings.write_timeout });
}

/// The session actor, run by its connection's task instead of a task of its own.
type SessionFuture = ContextFut<ClientSession, ActorContext<ClientSession>>;

/// The connection's task: runs the session and writes what it hands over.
struct Connection {
    io: Rc<TcpStream>,
    session: Pin<Box<SessionFuture>>,
    writer: Writer,
    write_timeout: Duration,
}

impl Future for Connection {
    type Output = ();

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Err(error) = ready!(this.writer.poll(&this.io, this.session.as_mut(), this.write_timeout, task)) {
            tracing::debug!(%error, "WebSocket connection closed");
        }
        actix_web::rt::spawn(linger(this.io.clone()));
        Poll::Ready(())
    }
}

/// What the client sends, decoded into messages for the session. Reading waits while the
/// session has commands left to run.
struct SocketInput {
    io: Rc<TcpStream>,
    flow: Rc<Flow>,
    /// Read from the socket, not decoded yet: at most one read.
    unread: Bytes,
    decoder: Decoder,
    read_in_turn: usize,
    ended: bool,
}

impl Stream for SocketInput {
    type Item = Inbound;

    fn poll_next(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Option<Inbound>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if this.flow.reading_paused.get() {
            this.flow.reader.set(Some(task.waker().clone()));
            return Poll::Pending;
        }
        loop {
            if let Some(item) = this.decoder.decode(&mut this.unread) {
                if matches!(item, Inbound::Refused(_)) {
                    // Nothing after a refused frame is read.
                    this.ended = true;
                    this.unread = Bytes::new();
                }
                return Poll::Ready(Some(item));
            }
            match ready!(this.poll_read(task)) {
                Ok(Some(bytes)) => this.unread = bytes,
                Ok(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Err(error) => {
                    tracing::debug!(%error, "reading the WebSocket failed");
                    this.ended = true;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl SocketInput {
    /// The next read from the socket: `Ok(None)` at end of stream.
    fn poll_read(&mut self, task: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if self.read_in_turn >= READ_TURN {
            // A client that floods yields to the others on the thread here.
            self.read_in_turn = 0;
            task.waker().wake_by_ref();
            return Poll::Pending;
        }
        loop {
            match self.io.poll_read_ready(task) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    self.read_in_turn = 0;
                    return Poll::Pending;
                }
            }
            match read_available(&self.io) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Ok(Some(bytes)) => {
                    self.read_in_turn += bytes.len();
                    return Poll::Ready(Ok(Some(bytes)));
                }
                other => return Poll::Ready(other),
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
    flow: Rc<Flow>,
    /// permessage-deflate, when negotiated.
    compression: Option<CompressionSettings>,
    /// Encoded frames the socket has not taken yet (the first may be partly written).
    pending: VecDeque<Bytes>,
    pending_bytes: usize,
    session_ended: bool,
    /// Armed while the socket refuses pending bytes: `websocket.write_timeout`.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Writer {
    fn poll(
        &mut self,
        io: &TcpStream,
        mut session: Pin<&mut SessionFuture>,
        write_timeout: Duration,
        task: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        for _ in 0..WRITE_TURNS {
            // Polling the session's future is what runs the actor; it returns once nothing it
            // waits for is ready.
            if !self.session_ended && self.pending_bytes < PENDING_WRITE_LIMIT {
                let polled = session.as_mut().poll(task);
                self.take_handed();
                self.session_ended = polled.is_ready();
            }
            if self.pending.is_empty() {
                // An idle connection keeps no queue allocation.
                self.pending = VecDeque::new();
                self.deadline = None;
                return if self.session_ended { Poll::Ready(Ok(())) } else { Poll::Pending };
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

    /// Takes the frames the session wrote during the last poll, in order (compressed, if the
    /// connection negotiated it).
    fn take_handed(&mut self) {
        let mut handed = self.flow.handed.borrow_mut();
        if handed.is_empty() {
            return;
        }
        let handed_bytes = self.flow.handed_bytes.replace(0);
        // Moved, not copied; the session's queue starts over without an allocation, so an idle
        // connection keeps none.
        let mut taken = std::mem::take(&mut *handed);
        match self.compression {
            Some(compression) => {
                for frame in &mut taken {
                    *frame = compress_frame(frame, compression);
                    self.pending_bytes += frame.len();
                }
            }
            None => self.pending_bytes += handed_bytes,
        }
        if self.pending.is_empty() {
            self.pending = taken;
        } else {
            self.pending.extend(taken);
        }
        self.flow.pending.set(self.pending_bytes);
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
        self.flow.pending.set(self.pending_bytes);
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
