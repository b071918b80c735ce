//! Signals to a task's process group. Every command task leads its own group (set at spawn),
//! so signalling `-pgid` reaches its children and grandchildren too.

use std::time::Duration;

/// Sends `sig` to every process of the group. A group that is already gone is not an error.
pub fn signal(pgid: u32, sig: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // Never `kill(0, ..)` or `kill(-1, ..)`: that would hit taskdeck's own group or everything.
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Whether any process of the group still exists (zombies count until reaped).
pub fn alive(pgid: u32) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(-pgid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Waits until the group is empty, polling, for at most `limit`. Returns whether it emptied.
pub async fn wait_empty(pgid: u32, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !alive(pgid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the whole group when dropped, so an attempt whose future is dropped (runtime shutdown,
/// panic) leaves no processes behind.
#[derive(Debug)]
pub struct KillOnDrop {
    pgid: u32,
}

impl KillOnDrop {
    /// Also tells the guardian (if any) about the group, so it dies with taskdeck.
    pub fn new(pgid: u32) -> Self {
        super::guardian::register(pgid);
        KillOnDrop { pgid }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        signal(self.pgid, libc::SIGKILL);
        super::guardian::unregister(self.pgid);
    }
}

/// `9 (SIGKILL)`, for messages.
pub fn describe(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return sig.to_string(),
    };
    format!("{sig} ({name})")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn describes_signals() {
        assert_eq!(describe(9), "9 (SIGKILL)");
        assert_eq!(describe(15), "15 (SIGTERM)");
        assert_eq!(describe(77), "77");
    }

    #[test]
    fn refuses_to_signal_special_groups() {
        // Would kill our own group / everything if not guarded.
        signal(0, 0);
        signal(1, 0);
        assert!(!alive(0));
        assert!(!alive(1));
    }
}
