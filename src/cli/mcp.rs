//! `taskdeck mcp`: the MCP server over stdio. Standard output is the protocol channel, so
//! nothing else may write there: diagnostics go to stderr (`TASKDECK_LOG`), like every
//! non-console command's.
//!
//! With `--to URL` the tools drive a `taskdeck serve`; otherwise an engine embedded on the
//! store (`--store`, default the usual journal). When the assistant closes stdin (or sends
//! SIGTERM/SIGINT) the embedded engine detaches, as `taskdeck serve` does when it stops:
//! running task processes are stopped and unfinished runs are handed back to the store,
//! interrupted but whole. Cancelling them would throw away work the assistant asked for just
//! because the assistant restarted, which happens often; an interrupted run loses nothing
//! and the next session's `resume` tool (or `taskdeck resume`) continues it where it was.

use std::time::Duration;

use rmcp::ServiceExt;

use super::McpArgs;
use super::run::open_journal;
use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::console::{Console, Remote};
use crate::engine::{EngineHandle, EngineOptions};
use crate::mcp::TaskdeckMcp;

pub fn run(args: McpArgs, config: Config) -> color_eyre::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let code = runtime.block_on(serve(args, config));
    // A read of stdin still pending (we stopped on a signal) cannot be cancelled: don't wait.
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}

async fn serve(args: McpArgs, config: Config) -> color_eyre::Result<u8> {
    let console = match &args.to {
        Some(url) => match connect(url, &args).await {
            Ok(c) => c,
            Err(code) => return Ok(code),
        },
        None => match open_journal(&args.store, &config) {
            Ok(journal) => {
                let mut opts = EngineOptions::from_config(config.clone());
                opts.journal = journal;
                Console::Local(EngineHandle::start(opts))
            }
            Err(e) => {
                eprintln!("taskdeck: {e}");
                return Ok(2);
            }
        },
    };
    let server = TaskdeckMcp::new(console.clone(), config);
    match server.serve(rmcp::transport::stdio()).await {
        Ok(service) => {
            tokio::select! {
                quit = service.waiting() => {
                    tracing::info!("the MCP session ended: {quit:?}");
                }
                _ = wait_for_signal() => {
                    tracing::info!("signal: stopping the MCP server");
                }
            }
        }
        // The client went away (or spoke nonsense) before the handshake finished.
        Err(e) => eprintln!("taskdeck mcp: no MCP session: {e}"),
    }
    stop(&console).await;
    Ok(0)
}

/// A remote console, after one request that proves the address and the token, so a wrong
/// one stops the server at once with a message instead of failing every tool call later.
async fn connect(url: &str, args: &McpArgs) -> Result<Console, u8> {
    let client = Client::new(url, args.token.clone(), args.cacert.as_deref()).map_err(|e| {
        eprintln!("taskdeck: {e}");
        2
    })?;
    if let Err(e) = client.state().await {
        eprintln!("taskdeck: {e}");
        match &e {
            ClientError::Denied { status: 401, .. } if args.token.is_none() => {
                eprintln!("  hint: give a token with --token TOKEN or TASKDECK_TOKEN")
            }
            ClientError::Connect { .. } => {
                eprintln!("  hint: is `taskdeck serve` running there? (check --to and the port)")
            }
            _ => {}
        }
        return Err(e.exit_code());
    }
    Ok(Console::Remote(Remote::new(client)))
}

/// Hands the embedded engine's unfinished runs back to the store (see the module docs); a
/// remote console has nothing to let go of: the server's runs go on.
async fn stop(console: &Console) {
    let Console::Local(engine) = console else {
        return;
    };
    let unfinished = engine
        .inspect(|st| st.runs.values().filter(|r| !r.state.is_terminal()).count())
        .await
        .unwrap_or(0);
    let plural = if unfinished == 1 { "" } else { "s" };
    if engine.journal().is_some() {
        let _ = engine.detach().await;
        if unfinished > 0 {
            eprintln!(
                "taskdeck mcp: {unfinished} unfinished run{plural} handed back to the store; the `resume` tool or `taskdeck resume` continues them"
            );
        }
    } else {
        let _ = engine.shutdown().await;
        if unfinished > 0 {
            eprintln!(
                "taskdeck mcp: {unfinished} unfinished run{plural} cancelled (--store memory keeps nothing)"
            );
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
