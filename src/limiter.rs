//! One concurrency limiter for every path that starts a `claude` child (SPEC §12 item 1): sync
//! tools, parallel items, the aggregator, dialogue turns and async jobs all take a `Permit` from
//! the same `Limiter`. A permit is held by the thread that runs the child until the child has been
//! reaped, so a cancelled request never frees a slot early. The capacity can change at any time
//! (config reloads); holders are never forgotten, new acquirers simply wait until
//! `in_use < capacity`.
//!
//! A permit may also carry a machine-wide `gate::Slot` (`gate::admit` takes the permit first,
//! then the slot): `claude::run` keeps taking a `&Permit`, and whoever holds the permit holds
//! both, for exactly as long, and frees both by dropping it.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use crate::cancel::Cancel;
use crate::gate::Slot;

#[derive(Debug)]
struct State {
    capacity: usize,
    in_use: usize,
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

    /// Blocks until a slot is free, or returns `None` as soon as `cancel` is tripped.
    pub fn acquire(&self, cancel: &Cancel) -> Option<Permit> {
        let mut st = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if cancel.is_tripped() {
                return None;
            }
            if st.in_use < st.capacity {
                st.in_use += 1;
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
        self.inner.freed.notify_one();
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
