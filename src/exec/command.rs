//! The process executor: runs a rendered command line as a process group, streams its output to
//! the log store, enforces timeout / cancel / pause, reads its outputs file, reports the outcome.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::cmdline::{self, Invocation};
use super::group::{self, KillOnDrop};
use super::{Control, ExecMsg, ExecReport, ExecRequest, ExecResult, human, lines, outputs};
use crate::logs::LogStore;
use crate::model::{AttemptOutcome, LogStream};

/// Scratch file names are the attempt's `scratch_name` plus these.
pub const CONTEXT_SUFFIX: &str = ".context.json";
pub const OUTPUT_SUFFIX: &str = ".outputs";

/// How long to keep reading output after the task's group is dead. Only a process that left the
/// group (`setsid`) can hold the pipes open that long.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// A started process and its output streams, however it was spawned.
pub(super) struct Started {
    process: Process,
    stdout: Option<Output>,
    stderr: Option<Output>,
}

/// An output stream of a started process.
enum Output {
    /// A pipe's read end (non-blocking), not yet watched by the runtime.
    Pipe(OwnedFd),
    Reader(Reader),
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// How long a task may run before its output pipes are put on the runtime. Most tasks of a
/// big graph are over by then: their output is read once, at the end, and registering and
/// removing two pipes per task is saved. Nobody sees a line of output 5 ms late.
const QUIET_START: Duration = Duration::from_millis(5);

enum Process {
    /// The portable spawn (`posix_spawn`, or `fork` with a `pre_exec` hook).
    Tokio(tokio::process::Child),
    /// The lean Linux spawn.
    #[cfg(target_os = "linux")]
    Lean(super::fork::Child),
}

impl Process {
    fn id(&self) -> Option<u32> {
        match self {
            Process::Tokio(c) => c.id(),
            #[cfg(target_os = "linux")]
            Process::Lean(c) => Some(c.id()),
        }
    }

    async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            Process::Tokio(c) => c.wait().await,
            #[cfg(target_os = "linux")]
            Process::Lean(c) => c.wait().await,
        }
    }
}

/// Why the attempt was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Timeout,
    Cancel,
    EngineGone,
}

/// Prepares the scratch files and starts the process, on the caller's thread; logs the start
/// line and queues `Started` (with no pid when it could not start). The error is the message
/// for people, already redacted.
pub(super) fn start_reported(
    req: &ExecRequest,
    line: &str,
    reports: &mpsc::UnboundedSender<ExecMsg>,
    logs: &LogStore,
) -> Result<Started, String> {
    let key = &req.key;
    match start(req, line) {
        Ok(child) => {
            let pid = child.process.id();
            logs.push(
                key,
                LogStream::System,
                format!(
                    "started pid {}: {}",
                    pid.map_or_else(|| "?".to_string(), |p| p.to_string()),
                    req.redactor.redact(line)
                ),
            );
            super::report(reports, key, ExecReport::Started { pid });
            Ok(child)
        }
        Err(error) => {
            let error = req.redactor.redact(&error).into_owned();
            logs.push(key, LogStream::System, error.clone());
            super::report(reports, key, ExecReport::Started { pid: None });
            Err(error)
        }
    }
}

/// Supervises a started attempt to its end and reports the outcome.
pub(super) async fn run(
    req: ExecRequest,
    child: Result<Started, String>,
    control: mpsc::UnboundedReceiver<Control>,
    reports: mpsc::UnboundedSender<ExecMsg>,
    logs: LogStore,
) {
    let mut outputs_taken = false;
    let result = match child {
        Ok(child) => supervise(&req, child, control, &reports, &logs, &mut outputs_taken).await,
        Err(error) => ExecResult::failed(AttemptOutcome::Failed, None, error),
    };
    logs.finish(&req.key);
    // The scratch files served this attempt only; contexts may hold secrets.
    if outputs_taken {
        let _ = std::fs::remove_file(req.context_path());
    } else {
        remove_scratch(&req);
    }
    super::report(&reports, &req.key, ExecReport::Finished(result));
}

/// Outputs first: while the context file stands, so may an outputs file; once it is gone, no
/// outputs file of this attempt is left (`prepare_files` counts on that).
fn remove_scratch(req: &ExecRequest) {
    let _ = std::fs::remove_file(req.output_path());
    let _ = std::fs::remove_file(req.context_path());
}

