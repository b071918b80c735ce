//! A lean process spawn for Linux: `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)` with a child
//! that only sets its group, its stdio and its signal mask, then `exec`s.
//!
//! Why not `posix_spawn` (what `std` and tokio use): glibc's child walks every signal with two
//! `rt_sigaction` calls each (~120 system calls) while the engine waits for it, and the parent
//! side checks `RLIMIT_NOFILE` for every file action, opens `/dev/null` and maps a stack per
//! spawn. On a graph of tiny tasks that is a large share of taskdeck's cost per task. Handlers
//! need no reset here: `exec` resets caught signals itself, and until the mask is lifted right
//! before `exec` no signal can reach the child.
//!
//! The child shares the engine's memory until `exec`, but the engine thread is suspended
//! meanwhile (`CLONE_VFORK`) and the child only makes raw system calls on memory prepared
//! before the clone, which is what `posix_spawn` itself does.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{LazyLock, Mutex};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// The child's stack until it calls `exec` (it makes a handful of system calls).
const STACK_BYTES: usize = 64 * 1024;

/// Set when this kernel cannot do the lean spawn: from then on every spawn takes the portable
/// path.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Whether the kernel has pollable pidfds (Linux 5.3). Older kernels ignore `CLONE_PIDFD`
/// instead of refusing it, so this is asked once, up front.
static PIDFDS: LazyLock<bool> = LazyLock::new(|| {
    // SAFETY: pidfd_open on our own pid; the descriptor is closed at once.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if fd < 0 {
        return false;
    }
    // SAFETY: the descriptor was just made and is ours.
    drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    true
});

/// Children whose `Child` was dropped before they ended (a runtime shutting down mid-task):
/// reaped by later spawns so they do not stay zombies.
static ORPHANS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// What a process is started with. `program` is the path handed to `execve` (never searched on
/// PATH); `argv[0]` is the name the task wrote.
pub struct Spec<'a> {
    pub program: &'a Path,
    pub argv: &'a [&'a OsStr],
    /// Variables to set on top of taskdeck's own environment (later ones win).
    pub env: &'a [(&'a OsStr, &'a OsStr)],
    pub cwd: Option<&'a Path>,
    /// Have the kernel kill the process when the thread that started it ends
    /// (`PR_SET_PDEATHSIG`): for when no guardian watches the groups.
    pub die_with_parent: bool,
}

/// A started process: leader of its own process group, stdin `/dev/null`, stdout and stderr
/// pipes (their non-blocking read ends, not yet on the runtime: a task that ends quickly never
/// needs them watched).
pub struct Spawned {
    pub child: Child,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Whether this spawn can be used (the kernel has not refused it before).
pub fn available() -> bool {
    !UNSUPPORTED.load(Ordering::Relaxed) && *PIDFDS
}

/// Starts the process. `Ok(None)` means the kernel does not support this kind of spawn: use
/// the portable one. Must be called on a thread inside a tokio runtime with IO enabled.
pub fn spawn(spec: &Spec) -> io::Result<Option<Spawned>> {
    reap_orphans();
    let program = cstring(spec.program.as_os_str())?;
    let argv_c: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let env_c: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| {
            let mut kv = Vec::with_capacity(k.len() + v.len() + 1);
            kv.extend_from_slice(k.as_bytes());
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|_| nul_error())
        })
        .collect::<Result<_, _>>()?;
    let envp = environment(spec.env, &env_c);
    let cwd = spec.cwd.map(|c| cstring(c.as_os_str())).transpose()?;
    let stdin = dev_null()?;
    let (out_r, out_w) = pipe_pair()?;
    let (err_r, err_w) = pipe_pair()?;

    let failure = AtomicI32::new(0);
    let args = ChildArgs {
        program: program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        stdin,
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        failure: &failure,
        die_with_parent: spec.die_with_parent,
        // SAFETY: getpid has no preconditions.
        parent: if spec.die_with_parent {
            unsafe { libc::getpid() }
        } else {
            0
        },
    };
    let cloned = STACK.with_borrow_mut(|stack| clone_child(&args, stack));
    drop((out_w, err_w));
    let Some((pid, pidfd)) = cloned? else {
        return Ok(None);
    };
    let errno = failure.load(Ordering::Acquire);
    if errno != 0 {
        // The child could not exec and has exited (the parent resumes only then): reap it.
        let _ = reap(pid, 0);
        return Err(io::Error::from_raw_os_error(errno));
    }
    // From here on a failure must not leave the process running unwatched.
    let abandon = |e: io::Error| {
        // SAFETY: kill and waitpid on the group and child we just made.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = reap(pid, 0);
        e
    };
    // SAFETY: the `AsyncFd` owns the pidfd, which stays open and unchanged until it drops.
    let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .map_err(|e| abandon(e.into()))?;
    Ok(Some(Spawned {
        child: Child {
            pid,
            pidfd,
            status: None,
        },
        stdout: out_r,
        stderr: err_r,
    }))
}

