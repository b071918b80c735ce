//! The guardian: a tiny process, forked once at startup while taskdeck is still single-threaded,
//! that kills every task's process group if taskdeck dies — even by `kill -9`, when no code of
//! ours can run. The engine tells it about each group over a pipe; when the pipe reaches end of
//! file (taskdeck is gone), it kills the groups still registered and exits.
//!
//! Why not `PR_SET_PDEATHSIG`: it needs a `pre_exec` hook, which forces a full `fork` of the busy
//! engine for every task (instead of the much cheaper `posix_spawn`), and it only reaches the
//! direct child, not the grandchildren in its group. Without a guardian (the library used on its
//! own), the executor falls back to `PR_SET_PDEATHSIG`.

use std::collections::HashSet;
use std::io;
use std::sync::OnceLock;

/// Write end of the pipe to the guardian, once installed.
static PIPE: OnceLock<libc::c_int> = OnceLock::new();

const ADD: u8 = 1;
/// Pause between reads of the pipe (2 ms).
const BATCH_NANOS: libc::c_long = 2_000_000;
const REMOVE: u8 = 2;

/// Whether a guardian watches over task process groups.
pub fn installed() -> bool {
    PIPE.get().is_some()
}

/// Forks the guardian. Call it first thing in `main`, before any thread exists (a fork of a
/// multi-threaded process may only call async-signal-safe functions in the child).
pub fn install() -> io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    // SAFETY: the process is single-threaded here (documented precondition).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // SAFETY: closing our copy of the write end, so EOF comes when taskdeck exits.
            unsafe { libc::close(write_end) };
            guard(read_end)
        }
        _ => {
            // SAFETY: the guardian has its own copy of the read end.
            unsafe { libc::close(read_end) };
            let _ = PIPE.set(write_end);
            Ok(())
        }
    }
}

fn send(op: u8, pgid: u32) {
    let Some(fd) = PIPE.get() else { return };
    let mut msg = [0u8; 5];
    msg[0] = op;
    msg[1..].copy_from_slice(&pgid.to_le_bytes());
    // Five bytes are below PIPE_BUF, so the write is atomic. If the guardian is gone there is
    // nothing better to do than go on without it.
    // SAFETY: writing from a buffer we own to an fd we own.
    let _ = unsafe { libc::write(*fd, msg.as_ptr().cast(), msg.len()) };
}

/// A task's process group now exists.
pub fn register(pgid: u32) {
    send(ADD, pgid);
}

/// The group is gone (its processes were killed and reaped).
pub fn unregister(pgid: u32) {
    send(REMOVE, pgid);
}

/// The guardian's whole life: keep the set of live groups; on end of file kill them all.
fn guard(fd: libc::c_int) -> ! {
    // SAFETY: plain libc calls in our own single-threaded child process.
    unsafe {
        // Terminal signals are for taskdeck; the guardian only acts when taskdeck is gone.
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        // Release the terminal's and any pipeline's descriptors, so `taskdeck ... | head`
        // ends when taskdeck does.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for target in 0..3 {
                libc::dup2(null, target);
            }
        }
    }
    let mut live: HashSet<u32> = HashSet::new();
    let mut buf = [0u8; 5 * 512];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n as usize]);
        let whole = pending.len() / 5 * 5;
        for msg in pending[..whole].chunks_exact(5) {
            let pgid = u32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]);
            match msg[0] {
                ADD => {
                    live.insert(pgid);
                }
                _ => {
                    live.remove(&pgid);
                }
            }
        }
        pending.drain(..whole);
        // Let messages gather before the next read: one wake-up per batch instead of two per
        // task, on a machine whose cores the tasks need. End of file waits as long, at most.
        // SAFETY: nanosleep only reads the struct we pass.
        unsafe {
            let nap = libc::timespec {
                tv_sec: 0,
                tv_nsec: BATCH_NANOS,
            };
            libc::nanosleep(&nap, std::ptr::null_mut());
        }
    }
    for pgid in live {
        super::group::signal(pgid, libc::SIGCONT);
        super::group::signal(pgid, libc::SIGKILL);
    }
    // SAFETY: leaving without running any destructor or atexit handler of the parent's state.
    unsafe { libc::_exit(0) }
}