/// Writes the scratch files and starts the process. The error is the message for people.
fn start(req: &ExecRequest, line: &str) -> Result<Started, String> {
    let invocation = cmdline::plan(line).map_err(|e| e.to_string())?;
    let context_path = req.context_path();
    let output_path = req.output_path();
    // A small file on tmpfs: cheaper done here than a hop to the blocking pool and back,
    // which costs two thread wake-ups per task.
    if let Err(e) = prepare_files(req, &context_path, &output_path, &req.context) {
        remove_scratch(req);
        return Err(e);
    }

    let path_override = req.env.iter().any(|(k, _)| k == "PATH");
    let attempt = req.key.attempt.to_string();
    let vars: [(&str, &std::ffi::OsStr); 5] = [
        ("TASKDECK_RUN_ID", req.key.run.as_str().as_ref()),
        ("TASKDECK_TASK_ID", req.task_id.as_ref()),
        ("TASKDECK_ATTEMPT", attempt.as_ref()),
        ("TASKDECK_CONTEXT", context_path.as_os_str()),
        ("TASKDECK_OUTPUT", output_path.as_os_str()),
    ];
    let started = match lean(req, &invocation, path_override, &vars) {
        Some(started) => started,
        None => portable(req, &invocation, path_override, &vars),
    };
    started.map_err(|e| {
        remove_scratch(req);
        if e.kind() == io::ErrorKind::NotFound {
            forget_program(invocation.program());
        }
        cannot_start(invocation.program(), &e)
    })
}

/// The lean spawn, when it applies: on Linux, for a program path known without the task's own
/// PATH. `None`: use the portable spawn.
#[cfg(target_os = "linux")]
fn lean(
    req: &ExecRequest,
    invocation: &Invocation,
    path_override: bool,
    vars: &[(&str, &std::ffi::OsStr)],
) -> Option<io::Result<Started>> {
    use std::ffi::OsStr;
    if !super::fork::available() {
        return None;
    }
    let shell_args;
    let direct_args: Vec<&OsStr>;
    let resolved;
    let (program, argv): (&Path, &[&OsStr]) = match invocation {
        Invocation::Direct { program, args } => {
            resolved = if program.contains('/') {
                Path::new(program).to_path_buf()
            } else if path_override {
                return None;
            } else {
                resolve_program(program)?
            };
            direct_args = std::iter::once(program.as_str())
                .chain(args.iter().map(String::as_str))
                .map(OsStr::new)
                .collect();
            (&resolved, &direct_args)
        }
        Invocation::Shell(line) => {
            shell_args = [OsStr::new("sh"), OsStr::new("-c"), OsStr::new(line)];
            (Path::new(cmdline::SHELL), &shell_args)
        }
    };
    let env: Vec<(&OsStr, &OsStr)> = vars
        .iter()
        .map(|(k, v)| (OsStr::new(k), *v))
        .chain(req.env.iter().map(|(k, v)| (OsStr::new(k), OsStr::new(v))))
        .collect();
    let spec = super::fork::Spec {
        program,
        argv,
        env: &env,
        cwd: req.cwd.as_deref(),
        // Without the guardian, the kernel kills the child if taskdeck dies.
        die_with_parent: !super::guardian::installed(),
    };
    let spawned = match super::fork::spawn(&spec) {
        // A file without `#!` is a shell script, as a shell (and `execvp`) would take it.
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            let mut sh_argv = vec![OsStr::new("sh"), program.as_os_str()];
            sh_argv.extend_from_slice(&argv[1..]);
            super::fork::spawn(&super::fork::Spec {
                program: Path::new(cmdline::SHELL),
                argv: &sh_argv,
                ..spec
            })
        }
        other => other,
    };
    match spawned {
        Ok(Some(s)) => Some(Ok(Started {
            process: Process::Lean(s.child),
            stdout: Some(Output::Pipe(s.stdout)),
            stderr: Some(Output::Pipe(s.stderr)),
        })),
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
}

#[cfg(not(target_os = "linux"))]
fn lean(
    _: &ExecRequest,
    _: &Invocation,
    _: bool,
    _: &[(&str, &std::ffi::OsStr)],
) -> Option<io::Result<Started>> {
    None
}

