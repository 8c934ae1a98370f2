//! The per-connection outbox: everything channels and the registry send down to one session
//! ([`Deliver`]), in one ordered queue.
//!
//! Producers never wait: a frame is refused when it would take the queued bytes over the
//! client's budget (`client.queue_max_size`), and control items are always accepted. Instead
//! of one actix message per frame (two allocations and ~900 instructions each), producers push
//! into a shared `VecDeque` and wake the session only when the queue goes from empty to
//! non-empty; the session then takes everything queued at once (swapping buffers, so the steady
//! state allocates nothing) and handles it in one turn, so its frames leave in one socket write.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::messages::{Deliver, DeliverError};
use crate::protocol::Frame;
use actix::prelude::*;

/// A drained batch buffer keeps at most this many slots, so a burst does not pin memory.
const KEPT_BATCH_CAPACITY: usize = 64;

/// Items queued for one session, shared by its producers and the session.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Deliver>,
    /// Bytes of the frames in `items` (control items are not counted).
    bytes: usize,
    /// The session's task, parked while `items` is empty.
    waker: Option<Waker>,
    /// The session is gone: nothing is queued any more.
    closed: bool,
}

impl Queue {
    /// Queues an item; returns the waker to call (after unlocking) if the session was parked.
    fn push(&mut self, item: Deliver) -> Option<Waker> {
        if self.items.capacity() == 0 {
            // An idle connection sees one item at a time: grow from one slot, not four.
            self.items.reserve_exact(1);
        }
        self.items.push_back(item);
        if self.items.len() == 1 {
            self.waker.take()
        } else {
            None
        }
    }
}

impl Outbox {
    /// An empty, open outbox.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue half-updated; keep going.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a shared frame if it fits in `budget` bytes together with what is already queued.
    pub fn push_frame(&self, frame: &Frame, budget: usize) -> Result<(), DeliverError> {
        let mut queue = self.lock();
        if queue.closed {
            return Err(DeliverError::Gone);
        }
        let bytes = queue.bytes + frame.len();
        if bytes > budget {
            return Err(DeliverError::Slow);
        }
        queue.bytes = bytes;
        let waker = queue.push(Deliver::Frame(frame.clone()));
        drop(queue);
        wake(waker);
        Ok(())
    }

    /// Queues a control item (subscribe answer, unsubscribe, disconnect, server action): these
    /// are rare and must not be dropped, so the budget does not apply. Dropped if the session is
    /// gone.
    /// Returns whether the item was queued.
    pub fn push_control(&self, item: Deliver) -> bool {
        let mut queue = self.lock();
        if queue.closed {
            return false;
        }
        let waker = queue.push(item);
        drop(queue);
        wake(waker);
        true
    }

    /// Everything queued, taken out (unit tests of producers).
    #[cfg(test)]
    pub(crate) fn drain_for_test(&self) -> Vec<Deliver> {
        let mut queue = self.lock();
        queue.bytes = 0;
        queue.items.drain(..).collect()
    }

