use std::process::ExitCode;

use clap::Parser;
use taskdeck::cli::{self, Cli, Commands};
use taskdeck::config::Config;

fn main() -> ExitCode {
    if let Err(e) = color_eyre::install() {
        eprintln!("taskdeck: {e}");
    }
    let cli = Cli::parse();
    // Under the console, tracing goes to a file (cli::run sets that up), never to the terminal.
    let console = match &cli.command {
        Commands::Run(a) => cli::run::opens_console(&a.opts),
        Commands::Resume(a) => cli::run::opens_console(&a.opts),
        Commands::Rerun(a) => cli::run::opens_console(&a.opts),
        Commands::Plan(a) => cli::plan::opens_console(a),
        Commands::Console(_) | Commands::Attach(_) => {
            std::io::IsTerminal::is_terminal(&std::io::stdout())
        }
        _ => false,
    };
    if !console {
        init_tracing();
    }
    if cli.command.prints_and_exits() {
        // Rust ignores SIGPIPE, so a write to a reader that went away would fail and panic;
        // with the default, the command ends quietly as `cat` would.
        #[cfg(unix)]
        // SAFETY: restoring a signal's default disposition, before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("taskdeck: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.command.hosts_engine()
        && let Err(e) = taskdeck::exec::guardian::install()
    {
        // Without it the executor falls back to PR_SET_PDEATHSIG: slower, still safe.
        eprintln!("taskdeck: cannot start the process guardian ({e}); continuing without it");
    }
    let result = match cli.command {
        Commands::Run(args) => cli::run::run(args, config),
        Commands::Console(args) => cli::run::console_only(args, config),
        Commands::Resume(args) => match args.to.clone() {
            Some(url) => cli::remote::resume(
                url,
                args.token.clone(),
                args.cacert.as_deref(),
                args.run.clone().unwrap_or_default(),
                args.task.clone(),
            ),
            None => cli::history::resume(args, config),
        },
        Commands::Rerun(args) => cli::history::rerun(args, config),
        Commands::Runs(args) => cli::history::runs(args, &config),
        Commands::Report(args) => cli::history::report(args, &config),
        Commands::Diff(args) => cli::history::diff(args, &config),
        Commands::Backup(args) => cli::history::backup(args, &config),
        Commands::Restore(args) => cli::history::restore(args, &config),
        Commands::Validate(args) => cli::validate::run(args, &config),
        Commands::Graph(args) => cli::graph::run(args, &config),
        Commands::Plan(args) => cli::plan::run(args, config),
        Commands::Serve(args) => cli::serve::run(args, config),
        Commands::Attach(args) => cli::attach::run(args, config),
        Commands::Submit(args) => cli::remote::submit(args),
        Commands::Status(args) => cli::remote::status(args),
        Commands::Retry(args) => cli::remote::retry(args),
        Commands::Approve(args) => cli::remote::approve(args),
        Commands::Cancel(args) => cli::remote::cancel(args),
        Commands::Pause(args) => cli::remote::pause(args),
        Commands::Mcp(args) => cli::mcp::run(args, config),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("taskdeck: {e:?}");
            ExitCode::from(2)
        }
    }
}

/// taskdeck's own diagnostics (`TASKDECK_LOG=debug`, default `warn`) go to stderr, never to
/// stdout where progress and reports go.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TASKDECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