/// Memory for the child's stack, kept per thread: a spawn suspends its thread until the child
/// has called `exec`, so one stack per thread is never used twice at once.
struct Stack(Vec<std::mem::MaybeUninit<u8>>);

thread_local! {
    // Uninitialised: the child writes before it reads, like any stack.
    static STACK: std::cell::RefCell<Stack> =
        std::cell::RefCell::new(Stack(Vec::with_capacity(STACK_BYTES)));
}

/// Runs `child_main` on `stack` and returns once it has called `exec` or exited, with its pid
/// and pidfd. `Ok(None)`: the kernel does not know these clone flags.
fn clone_child(args: &ChildArgs, stack: &mut Stack) -> io::Result<Option<(libc::pid_t, OwnedFd)>> {
    // The stack grows down: hand over its (16-byte aligned) top.
    let top = {
        let end = stack.0.as_mut_ptr() as usize + STACK_BYTES;
        (end & !15) as *mut libc::c_void
    };
    let mut pidfd: libc::c_int = -1;
    let all: u64 = !0;
    let mut saved: u64 = 0;
    // SAFETY: blocking every signal (glibc's internal ones too, hence the raw call) keeps any
    // handler of ours from running in the child, which shares our memory until `exec`.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            &all as *const u64,
            &mut saved as *mut u64,
            8usize,
        );
    }
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
    // SAFETY: `child_main` only reads `args` (alive in the caller, which is suspended until the
    // child has called `exec` or exited: CLONE_VFORK) and runs on `stack`, which outlives it.
    let pid = unsafe {
        libc::clone(
            child_main,
            top,
            flags,
            args as *const ChildArgs as *mut libc::c_void,
            &mut pidfd as *mut libc::c_int,
        )
    };
    let clone_error = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &saved as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
    }
    if pid < 0 {
        return match clone_error.raw_os_error() {
            Some(libc::EINVAL | libc::ENOSYS) => {
                UNSUPPORTED.store(true, Ordering::Relaxed);
                Ok(None)
            }
            _ => Err(clone_error),
        };
    }
    if pidfd < 0 {
        // A kernel that ignored CLONE_PIDFD: never leave the process unwatched.
        UNSUPPORTED.store(true, Ordering::Relaxed);
        // SAFETY: kill and waitpid on the group and child just made.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = reap(pid, 0);
        return Err(io::Error::other(
            "the kernel gave no pidfd for the new process",
        ));
    }
    // SAFETY: CLONE_PIDFD stored a new descriptor that nothing else owns.
    Ok(Some((pid, unsafe { OwnedFd::from_raw_fd(pidfd) })))
}

/// Everything the child needs, prepared before the clone so the child allocates nothing.
struct ChildArgs<'a> {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    failure: &'a AtomicI32,
    die_with_parent: bool,
    parent: libc::pid_t,
}

/// The child, until `exec`. Only system calls: no allocation, no locks.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `ChildArgs`, alive and unchanged while the parent waits.
    let a = unsafe { &*(arg as *const ChildArgs) };
    let empty: u64 = 0;
    // SAFETY: plain system calls on descriptors and strings the parent prepared.
    unsafe {
        if libc::setpgid(0, 0) != 0
            || libc::dup2(a.stdin, 0) < 0
            || libc::dup2(a.stdout, 1) < 0
            || libc::dup2(a.stderr, 2) < 0
            || (!a.cwd.is_null() && libc::chdir(a.cwd) != 0)
        {
            child_fail(a);
        }
        if a.die_with_parent {
            let sig = libc::SIGKILL as libc::c_ulong;
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0 as libc::c_ulong) != 0 {
                child_fail(a);
            }
            // The parent died before prctl took effect: nobody would ever kill us.
            if libc::getppid() != a.parent {
                libc::_exit(1);
            }
        }
        // taskdeck ignores SIGPIPE (Rust does); an ignored signal stays ignored across exec.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
        libc::execve(a.program, a.argv, a.envp);
    }
    child_fail(a)
}