/// The portable spawn: `posix_spawn` when the guardian watches the group, else `fork` with a
/// hook that sets `PR_SET_PDEATHSIG`.
fn portable(
    req: &ExecRequest,
    invocation: &Invocation,
    path_override: bool,
    vars: &[(&str, &std::ffi::OsStr)],
) -> io::Result<Started> {
    let mut cmd = command(invocation, path_override);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .envs(vars.iter().copied())
        .envs(req.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &req.cwd {
        cmd.current_dir(cwd);
    }
    if super::guardian::installed() {
        // The guardian kills the group if taskdeck dies, so no `pre_exec` hook is needed and
        // the spawn can take the fast `posix_spawn` path.
        cmd.process_group(0);
    } else {
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls.
        unsafe {
            cmd.pre_exec(move || child_setup(parent));
        }
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().map(|s| Output::Reader(Box::new(s)));
    let stderr = child.stderr.take().map(|s| Output::Reader(Box::new(s)));
    Ok(Started {
        process: Process::Tokio(child),
        stdout,
        stderr,
    })
}

fn command(invocation: &Invocation, path_override: bool) -> Command {
    match invocation {
        Invocation::Direct { program, args } => {
            // Resolving the program here once (and remembering it) spares the child a walk of
            // every PATH entry with a failing exec each; a task that sets its own PATH walks it.
            let resolved = if path_override {
                None
            } else {
                resolve_program(program)
            };
            let mut c = Command::new(resolved.as_deref().unwrap_or(Path::new(program)));
            // `$0` is the name the task wrote, as a shell (and the lean spawn) would give it.
            c.arg0(program).args(args);
            c
        }
        Invocation::Shell(line) => {
            let mut c = Command::new(cmdline::SHELL);
            c.arg0("sh").arg("-c").arg(line);
            c
        }
    }
}

/// Where bare program names were found on PATH.
static PROGRAMS: LazyLock<Mutex<HashMap<String, PathBuf>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Drops what `resolve_program` remembered of a program that could not be started.
fn forget_program(program: &str) {
    if let Ok(mut cache) = PROGRAMS.lock() {
        cache.remove(program);
    }
}

/// Finds a bare program name on taskdeck's own PATH, remembering hits. Names with a `/` and
/// misses are left to the normal exec search (which reports the error).
fn resolve_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') || program.is_empty() {
        return None;
    }
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    // A hit is trusted without a `stat`: if the file has gone since, the exec fails with "not
    // found" and `forget_program` drops the entry, so the next attempt searches again.
    if let Ok(cache) = PROGRAMS.lock()
        && let Some(p) = cache.get(program)
    {
        return Some(p.clone());
    }
    let found = std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_absolute() && executable(p))?;
    if let Ok(mut cache) = PROGRAMS.lock() {
        cache.insert(program.to_string(), found.clone());
    }
    Some(found)
}

/// In the child before exec: lead a new process group (so the whole tree can be signalled) and,
/// on Linux, die with taskdeck.
fn child_setup(parent: u32) -> io::Result<()> {
    // SAFETY: setpgid, prctl, getppid and _exit are async-signal-safe.
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        #[cfg(target_os = "linux")]
        {
            let sig = libc::SIGKILL as libc::c_ulong;
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0 as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died before prctl took effect: nobody would ever kill us.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = parent;
    }
    Ok(())
}

fn prepare_files(
    req: &ExecRequest,
    context_path: &Path,
    output_path: &Path,
    context: &[u8],
) -> Result<(), String> {
    use std::fs::DirBuilder;
    use std::io::Write;
    use std::os::unix::fs::DirBuilderExt;

    if let Some(cwd) = &req.cwd {
        match std::fs::metadata(cwd) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "working directory `{}` is not a directory",
                    cwd.display()
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(format!(
                    "working directory `{}` does not exist",
                    cwd.display()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "cannot use working directory `{}`: {e}",
                    cwd.display()
                ));
            }
        }
    }
    // Private: the context may hold secrets meant for this task only.
    let mut file = match create_private(context_path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Left by a taskdeck that died mid-attempt, maybe with an outputs file that must
            // not pass for this attempt's.
            remove_leftover(output_path).map_err(|e| file_err(output_path, e))?;
            remove_leftover(context_path).map_err(|e| file_err(context_path, e))?;
            create_private(context_path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The run's first attempt: make its scratch dir.
            let dir = &req.scratch_dir;
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create scratch directory `{}`: {e}", dir.display()))?;
            create_private(context_path)
        }
        other => other,
    }
    .map_err(|e| file_err(context_path, e))?;
    // The outputs file is not made here: the task creates it when it first appends (the
    // scratch dir is ours alone), which spares an open, a close and an unlink per attempt.
    file.write_all(context)
        .map_err(|e| file_err(context_path, e))
}

