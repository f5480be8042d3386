//! One concurrency gate per machine (`settings.machine_max_concurrency: N`, 0 = off): at most N
//! children live at once across every `serve` and CLI process that uses the same config
//! directory. Each process's own `Limiter` (`max_concurrency`) still applies and is passed
//! first (`admit`), so a process never queues more machine waiters than it may run children.
//!
//! All the state is files under `<state dir>/gate/` (`AGENT_DISPATCH_STATE_DIR`, else the
//! config file's directory) guarded by fs2 (`flock`) locks, so whatever a dead process held the
//! kernel frees with its last descriptor. `flock` locks belong to an open file, so two threads
//! of one process exclude each other like two processes do (not so on NFS, where Linux maps
//! `flock` to per-process POSIX locks: the state directory must be local):
//!
//! - `slot-<i>.lock` (i < N): a slot is an exclusive lock on one of these. The `Slot` rides in
//!   the child's `limiter::Permit`, taken before the spawn and dropped after the reap, so a slot
//!   is held exactly while a child can live. A holder that dies frees its slot, and its child
//!   dies with it (`PR_SET_PDEATHSIG` in `process`).
//! - `wait-<ticket>.lock`: one per queued waiter, exclusively locked by it while it waits. A new
//!   ticket is one more than the highest live one, so tickets order the queue by arrival. A file
//!   whose lock anyone can take belongs to a dead waiter and is deleted by whoever looks next; a
//!   live waiter touches its file on every look, and one untouched for `STALE_AFTER` (a stopped
//!   process) stops counting as ahead of anyone. The queue is bounded by the live waiters, at
//!   most the sum of the processes' `max_concurrency`.
//! - `queue.lock`: every look at the queue, and every slot taken, happens under this lock, held
//!   for a few syscalls. A look counts the free slots (try-locking each) and the live waiters
//!   ahead; the looker takes a slot only when more are free than waiters ahead of it, since each
//!   of those takes one at its next look. So nobody overtakes a waiter that keeps looking.
//!
//! File locks wake nobody when a slot frees, so a queued waiter looks again after a pause set by
//! its place: `PAUSE_STEP` at the head of the queue, one more step per waiter ahead, at most
//! `MAX_PAUSE`, checking its `Cancel` before each look. So a freed slot idles about half a
//! `PAUSE_STEP` before the head takes it, and a long queue costs a few hundred looks a second
//! (each a few dozen syscalls) however long it waits. That is the "arrival order as far as file
//! locks allow". An uncontended acquire is a single look, with no ticket file.
//!
//! A process inside a dispatched agent (depth ≥ 1) runs with the gate off (`App` decides): its
//! ancestor's child holds a slot for the whole tree, and waiting for another could deadlock.
//!
//! Shrinking N never evicts a holder: a look counts held slots of any index, and nobody takes a
//! slot while N or more are held.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use fs2::FileExt;

use crate::cancel::Cancel;
use crate::config::{self, Config};
use crate::limiter::{Limiter, Permit};

/// The largest N honoured: every look try-locks each slot file.
pub const MAX_SLOTS: usize = 256;
/// Overrides where state shared by the processes of one config lives (`state_dir`).
pub const STATE_DIR_ENV: &str = "AGENT_DISPATCH_STATE_DIR";

const PAUSE_STEP: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(50);
/// A waiter that has not looked for this long is not counted as ahead (it is stopped, or its
/// machine is hopelessly overloaded); it keeps its ticket and takes its turn when it looks again.
const STALE_AFTER: Duration = Duration::from_secs(30);
/// The queue lock is held for microseconds; a look that can not get it for this long reports
/// an error instead of hanging behind a stuck process.
const QUEUE_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
const QUEUE_LOCK_POLL: Duration = Duration::from_millis(1);

/// `AGENT_DISPATCH_STATE_DIR` (`~` expanded), else the directory of `config_path`.
pub fn state_dir(config_path: &Path) -> PathBuf {
    match std::env::var_os(STATE_DIR_ENV) {
        Some(p) if !p.is_empty() => config::expand_tilde(Path::new(&p)),
        _ => config_path.parent().unwrap_or(Path::new(".")).to_path_buf(),
    }
}

/// Where the gate of the processes using `config_path` keeps its lock files.
pub fn gate_dir(config_path: &Path) -> PathBuf {
    state_dir(config_path).join("gate")
}