    /// The session is closing: drops what is queued; later frames are refused as
    /// [`DeliverError::Gone`].
    pub fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        queue.bytes = 0;
        queue.waker = None;
        let items = std::mem::take(&mut queue.items);
        drop(queue);
        drop(items);
    }

    /// Moves everything queued into the empty `batch` (`Ready(true)`) or finds nothing
    /// (`Pending`); `Ready(false)` once closed. Either way the task is woken by the next push,
    /// so after handling a batch the session can park without looking again.
    fn poll_take(&self, batch: &mut VecDeque<Deliver>, task: &mut Context<'_>) -> Poll<bool> {
        let mut queue = self.lock();
        if queue.closed {
            return Poll::Ready(false);
        }
        if !queue.waker.as_ref().is_some_and(|waker| waker.will_wake(task.waker())) {
            queue.waker = Some(task.waker().clone());
        }
        if queue.items.is_empty() {
            return Poll::Pending;
        }
        std::mem::swap(&mut queue.items, batch);
        queue.bytes = 0;
        Poll::Ready(true)
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// An actor fed by an [`Outbox`] (the client session; the fan-out bench's sinks).
pub trait Deliveries: Actor<Context: AsyncContext<Self>> {
    /// Handles one batch, oldest first. Items left in `batch` are dropped.
    fn deliver(&mut self, batch: &mut VecDeque<Deliver>, ctx: &mut Self::Context);

    /// Feeds `outbox` to this actor until the outbox is closed.
    fn attach(outbox: Arc<Outbox>, ctx: &mut Self::Context) -> SpawnHandle {
        ctx.spawn(Pump { outbox, batch: VecDeque::new() })
    }
}

/// The actor future that moves batches from the outbox to the actor.
struct Pump {
    outbox: Arc<Outbox>,
    /// Spare buffer swapped with the outbox's queue, so steady-state batches allocate nothing.
    batch: VecDeque<Deliver>,
}

impl<A: Deliveries> ActorFuture<A> for Pump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, act: &mut A, ctx: &mut A::Context, task: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.outbox.poll_take(&mut this.batch, task) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(false) => return Poll::Ready(()),
            Poll::Ready(true) => {}
        }
        act.deliver(&mut this.batch, ctx);
        this.batch.clear();
        this.batch.shrink_to(KEPT_BATCH_CAPACITY);
        // One batch per turn: anything queued meanwhile has woken the task again, and the
        // connection's reads and timers get their turn first.
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;
    use crate::client::messages::SubscribeAnswer;
    use crate::domain::ChannelName;
    use crate::protocol::Disconnect;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl CountingWaker {
        fn wakes(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn subscribed(channel: &str) -> Deliver {
        let channel = ChannelName::new_unchecked(channel);
        Deliver::Subscribed(Box::new(SubscribeAnswer { channel, outcome: Ok(Default::default()) }))
    }

    fn describe(item: &Deliver) -> String {
        match item {
            Deliver::Frame(frame) => String::from_utf8_lossy(frame.payload()).into_owned(),
            Deliver::Subscribed(answer) => format!("subscribed {}", answer.channel),
            Deliver::Unsubscribe { channel, .. } => format!("unsubscribe {channel}"),
            Deliver::Disconnect(disconnect) => format!("disconnect {}", disconnect.code),
            Deliver::Server(_) => "server".to_owned(),
            Deliver::Ping => "ping".to_owned(),
            Deliver::PongDeadline => "pong deadline".to_owned(),
        }
    }

    /// One poll of the session's pump: `Ready(Some(batch))`, `Ready(None)` once closed.
    fn take(outbox: &Outbox, waker: &Arc<CountingWaker>) -> Poll<Option<Vec<String>>> {
        let waker = Waker::from(waker.clone());
        let mut batch = VecDeque::new();
        outbox
            .poll_take(&mut batch, &mut Context::from_waker(&waker))
            .map(|open| open.then(|| batch.iter().map(describe).collect()))
    }

    fn frame(text: &'static str) -> Frame {
        Frame::text(text)
    }

    #[test]
    fn control_items_and_frames_come_out_in_the_order_they_were_queued() {
        let outbox = Outbox::new();
        outbox.push_control(subscribed("a"));
        outbox.push_frame(&frame("a1"), 1024).unwrap();
        outbox.push_control(subscribed("b"));
        outbox.push_frame(&frame("b1"), 1024).unwrap();
        outbox.push_control(Deliver::Unsubscribe { channel: ChannelName::new_unchecked("a"), code: 2000, reason: "" });
        outbox.push_frame(&frame("b2"), 1024).unwrap();
        outbox.push_control(Deliver::Disconnect(Disconnect::SLOW));
        let batch = take(&outbox, &Arc::default());
        let expected = ["subscribed a", "a1", "subscribed b", "b1", "unsubscribe a", "b2", "disconnect 3008"];
        assert_eq!(batch, Poll::Ready(Some(expected.map(String::from).to_vec())));
    }

    #[test]
    fn frames_over_the_byte_budget_are_refused_as_slow_but_control_items_pass() {
        let outbox = Outbox::new();
        assert_eq!(outbox.push_frame(&frame("12345"), 10), Ok(()));
        assert_eq!(outbox.push_frame(&frame("67890"), 10), Ok(()));
        assert_eq!(outbox.push_frame(&frame("x"), 10), Err(DeliverError::Slow));
        assert_eq!(outbox.push_frame(&frame("12345678901"), 100), Ok(()), "the budget is per call");
        outbox.push_control(Deliver::Disconnect(Disconnect::SLOW));
        let batch = take(&outbox, &Arc::default());
        assert_eq!(
            batch,
            Poll::Ready(Some(["12345", "67890", "12345678901", "disconnect 3008"].map(String::from).to_vec()))
        );
        // Taken frames no longer count.
        assert_eq!(outbox.push_frame(&frame("1234567890"), 10), Ok(()));
        assert_eq!(outbox.push_frame(&frame("12345678901"), 10), Err(DeliverError::Slow));
    }

    #[test]
    fn the_session_is_woken_once_per_batch_not_per_item() {
        let outbox = Outbox::new();
        let waker = Arc::new(CountingWaker::default());
        assert_eq!(take(&outbox, &waker), Poll::Pending);
        for _ in 0..3 {
            outbox.push_frame(&frame("f"), 1024).unwrap();
        }
        outbox.push_control(subscribed("a"));
        assert_eq!(waker.wakes(), 1);
        assert_eq!(
            take(&outbox, &waker),
            Poll::Ready(Some(["f", "f", "f", "subscribed a"].map(String::from).to_vec()))
        );
        assert_eq!(take(&outbox, &waker), Poll::Pending);
        outbox.push_frame(&frame("g"), 1024).unwrap();
        assert_eq!(waker.wakes(), 2);
    }

    #[test]
    fn a_closed_outbox_refuses_frames_as_gone_and_drops_everything() {
        let outbox = Outbox::new();
        outbox.push_frame(&frame("f"), 1024).unwrap();
        outbox.close();
        assert_eq!(outbox.push_frame(&frame("g"), 1024), Err(DeliverError::Gone));
        outbox.push_control(subscribed("a"));
        assert_eq!(take(&outbox, &Arc::default()), Poll::Ready(None));
    }

    /// Records each batch it is handed.
    struct Collector {
        batches: tokio::sync::mpsc::UnboundedSender<Vec<String>>,
        outbox: Arc<Outbox>,
    }

    impl Actor for Collector {
        type Context = actix::Context<Self>;

        fn started(&mut self, ctx: &mut Self::Context) {
            Self::attach(self.outbox.clone(), ctx);
        }
    }

    impl Deliveries for Collector {
        fn deliver(&mut self, batch: &mut VecDeque<Deliver>, _: &mut Self::Context) {
            let _ = self.batches.send(batch.iter().map(describe).collect());
        }
    }

    #[test]
    fn the_actor_gets_everything_queued_since_its_last_turn_as_one_batch() {
        let outbox = Outbox::new();
        outbox.push_control(subscribed("a"));
        outbox.push_frame(&frame("a1"), 1024).unwrap();
        outbox.push_frame(&frame("a2"), 1024).unwrap();
        let batches = System::new().block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let _collector = Collector { batches: tx, outbox: outbox.clone() }.start();
            let first = rx.recv().await;
            // Both pushes happen before the actor's task runs again.
            outbox.push_frame(&frame("a3"), 1024).unwrap();
            outbox.push_control(Deliver::Disconnect(Disconnect::SLOW));
            let second = rx.recv().await;
            [first, second]
        });
        let expected = [vec!["subscribed a", "a1", "a2"], vec!["a3", "disconnect 3008"]]
            .map(|batch| Some(batch.into_iter().map(String::from).collect::<Vec<_>>()));
        assert_eq!(batches, expected);
    }
}