fn file_err(path: &Path, e: io::Error) -> String {
    format!("cannot write `{}`: {e}", path.display())
}

/// Creates an empty file only we can read; `create_new`, so a file planted under the name is
/// never written through.
fn create_private(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn remove_leftover(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn cannot_start(program: &str, e: &io::Error) -> String {
    let hint = match e.kind() {
        io::ErrorKind::NotFound if program.contains('/') => " — does the file exist?",
        io::ErrorKind::NotFound => " — is it installed and on PATH?",
        io::ErrorKind::PermissionDenied => " — is it executable?",
        _ => "",
    };
    format!("cannot start `{program}`: {e}{hint}")
}

/// Waits for the process while obeying controls and the timeout, cleans up its group, collects
/// its output and outputs file.
async fn supervise(
    req: &ExecRequest,
    started: Started,
    mut control: mpsc::UnboundedReceiver<Control>,
    reports: &mpsc::UnboundedSender<ExecMsg>,
    logs: &LogStore,
    outputs_taken: &mut bool,
) -> ExecResult {
    let Started {
        process: mut child,
        stdout: out,
        stderr: err,
    } = started;
    let started = Instant::now();
    let system = |line: String| logs.push(&req.key, LogStream::System, line);
    let Some(pgid) = child.id() else {
        // tokio only forgets the pid once the child was reaped; nothing runs.
        return ExecResult::failed(
            AttemptOutcome::Failed,
            None,
            "the process vanished right after starting".to_string(),
        );
    };
    let guard = KillOnDrop::new(pgid);
    // The timeout counts from the start, quiet period included.
    let deadline = req.timeout.map(|t| started + t);
    let quiet = match quiet_start(&mut child, &mut control, out, err, deadline).await {
        Ok(quiet) => quiet,
        Err(e) => {
            let error = format!("cannot read the task's output: {e}");
            system(error.clone());
            return ExecResult::failed(AttemptOutcome::Failed, None, error);
        }
    };
    let QuietStart {
        exited,
        control: first,
        stdout: out,
        stderr: err,
    } = quiet;
    // Both output streams are read inside this task rather than in tasks of their own: two
    // spawns and two cross-task wake-ups fewer per attempt. `pumps` ends when both streams do
    // and gives stderr's last line.
    let mut pumps = std::pin::pin!(async {
        let out = async {
            match out {
                Some(r) => lines::pump(r, LogStream::Stdout, &req.key, logs, &req.redactor).await,
                None => None,
            }
        };
        let err = async {
            match err {
                Some(r) => lines::pump(r, LogStream::Stderr, &req.key, logs, &req.redactor).await,
                None => None,
            }
        };
        tokio::join!(out, err).1
    });
    let mut pumped: Option<Option<String>> = None;

    let ended = match exited {
        Some(status) => Ended::Exited(status),
        None => {
            let watching = watch(&mut child, pgid, deadline, first, control, reports, &system);
            alongside(watching, &mut pumps, &mut pumped).await
        }
    };
    let (status, stop) = match ended {
        Ended::Exited(status) => (status, None),
        Ended::Stopped(why) => {
            let reason = match why {
                Stop::Timeout => timeout_message(req.timeout),
                Stop::Cancel => "cancelled".to_string(),
                Stop::EngineGone => "taskdeck is stopping".to_string(),
            };
            system(format!("{reason}: sending SIGTERM to the process group"));
            let stopping = terminate(&mut child, pgid, req.kill_grace, &system);
            let status = alongside(stopping, &mut pumps, &mut pumped).await;
            (status, Some(why))
        }
    };
    // Kills the group: stray background children must not outlive the attempt. (The leader is
    // reaped by now; its pid cannot name a new group while members of this one remain, so the
    // only race is a reused pid in the instant after the group emptied, which we accept.)
    drop(guard);

    let stderr_tail = match pumped {
        Some(tail) => tail,
        None => match tokio::time::timeout(DRAIN_LIMIT, &mut pumps).await {
            Ok(tail) => tail,
            Err(_) => {
                system("output still open after the task ended (a process left its group?); stopped reading".to_string());
                None
            }
        },
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            let error = format!("lost track of the process: {e}");
            system(error.clone());
            return ExecResult::failed(AttemptOutcome::Failed, None, error);
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    system(match status.code() {
        Some(c) => format!("exited with code {c} after {elapsed:.2}s"),
        None => format!("{} after {elapsed:.2}s", describe_status(status)),
    });
    conclude(req, status, stop, stderr_tail, &system, outputs_taken)
}

/// What happened in a task's first moments, and readers of its output streams.
struct QuietStart {
    /// The exit status, if the task ended then.
    exited: Option<io::Result<ExitStatus>>,
    /// A control message that came then (`Some(None)`: the control handle was dropped), for
    /// `watch` to act on first.
    control: Option<Option<Control>>,
    stdout: Option<Reader>,
    stderr: Option<Reader>,
}

/// Waits up to `QUIET_START` for a task with unwatched pipes to end, then makes readers of its
/// streams: what it left in a pipe once it is over, else the pipe on the runtime. The wait is
/// cut short by the deadline or a control message (a pause or a cancel acts at once).
async fn quiet_start(
    child: &mut Process,
    control: &mut mpsc::UnboundedReceiver<Control>,
    out: Option<Output>,
    err: Option<Output>,
    deadline: Option<Instant>,
) -> io::Result<QuietStart> {
    let pipes = [&out, &err]
        .iter()
        .any(|o| matches!(o, Some(Output::Pipe(_))));
    let mut quiet_end = Instant::now() + QUIET_START;
    if let Some(d) = deadline {
        quiet_end = quiet_end.min(d);
    }
    let (exited, first) = if pipes {
        tokio::select! {
            // A pause or cancel sent with the start wins over an exit at the same moment.
            biased;
            c = control.recv() => (None, Some(c)),
            status = child.wait() => (Some(status), None),
            _ = tokio::time::sleep_until(quiet_end) => (None, None),
        }
    } else {
        (None, None)
    };
    let ended = exited.is_some();
    Ok(QuietStart {
        exited,
        control: first,
        stdout: out.map(|o| o.into_reader(ended)).transpose()?.flatten(),
        stderr: err.map(|o| o.into_reader(ended)).transpose()?.flatten(),
    })
}

impl Output {
    /// A reader of the stream; `None` for a pipe found empty and closed once the task `ended`.
    fn into_reader(self, ended: bool) -> io::Result<Option<Reader>> {
        let fd = match self {
            Output::Reader(r) => return Ok(Some(r)),
            Output::Pipe(fd) => fd,
        };
        let mut left = Vec::new();
        if ended {
            match read_available(&fd, &mut left) {
                Ok(true) if left.is_empty() => return Ok(None),
                Ok(true) => return Ok(Some(Box::new(io::Cursor::new(left)))),
                // A process that left the group still holds the pipe: watch it as usual.
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "task output pipe failed");
                    return Ok(None);
                }
            }
        }
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd)?;
        Ok(Some(if left.is_empty() {
            Box::new(pipe)
        } else {
            Box::new(tokio::io::AsyncReadExt::chain(io::Cursor::new(left), pipe))
        }))
    }
}

