//! How a session meets its connection: one narrow interface, several transports.
//!
//! The session never sees a socket, a response body or a gRPC stream. It takes decoded input —
//! [`Inbound`] messages from a WebSocket, or command bytes an HTTP stream posts to
//! `/emulation` — and hands encoded wire frames to its [`Flow`]. Each transport drains the Flow
//! its own way:
//!
//! * [`websocket`]: the handshake (path, limits, origin, subprotocol, permessage-deflate) that
//!   starts a session; [`socket`]: its reads and writes outside actix-http's HTTP/1
//!   dispatcher; [`ws_frames`]: the client's frames decoded as its bytes arrive.
//! * [`http`]: HTTP-streaming and SSE, emulated (bidirectional, commands through `/emulation`)
//!   and unidirectional; the frames become a streamed response body.
//! * [`grpc`]: the unidirectional gRPC stream; each push becomes one gRPC message.

pub mod grpc;
pub mod http;
mod socket;
pub mod websocket;
pub mod ws_frames;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::task::Waker;

use bytes::Bytes;

pub use ws_frames::Inbound;

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
    /// An HTTP stream's body, waiting for frames (the session runs as a task of its own there).
    body: Cell<Option<Waker>>,
    /// Why the connect was refused (error or disconnect code, message), for transports that
    /// answer a refused connect with an HTTP status; the first reason counts.
    refusal: RefCell<Option<Box<(u32, String)>>>,
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

    /// The session writes a frame (wire bytes, header included), in order.
    pub(super) fn hand(&self, frame: Bytes) {
        self.handed_bytes.set(self.handed_bytes.get() + frame.len());
        self.handed.borrow_mut().push_back(frame);
        if let Some(body) = self.body.take() {
            body.wake();
        }
    }

    /// An HTTP stream's body waits for the next frame the session hands over.
    pub(super) fn wait_for_frames(&self, waker: &Waker) {
        self.body.set(Some(waker.clone()));
    }

    /// Records why the connect was refused, unless a reason is recorded already.
    pub(super) fn refuse_connect(&self, code: u32, text: &str) {
        let mut refusal = self.refusal.borrow_mut();
        if refusal.is_none() {
            *refusal = Some(Box::new((code, text.to_owned())));
        }
    }

    /// Why the connect was refused, if it was.
    pub(super) fn connect_refusal(&self) -> Option<(u32, String)> {
        self.refusal.borrow().as_deref().cloned()
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
}
