//! `taskdeck serve`: the engine headless behind the HTTP API.
//!
//! Start: runs of the store left unfinished by a server that stopped (or died) are taken over
//! and continue (`--no-resume` leaves them). Stop (SIGTERM, SIGINT/Ctrl-C, or an admin's
//! `POST /api/v1/shutdown`): the listener closes, event streams end with a `closing` notice,
//! requests in flight get a few seconds to finish, then the engine detaches: running task
//! processes are stopped and their runs handed back to the store unfinished, so the next
//! `taskdeck serve` (or `taskdeck resume`) continues them; finished tasks never run again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::WrapErr;

use super::ServeArgs;
use super::run::open_journal;
use crate::config::Config;
use crate::engine::{EngineHandle, EngineOptions};
use crate::server::{self, AppState, Role, ServeOptions, Tokens};

/// How long requests in flight may take to finish once the shutdown started.
const DRAIN: Duration = Duration::from_secs(10);

pub fn run(args: ServeArgs, config: Config) -> color_eyre::Result<u8> {
    match prepare(&args, &config) {
        Ok((addr, tokens, tls)) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .wrap_err("cannot start the async runtime")?;
            runtime.block_on(serve(args, config, addr, tokens, tls))
        }
        Err(msg) => {
            eprintln!("taskdeck: {msg}");
            Ok(2)
        }
    }
}

type Prepared = (SocketAddr, Tokens, Option<Arc<rustls::ServerConfig>>);

/// Checks everything that can be checked before listening: address, tokens, TLS files, and
/// the rule that a server reachable from other machines needs tokens.
fn prepare(args: &ServeArgs, config: &Config) -> Result<Prepared, String> {
    let bind = args
        .bind
        .clone()
        .or_else(|| config.server.bind.clone())
        .unwrap_or_else(|| "127.0.0.1:7070".to_string());
    let addr: SocketAddr = bind.parse().map_err(|_| {
        format!("--bind {bind}: expected IP:PORT, e.g. 127.0.0.1:7070 or 0.0.0.0:7070")
    })?;
    let mut tokens = Tokens::default();
    for (i, t) in config.server.tokens.iter().enumerate() {
        let role = Role::parse(&t.role).ok_or_else(|| {
            format!(
                "config [[server.tokens]] #{}: unknown role `{}`: use viewer, operator or admin",
                i + 1,
                t.role
            )
        })?;
        tokens.add(role, &t.token);
    }
    if let Some(file) = args.tokens.as_ref().or(config.server.tokens_file.as_ref()) {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the tokens file {}: {e}", file.display()))?;
        tokens.parse(&text, &file.display().to_string())?;
    }
    if tokens.is_empty() && !addr.ip().is_loopback() && !args.insecure {
        return Err(format!(
            "refusing to listen on {addr} without tokens: anyone who can reach it could run commands on this machine. Give --tokens FILE (one `ROLE TOKEN` a line), bind to 127.0.0.1, or pass --insecure"
        ));
    }
    let cert = args.tls_cert.as_ref().or(config.server.tls_cert.as_ref());
    let key = args.tls_key.as_ref().or(config.server.tls_key.as_ref());
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some(server::tls::server_config(c, k)?),
        (None, None) => None,
        _ => return Err("TLS needs both --tls-cert and --tls-key".into()),
    };
    Ok((addr, tokens, tls))
}

/// Where agents reach this server by default: its own address (loopback for a wildcard bind).
fn default_public_url(scheme: &str, local: SocketAddr) -> String {
    let mut addr = local;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("{scheme}://{addr}")
}

async fn serve(
    args: ServeArgs,
    config: Config,
    addr: SocketAddr,
    tokens: Tokens,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> color_eyre::Result<u8> {
    let journal = match open_journal(&args.store, &config) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("taskdeck: {e}");
            return Ok(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("taskdeck: cannot listen on {addr}: {e}");
            return Ok(2);
        }
    };
    let local = listener.local_addr()?;
    let store = journal
        .as_ref()
        .map_or("memory (nothing kept)".to_string(), |j| {
            j.location().to_string()
        });
    let config = Arc::new(config);
    let mut opts = EngineOptions::from_config((*config).clone());
    opts.journal = journal.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public = args
        .public_url
        .clone()
        .unwrap_or_else(|| default_public_url(scheme, local));
    opts.callbacks = crate::exec::http::CallbackHub::with_public_base(&public);
    let engine = EngineHandle::start(opts);
    if !args.no_resume {
        resume_orphans(&engine).await;
    }
    let token_note = if tokens.is_empty() {
        "no tokens: open to anyone who can connect".to_string()
    } else {
        "bearer tokens required".to_string()
    };
    let app = AppState::new(
        engine.clone(),
        config,
        tokens,
        ServeOptions {
            body_limit: args.max_body,
            request_timeout: args.request_timeout.into(),
            event_buffer: args.event_buffer,
            heartbeat: args.heartbeat.into(),
        },
    );
    // The first line on stdout is the address (tests and scripts read it).
    println!("taskdeck serve: listening on {scheme}://{local} (store: {store}; {token_note})");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let signals = app.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("taskdeck serve: shutting down");
        signals.close();
    });
    let served = match tls {
        Some(cfg) => server::run(server::tls::TlsListener::new(listener, cfg)?, app, DRAIN).await,
        None => server::run(listener, app, DRAIN).await,
    };
    if let Err(e) = served {
        eprintln!("taskdeck: the server failed: {e}");
    }
    let unfinished = engine
        .inspect(|st| st.runs.values().filter(|r| !r.state.is_terminal()).count())
        .await
        .unwrap_or(0);
    if engine.journal().is_some() {
        let _ = engine.detach().await;
        if unfinished > 0 {
            eprintln!(
                "taskdeck serve: {unfinished} unfinished run{} handed back to the store; the next `taskdeck serve` (or `taskdeck resume`) continues {}",
                if unfinished == 1 { "" } else { "s" },
                if unfinished == 1 { "it" } else { "them" }
            );
        }
    } else {
        // Nothing would remember them: stop their processes cleanly.
        let _ = engine.shutdown().await;
        if unfinished > 0 {
            eprintln!(
                "taskdeck serve: {unfinished} unfinished run{} cancelled (--store memory keeps nothing)",
                if unfinished == 1 { "" } else { "s" }
            );
        }
    }
    Ok(0)
}

/// Takes over the store's unfinished runs that nobody executes any more.
async fn resume_orphans(engine: &EngineHandle) {
    let Some(journal) = engine.journal() else {
        return;
    };
    let now = crate::model::now_millis();
    let runs = match journal.call(|b| b.runs()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("taskdeck serve: cannot list the store's runs: {e}");
            return;
        }
    };
    for rec in runs.into_iter().filter(|r| r.is_orphaned(now)) {
        match engine.resume(&rec.row.id).await {
            Ok((r, warnings)) => {
                for w in warnings {
                    eprintln!("taskdeck serve: warning: {w}");
                }
                eprintln!(
                    "taskdeck serve: resumed run {} of `{}`: {} of {} tasks had finished",
                    r.run, r.state.workflow.name, r.finished, r.tasks
                );
            }
            Err(e) => eprintln!("taskdeck serve: cannot resume run {}: {e}", rec.row.id),
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