/// Tells the parent why the child could not `exec`, and leaves.
fn child_fail(a: &ChildArgs) -> ! {
    // SAFETY: errno is readable; `_exit` runs no handler, as a vfork child must.
    unsafe {
        let errno = *libc::__errno_location();
        a.failure.store(errno.max(1), Ordering::Release);
        libc::_exit(127)
    }
}

/// A child started by [`spawn`]: waited for through its pidfd.
pub struct Child {
    pid: libc::pid_t,
    pidfd: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Waits for the process to exit and reaps it. Cancel-safe; once reaped, returns the same
    /// status again.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let mut ready = self.pidfd.readable().await?;
            match reap(self.pid, libc::WNOHANG)? {
                Some(status) => {
                    self.status = Some(status);
                    return Ok(status);
                }
                None => ready.clear_ready(),
            }
        }
    }
}

/// `waitpid` on our own child (its pid cannot be reused before it is reaped).
fn reap(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
    let mut raw: libc::c_int = 0;
    // SAFETY: writes only the status we own.
    let r = unsafe { libc::waitpid(pid, &mut raw, flags) };
    match r {
        0 => Ok(None),
        r if r == pid => Ok(Some(ExitStatus::from_raw(raw))),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // An attempt dropped before its process ended (runtime shutdown) leaves at most a
        // zombie, gone with taskdeck; its group is killed by `KillOnDrop`.
        if self.status.is_none()
            && matches!(reap(self.pid, libc::WNOHANG), Ok(None))
            && let Ok(mut orphans) = ORPHANS.lock()
        {
            orphans.push(self.pid);
        }
    }
}

fn reap_orphans() {
    let Ok(mut orphans) = ORPHANS.lock() else {
        return;
    };
    orphans.retain(|pid| matches!(reap(*pid, libc::WNOHANG), Ok(None)));
}

/// `envp`: taskdeck's environment without the variables `set` overrides, then `set`.
fn environment(set: &[(&OsStr, &OsStr)], set_c: &[CString]) -> Vec<*const libc::c_char> {
    // taskdeck never changes its own environment, so it is encoded once.
    static BASE: LazyLock<Vec<(OsString, CString)>> = LazyLock::new(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                Some((k, CString::new(kv).ok()?))
            })
            .collect()
    });
    let mut envp: Vec<*const libc::c_char> = Vec::with_capacity(BASE.len() + set_c.len() + 1);
    envp.extend(
        BASE.iter()
            .filter(|(k, _)| !set.iter().any(|(s, _)| *s == k.as_os_str()))
            .map(|(_, kv)| kv.as_ptr()),
    );
    // A variable set twice: the later value wins, as with `Command::env`.
    for (i, kv) in set_c.iter().enumerate() {
        if !set[i + 1..].iter().any(|(k, _)| *k == set[i].0) {
            envp.push(kv.as_ptr());
        }
    }
    envp.push(std::ptr::null());
    envp
}

/// `/dev/null`, opened once: every child gets it as stdin.
fn dev_null() -> io::Result<RawFd> {
    static FD: LazyLock<Result<OwnedFd, i32>> = LazyLock::new(|| {
        std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    });
    match &*FD {
        Ok(fd) => Ok(fd.as_raw_fd()),
        Err(errno) => Err(io::Error::from_raw_os_error(*errno)),
    }
}

/// A pipe whose read end (ours) is non-blocking and whose write end (the child's) is not.
/// Both are close-on-exec: the child gets the write end through `dup2`.
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: F_SETFL on a descriptor we own.
    if unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((r, w))
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| nul_error())
}

