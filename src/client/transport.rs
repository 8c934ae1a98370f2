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

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use actix_http::error::PayloadError;
use actix_http::ws::Codec;
use actix_web::rt::net::TcpStream;
use actix_web_actors::ws::WebsocketContext;
use bytes::{Buf, Bytes};
use futures_util::Stream;
use tokio::io::Interest;
use tokio::time::{sleep, Instant, Sleep};

use super::frame_guard::{FrameGuard, Span};
use super::ClientSession;
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
/// `early` holds bytes the client sent right behind its handshake.
pub fn start(session: ClientSession, codec: Codec, io: TcpStream, early: &[u8], settings: &WebsocketSettings) {
    let io = Rc::new(io);
    let flow = session.flow.clone();
    let input = SocketInput {
        io: io.clone(),
        flow: flow.clone(),
        unread: Bytes::copy_from_slice(early),
        guard: FrameGuard::new(settings.message_size_limit),
        just_passed: false,
        read_in_turn: 0,
        ended: false,
    };
    // Boxed: the task then holds a pointer, not the session and its context inline in every
    // state of a generated future (which costs several copies of it per connection).
    let frames = Box::pin(WebsocketContext::with_codec(session, input, codec));
    let writer = Writer { flow, ..Writer::default() };
    actix_web::rt::spawn(Connection { io, frames, writer, write_timeout: settings.write_timeout });
}

/// What the session and its transport share to keep a connection's memory bounded: the session
/// pauses reading while commands wait, and sees how many of its bytes the socket has not taken.
#[derive(Default)]
pub(super) struct Flow {
    reading_paused: Cell<bool>,
    /// The input's task, parked while reading is paused.
    reader: Cell<Option<Waker>>,
    /// Frames the session wrote (wire bytes, header included) that the writer has not taken.
    handed: RefCell<VecDeque<Bytes>>,
    handed_bytes: Cell<usize>,
    /// Bytes the writer holds for the socket.
    pending: Cell<usize>,
    input_failed: Cell<bool>,
}

impl Flow {
    /// Stops or resumes reading the client's bytes (backpressure: a client whose commands are
    /// not processed yet gets nothing more read).
    pub(super) fn pause_reading(&self, paused: bool) {
        self.reading_paused.set(paused);
        if !paused {
            if let Some(reader) = self.reader.take() {
                reader.wake();
            }
        }
    }

    /// The session writes a data frame. Control frames (pong, close) go through the context's
    /// codec; the writer takes these first, so a close never overtakes the frames before it.
    pub(super) fn hand(&self, frame: Bytes) {
        self.handed_bytes.set(self.handed_bytes.get() + frame.len());
        self.handed.borrow_mut().push_back(frame);
    }

    /// Bytes the session wrote that the socket has not taken yet.
    pub(super) fn unsent(&self) -> usize {
        self.handed_bytes.get() + self.pending.get()
    }

    /// Takes every frame the session wrote (transports that are not a socket: uni HTTP streams).
    pub(super) fn take_all_handed(&self) -> VecDeque<Bytes> {
        self.handed_bytes.set(0);
        std::mem::take(&mut *self.handed.borrow_mut())
    }

    /// Whether reading the socket failed (as opposed to the decoder refusing what was read).
    pub(super) fn input_failed(&self) -> bool {
        self.input_failed.get()
    }
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

/// What the client sends, as the byte stream a [`WebsocketContext`] decodes frames from. It
/// passes one frame (or the part of it that has arrived) per poll of the decoder, so the
/// decoder's buffer never holds more than one frame, and refuses a frame whose header declares
/// too much (see [`FrameGuard`]).
struct SocketInput {
    io: Rc<TcpStream>,
    flow: Rc<Flow>,
    /// Read from the socket, not passed on yet: at most one read.
    unread: Bytes,
    guard: FrameGuard,
    /// Bytes were just passed on: the decoder takes them before anything more is read.
    just_passed: bool,
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
        if this.just_passed {
            // The decoder reads until Pending, then decodes one frame.
            this.just_passed = false;
            if this.guard.mid_frame() {
                // It cannot make a frame of a part: come back for the rest.
                task.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        if this.flow.reading_paused.get() {
            this.flow.reader.set(Some(task.waker().clone()));
            return Poll::Pending;
        }
        loop {
            if this.unread.is_empty() {
                match ready!(this.poll_read(task)) {
                    Ok(Some(bytes)) => this.unread = bytes,
                    Ok(None) => {
                        this.ended = true;
                        return Poll::Ready(None);
                    }
                    Err(error) => {
                        this.ended = true;
                        this.flow.input_failed.set(true);
                        return Poll::Ready(Some(Err(PayloadError::Io(error))));
                    }
                }
            }
            let passed = match this.guard.next(&this.unread) {
                Span::HeaderPart(taken) => {
                    this.unread.advance(taken);
                    continue;
                }
                Span::BufferedHeader { taken } => {
                    this.unread.advance(taken);
                    Bytes::from(this.guard.take_buffered_header())
                }
                Span::Frame(len) => this.unread.split_to(len),
                Span::Refused(refusal) => {
                    // The decoder fails on these bytes with the matching code; nothing more is read.
                    this.ended = true;
                    this.unread = Bytes::new();
                    Bytes::from_static(refusal.poison())
                }
            };
            this.just_passed = true;
            return Poll::Ready(Some(Ok(passed)));
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
                let polled = frames.as_mut().poll_next(task);
                self.take_handed();
                match polled {
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

    /// Takes the data frames the session wrote during the last poll, in order.
    fn take_handed(&mut self) {
        let mut handed = self.flow.handed.borrow_mut();
        if handed.is_empty() {
            return;
        }
        self.pending_bytes += self.flow.handed_bytes.replace(0);
        // Moved, not copied; the session's queue starts over without an allocation, so an idle
        // connection keeps none.
        let taken = std::mem::take(&mut *handed);
        if self.pending.is_empty() {
            self.pending = taken;
        } else {
            self.pending.extend(taken);
        }
        self.flow.pending.set(self.pending_bytes);
    }

    /// Takes what the session wrote through its context (control frames).
    fn queue(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.pending_bytes += bytes.len();
            self.pending.push_back(bytes);
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