#[derive(Debug)]
pub enum Error {
    Io {
        path: PathBuf,
        action: &'static str,
        err: io::Error,
    },
    /// Another process held the queue lock for the whole wait.
    Busy { lock: PathBuf, waited: Duration },
    /// `slots_in_use` could not read the configured N.
    Config(config::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, action, err } => write!(
                f,
                "machine gate: could not {action} {}: {err}",
                path.display()
            ),
            Error::Busy { lock, waited } => write!(
                f,
                "machine gate: {} stayed locked by another process for {}s",
                lock.display(),
                waited.as_secs()
            ),
            Error::Config(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |err| Error::Io { path, action, err }
}

fn contended(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
        || e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
}

/// Where a queued waiter stands, as seen by its last look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queued {
    /// Live waiters that arrived earlier.
    pub ahead: usize,
    /// Slots held by children of any process.
    pub in_use: usize,
    pub capacity: usize,
}

impl Queued {
    pub fn describe(&self) -> String {
        format!(
            "waiting for a machine slot: {} of {} in use, {} waiting ahead",
            self.in_use, self.capacity, self.ahead
        )
    }
}

/// The slots of one machine gate at a glance (`doctor`, `stats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub in_use: usize,
    pub configured: usize,
    pub waiting: usize,
}

/// A held machine slot, or nothing when the gate is off; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot(Option<(usize, File)>);

impl Slot {
    /// Which `slot-<i>.lock` this is; `None` for the slot of an off gate.
    pub fn index(&self) -> Option<usize> {
        self.0.as_ref().map(|(i, _)| *i)
    }
}

/// The gate of every process sharing one state directory. Cheap to clone; the capacity can
/// change at any time (config reloads) and waiters pick the new one up at their next look.
#[derive(Clone, Debug)]
pub struct MachineGate(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    capacity: AtomicUsize,
}

impl MachineGate {
    /// A gate over the lock files in `dir` (created on first use), `capacity` 0 = off.
    pub fn new(dir: PathBuf, capacity: usize) -> MachineGate {
        MachineGate(Arc::new(Inner {
            dir,
            capacity: AtomicUsize::new(capacity.min(MAX_SLOTS)),
        }))
    }

    /// A gate that never waits (no directory).
    pub fn off() -> MachineGate {
        MachineGate::new(PathBuf::new(), 0)
    }

    pub fn set_capacity(&self, capacity: usize) {
        self.0
            .capacity
            .store(capacity.min(MAX_SLOTS), Ordering::SeqCst);
    }

    pub fn capacity(&self) -> usize {
        self.0.capacity.load(Ordering::SeqCst)
    }

    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// Waits in the machine's queue for a slot. `on_wait` is called after every look that did
    /// not get one (first at once, then at least every `MAX_PAUSE`). `Ok(None)`: `cancel` tripped
    /// first, and the waiter left the queue. An off gate (also one turned off while waiting)
    /// gives a `Slot` that holds nothing.
    pub fn acquire(
        &self,
        cancel: &Cancel,
        on_wait: &mut dyn FnMut(Queued),
    ) -> Result<Option<Slot>, Error> {
        let dir = self.dir();
        let mut ticket: Option<Ticket> = None;
        let mut dir_made = false;
        loop {
            if cancel.is_tripped() {
                return Ok(None);
            }
            let capacity = self.capacity();
            if capacity == 0 {
                return Ok(Some(Slot(None)));
            }
            if !dir_made {
                crate::fsutil::ensure_private_dir(dir).map_err(io_error(dir, "create"))?;
                dir_made = true;
            }
            let Some(queue) = QueueLock::take(dir, Some(cancel))? else {
                return Ok(None);
            };
            let mut look = Look::take(dir, capacity, ticket.as_ref().map(|t| t.number), true)?;
            if look.allowed() > look.ahead {
                let slot = look.free.swap_remove(0);
                // Leave the queue while it is still locked, so no look counts us twice.
                drop(ticket);
                drop(look);
                drop(queue);
                return Ok(Some(Slot(Some(slot))));
            }
            match &ticket {
                None => ticket = Some(Ticket::enqueue(dir, look.max_ticket)?),
                Some(t) => t.touch(),
            }
            let queued = Queued {
                ahead: look.ahead,
                in_use: look.busy,
                capacity,
            };
            drop(look);
            drop(queue);
            on_wait(queued);
            std::thread::sleep(pause_at(queued.ahead));
        }
    }

