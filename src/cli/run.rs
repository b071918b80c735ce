//! `taskdeck run`.

use crate::config::Config;

/// Returns the process exit code.
pub fn run(args: super::RunArgs, config: Config) -> color_eyre::Result<u8> {
    let _ = (args, config);
    todo!("taskdeck run")
}