fn nul_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "an argument or variable contains a NUL byte",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    /// `program` with `argv`, in taskdeck's environment and directory.
    fn plain<'a>(program: &'a str, argv: &'a [&'a OsStr]) -> Spec<'a> {
        Spec {
            program: Path::new(program),
            argv,
            env: &[],
            cwd: None,
            die_with_parent: false,
        }
    }

    async fn run(spec: &Spec<'_>) -> (ExitStatus, String, String) {
        let mut s = spawn(spec)
            .unwrap()
            .expect("clone3 with a pidfd is supported here");
        let (mut out, mut err) = (String::new(), String::new());
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked;
        pipe(s.stdout)
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        pipe(s.stderr)
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        (s.child.wait().await.unwrap(), out, err)
    }

    #[tokio::test]
    async fn runs_a_program_with_its_args_env_and_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let script = "echo \"$0 $1 $FOO $HOME_SEEN\"; pwd; echo oops >&2; \
                      read x; echo \"stdin:$x.\"; cut -d' ' -f5 /proc/$$/stat; echo $$; exit 3";
        let spec = Spec {
            program: Path::new("/bin/sh"),
            argv: &[os("sh"), os("-c"), os(script), os("name"), os("one")],
            env: &[
                (os("FOO"), os("first")),
                (os("FOO"), os("bar")),
                (os("HOME_SEEN"), os("yes")),
            ],
            cwd: Some(dir.path()),
            die_with_parent: true,
        };
        let (status, out, err) = run(&spec).await;
        assert_eq!(status.code(), Some(3));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "name one bar yes");
        assert_eq!(
            Path::new(lines[1]).canonicalize().unwrap(),
            dir.path().canonicalize().unwrap()
        );
        assert_eq!(lines[2], "stdin:.", "stdin is /dev/null");
        // The process leads a group of its own.
        assert_eq!(lines[3].trim(), lines[4].trim());
        assert_eq!(err, "oops\n");
    }

    #[tokio::test]
    async fn keeps_the_rest_of_the_environment() {
        let path = std::env::var("PATH").unwrap();
        let argv = [os("sh"), os("-c"), os("echo \"$PATH\"")];
        let spec = plain("/bin/sh", &argv);
        let (status, out, _) = run(&spec).await;
        assert!(status.success());
        assert_eq!(out.trim_end(), path);
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_not_a_child() {
        let argv = [os("x")];
        let spec = plain("/nonexistent/taskdeck-test", &argv);
        let err = spawn(&spec).err().expect("exec must fail");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let true_argv = [os("true")];
        let spec = Spec {
            cwd: Some(Path::new("/nonexistent/dir")),
            ..plain("/bin/true", &true_argv)
        };
        assert_eq!(spawn(&spec).err().unwrap().kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn reports_a_death_by_signal() {
        let argv = [os("sh"), os("-c"), os("kill -TERM $$")];
        let spec = plain("/bin/sh", &argv);
        let (status, _, _) = run(&spec).await;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[tokio::test]
    async fn a_child_dropped_while_running_is_reaped_by_a_later_spawn() {
        let argv = [os("sh"), os("-c"), os("sleep 0.2")];
        let sleeper = plain("/bin/sh", &argv);
        let s = spawn(&sleeper).unwrap().unwrap();
        let pid = s.child.id();
        drop(s);
        let state = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|st| st.rsplit(')').next().map(|r| r.trim().chars().next()))
                .flatten()
        };
        // Wait for it to end. (A spawn in a test running alongside may reap it already.)
        for _ in 0..100 {
            if matches!(state(), Some('Z') | None) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(matches!(state(), Some('Z') | None), "still running");
        let argv = [os("true")];
        let quick = plain("/bin/true", &argv);
        let (status, _, _) = run(&quick).await;
        assert!(status.success());
        assert_eq!(state(), None, "reaped by the next spawn");
    }

    #[tokio::test]
    async fn a_child_sees_sigpipe_as_default() {
        // With SIGPIPE ignored (as in taskdeck) a writer to a closed pipe would get EPIPE
        // instead of dying; the child must see the default again.
        let argv = [os("sh"), os("-c"), os("grep SigIgn /proc/self/status")];
        let spec = plain("/bin/sh", &argv);
        // SAFETY: ignoring SIGPIPE in the test process, as Rust's runtime does anyway.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let (_, out, _) = run(&spec).await;
        let mask = u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "{out}");
    }
}
