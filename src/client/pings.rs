//! Server pings for every session of a thread, driven by one timer.
//!
//! Each session used to keep its own timers (the ping interval, then a pong deadline after
//! every ping): ~2 timer entries per connection that the runtime woke up for one by one, and
//! that the session's context polled on every wake-up, deliveries included. Here a wheel of
//! `ping_interval / tick` slots per thread holds each connected session once; every tick it
//! queues [`Deliver::Ping`] to the sessions of one slot and [`Deliver::PongDeadline`] to the
//! slot pinged `pong_timeout` earlier. An idle thread then wakes once per tick, and pongs come
//! back in bursts that one `epoll_wait` collects.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::Rng;

use super::messages::Deliver;
use super::outbox::Outbox;

/// Coarsest tick: the default 25 s interval and 8 s pong timeout get one-second slots.
const MAX_TICK: Duration = Duration::from_secs(1);
const MIN_TICK: Duration = Duration::from_millis(20);

thread_local! {
    // The wheels of this thread, one per (ping interval, pong timeout): several nodes can share
    // a thread in tests.
    static WHEELS: RefCell<Vec<Rc<RefCell<Wheel>>>> = const { RefCell::new(Vec::new()) };
}

/// Pings `outbox`'s session every `interval` (from a random phase) and, unless `pong_timeout`
/// is zero, tells it when the pong is due. Stops by itself once the outbox is closed.
pub fn schedule(outbox: &Arc<Outbox>, interval: Duration, pong_timeout: Duration) {
    if interval.is_zero() {
        return;
    }
    let wheel = WHEELS.with_borrow_mut(|wheels| {
        if let Some(wheel) = wheels.iter().find(|wheel| wheel.borrow().serves(interval, pong_timeout)) {
            return wheel.clone();
        }
        let wheel = Rc::new(RefCell::new(Wheel::new(interval, pong_timeout)));
        drive(wheel.clone());
        wheels.push(wheel.clone());
        wheel
    });
    wheel.borrow_mut().insert(Arc::downgrade(outbox));
}

struct Wheel {
    interval: Duration,
    pong_timeout: Duration,
    tick: Duration,
    slots: Vec<Vec<Weak<Outbox>>>,
    /// The slot pinged at the next tick.
    cursor: usize,
    /// Ticks from a ping to its pong deadline (`None`: pongs are not awaited).
    pong_ticks: Option<usize>,
}

impl Wheel {
    fn new(interval: Duration, pong_timeout: Duration) -> Self {
        let shortest = if pong_timeout.is_zero() { interval } else { interval.min(pong_timeout) };
        let tick = (shortest / 4).clamp(MIN_TICK, MAX_TICK);
        // Rounded down: a session is pinged at most one tick early, never late (SDKs give up
        // on a server that stays silent for longer than the interval they were told).
        let count = ((interval.as_nanos() / tick.as_nanos()) as usize).max(1);
        let pong_ticks = (!pong_timeout.is_zero()).then(|| {
            (pong_timeout.as_nanos().div_ceil(tick.as_nanos()) as usize).clamp(1, count.saturating_sub(1).max(1))
        });
        Self { interval, pong_timeout, tick, slots: vec![Vec::new(); count], cursor: 0, pong_ticks }
    }

    fn serves(&self, interval: Duration, pong_timeout: Duration) -> bool {
        self.interval == interval && self.pong_timeout == pong_timeout
    }

    /// Into a random slot between half a turn and a turn ahead: the first ping comes between
    /// `interval / 2` and `interval` after connect, as in Centrifugo, and connections that
    /// arrive together are not pinged together.
    fn insert(&mut self, outbox: Weak<Outbox>) {
        let count = self.slots.len();
        let ahead = rand::rng().random_range(count / 2..count);
        self.slots[(self.cursor + ahead) % count].push(outbox);
    }

