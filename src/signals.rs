//! Shutdown signals (SIGTERM, SIGINT, SIGHUP) as a channel, for `serve` and `test`: both must
//! stop their `claude` children's process groups instead of dying and leaving them running.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread;

use crossbeam_channel::Receiver;

/// The write end of the self-pipe the signal handler writes to (-1 until installed).
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_shutdown_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid one-byte local.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Routes SIGTERM/SIGINT/SIGHUP to a channel through a self-pipe. A handler (not a blocked
/// mask + sigwait) is used on purpose: exec resets handled signals to their default, while a
/// blocked mask would be inherited by every `claude` child and make its SIGTERM a no-op.
pub fn install() -> Option<Receiver<i32>> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid two-element array; O_CLOEXEC keeps the pipe out of children.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    SIGNAL_PIPE.store(write_fd, Ordering::SeqCst);
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid;
        // `on_shutdown_signal` only performs an async-signal-safe write.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction =
                on_shutdown_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    // Detached on purpose: it blocks reading the pipe until a signal arrives or the process exits.
    let spawned = thread::Builder::new()
        .name("shutdown-signals".into())
        .spawn(move || {
            let mut byte = 0u8;
            loop {
                // SAFETY: reading one byte into a valid local buffer from our own pipe.
                let n = unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) };
                if n == 1 {
                    let _ = tx.send(i32::from(byte));
                    return;
                }
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
        });
    spawned.ok().map(|_| rx)
}
