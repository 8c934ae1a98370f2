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
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::rt::net::TcpStream;
use bytes::{Buf, Bytes};
use futures_util::future::LocalBoxFuture;
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
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
pub fn start<S: SocketIo>(session: ClientSession, io: S, early: &[u8], settings: &WebsocketSettings, deflate: bool) {
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
struct Connection<S> {
    io: Rc<S>,
    session: Pin<Box<SessionFuture>>,
    writer: Writer,
    write_timeout: Duration,
}

impl<S: SocketIo> Future for Connection<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Err(error) = ready!(this.writer.poll(&*this.io, this.session.as_mut(), this.write_timeout, task)) {
            tracing::debug!(%error, "WebSocket connection closed");
        }
        actix_web::rt::spawn(this.io.clone().close());
        Poll::Ready(())
    }
}

/// What the client sends, decoded into messages for the session. Reading waits while the
/// session has commands left to run.
struct SocketInput<S> {
    io: Rc<S>,
    flow: Rc<Flow>,
    /// Read from the socket, not decoded yet: at most one read.
    unread: Bytes,
    decoder: Decoder,
    read_in_turn: usize,
    ended: bool,
}

impl<S: SocketIo> Stream for SocketInput<S> {
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

impl<S: SocketIo> SocketInput<S> {
    /// The next read from the socket: `Ok(None)` at end of stream.
    fn poll_read(&mut self, task: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if self.read_in_turn >= READ_TURN {
            // A client that floods yields to the others on the thread here.
            self.read_in_turn = 0;
            task.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.io.poll_read_some(task) {
            Poll::Ready(Ok(Some(bytes))) => {
                self.read_in_turn += bytes.len();
                Poll::Ready(Ok(Some(bytes)))
            }
            Poll::Pending => {
                self.read_in_turn = 0;
                Poll::Pending
            }
            other => other,
        }
    }
}

/// What a connection's task needs of its socket; the reader and the writer share it, on the
/// connection's one task. Plain TCP is read and written by readiness, with no buffer of its
/// own ([`TcpStream`]); TLS goes through rustls ([`TlsSocket`]).
pub trait SocketIo: 'static {
    /// What the client sent, up to the scratch size; `Ok(None)` at end of stream.
    fn poll_read_some(&self, task: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>>;
    /// Writes from the front of `frames`: how many bytes were taken.
    fn poll_write_frames(&self, task: &mut Context<'_>, frames: &VecDeque<Bytes>) -> Poll<io::Result<usize>>;
    /// Ready once no byte taken by `poll_write_frames` waits inside the I/O layer.
    fn poll_flush(&self, task: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ends the connection after the session: see [`linger`].
    fn close(self: Rc<Self>) -> LocalBoxFuture<'static, ()>;
}

impl SocketIo for TcpStream {
    fn poll_read_some(&self, task: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            ready!(self.poll_read_ready(task))?;
            match read_available(self) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_write_frames(&self, task: &mut Context<'_>, frames: &VecDeque<Bytes>) -> Poll<io::Result<usize>> {
        loop {
            let written = if frames.len() == 1 {
                self.try_write(&frames[0])
            } else {
                let slices: Vec<IoSlice<'_>> =
                    frames.iter().take(MAX_SLICES).map(|bytes| IoSlice::new(bytes)).collect();
                self.try_write_vectored(&slices)
            };
            match written {
                // Not writable after all: wait for readiness again (tokio cleared it).
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => ready!(self.poll_write_ready(task))?,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn close(self: Rc<Self>) -> LocalBoxFuture<'static, ()> {
        Box::pin(async move {
            if shutdown_write(&self).is_ok() {
                linger(&self).await;
            }
        })
    }
}

/// A WebSocket over TLS. rustls keeps its own buffers (about 20 KB a connection more than plain
/// TCP; see docs/benchmarks.md).
pub struct TlsSocket(RefCell<TlsStream<TcpStream>>);

impl TlsSocket {
    pub fn new(stream: TlsStream<TcpStream>) -> Self {
        Self(RefCell::new(stream))
    }
}

impl SocketIo for TlsSocket {
    fn poll_read_some(&self, task: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        let mut stream = self.0.borrow_mut();
        SCRATCH.with_borrow_mut(|scratch| {
            let mut buf = ReadBuf::new(scratch);
            ready!(Pin::new(&mut *stream).poll_read(task, &mut buf))?;
            let read = buf.filled();
            Poll::Ready(Ok((!read.is_empty()).then(|| Bytes::copy_from_slice(read))))
        })
    }

    fn poll_write_frames(&self, task: &mut Context<'_>, frames: &VecDeque<Bytes>) -> Poll<io::Result<usize>> {
        let slices: Vec<IoSlice<'_>> = frames.iter().take(MAX_SLICES).map(|bytes| IoSlice::new(bytes)).collect();
        Pin::new(&mut *self.0.borrow_mut()).poll_write_vectored(task, &slices)
    }

    fn poll_flush(&self, task: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(task)
    }

    fn close(self: Rc<Self>) -> LocalBoxFuture<'static, ()> {
        Box::pin(async move {
            // close_notify, then FIN: bounded like the drain that follows.
            let closing = std::future::poll_fn(|task| Pin::new(&mut *self.0.borrow_mut()).poll_shutdown(task));
            if let Ok(Ok(())) = tokio::time::timeout(LINGER, closing).await {
                // The connection's task has ended by now: this is the socket's last holder.
                if let Ok(socket) = Rc::try_unwrap(self) {
                    let stream = socket.0.into_inner();
                    linger(stream.get_ref().0).await;
                }
            }
        })
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
    fn poll<S: SocketIo>(
        &mut self,
        io: &S,
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
                // TLS may still hold records the socket did not take.
                if io.poll_flush(task)?.is_pending() {
                    return self.wait_for_socket(write_timeout, task);
                }
                self.deadline = None;
                return if self.session_ended { Poll::Ready(Ok(())) } else { Poll::Pending };
            }
            match io.poll_write_frames(task, &self.pending) {
                Poll::Ready(Ok(written)) => {
                    self.advance(written);
                    self.deadline = None;
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return self.wait_for_socket(write_timeout, task),
            }
        }
        task.waker().wake_by_ref();
        Poll::Pending
    }

    /// The socket takes nothing now (it wakes the task when it does): Pending, or an error once
    /// it has taken nothing for `websocket.write_timeout`.
    fn wait_for_socket(&mut self, write_timeout: Duration, task: &mut Context<'_>) -> Poll<io::Result<()>> {
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(sleep(write_timeout)));
        ready!(deadline.as_mut().poll(task));
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client took nothing for websocket.write_timeout")))
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
}

/// Drains what the client still sends after the session ended (bounded in time and bytes),
/// so that closing the socket sends FIN, not a reset that could destroy the close frame before
/// the client reads it.
async fn linger(io: &TcpStream) {
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    while drained < LINGER_BYTES {
        let Ok(Ok(ready)) = tokio::time::timeout_at(deadline, io.ready(Interest::READABLE)).await else { return };
        if !ready.is_readable() {
            continue;
        }
        // Discarded where it was read: no copy.
        match read_into_scratch(io, <[u8]>::len) {
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