/// Reads what a non-blocking pipe holds into `buf`; `true` at end of file, `false` when
/// nothing more is there yet, or a pipe's worth was read (a writer may keep filling it).
fn read_available(fd: &OwnedFd, buf: &mut Vec<u8>) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    const AT_MOST: usize = 64 * 1024;
    let mut chunk = [0u8; 4096];
    while buf.len() < AT_MOST {
        // SAFETY: reads into a buffer we own from a descriptor we own.
        let n = unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        match n {
            0 => return Ok(true),
            n if n > 0 => buf.extend_from_slice(&chunk[..n as usize]),
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => {}
                    io::ErrorKind::WouldBlock => return Ok(false),
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(false)
}

enum Ended {
    Exited(io::Result<ExitStatus>),
    Stopped(Stop),
}

/// Waits for the leader to exit, applying pause/resume on the way, until the deadline, a cancel
/// or the engine going away says stop. `pending` came in before (see `quiet_start`) and is
/// acted on first.
async fn watch(
    child: &mut Process,
    pgid: u32,
    mut deadline: Option<Instant>,
    mut pending: Option<Option<Control>>,
    mut control: mpsc::UnboundedReceiver<Control>,
    reports: &mpsc::UnboundedSender<ExecMsg>,
    system: &impl Fn(String),
) -> Ended {
    // Time spent paused does not count against the timeout: while paused, `deadline` is `None`
    // and `paused` holds what remained of it.
    let mut paused: Option<Option<Duration>> = None;
    let mut control_open = true;
    loop {
        let next = match pending.take() {
            Some(c) => c,
            None => {
                let timer = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    s = child.wait() => return Ended::Exited(s),
                    _ = timer => return Ended::Stopped(Stop::Timeout),
                    _ = reports.closed() => return Ended::Stopped(Stop::EngineGone),
                    c = control.recv(), if control_open => c,
                }
            }
        };
        match next {
            Some(Control::Cancel) => return Ended::Stopped(Stop::Cancel),
            Some(Control::Pause) if paused.is_none() => {
                group::signal(pgid, libc::SIGSTOP);
                paused = Some(
                    deadline
                        .take()
                        .map(|d| d.saturating_duration_since(Instant::now())),
                );
                system("paused (SIGSTOP to the process group)".to_string());
            }
            Some(Control::Resume) => {
                if let Some(left) = paused.take() {
                    group::signal(pgid, libc::SIGCONT);
                    deadline = left.map(|l| Instant::now() + l);
                    system("resumed (SIGCONT to the process group)".to_string());
                }
            }
            Some(Control::Pause) => {}
            // The handle was dropped: the attempt runs on, uncontrolled.
            None => control_open = false,
        }
    }
}