    /// The slots in use and the waiters, as a look sees them now (dead waiters are tidied).
    pub fn status(&self) -> Result<Status, Error> {
        probe(self.dir(), self.capacity())
    }
}

/// How long a waiter with `ahead` waiters in front of it sleeps between looks: the next in
/// line looks often, the back of a long queue rarely.
fn pause_at(ahead: usize) -> Duration {
    PAUSE_STEP
        .saturating_mul(u32::try_from(ahead).unwrap_or(u32::MAX).saturating_add(1))
        .min(MAX_PAUSE)
}

/// The right to start one child: a permit of this process's `limiter`, then (when the gate is
/// on) a machine slot, which the permit carries and frees with itself. Local first, so a
/// process queues at most `max_concurrency` machine waiters and no machine slot ever idles
/// behind a local wait. `Ok(None)`: `cancel` tripped first.
pub fn admit(
    limiter: &Limiter,
    gate: &MachineGate,
    cancel: &Cancel,
    on_wait: &mut dyn FnMut(Queued),
) -> Result<Option<Permit>, Error> {
    let Some(mut permit) = limiter.acquire(cancel) else {
        return Ok(None);
    };
    let Some(slot) = gate.acquire(cancel, on_wait)? else {
        return Ok(None);
    };
    permit.hold(slot);
    Ok(Some(permit))
}

/// `(slots in use, slots configured)` of the gate of the processes using `config_path`, read
/// from its config and its lock files; `(0, 0)` when the gate is off and idle.
pub fn slots_in_use(config_path: &Path) -> Result<(usize, usize), Error> {
    let s = status(config_path)?;
    Ok((s.in_use, s.configured))
}

/// Like [`slots_in_use`], with the number of waiters.
pub fn status(config_path: &Path) -> Result<Status, Error> {
    // Only the settings are wanted: no agent directory needs resolving.
    let config = Config::load_as_written(config_path).map_err(Error::Config)?;
    let configured = config.settings.machine_max_concurrency.min(MAX_SLOTS);
    probe(&gate_dir(config_path), configured)
}

/// A look under the queue lock that creates nothing: a gate never used has no directory.
fn probe(dir: &Path, configured: usize) -> Result<Status, Error> {
    if dir.as_os_str().is_empty() || !dir.is_dir() {
        return Ok(Status {
            in_use: 0,
            configured,
            waiting: 0,
        });
    }
    let _queue = QueueLock::take(dir, None)?;
    let look = Look::take(dir, configured, None, false)?;
    Ok(Status {
        in_use: look.busy,
        configured,
        waiting: look.ahead,
    })
}

/// The queue lock, held while it lives.
struct QueueLock(#[allow(dead_code)] File);

impl QueueLock {
    /// `Ok(None)` when `cancel` trips first.
    fn take(dir: &Path, cancel: Option<&Cancel>) -> Result<Option<QueueLock>, Error> {
        let path = dir.join("queue.lock");
        let file = open_lock_file(&path, true)?;
        let started = Instant::now();
        loop {
            // Short slices, so a cancel is seen between them.
            let slice = Instant::now() + MAX_PAUSE;
            let got = crate::fsutil::lock_exclusive_until(&file, slice, QUEUE_LOCK_POLL)
                .map_err(io_error(&path, "lock"))?;
            if got {
                return Ok(Some(QueueLock(file)));
            }
            if cancel.is_some_and(Cancel::is_tripped) {
                return Ok(None);
            }
            let waited = started.elapsed();
            if waited >= QUEUE_LOCK_TIMEOUT {
                return Err(Error::Busy { lock: path, waited });
            }
        }
    }
}

fn open_lock_file(path: &Path, create: bool) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(io_error(path, "open"))
}

/// A queued waiter's place: its locked `wait-<ticket>.lock`, deleted when it leaves.
struct Ticket {
    number: u64,
    path: PathBuf,
    file: File,
}

impl Ticket {
    /// Joins the queue behind `last` (the highest live ticket). Called under the queue lock.
    fn enqueue(dir: &Path, last: u64) -> Result<Ticket, Error> {
        let mut number = last + 1;
        loop {
            let path = dir.join(format!("wait-{number}.lock"));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    file.try_lock_exclusive().map_err(io_error(&path, "lock"))?;
                    return Ok(Ticket { number, path, file });
                }
                // Only a file that vanished between the listing and now can be in the way.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && number < last + 64 => {
                    number += 1;
                }
                Err(e) => return Err(io_error(&path, "create")(e)),
            }
        }
    }

    /// Says "still here" to the other waiters' staleness check.
    fn touch(&self) {
        let _ = self.file.set_modified(SystemTime::now());
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Unlinked while still locked, so no look mistakes it for a dead waiter's file.
        let _ = fs::remove_file(&self.path);
    }
}