    fn advance(&mut self) {
        let count = self.slots.len();
        let pinged = self.cursor;
        self.cursor = (self.cursor + 1) % count;
        if let Some(ticks) = self.pong_ticks {
            let due = (pinged + count - ticks % count) % count;
            Self::visit(&mut self.slots[due], || Deliver::PongDeadline);
        }
        Self::visit(&mut self.slots[pinged], || Deliver::Ping);
    }

    /// Queues `item` to every live session of `slot`, forgetting the closed ones.
    fn visit(slot: &mut Vec<Weak<Outbox>>, item: impl Fn() -> Deliver) {
        slot.retain(|outbox| outbox.upgrade().is_some_and(|outbox| outbox.push_control(item())));
        if slot.capacity() > 2 * slot.len() + 8 {
            slot.shrink_to_fit();
        }
    }
}

/// Ticks `wheel` on this thread for as long as the thread runs.
fn drive(wheel: Rc<RefCell<Wheel>>) {
    let tick = wheel.borrow().tick;
    actix_web::rt::spawn(async move {
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            wheel.borrow_mut().advance();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(interval_ms: u64, pong_ms: u64) -> Wheel {
        Wheel::new(Duration::from_millis(interval_ms), Duration::from_millis(pong_ms))
    }

    #[test]
    fn default_settings_get_one_second_slots() {
        let wheel = wheel(25_000, 8_000);
        assert_eq!((wheel.tick, wheel.slots.len(), wheel.pong_ticks), (MAX_TICK, 25, Some(8)));
    }

    #[test]
    fn short_intervals_get_finer_slots_and_pongs_are_never_due_after_the_next_ping() {
        let short = wheel(1_000, 500);
        assert_eq!((short.tick, short.slots.len(), short.pong_ticks), (Duration::from_millis(125), 8, Some(4)));
        let tight = wheel(2_000, 1_900);
        assert!(tight.pong_ticks.is_some_and(|ticks| ticks < tight.slots.len()));
        assert_eq!(wheel(1_000, 0).pong_ticks, None);
    }

    fn items(outbox: &Outbox) -> Vec<&'static str> {
        outbox
            .drain_for_test()
            .into_iter()
            .map(|item| match item {
                Deliver::Ping => "ping",
                Deliver::PongDeadline => "pong deadline",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn each_session_is_pinged_once_per_turn_then_told_its_pong_is_due() {
        let mut wheel = wheel(1_000, 500);
        let outbox = Outbox::new();
        wheel.slots[2].push(Arc::downgrade(&outbox));
        let mut seen = Vec::new();
        for tick in 0..16 {
            wheel.advance();
            seen.extend(items(&outbox).into_iter().map(|item| (tick, item)));
        }
        assert_eq!(seen, [(2, "ping"), (6, "pong deadline"), (10, "ping"), (14, "pong deadline")]);
    }

    #[test]
    fn the_first_ping_comes_between_half_an_interval_and_an_interval_after_connect() {
        let mut wheel = wheel(25_000, 8_000);
        for _ in 0..7 {
            wheel.advance();
        }
        let outbox = Outbox::new();
        for _ in 0..200 {
            wheel.insert(Arc::downgrade(&outbox));
        }
        // The k-th tick from now (k = 1, 2, ...) pings slot `cursor + k - 1`; the first tick
        // comes within one tick of now.
        let ahead: Vec<usize> = (0..wheel.slots.len())
            .filter(|slot| !wheel.slots[*slot].is_empty())
            .map(|slot| (slot + 25 - wheel.cursor) % 25)
            .collect();
        assert_eq!(ahead.iter().min(), Some(&12), "12 ticks ahead: pinged after 12-13 s");
        assert_eq!(ahead.iter().max(), Some(&24), "24 ticks ahead: pinged after 24-25 s");
    }

    #[test]
    fn closed_sessions_leave_the_wheel() {
        let mut wheel = wheel(1_000, 500);
        let closed = Outbox::new();
        closed.close();
        let dropped = Arc::downgrade(&Outbox::new());
        wheel.slots[0].extend([Arc::downgrade(&closed), dropped]);
        wheel.advance();
        assert!(wheel.slots[0].is_empty());
    }
}
