//! The machine gate within one test process: separate `MachineGate` values over one directory
//! stand for separate processes (each look opens its own descriptors, and `flock` locks of
//! different open files exclude each other even inside one process).

use super::*;
use std::sync::Mutex;
use std::thread;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d =
            std::env::temp_dir().join(format!("ad-gate-{name}-{}", uuid::Uuid::new_v4().simple()));
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn take(gate: &MachineGate) -> Slot {
    gate.acquire(&Cancel::new(), &mut |_| {}).unwrap().unwrap()
}

/// Polls `f` until it holds; a hang detector, not a speed claim.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

fn waiting(gate: &MachineGate) -> usize {
    gate.status().unwrap().waiting
}

#[test]
fn an_off_gate_gives_empty_slots_and_touches_nothing() {
    let d = Dir::new("off");
    let gate = MachineGate::new(d.0.clone(), 0);
    let slot = take(&gate);
    assert_eq!(slot.index(), None);
    assert!(!d.0.exists());
    assert_eq!(
        gate.status().unwrap(),
        Status {
            in_use: 0,
            configured: 0,
            waiting: 0
        }
    );
}

#[test]
fn never_more_holders_than_slots_across_gates() {
    let d = Dir::new("cap");
    let gates: Vec<MachineGate> = (0..4).map(|_| MachineGate::new(d.0.clone(), 3)).collect();
    let live = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    thread::scope(|s| {
        for i in 0..12 {
            let (gate, live, peak) = (&gates[i % 4], &live, &peak);
            s.spawn(move || {
                let slot = take(gate);
                assert!(slot.index().is_some_and(|i| i < 3));
                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
                live.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    assert!(peak.load(Ordering::SeqCst) <= 3);
    let status = gates[0].status().unwrap();
    assert_eq!((status.in_use, status.waiting), (0, 0));
}

#[test]
fn waiters_are_served_in_arrival_order() {
    let d = Dir::new("order");
    let held = take(&MachineGate::new(d.0.clone(), 1));
    let order = Mutex::new(Vec::new());
    thread::scope(|s| {
        let mut waiters = Vec::new();
        for name in ["first", "second", "third"] {
            let before = waiting(&MachineGate::new(d.0.clone(), 1));
            let order = &order;
            let dir = d.0.clone();
            waiters.push(s.spawn(move || {
                // Each waiter is its own "process" with its own gate value.
                let slot = take(&MachineGate::new(dir, 1));
                order.lock().unwrap().push(name);
                // Holds the slot a moment so the next in line has to wait for it.
                thread::sleep(Duration::from_millis(20));
                drop(slot);
            }));
            // The next one arrives only once this one is queued.
            wait_for("queued", || {
                waiting(&MachineGate::new(d.0.clone(), 1)) > before
            });
        }
        drop(held);
        for w in waiters {
            w.join().unwrap();
        }
    });
    assert_eq!(*order.lock().unwrap(), ["first", "second", "third"]);
}

#[test]
fn a_newcomer_leaves_a_free_slot_to_a_queued_waiter() {
    let d = Dir::new("overtake");
    let gate = MachineGate::new(d.0.clone(), 1);
    drop(take(&gate));
    // A live waiter that has not looked since the slot freed: its ticket, held and fresh.
    let queued = Ticket::enqueue(&d.0, 0).unwrap();
    let cancel = Cancel::new();
    let mut saw = None;
    let got = gate.acquire(&cancel, &mut |q| {
        saw = Some(q);
        cancel.trip();
    });
    assert!(got.unwrap().is_none(), "the free slot is the waiter's");
    assert_eq!(
        saw,
        Some(Queued {
            ahead: 1,
            in_use: 0,
            capacity: 1
        })
    );
    drop(queued);
    assert_eq!(take(&gate).index(), Some(0));
}

#[test]
fn cancel_leaves_the_queue() {
    let d = Dir::new("cancel");
    let gate = MachineGate::new(d.0.clone(), 1);
    let _held = take(&gate);
    let cancel = Cancel::new();
    thread::scope(|s| {
        let waiter = s.spawn(|| MachineGate::new(d.0.clone(), 1).acquire(&cancel, &mut |_| {}));
        wait_for("queued", || waiting(&gate) == 1);
        cancel.trip();
        assert!(waiter.join().unwrap().unwrap().is_none());
    });
    assert_eq!(waiting(&gate), 0);
    let tickets = fs::read_dir(&d.0)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("wait-"))
        .count();
    assert_eq!(tickets, 0, "the ticket file is gone");
}

#[test]
fn a_dead_waiter_is_removed_and_a_stopped_one_stops_counting() {
    let d = Dir::new("dead");
    let gate = MachineGate::new(d.0.clone(), 1);
    let held = take(&gate);
    // A dead waiter: a ticket file nobody holds.
    fs::write(d.0.join("wait-1.lock"), "").unwrap();
    // A stopped one: held, but not touched for longer than STALE_AFTER.
    let stopped = open_lock_file(&d.0.join("wait-2.lock"), true).unwrap();
    stopped.try_lock_exclusive().unwrap();
    let old = SystemTime::now() - STALE_AFTER - Duration::from_secs(5);
    stopped.set_modified(old).unwrap();
    assert_eq!(waiting(&gate), 0);
    assert!(!d.0.join("wait-1.lock").exists());
    assert!(d.0.join("wait-2.lock").exists());
    drop(held);
    // Neither stands in the way of a newcomer.
    assert_eq!(take(&gate).index(), Some(0));
    // The stopped waiter takes its turn once it looks again.
    stopped.set_modified(SystemTime::now()).unwrap();
    assert_eq!(waiting(&gate), 1);
}

#[test]
fn a_shrunk_gate_waits_for_extra_holders() {
    let d = Dir::new("shrink");
    let gate = MachineGate::new(d.0.clone(), 2);
    let a = take(&gate);
    let b = take(&gate);
    gate.set_capacity(1);
    let (ia, ib) = (a.index(), b.index());
    // Keep the holder of the slot that is now above the capacity; free the other.
    let (low, high) = if ia == Some(0) { (a, b) } else { (b, a) };
    drop(low);
    let cancel = Cancel::new();
    let mut saw = None;
    let got = gate.acquire(&cancel, &mut |q| {
        saw = Some(q);
        cancel.trip();
    });
    assert!(got.unwrap().is_none(), "slot 1 still counts: {ia:?} {ib:?}");
    assert_eq!(
        saw.map(|q| (q.in_use, q.capacity)),
        Some((1, 1)),
        "the extra holder is counted"
    );
    drop(high);
    assert_eq!(take(&gate).index(), Some(0));
}

#[test]
fn slots_in_use_reads_the_config_and_the_locks() {
    let d = Dir::new("status");
    fs::create_dir_all(&d.0).unwrap();
    let config = d.0.join("agents.yaml");
    fs::write(&config, "settings:\n  machine_max_concurrency: 2\n").unwrap();
    // `AGENT_DISPATCH_STATE_DIR` is not set in unit tests: the gate lives next to the config.
    assert_eq!(gate_dir(&config), d.0.join("gate"));
    assert_eq!(slots_in_use(&config).unwrap(), (0, 2));
    let gate = MachineGate::new(gate_dir(&config), 2);
    let held = take(&gate);
    assert_eq!(slots_in_use(&config).unwrap(), (1, 2));
    drop(held);
    assert_eq!(slots_in_use(&config).unwrap(), (0, 2));
    fs::write(&config, "settings:\n  machine_max_concurrency: nope\n").unwrap();
    assert!(matches!(slots_in_use(&config), Err(Error::Config(_))));
}

#[test]
fn admit_gives_a_permit_carrying_the_slot() {
    let d = Dir::new("admit");
    let limiter = Limiter::new(2);
    let gate = MachineGate::new(d.0.clone(), 1);
    let permit = admit(&limiter, &gate, &Cancel::new(), &mut |_| {})
        .unwrap()
        .unwrap();
    assert_eq!(permit.machine_slot(), Some(0));
    assert_eq!((limiter.in_use(), gate.status().unwrap().in_use), (1, 1));
    // The machine is full: a second admit holds a local permit while it waits, and gives it
    // back when cancelled.
    let cancel = Cancel::new();
    let second = admit(&limiter, &gate, &cancel, &mut |_| cancel.trip()).unwrap();
    assert!(second.is_none());
    assert_eq!(limiter.in_use(), 1);
    drop(permit);
    assert_eq!((limiter.in_use(), gate.status().unwrap().in_use), (0, 0));
    let off = admit(&limiter, &MachineGate::off(), &Cancel::new(), &mut |_| {})
        .unwrap()
        .unwrap();
    assert_eq!(off.machine_slot(), None);
}
