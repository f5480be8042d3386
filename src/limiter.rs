//! One concurrency limiter for every path that starts a `claude` child (SPEC §12 item 1): sync
//! tools, parallel items, the aggregator, dialogue turns and async jobs all take a `Permit` from
//! the same `Limiter`. A permit is held by the thread that runs the child until the child has been
//! reaped, so a cancelled request never frees a slot early. The capacity can change at any time
//! (config reloads); holders are never forgotten, new acquirers simply wait until
//! `in_use < capacity`.
//!
//! Waiters are served in arrival order (a ticket queue, as the reference's semaphore does): a
//! burst of async jobs queued first is served first, but a later interactive `dispatch` can no
//! longer lose every race for a freed slot to them, or to each other, indefinitely.
//! A permit may also carry a machine-wide `gate::Slot` (`gate::admit` takes the permit first,
//! then the slot): `claude::run` keeps taking a `&Permit`, and whoever holds the permit holds
//! both, for exactly as long, and frees both by dropping it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use crate::cancel::Cancel;
use crate::gate::Slot;

#[derive(Debug)]
struct State {
    capacity: usize,
    in_use: usize,
    /// Tickets of the threads waiting for a slot, oldest first.
    queue: VecDeque<u64>,
    next_ticket: u64,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Clone, Debug)]
pub struct Limiter(Arc<Inner>);

/// A held slot, with the machine slot it carries, if any; dropping it frees both.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
    machine: Option<Slot>,
}

/// How often a waiter re-checks its `Cancel` flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

impl Limiter {
    pub fn new(capacity: usize) -> Self {
        Limiter(Arc::new(Inner {
            state: Mutex::new(State {
                capacity: capacity.max(1),
                in_use: 0,
                queue: VecDeque::new(),
                next_ticket: 0,
            }),
            freed: Condvar::new(),
        }))
    }

    /// Changes the capacity. Existing holders keep their slots; when the capacity shrinks below
    /// `in_use`, new acquirers wait until enough holders finish.
    pub fn set_capacity(&self, capacity: usize) {
        let mut st = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.capacity != capacity.max(1) {
            st.capacity = capacity.max(1);
            self.0.freed.notify_all();
        }
    }

    pub fn in_use(&self) -> usize {
        self.0
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .in_use
    }