/// The attempt's result once its processes are gone and its output read.
fn conclude(
    req: &ExecRequest,
    status: ExitStatus,
    stop: Option<Stop>,
    stderr_tail: Option<String>,
    system: &impl Fn(String),
    outputs_taken: &mut bool,
) -> ExecResult {
    let code = status.code();
    match (stop, code) {
        (Some(Stop::Timeout), _) => {
            ExecResult::failed(AttemptOutcome::TimedOut, code, timeout_message(req.timeout))
        }
        (Some(Stop::Cancel), _) => ExecResult::cancelled(code),
        (Some(Stop::EngineGone), _) => ExecResult::failed(
            AttemptOutcome::Cancelled,
            code,
            "taskdeck stopped while the task ran".to_string(),
        ),
        (None, Some(0)) => {
            // `take` removes the file as well, whatever it finds.
            *outputs_taken = true;
            match outputs::take(&req.output_path(), req.max_output_bytes) {
                Ok(outputs) => ExecResult::succeeded(code, outputs),
                Err(e) => {
                    let error = req.redactor.redact(&e.to_string()).into_owned();
                    system(format!("outputs rejected: {error}"));
                    ExecResult::failed(AttemptOutcome::Failed, code, error)
                }
            }
        }
        (None, Some(c)) => {
            let error = match stderr_tail {
                Some(tail) => format!("exited with code {c}: {tail}"),
                None => format!("exited with code {c}"),
            };
            ExecResult::failed(AttemptOutcome::Failed, code, error)
        }
        (None, None) => ExecResult::failed(AttemptOutcome::Failed, None, describe_status(status)),
    }
}

fn timeout_message(timeout: Option<Duration>) -> String {
    format!("timed out after {}", human(timeout.unwrap_or_default()))
}

/// Runs `main` to its end while also driving the output readers, until they finish (their
/// result goes to `pumped`).
async fn alongside<T>(
    main: impl Future<Output = T>,
    pumps: &mut (impl Future<Output = Option<String>> + Unpin),
    pumped: &mut Option<Option<String>>,
) -> T {
    let mut main = std::pin::pin!(main);
    loop {
        tokio::select! {
            v = &mut main => return v,
            tail = &mut *pumps, if pumped.is_none() => *pumped = Some(tail),
        }
    }
}

/// TERM (and CONT, so a paused group can act on it) to the group, up to `grace` for it to go
/// away, then KILL.
async fn terminate(
    child: &mut Process,
    pgid: u32,
    grace: Duration,
    system: &impl Fn(String),
) -> io::Result<ExitStatus> {
    group::signal(pgid, libc::SIGTERM);
    group::signal(pgid, libc::SIGCONT);
    let deadline = Instant::now() + grace;
    match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => {
            // The leader went; its children get the rest of the grace.
            let left = deadline.saturating_duration_since(Instant::now());
            if !group::wait_empty(pgid, left).await {
                system(format!(
                    "grace of {} over: sending SIGKILL to the process group",
                    human(grace)
                ));
                group::signal(pgid, libc::SIGKILL);
            }
            status
        }
        Err(_) => {
            system(format!(
                "grace of {} over: sending SIGKILL to the process group",
                human(grace)
            ));
            group::signal(pgid, libc::SIGKILL);
            child.wait().await
        }
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(sig) => {
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            format!("killed by signal {}{core}", group::describe(sig))
        }
        None => format!("ended with status {status}"),
    }
}