/// One look at the gate directory, under the queue lock.
struct Look {
    /// Slots below the capacity that were free, each locked by this look until it drops.
    free: Vec<(usize, File)>,
    /// Slots of any index held by someone else.
    busy: usize,
    capacity: usize,
    /// Live waiters ahead of the looker: all of them for one not queued yet.
    ahead: usize,
    /// The highest ticket of a live waiter, 0 when there is none.
    max_ticket: u64,
}

impl Look {
    fn take(dir: &Path, capacity: usize, mine: Option<u64>, create: bool) -> Result<Look, Error> {
        let mut look = Look {
            free: Vec::new(),
            busy: 0,
            capacity,
            ahead: 0,
            max_ticket: mine.unwrap_or(0),
        };
        let now = SystemTime::now();
        let listing = fs::read_dir(dir).map_err(io_error(dir, "list"))?;
        for entry in listing.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = number_in(name, "wait-") {
                if Some(n) == mine {
                    continue;
                }
                match waiter(&entry.path(), now)? {
                    Waiter::Gone => {}
                    Waiter::Stale => look.max_ticket = look.max_ticket.max(n),
                    Waiter::Live => {
                        look.max_ticket = look.max_ticket.max(n);
                        if mine.is_none_or(|m| n < m) {
                            look.ahead += 1;
                        }
                    }
                }
            } else if let Some(i) = number_in(name, "slot-")
                && i >= capacity as u64
                && held(&entry.path())?
            {
                look.busy += 1;
            }
        }
        for i in 0..capacity {
            let path = dir.join(format!("slot-{i}.lock"));
            let file = match open_lock_file(&path, create) {
                Ok(f) => f,
                Err(Error::Io { err, .. }) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match file.try_lock_exclusive() {
                Ok(()) => look.free.push((i, file)),
                Err(e) if contended(&e) => look.busy += 1,
                Err(e) => return Err(io_error(&path, "lock")(e)),
            }
        }
        Ok(look)
    }

    /// How many slots a looker may take: free ones below the capacity, and never so many that
    /// more than `capacity` would be held (after a shrink, holders above it still count).
    fn allowed(&self) -> usize {
        self.free.len().min(self.capacity.saturating_sub(self.busy))
    }
}

/// `prefix<number>.lock` → number.
fn number_in(name: &str, prefix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?
        .strip_suffix(".lock")?
        .parse()
        .ok()
}

enum Waiter {
    Live,
    Stale,
    /// Its process died (the file is deleted now) or it left meanwhile.
    Gone,
}

fn waiter(path: &Path, now: SystemTime) -> Result<Waiter, Error> {
    let file = match open_lock_file(path, false) {
        Ok(f) => f,
        Err(Error::Io { err, .. }) if err.kind() == io::ErrorKind::NotFound => {
            return Ok(Waiter::Gone);
        }
        Err(e) => return Err(e),
    };
    match file.try_lock_exclusive() {
        Ok(()) => {
            // Nobody holds it: its waiter died. Deleted while we hold the lock.
            let _ = fs::remove_file(path);
            Ok(Waiter::Gone)
        }
        Err(e) if contended(&e) => {
            let touched = file.metadata().and_then(|m| m.modified());
            let idle = touched.map(|t| now.duration_since(t).unwrap_or_default());
            Ok(match idle {
                Ok(idle) if idle > STALE_AFTER => Waiter::Stale,
                _ => Waiter::Live,
            })
        }
        Err(e) => Err(io_error(path, "lock")(e)),
    }
}

/// True when someone holds the lock on the slot file at `path`.
fn held(path: &Path) -> Result<bool, Error> {
    let file = match open_lock_file(path, false) {
        Ok(f) => f,
        Err(Error::Io { err, .. }) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock_exclusive() {
        Ok(()) => Ok(false),
        Err(e) if contended(&e) => Ok(true),
        Err(e) => Err(io_error(path, "lock")(e)),
    }
}

#[cfg(test)]
mod tests;