    /// How many threads are waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.0
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queue
            .len()
    }

    /// Blocks until a slot is free and every earlier waiter has been served, or returns `None`
    /// as soon as `cancel` is tripped.
    pub fn acquire(&self, cancel: &Cancel) -> Option<Permit> {
        let mut st = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        if cancel.is_tripped() {
            return None;
        }
        if st.queue.is_empty() && st.in_use < st.capacity {
            st.in_use += 1;
            return Some(Permit {
                inner: Arc::clone(&self.0),
                machine: None,
            });
        }
        let ticket = st.next_ticket;
        st.next_ticket = st.next_ticket.wrapping_add(1);
        st.queue.push_back(ticket);
        loop {
            if cancel.is_tripped() {
                st.queue.retain(|t| *t != ticket);
                // The head may have changed: let the new one look.
                self.0.freed.notify_all();
                return None;
            }
            if st.queue.front() == Some(&ticket) && st.in_use < st.capacity {
                st.queue.pop_front();
                st.in_use += 1;
                // A grown capacity may have room for the next in line as well.
                self.0.freed.notify_all();
                return Some(Permit {
                    inner: Arc::clone(&self.0),
                    machine: None,
                });
            }
            st = self
                .0
                .freed
                .wait_timeout(st, CANCEL_POLL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Permit {
    /// Makes this permit carry a machine slot (an off gate's empty slot changes nothing).
    pub fn hold(&mut self, slot: Slot) {
        if slot.index().is_some() {
            self.machine = Some(slot);
        }
    }

    /// The index of the machine slot this permit carries, if the gate is on.
    pub fn machine_slot(&self) -> Option<usize> {
        self.machine.as_ref().and_then(Slot::index)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // The machine slot first: other processes may be waiting for it.
        drop(self.machine.take());
        let mut st = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        st.in_use = st.in_use.saturating_sub(1);
        // Every waiter re-checks; only the head of the queue takes the slot.
        self.inner.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    #[test]
    fn never_exceeds_capacity() {
        let lim = Limiter::new(3);
        let live = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (lim, live, peak) = (lim.clone(), live.clone(), peak.clone());
                thread::spawn(move || {
                    let _p = lim.acquire(&Cancel::new());
                    let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(10));
                    live.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(lim.in_use(), 0);
    }

    #[test]
    fn shrinking_keeps_holders_counted() {
        let lim = Limiter::new(2);
        let a = lim.acquire(&Cancel::new());
        let b = lim.acquire(&Cancel::new());
        lim.set_capacity(1);
        drop(a);
        // One holder left at capacity 1: a new acquirer must wait.
        let cancel = Cancel::new();
        cancel.trip();
        assert!(lim.acquire(&cancel).is_none());
        drop(b);
        assert!(lim.acquire(&Cancel::new()).is_some());
    }

    /// Waits (bounded, generous) until `f` holds.
    fn eventually(mut f: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "condition never held");
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Starts a thread that waits for a slot, records `id` when served, then frees the slot;
    /// returns once it is queued.
    fn queued_waiter(
        lim: &Limiter,
        id: usize,
        cancel: Cancel,
        served: &Arc<Mutex<Vec<usize>>>,
    ) -> thread::JoinHandle<bool> {
        let before = lim.waiting();
        let (l2, s2) = (lim.clone(), Arc::clone(served));
        let t = thread::spawn(move || match l2.acquire(&cancel) {
            Some(_permit) => {
                s2.lock().unwrap_or_else(PoisonError::into_inner).push(id);
                true
            }
            None => false,
        });
        eventually(|| lim.waiting() == before + 1);
        t
    }

    #[test]
    fn waiters_are_served_in_arrival_order() {
        let lim = Limiter::new(1);
        let held = lim.acquire(&Cancel::new());
        let served = Arc::new(Mutex::new(Vec::new()));
        let waiters: Vec<_> = (0..8)
            .map(|id| queued_waiter(&lim, id, Cancel::new(), &served))
            .collect();
        drop(held);
        for w in waiters {
            assert!(w.join().unwrap_or(false));
        }
        let order = served
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(order, (0..8).collect::<Vec<_>>());
        assert_eq!(lim.in_use(), 0);
        assert_eq!(lim.waiting(), 0);
    }

    #[test]
    fn a_cancelled_waiter_leaves_the_queue() {
        let lim = Limiter::new(1);
        let held = lim.acquire(&Cancel::new());
        let served = Arc::new(Mutex::new(Vec::new()));
        let head = Cancel::new();
        let middle = Cancel::new();
        let w0 = queued_waiter(&lim, 0, head.clone(), &served);
        let w1 = queued_waiter(&lim, 1, middle.clone(), &served);
        let w2 = queued_waiter(&lim, 2, Cancel::new(), &served);
        middle.trip();
        assert!(!w1.join().unwrap_or(true));
        head.trip();
        assert!(!w0.join().unwrap_or(true));
        assert_eq!(lim.waiting(), 1);
        drop(held);
        assert!(w2.join().unwrap_or(false));
        assert_eq!(*served.lock().unwrap_or_else(PoisonError::into_inner), [2]);
    }

    #[test]
    fn growing_serves_several_waiters_and_shrinking_strands_no_holder() {
        let lim = Limiter::new(1);
        let held = lim.acquire(&Cancel::new());
        let (l2, l3) = (lim.clone(), lim.clone());
        let a = thread::spawn(move || l2.acquire(&Cancel::new()));
        eventually(|| lim.waiting() == 1);
        let b = thread::spawn(move || l3.acquire(&Cancel::new()));
        eventually(|| lim.waiting() == 2);
        lim.set_capacity(3);
        let pa = a.join().ok().flatten();
        let pb = b.join().ok().flatten();
        assert!(pa.is_some() && pb.is_some());
        assert_eq!(lim.in_use(), 3);
        lim.set_capacity(1);
        assert_eq!(lim.in_use(), 3, "holders keep their slots");
        drop((held, pa));
        let cancel = Cancel::new();
        cancel.trip();
        assert!(
            lim.acquire(&cancel).is_none(),
            "still one holder at capacity 1"
        );
        drop(pb);
        assert_eq!(lim.in_use(), 0);
        assert!(lim.acquire(&Cancel::new()).is_some());
    }

    #[test]
    fn cancel_wakes_a_waiter() {
        let lim = Limiter::new(1);
        let _held = lim.acquire(&Cancel::new());
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        let l2 = lim.clone();
        let waiter = thread::spawn(move || l2.acquire(&c2).is_none());
        thread::sleep(Duration::from_millis(30));
        cancel.trip();
        assert!(waiter.join().unwrap_or(false));
    }
}
