//! `taskdeck attach URL`: the console over a server. Before the screen is taken, one request
//! checks the address and the token, so a wrong one gets a plain message and an exit code:
//! 0 the console closed, 2 the server cannot be reached (or answers nonsense), 3 the token is
//! missing or not valid there.

use std::sync::Arc;

use super::AttachArgs;
use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::console::{Console, Remote};

pub fn run(args: AttachArgs, config: Config) -> color_eyre::Result<u8> {
    let client = match Client::new(&args.url, args.token.clone(), args.cacert.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("taskdeck: {}", e.to_string().replace("--to ", ""));
            return Ok(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // The snapshot needs a viewer's token at least: the one request that proves both.
        if let Err(e) = client.state().await {
            eprintln!("taskdeck: {e}");
            match &e {
                ClientError::Denied { status: 401, .. } if args.token.is_none() => {
                    eprintln!("  hint: give a token with --token TOKEN or TASKDECK_TOKEN")
                }
                ClientError::Connect { .. } => eprintln!(
                    "  hint: is `taskdeck serve` running there? (check the address and the port)"
                ),
                _ => {}
            }
            return Ok(e.exit_code());
        }
        if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            eprintln!(
                "taskdeck: attach opens a console and needs a terminal; in scripts use `taskdeck status RUN --to URL`"
            );
            return Ok(2);
        }
        super::run::log_to_file();
        let console = Console::Remote(Remote::new(client));
        let opts = crate::tui::Options {
            theme: args.theme,
            exit_on_finish: false,
            config: Arc::new(config),
            notice: None,
        };
        let code = crate::tui::run(console.clone(), Vec::new(), opts).await?;
        console.shutdown().await;
        // Runs on the server are not this console's: leaving says nothing about them.
        let _ = code;
        Ok(0)
    })
}
